"""Message operations of one Graph mailbox, answered in EmailEngine's JSON.

Costs in Graph requests (a ``$batch`` counts once):

    listing / search    1  (``$select`` of the summary fields, ``$expand`` of attachment
                            metadata and of the last verb (``\\Answered``), ``$count=true``;
                            ``$search`` with flag terms: the result pages, then filtered here —
                            the two steps Graph requires)
    thread              1  (``/messages?$filter=conversationId eq …``: every folder at once)
    get message         1  (``$batch``: the resource + ``$value``, parsed by the same MIME code
                            as IMAP)
    source / attachment 1  (streamed ``$value``)
    flags / labels      1  (PATCH; +1 GET of the current state for label add/delete, flag
                            ``set`` and removing ``\\Answered``), move 1 (``/move``: the
                            immutable id stays), delete 1
    bulk                the search + one ``$batch`` per 20 messages

Uploads stay drafts: Graph v1.0 creates a message posted as MIME as a draft (``isDraft``,
shown as ``\\Draft`` / ``draft: true``), and ``isDraft`` is read-only — a PATCH cannot clear
it. The known way around (the extended property ``PR_MESSAGE_FLAGS``, ``Integer 0x0E07``, set
at creation) needs the JSON form of a message, which loses the byte-identical MIME source, and
cannot be set on a MIME upload or changed afterwards. So an uploaded message keeps the draft
state (Outlook shows it as one); what mailgate sets after the upload are the flags Graph
stores (``\\Seen``, ``\\Flagged``, ``\\Answered``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from mailgate.backends.base import Download, MessageChanges, PageRequest, ReadOptions
from mailgate.backends.graph.client import BatchPart, BatchResult, GraphClient
from mailgate.backends.graph.folders import Folders, GraphFolder
from mailgate.backends.graph.summary import (
    EXPAND_LAST_VERB,
    EXPAND_SUMMARY,
    SUMMARY_FIELDS,
    answered_patch,
    categories_of,
    check_message_id,
    flag_patch,
    part_attachment_id,
    query_value,
    split_attachment_id,
    split_text_id,
    summarize,
    text_id,
)
from mailgate.backends.graph.summary import attachment_id as make_attachment_id
from mailgate.backends.imap.reading import effective_options, merge_details
from mailgate.errors import BadRequest, NotFound
from mailgate.protocols.graph_query import EXTENDED, GraphQuery, compile_query
from mailgate.protocols.mime import (
    decode_part,
    embed_cid_images,
    parse_message,
    sanitize_html,
)

CURSOR_PREFIX = "graph_"
MAX_CURSOR_LENGTH = 4096
#: Most results of a two-step search (``$search`` results filtered here).
MAX_SEARCH_RESULTS = 1000
#: Page size of the first step of a two-step search and of bulk operations.
SCAN_PAGE = 250
#: Most messages one bulk operation changes.
MAX_BULK = 10_000
#: Images embedded into HTML as data: URIs (embedAttachedImages), in bytes.
MAX_EMBED_BYTES = 8 * 1024 * 1024


def _message_missing() -> NotFound:
    return NotFound("Requested message was not found", "MessageNotFound")


def _attachment_missing() -> NotFound:
    return NotFound("Requested attachment was not found", "AttachmentNotFound")


def _invalid_cursor() -> BadRequest:
    return BadRequest("Invalid paging cursor", "InvalidCursor", key="cursor")


def encode_cursor(data: Mapping[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str) -> dict[str, Any]:
    if not value.startswith(CURSOR_PREFIX) or len(value) > MAX_CURSOR_LENGTH:
        raise _invalid_cursor()
    body = value[len(CURSOR_PREFIX) :]
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError):
        raise _invalid_cursor() from None
    if not isinstance(data, dict) or not isinstance(data.get("p"), int):
        raise _invalid_cursor()
    return data


def pages_of(total: int, page_size: int) -> int:
    return max(1, -(-total // page_size))


class GraphMessages:
    """The message half of :class:`~.backend.GraphBackend`."""

    def __init__(self, client: GraphClient, folders: Folders) -> None:
        self.client = client
        self.folders = folders

    # -- helpers -------------------------------------------------------------------------------

    async def _place(self, row: Mapping[str, Any]) -> tuple[str | None, str | None]:
        folder = await self.folders.folder_of(str(row.get("parentFolderId") or ""))
        return (folder.path, folder.special_use) if folder else (None, None)

    async def _summaries(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for row in rows:
            path, use = await self._place(row)
            out.append(summarize(row, path=path, special_use=use))
        return out

    def _collection(self, folder: GraphFolder | None) -> str:
        return f"/mailFolders/{folder.id}/messages" if folder else "/messages"

    # -- listing and search --------------------------------------------------------------------

    async def list_messages(
        self, path: str, paging: PageRequest, search: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        query = compile_query(search) if search is not None else GraphQuery()
        folder = None if query.everywhere else await self.folders.resolve(path)
        if query.ids is not None:
            return await self._by_ids(query.ids, paging)
        if query.residual:
            return await self._two_step(folder, query, paging)
        collection = self._collection(folder)
        size = paging.page_size
        page = paging.page
        if paging.cursor:
            cursor = decode_cursor(paging.cursor)
            page = int(cursor["p"])
            link = cursor.get("l")
            if isinstance(link, str):
                if not link.startswith(self.client.root + collection + "?"):
                    raise BadRequest(
                        "The paging cursor belongs to another listing", "InvalidCursor"
                    )
                data = await self.client.get(self.client.base + link)
                return await self._page(data, collection, page, size)
            skip = int(cursor.get("s") or 0)
        else:
            skip = page * size
        params = {
            "$select": SUMMARY_FIELDS,
            "$top": str(size),
            "$count": "true",
            "$expand": EXPAND_SUMMARY,
            **query.params(),
        }
        if skip:
            params["$skip"] = str(skip)
        data = await self.client.get(collection, params=params)
        return await self._page(data, collection, page, size, skip=skip)

    async def _page(
        self,
        data: Mapping[str, Any],
        collection: str,
        page: int,
        size: int,
        skip: int | None = None,
    ) -> dict[str, Any]:
        rows = [r for r in data.get("value") or [] if isinstance(r, dict)]
        total = int(data.get("@odata.count") or 0)
        if skip is None:
            skip = page * size
        total = max(total, skip + len(rows))
        next_cursor = prev_cursor = None
        link = data.get("@odata.nextLink")
        if link and self.client.same_origin(str(link)):
            relative = str(link)[len(self.client.base) :]
            if relative.startswith(self.client.root + collection + "?"):
                next_cursor = encode_cursor({"p": page + 1, "l": relative})
        if page > 0 and skip > 0:
            prev_cursor = encode_cursor({"p": page - 1, "s": max(0, skip - size)})
        return {
            "total": total,
            "page": page,
            "pages": pages_of(total, size),
            "nextPageCursor": next_cursor,
            "prevPageCursor": prev_cursor,
            "messages": await self._summaries(rows),
        }

    async def _scan(self, folder: GraphFolder | None, query: GraphQuery) -> list[dict[str, Any]]:
        """Every message matching ``query`` (capped), the residual applied here."""
        params = {
            "$select": SUMMARY_FIELDS,
            "$top": str(SCAN_PAGE),
            "$expand": EXPAND_LAST_VERB,
            **query.params(),
        }
        rows = await self.client.all_pages(
            self._collection(folder), params, limit=MAX_SEARCH_RESULTS
        )
        return [r for r in rows[:MAX_SEARCH_RESULTS] if query.matches(r)]

    async def _two_step(
        self, folder: GraphFolder | None, query: GraphQuery, paging: PageRequest
    ) -> dict[str, Any]:
        rows = await self._scan(folder, query)
        return await self._local_page(rows, paging)

    async def _local_page(self, rows: list[dict[str, Any]], paging: PageRequest) -> dict[str, Any]:
        size = paging.page_size
        page = paging.page
        skip = page * size
        if paging.cursor:
            cursor = decode_cursor(paging.cursor)
            page, skip = int(cursor["p"]), int(cursor.get("s") or 0)
        chosen = rows[skip : skip + size]
        return {
            "total": len(rows),
            "page": page,
            "pages": pages_of(len(rows), size),
            "nextPageCursor": encode_cursor({"p": page + 1, "s": skip + size})
            if skip + size < len(rows)
            else None,
            "prevPageCursor": encode_cursor({"p": page - 1, "s": max(0, skip - size)})
            if skip > 0
            else None,
            "messages": await self._summaries(chosen),
        }

    async def _by_ids(self, ids: list[str], paging: PageRequest) -> dict[str, Any]:
        results = await self.client.batch([BatchPart("GET", _summary_url(i)) for i in ids])
        rows = [r.body for r in results if r.ok and isinstance(r.body, dict)]
        return await self._local_page(rows, paging)

    # -- reading -------------------------------------------------------------------------------

    async def _resource_and_raw(self, message: str) -> tuple[dict[str, Any], bytes]:
        check_message_id(message)
        meta, raw = await self.client.batch(
            [
                BatchPart("GET", _summary_url(message)),
                BatchPart("GET", f"/messages/{message}/$value"),
            ]
        )
        if not meta.ok or not isinstance(meta.body, dict):
            raise meta.error("MessageNotFound")
        if not raw.ok:
            raise raw.error("MessageNotFound")
        return meta.body, raw.raw()

    async def get_message(self, message: str, options: ReadOptions) -> dict[str, Any]:
        options = effective_options(options)
        row, raw = await self._resource_and_raw(message)
        path, use = await self._place(row)
        summary = summarize(row, path=path, special_use=use)
        graph_atts = [a for a in row.get("attachments") or [] if isinstance(a, dict)]
        parsed = parse_message(
            raw, max_text_bytes=options.max_bytes, text_type=options.text_type or "*"
        )
        ids = match_attachments(message, parsed.attachments, graph_atts)
        mime = parsed.to_contract(
            attachment_id=lambda part: ids.get(part) or part_attachment_id(message, part),
            text_id=text_id(message),
            include_text=False,
        )
        text: dict[str, Any] = mime["text"]
        if options.text_type is not None:
            html = parsed.text_html
            if html is not None and options.text_type in ("*", "html"):
                images = _cid_images(raw, parsed) if options.embed_attached_images else {}
                if options.web_safe_html:
                    html = sanitize_html(html, embed_images=images or None)
                elif images:
                    html = embed_cid_images(html, images)
                text["html"] = html
            if parsed.text_plain is not None and options.text_type in ("*", "plain"):
                text["plain"] = parsed.text_plain
            text["hasMore"] = parsed.has_more
            if options.web_safe_html:
                text["webSafe"] = True
        summary.pop("attachments", None)
        details = merge_details(summary, mime)
        details["size"] = len(raw)
        if options.mark_as_seen and details.get("unseen"):
            await self.client.patch(
                f"/messages/{message}", {"isRead": True}, not_found="MessageNotFound"
            )
            details["flags"] = [*details.get("flags", []), "\\Seen"]
            details["unseen"] = False
        if use:
            details["specialUse"] = use
        return details

    async def get_text(
        self, text: str, *, text_type: str, max_bytes: int | None, web_safe_html: bool
    ) -> dict[str, Any]:
        message = split_text_id(text)
        resp = await self.client.request(
            "GET", f"/messages/{message}/$value", not_found="MessageNotFound"
        )
        parsed = parse_message(resp.content, max_text_bytes=max_bytes, text_type=text_type)
        if web_safe_html:
            return {
                "html": sanitize_html(parsed.text_html or ""),
                "webSafe": True,
                "hasMore": parsed.has_more,
            }
        out: dict[str, Any] = {}
        if parsed.text_plain is not None and text_type in ("*", "plain"):
            out["plain"] = parsed.text_plain
        if parsed.text_html is not None and text_type in ("*", "html"):
            out["html"] = parsed.text_html
        out["hasMore"] = parsed.has_more
        return out

    # -- streaming -----------------------------------------------------------------------------

    async def _download(
        self, path: str, content_type: str, filename: str | None, missing: str
    ) -> Download:
        chunks = self.client.stream(path, not_found=missing)
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            first = b""
        return Download(content_type, filename, _prepend(first, chunks))

    async def message_source(self, message: str) -> Download:
        check_message_id(message)
        return await self._download(
            f"/messages/{message}/$value", "message/rfc822", f"{message}.eml", "MessageNotFound"
        )

    async def download_attachment(self, attachment: str) -> Download:
        message, graph_att, part = split_attachment_id(attachment)
        if graph_att is not None:
            meta = await self.client.get(
                f"/messages/{message}/attachments/{graph_att}",
                params={"$select": "id,name,contentType"},
                not_found="AttachmentNotFound",
            )
            kind = str(meta.get("@odata.type") or "")
            ctype = (
                "message/rfc822"
                if kind.endswith("itemAttachment")
                else str(meta.get("contentType") or "application/octet-stream")
            )
            return await self._download(
                f"/messages/{message}/attachments/{graph_att}/$value",
                ctype,
                str(meta.get("name") or "") or None,
                "AttachmentNotFound",
            )
        resp = await self.client.request(
            "GET", f"/messages/{message}/$value", not_found="AttachmentNotFound"
        )
        found = decode_part(resp.content, part or "")
        if found is None:
            raise _attachment_missing()
        data, info = found
        return Download(info.content_type, info.filename, _prepend(data, None))

    # -- changes -------------------------------------------------------------------------------

    @staticmethod
    def patch_for(changes: MessageChanges, current: Mapping[str, Any] | None) -> dict[str, Any]:
        """The PATCH body of flag and label changes. ``current`` (the message's categories and
        last verb, see :func:`_needs_current`) is needed for label add/delete, flag ``set`` and
        removing ``\\Answered``."""
        body: dict[str, Any] = {}
        flags = changes.flags
        if flags is not None:
            if flags.set is not None:
                wanted = {f.lower() for f in flags.set}
                body["isRead"] = "\\seen" in wanted
                body["flag"] = {"flagStatus": "flagged" if "\\flagged" in wanted else "notFlagged"}
                body.update(answered_patch("\\answered" in wanted, current))
            if flags.add:
                body.update(flag_patch(flags.add, True))
                if _has_answered(flags.add):
                    body.update(answered_patch(True, current))
            if flags.delete:
                body.update(flag_patch(flags.delete, False))
                if _has_answered(flags.delete):
                    body.update(answered_patch(False, current))
        labels = changes.labels
        if labels is not None:
            cats = categories_of(current or {})
            if labels.set is not None:
                cats = list(dict.fromkeys(labels.set))
            for label in labels.add or ():
                if label not in cats:
                    cats.append(label)
            for label in labels.delete or ():
                if label in cats:
                    cats.remove(label)
            body["categories"] = cats
        return body

    @staticmethod
    def _result(changes: MessageChanges, ok: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, ops in (("flags", changes.flags), ("labels", changes.labels)):
            if ops is None:
                continue
            result: dict[str, Any] = {}
            for name, value in (("set", ops.set), ("add", ops.add), ("delete", ops.delete)):
                if value is not None and (name == "set" or value):
                    result[name] = ok
            out[key] = result
        return out

    async def update_message(self, message: str, changes: MessageChanges) -> dict[str, Any]:
        check_message_id(message)
        current = None
        if _needs_current(changes):
            current = await self.client.get(
                f"/messages/{message}",
                params={"$select": "categories", "$expand": EXPAND_LAST_VERB},
                not_found="MessageNotFound",
            )
        body = self.patch_for(changes, current)
        if body:
            await self.client.patch(f"/messages/{message}", body, not_found="MessageNotFound")
        elif current is None:  # nothing to write: the message must still exist
            await self.client.get(
                f"/messages/{message}", params={"$select": "id"}, not_found="MessageNotFound"
            )
        return self._result(changes, True)

    async def move_message(self, message: str, target: str) -> dict[str, Any]:
        check_message_id(message)
        folder = await self.folders.resolve(target)
        moved = await self.client.post(
            f"/messages/{message}/move", {"destinationId": folder.id}, not_found="MessageNotFound"
        )
        return {"path": folder.path, "id": str(moved.get("id") or message)}

    async def delete_message(self, message: str, *, force: bool) -> dict[str, Any]:
        check_message_id(message)
        trash = await self.folders.special("\\Trash")
        row = await self.client.get(
            f"/messages/{message}",
            params={"$select": "parentFolderId"},
            not_found="MessageNotFound",
        )
        if force or trash is None or row.get("parentFolderId") == trash.id:
            await self.client.post(
                f"/messages/{message}/permanentDelete", not_found="MessageNotFound"
            )
            return {"deleted": True}
        moved = await self.client.post(
            f"/messages/{message}/move", {"destinationId": trash.id}, not_found="MessageNotFound"
        )
        return {
            "deleted": False,
            "moved": {"destination": trash.path, "message": str(moved.get("id") or message)},
        }

    async def append_message(
        self,
        path: str,
        raw: bytes,
        *,
        flags: Sequence[str] = (),
        internal_date: datetime | None = None,
    ) -> dict[str, Any]:
        """Upload MIME into ``path``, then flag as asked. The message stays a draft (Graph
        v1.0: ``isDraft`` is read-only; see the module docstring)."""
        folder = await self.folders.resolve(path)
        created = await self.client.post(
            f"/mailFolders/{folder.id}/messages",
            content=base64.b64encode(raw),
            headers={"Content-Type": "text/plain"},
        )
        mid = str(created.get("id") or "")
        patch = {"isRead": any(f.lower() == "\\seen" for f in flags)}
        patch.update(flag_patch([f for f in flags if f.lower() == "\\flagged"], True))
        if _has_answered(flags):
            patch.update(answered_patch(True, None))
        if mid:
            await self.client.patch(f"/messages/{mid}", patch)
        return {"id": mid, "path": folder.path, "emailId": mid}

    # -- bulk ----------------------------------------------------------------------------------

    async def _matching(
        self, path: str, search: Mapping[str, Any], *, last_verb: bool = False
    ) -> list[dict[str, Any]]:
        """The messages a bulk operation acts on (with their last verb when ``last_verb``)."""
        query = compile_query(search)
        # an answered test left for the second step reads the last verb of each row
        last_verb = last_verb or EXTENDED in query.residual_fields
        expand = f"&$expand={query_value(EXPAND_LAST_VERB)}" if last_verb else ""
        if query.ids is not None:
            results = await self.client.batch(
                [BatchPart("GET", f"/messages/{i}?$select=id,categories,parentFolderId{expand}")
                 for i in query.ids]
            )  # fmt: skip
            return [r.body for r in results if r.ok and isinstance(r.body, dict)]
        folder = None if query.everywhere else await self.folders.resolve(path)
        params = {"$select": "id,categories,parentFolderId,isRead,flag,isDraft,conversationId",
                  "$top": str(SCAN_PAGE), **query.params()}  # fmt: skip
        if last_verb:
            params["$expand"] = EXPAND_LAST_VERB
        rows = await self.client.all_pages(self._collection(folder), params, limit=MAX_BULK)
        return [r for r in rows[:MAX_BULK] if query.matches(r)]

    async def _each(self, parts: list[BatchPart]) -> list[BatchResult]:
        return await self.client.batch(parts) if parts else []

    async def update_messages(
        self, path: str, search: Mapping[str, Any], changes: MessageChanges
    ) -> dict[str, Any]:
        rows = await self._matching(path, search, last_verb=_touches_answered(changes))
        parts = []
        for row in rows:
            body = self.patch_for(changes, row)
            if body:
                parts.append(BatchPart("PATCH", f"/messages/{row['id']}", body))
        results = await self._each(parts)
        return self._result(changes, bool(rows) and all(r.ok for r in results))

    async def move_messages(
        self, path: str, search: Mapping[str, Any], target: str
    ) -> dict[str, Any]:
        folder = await self.folders.resolve(target)
        rows = await self._matching(path, search)
        results = await self._each(
            [BatchPart("POST", f"/messages/{r['id']}/move", {"destinationId": folder.id})
             for r in rows]
        )  # fmt: skip
        pairs = [
            [str(row["id"]), str((res.body or {}).get("id") or row["id"])]
            for row, res in zip(rows, results, strict=True)
            if res.ok
        ]
        out: dict[str, Any] = {"path": folder.path}
        if pairs:
            out["idMap"] = pairs
        return out

    async def delete_messages(
        self, path: str, search: Mapping[str, Any], *, force: bool
    ) -> dict[str, Any]:
        trash = await self.folders.special("\\Trash")
        source = await self.folders.resolve(path)
        rows = await self._matching(path, search)
        if force or trash is None or source.id == trash.id:
            await self._each([BatchPart("POST", f"/messages/{r['id']}/permanentDelete")
                              for r in rows])  # fmt: skip
            return {"deleted": bool(rows)}
        results = await self._each(
            [BatchPart("POST", f"/messages/{r['id']}/move", {"destinationId": trash.id})
             for r in rows]
        )  # fmt: skip
        moved: dict[str, Any] = {"destination": trash.path}
        pairs = [
            [str(row["id"]), str((res.body or {}).get("id") or row["id"])]
            for row, res in zip(rows, results, strict=True)
            if res.ok
        ]
        if pairs:
            moved["idMap"] = pairs
        return {"deleted": False, "moved": moved}


def _has_answered(flags: Sequence[str]) -> bool:
    return any(f.lower() == "\\answered" for f in flags)


def _touches_answered(changes: MessageChanges) -> bool:
    flags = changes.flags
    return flags is not None and (
        flags.set is not None or _has_answered(flags.add or ()) or _has_answered(flags.delete or ())
    )


def _needs_current(changes: MessageChanges) -> bool:
    """Whether :meth:`GraphMessages.patch_for` needs the message's current state: label
    add/delete (the whole ``categories`` list is written), flag ``set`` and removing
    ``\\Answered`` (only a reply verb is cleared; a forward is left alone)."""
    labels, flags = changes.labels, changes.flags
    if labels is not None and labels.set is None and bool(labels.add or labels.delete):
        return True
    return flags is not None and (flags.set is not None or _has_answered(flags.delete or ()))


def _summary_url(message: str) -> str:
    """One message as a summary, for a ``$batch`` part."""
    return f"/messages/{message}?$select={SUMMARY_FIELDS}&$expand={query_value(EXPAND_SUMMARY)}"


def match_attachments(
    message: str, mime_atts: Sequence[Any], graph_atts: Sequence[Mapping[str, Any]]
) -> dict[str, str]:
    """MIME part number → attachment id, pairing the parser's attachments with Graph's list:
    by Content-ID, then by file name, then in order."""
    left = list(graph_atts)
    out: dict[str, str] = {}

    def take(pred: Any) -> Mapping[str, Any] | None:
        for att in left:
            if pred(att):
                left.remove(att)
                return att
        return None

    pending = []
    for att in mime_atts:
        cid = (att.content_id or "").strip("<>")
        found = take(lambda g, c=cid: c and str(g.get("contentId") or "").strip("<>") == c)
        if found is None and att.filename:
            found = take(lambda g, n=att.filename: g.get("name") == n)
        if found is not None:
            out[att.part] = make_attachment_id(message, str(found.get("id")))
        else:
            pending.append(att)
    for att in pending:
        if left:
            out[att.part] = make_attachment_id(message, str(left.pop(0).get("id")))
    return out


def _cid_images(raw: bytes, parsed: Any) -> dict[str, tuple[str, bytes]]:
    images: dict[str, tuple[str, bytes]] = {}
    budget = MAX_EMBED_BYTES
    for att in parsed.attachments:
        if not att.content_id or not att.content_type.startswith("image/"):
            continue
        decoded = decode_part(raw, att.part)
        if decoded is None or len(decoded[0]) > budget:
            continue
        budget -= len(decoded[0])
        images[att.content_id] = (att.content_type, decoded[0])
    return images


async def _prepend(first: bytes, rest: AsyncIterator[bytes] | None) -> AsyncIterator[bytes]:
    try:
        if first:
            yield first
        if rest is not None:
            async for chunk in rest:
                yield chunk
    finally:
        if rest is not None:
            aclose = getattr(rest, "aclose", None)
            if aclose is not None:
                await aclose()
