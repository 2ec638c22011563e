"""Message operations of one Gmail account over the Gmail REST API.

Costs, in Gmail calls (quota units in brackets):

    listing a label      labels.get (1) for the exact total + messages.list (5) + one batch of
                         messages.get format=full (5 each), ``fields`` cut to the MIME tree
                         without body data, for the page (summaries with attachments, text)
    search               messages.list pages of 500 ids (5 each) for the exact total + the batch
    get message / text   messages.get format=raw (5): the MIME parser does the rest
    source               messages.get format=raw (5), byte for byte
    attachment           messages.get format=full (5) + messages.attachments.get (5)
    flags / labels       messages.modify (5); ``labels.set`` reads the labels first (+5)
    move / delete        messages.modify / trash (5) / delete (10)
    upload               messages.insert (25), multipart upload with labels
    bulk                 the matching ids + messages.batchModify (50 per 1000 ids) /
                         batchDelete

Listings page with an opaque cursor carrying Gmail's page token; a page number without a
cursor walks the listing 500 ids at a time. Totals always come from label counters or
counted ids, never from ``resultSizeEstimate``.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from mailgate.backends.base import Download, MessageChanges, PageRequest, ReadOptions
from mailgate.backends.gmail.client import Call, GmailClient, GmailNotFound
from mailgate.backends.gmail.labels import (
    ALL_MAIL_PATH,
    LOCATION_LABELS,
    Label,
    LabelCache,
    LabelSet,
    flag_label_changes,
)
from mailgate.backends.gmail.summary import (
    SUMMARY_FIELDS,
    SUMMARY_HEADERS,
    check_message_id,
    listing_entry,
    pack_part_id,
    summarize,
    unpack_part_id,
)
from mailgate.backends.imap.reading import (
    _cid_images_from_raw,
    _text_block,
    effective_options,
    merge_details,
)
from mailgate.errors import BadRequest, NotFound
from mailgate.protocols.gmail_query import GmailQuery, compile_gmail_query
from mailgate.protocols.mime import decode_part, parse_message, sanitize_html

#: Ids per messages.list call when walking a listing (Gmail's maximum).
LIST_PAGE_MAX = 500
#: Ids per batchModify / batchDelete call (Gmail's maximum).
BULK_IDS_MAX = 1000
#: Most ids a bulk operation or a search total walks through.
MAX_MATCHING = 100_000
#: Largest page a listing serves.
MAX_PAGE_SIZE = 250
METADATA_FIELDS = "id,threadId,labelIds,sizeEstimate,internalDate,historyId,payload/headers"
LIST_FIELDS = "messages/id,nextPageToken"


def message_missing() -> NotFound:
    return NotFound("Requested message was not found", "MessageNotFound")


def attachment_missing() -> NotFound:
    return NotFound("Requested attachment was not found", "AttachmentNotFound")


def metadata_call(message_id: str, headers: Sequence[str] = SUMMARY_HEADERS) -> Call:
    params: list[tuple[str, Any]] = [("format", "metadata"), ("fields", METADATA_FIELDS)]
    params += [("metadataHeaders", h) for h in headers]
    return Call("messages.get", "GET", f"messages/{message_id}", params)


def summary_call(message_id: str) -> Call:
    """The ``messages.get`` of a listing entry / ``messageNew`` payload (every header, the MIME
    tree without body data): the same 5 units as ``format=metadata``."""
    return Call(
        "messages.get",
        "GET",
        f"messages/{message_id}",
        [("format", "full"), ("fields", SUMMARY_FIELDS)],
    )


def decode_raw(resource: Mapping[str, Any]) -> bytes:
    data = str(resource.get("raw") or "")
    try:
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return b""


def _encode_cursor(fields: dict[str, Any]) -> str:
    raw = json.dumps(fields, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadRequest("Invalid cursor", "InvalidCursor", key="cursor") from None
    if not isinstance(value, dict):
        raise BadRequest("Invalid cursor", "InvalidCursor", key="cursor")
    return value


def gmail_part_index(payload: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """IMAP part number -> Gmail MessagePart of a ``format=full`` payload (leaves only).

    Gmail numbers parts from 0 with the root as ``""``; IMAP from 1 with a single-part root as
    ``1``. Parts inside an attached message are not expanded by Gmail (a leaf there)."""
    out: dict[str, Mapping[str, Any]] = {}

    def visit(node: Mapping[str, Any], number: str) -> None:
        children = node.get("parts") or []
        if str(node.get("mimeType", "")).startswith("multipart/") and children:
            for i, child in enumerate(children, start=1):
                visit(child, f"{number}.{i}" if number else str(i))
            return
        out[number or "1"] = node

    visit(payload, "")
    return out


class GmailMessages:
    """The message half of :class:`~.backend.GmailBackend`."""

    def __init__(self, client: GmailClient, labels: LabelCache) -> None:
        self.client = client
        self.labels = labels

    # -- helpers -------------------------------------------------------------------------------
    async def _get(self, message: str, fmt: str, **extra: Any) -> dict[str, Any]:
        check_message_id(message)
        try:
            found = await self.client.request(
                "messages.get", "GET", f"messages/{message}", params={"format": fmt, **extra}
            )
        except GmailNotFound:
            raise message_missing() from None
        return dict(found)

    async def _label_total(self, label: Label | None) -> int:
        if label is not None:
            counts = await self.client.request("labels.get", "GET", f"labels/{label.id}")
            return int(counts.get("messagesTotal") or 0)
        answers = await self.client.batch(
            [
                Call("getProfile", "GET", "profile"),
                Call("labels.get", "GET", "labels/SPAM"),
                Call("labels.get", "GET", "labels/TRASH"),
            ]
        )
        profile, spam, trash = (a or {} for a in answers)
        total = int(profile.get("messagesTotal") or 0)
        return max(
            0, total - int(spam.get("messagesTotal") or 0) - int(trash.get("messagesTotal") or 0)
        )

    def _list_params(self, label: Label | None, q: str) -> list[tuple[str, Any]]:
        params: list[tuple[str, Any]] = [("fields", LIST_FIELDS)]
        if label is not None:
            params.append(("labelIds", label.id))
        if q:
            params.append(("q", q))
        return params

    async def _list_ids(
        self,
        label: Label | None,
        q: str,
        *,
        offset: int,
        count: int,
        token: str | None,
    ) -> tuple[list[str], str | None]:
        """Ids ``offset .. offset+count`` (from ``token``), and the token right after them."""
        wanted = offset + count
        seen: list[str] = []
        while len(seen) < wanted:
            params = self._list_params(label, q)
            params.append(("maxResults", min(LIST_PAGE_MAX, wanted - len(seen))))
            if token:
                params.append(("pageToken", token))
            page = await self.client.request("messages.list", "GET", "messages", params=params)
            seen.extend(str(m["id"]) for m in page.get("messages") or [])
            token = page.get("nextPageToken")
            if not token:
                break
        return seen[offset:wanted], token

    async def _all_ids(self, label: Label | None, q: str) -> list[str]:
        ids, _ = await self._list_ids(label, q, offset=0, count=MAX_MATCHING, token=None)
        return ids

    async def _summaries(
        self, ids: Sequence[str], labels: LabelSet, path: str, special_use: str | None
    ) -> list[dict[str, Any]]:
        found = await self.client.batch([summary_call(i) for i in ids])
        return [
            listing_entry(r, labels, path=path, special_use=special_use)
            for r in found
            if r is not None
        ]

    async def _explicit_ids(self, plan: GmailQuery, label: Label | None) -> list[str]:
        """Messages named by emailId(s) or threadId that are in ``label``, newest first."""
        if plan.thread_id is not None:
            try:
                thread = await self.client.request(
                    "threads.get",
                    "GET",
                    f"threads/{plan.thread_id}",
                    params={"format": "minimal", "fields": "messages(id,labelIds,internalDate)"},
                )
            except GmailNotFound:
                return []
            members = list(thread.get("messages") or [])
        else:
            calls = [
                Call(
                    "messages.get",
                    "GET",
                    f"messages/{i}",
                    {"format": "minimal", "fields": "id,labelIds,internalDate"},
                )
                for i in plan.message_ids or ()
            ]
            members = [m for m in await self.client.batch(calls) if m is not None]
        if plan.q and members:
            matching = set(await self._all_ids(label, plan.q))
            members = [m for m in members if m["id"] in matching]
        elif label is not None:
            members = [m for m in members if label.id in (m.get("labelIds") or [])]
        members.sort(key=lambda m: int(m.get("internalDate") or 0), reverse=True)
        return [str(m["id"]) for m in members]

    # -- listing and search --------------------------------------------------------------------
    async def list_messages(
        self, path: str, paging: PageRequest, search: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        label = await self.labels.resolve(path)
        labels = await self.labels.get()
        shown_path = label.path if label is not None else ALL_MAIL_PATH
        special_use = label.special_use if label is not None else "\\All"
        plan = compile_gmail_query(search) if search is not None else GmailQuery()
        size = max(1, min(paging.page_size, MAX_PAGE_SIZE))
        scope = f"{label.id if label else ''}\x00{plan.q}"
        page_no = paging.page
        token: str | None = None
        if paging.cursor:
            cursor = _decode_cursor(paging.cursor)
            if cursor.get("s") != scope or cursor.get("n") != size:
                raise BadRequest("The cursor belongs to another listing", "InvalidCursor")
            page_no, token = int(cursor.get("p") or 0), cursor.get("t")
        if plan.message_ids is not None or plan.thread_id is not None:
            every = await self._explicit_ids(plan, label)
            total = len(every)
            ids = every[page_no * size : (page_no + 1) * size]
            next_token = None
        elif plan.q:
            every = await self._all_ids(label, plan.q)
            total = len(every)
            ids = every[page_no * size : (page_no + 1) * size]
            next_token = None
        else:
            total = await self._label_total(label)
            offset = 0 if token else page_no * size
            ids, next_token = await self._list_ids(
                label, "", offset=offset, count=size, token=token
            )
        pages = max(1, -(-total // size))
        out: dict[str, Any] = {"total": total, "page": page_no, "pages": pages}
        if (page_no + 1) * size < total:
            fields: dict[str, Any] = {"s": scope, "n": size, "p": page_no + 1}
            if next_token:
                fields["t"] = next_token
            out["nextPageCursor"] = _encode_cursor(fields)
        else:
            out["nextPageCursor"] = None
        if page_no > 0:
            out["prevPageCursor"] = _encode_cursor({"s": scope, "n": size, "p": page_no - 1})
        out["messages"] = await self._summaries(ids, labels, shown_path, special_use)
        return out

    # -- reading -------------------------------------------------------------------------------
    async def get_message(self, message: str, options: ReadOptions) -> dict[str, Any]:
        options = effective_options(options)
        resource = await self._get(message, "raw")
        raw = decode_raw(resource)
        labels = await self.labels.get()
        primary = labels.primary(resource.get("labelIds") or [])
        path = primary.path if primary is not None else ALL_MAIL_PATH
        special_use = primary.special_use if primary is not None else "\\All"
        summary = summarize(resource, labels, path=path, special_use=special_use)
        details = details_from_raw(summary, raw, message, options)
        if options.mark_as_seen and details.get("unseen"):
            await self.client.request(
                "messages.modify",
                "POST",
                f"messages/{message}/modify",
                json_body={"removeLabelIds": ["UNREAD"]},
            )
            details["flags"] = [*details.get("flags", []), "\\Seen"]
            details["unseen"] = False
        if special_use:
            details["specialUse"] = special_use
        return details

    async def get_text(
        self, text: str, *, text_type: str, max_bytes: int | None, web_safe_html: bool
    ) -> dict[str, Any]:
        message, _parts = unpack_part_id(text, "MessageNotFound")
        raw = decode_raw(await self._get(message, "raw"))
        wanted = "html" if web_safe_html else text_type
        parsed = parse_message(raw, max_text_bytes=max_bytes, text_type=wanted)
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

    async def message_source(self, message: str) -> Download:
        raw = decode_raw(await self._get(message, "raw"))
        return Download("message/rfc822", f"{message}.eml", _chunks(raw))

    async def download_attachment(self, attachment: str) -> Download:
        message, parts = unpack_part_id(attachment, "AttachmentNotFound")
        if len(parts) != 1:
            raise attachment_missing()
        part = parts[0]
        try:
            resource = await self._get(message, "full", fields="payload")
        except NotFound:
            raise attachment_missing() from None
        node = gmail_part_index(resource.get("payload") or {}).get(part)
        if node is not None:
            body = node.get("body") or {}
            content_type = str(node.get("mimeType") or "application/octet-stream")
            filename = str(node.get("filename") or "") or None
            if body.get("attachmentId"):
                try:
                    got = await self.client.request(
                        "messages.attachments.get",
                        "GET",
                        f"messages/{message}/attachments/{body['attachmentId']}",
                    )
                except GmailNotFound:
                    raise attachment_missing() from None
                return Download(
                    content_type, filename, _chunks(decode_raw({"raw": got.get("data")}))
                )
            if body.get("data") is not None:
                return Download(content_type, filename, _chunks(decode_raw({"raw": body["data"]})))
        # a part Gmail does not show on its own (inside an attached message): decode it here
        raw = decode_raw(await self._get(message, "raw"))
        decoded = decode_part(raw, part)
        if decoded is None:
            raise attachment_missing()
        data, info = decoded
        return Download(info.content_type, info.filename, _chunks(data))

    # -- changes -------------------------------------------------------------------------------
    async def _label_ids(self, names: Sequence[str], *, create: bool) -> list[str]:
        labels = await self.labels.get()
        out: list[str] = []
        for name in names:
            label_id = labels.label_id(name)
            if label_id is None:
                labels = await self.labels.get(fresh=True)
                label_id = labels.label_id(name)
            if label_id is None and create and not name.startswith("\\"):
                made = await self.client.request(
                    "labels.create", "POST", "labels", json_body={"name": name}
                )
                self.labels.invalidate()
                label_id = str(made["id"])
            if label_id is not None:
                out.append(label_id)
        return out

    async def _label_ops(
        self, changes: MessageChanges, current: Sequence[str] | None
    ) -> tuple[list[str], list[str], dict[str, Any]]:
        add: list[str] = []
        remove: list[str] = []
        result: dict[str, Any] = {}
        flags = changes.flags
        if flags is not None:
            flag_result: dict[str, Any] = {}
            if flags.set is not None:
                wanted = {f.lower() for f in flags.set}
                a, r = flag_label_changes(
                    [f for f in ("\\Seen", "\\Flagged") if f.lower() in wanted],
                    [f for f in ("\\Seen", "\\Flagged") if f.lower() not in wanted],
                )
                add += a
                remove += r
                flag_result["set"] = True
            if flags.add:
                a, r = flag_label_changes(flags.add, ())
                add += a
                remove += r
                flag_result["add"] = True
            if flags.delete:
                a, r = flag_label_changes((), flags.delete)
                add += a
                remove += r
                flag_result["delete"] = True
            result["flags"] = flag_result
        labels = changes.labels
        if labels is not None:
            label_result: dict[str, Any] = {}
            if labels.set is not None:
                wanted_ids = await self._label_ids(labels.set, create=True)
                user_now = [
                    x for x in current or () if x.startswith("Label_") or x in LOCATION_LABELS
                ]
                add += [x for x in wanted_ids if x not in (current or ())]
                remove += [x for x in user_now if x not in wanted_ids]
                label_result["set"] = True
            if labels.add:
                add += await self._label_ids(labels.add, create=True)
                label_result["add"] = True
            if labels.delete:
                remove += await self._label_ids(labels.delete, create=False)
                label_result["delete"] = True
            result["labels"] = label_result
        add = list(dict.fromkeys(add))
        remove = [x for x in dict.fromkeys(remove) if x not in add]
        return add, remove, result

    async def update_message(self, message: str, changes: MessageChanges) -> dict[str, Any]:
        check_message_id(message)
        current = None
        if changes.labels is not None and changes.labels.set is not None:
            current = list((await self._get(message, "minimal")).get("labelIds") or [])
        add, remove, result = await self._label_ops(changes, current)
        try:
            await self.client.request(
                "messages.modify",
                "POST",
                f"messages/{message}/modify",
                json_body={"addLabelIds": add, "removeLabelIds": remove},
            )
        except GmailNotFound:
            raise message_missing() from None
        return result

    def _move_labels(
        self, target: Label | None, source: Label | None
    ) -> tuple[list[str], list[str]]:
        add = [target.id] if target is not None else []
        remove = [x for x in LOCATION_LABELS if target is None or x != target.id]
        if (
            source is not None
            and (target is None or source.id != target.id)
            and source.id not in remove
            and source.id not in ("SENT", "DRAFT")
        ):
            remove.append(source.id)
        return add, remove

    async def move_message(self, message: str, target: str) -> dict[str, Any]:
        check_message_id(message)
        label = await self.labels.resolve(target)
        add, remove = self._move_labels(label, None)
        try:
            await self.client.request(
                "messages.modify",
                "POST",
                f"messages/{message}/modify",
                json_body={"addLabelIds": add, "removeLabelIds": remove},
            )
        except GmailNotFound:
            raise message_missing() from None
        return {"path": label.path if label else ALL_MAIL_PATH, "id": message}

    async def delete_message(self, message: str, *, force: bool) -> dict[str, Any]:
        check_message_id(message)
        if not force:
            current = (await self._get(message, "minimal")).get("labelIds") or []
            force = "TRASH" in current
        try:
            if force:
                await self.client.request("messages.delete", "DELETE", f"messages/{message}")
                return {"deleted": True}
            await self.client.request("messages.trash", "POST", f"messages/{message}/trash")
        except GmailNotFound:
            raise message_missing() from None
        return {"deleted": False, "moved": {"destination": "TRASH", "message": message}}

    async def append_message(
        self,
        path: str,
        raw: bytes,
        *,
        flags: Sequence[str] = (),
        internal_date: datetime | None = None,
    ) -> dict[str, Any]:
        label = await self.labels.resolve(path)
        lowered = {f.lower() for f in flags}
        label_ids = [label.id] if label is not None else []
        if "\\seen" not in lowered:
            label_ids.append("UNREAD")
        if "\\flagged" in lowered:
            label_ids.append("STARRED")
        boundary = "mg_" + secrets.token_hex(12)
        meta = json.dumps({"labelIds": label_ids}).encode()
        body = (
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode()
            + meta
            + f"\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n".encode()
            + raw
            + f"\r\n--{boundary}--\r\n".encode()
        )
        stored = await self.client.request(
            "messages.insert",
            "POST",
            "messages",
            params={
                "uploadType": "multipart",
                "internalDateSource": "dateHeader" if internal_date else "receivedTime",
            },
            content=body,
            headers={"Content-Type": f"multipart/related; boundary={boundary}"},
            upload=True,
        )
        out: dict[str, Any] = {
            "id": str(stored["id"]),
            "path": label.path if label else ALL_MAIL_PATH,
        }
        if stored.get("threadId"):
            out["threadId"] = stored["threadId"]
        return out

    # -- bulk ----------------------------------------------------------------------------------
    async def _matching(
        self, path: str, search: Mapping[str, Any]
    ) -> tuple[Label | None, list[str]]:
        label = await self.labels.resolve(path)
        plan = compile_gmail_query(search)
        if plan.message_ids is not None or plan.thread_id is not None:
            return label, await self._explicit_ids(plan, label)
        return label, await self._all_ids(label, plan.q)

    async def _batch_modify(self, ids: Sequence[str], add: list[str], remove: list[str]) -> None:
        for start in range(0, len(ids), BULK_IDS_MAX):
            chunk = list(ids[start : start + BULK_IDS_MAX])
            await self.client.request(
                "messages.batchModify",
                "POST",
                "messages/batchModify",
                json_body={"ids": chunk, "addLabelIds": add, "removeLabelIds": remove},
            )

    async def update_messages(
        self, path: str, search: Mapping[str, Any], changes: MessageChanges
    ) -> dict[str, Any]:
        if changes.labels is not None and changes.labels.set is not None:
            raise BadRequest("labels.set is not supported for bulk updates", key="update.labels")
        _, ids = await self._matching(path, search)
        add, remove, result = await self._label_ops(changes, None)
        if ids and (add or remove):
            await self._batch_modify(ids, add, remove)
        return {k: dict.fromkeys(v, bool(ids)) for k, v in result.items()}

    async def move_messages(
        self, path: str, search: Mapping[str, Any], target: str
    ) -> dict[str, Any]:
        source, ids = await self._matching(path, search)
        label = await self.labels.resolve(target)
        add, remove = self._move_labels(label, source)
        if ids:
            await self._batch_modify(ids, add, remove)
        out: dict[str, Any] = {"path": label.path if label else ALL_MAIL_PATH}
        if ids:
            out["idMap"] = [[i, i] for i in ids]
        return out

    async def delete_messages(
        self, path: str, search: Mapping[str, Any], *, force: bool
    ) -> dict[str, Any]:
        source, ids = await self._matching(path, search)
        if force or (source is not None and source.id == "TRASH"):
            for start in range(0, len(ids), BULK_IDS_MAX):
                await self.client.request(
                    "messages.batchDelete",
                    "POST",
                    "messages/batchDelete",
                    json_body={"ids": list(ids[start : start + BULK_IDS_MAX])},
                )
            return {"deleted": bool(ids)}
        if ids:
            await self._batch_modify(ids, ["TRASH"], [])
        moved: dict[str, Any] = {"destination": "TRASH"}
        if ids:
            moved["idMap"] = [[i, i] for i in ids]
        return {"deleted": False, "moved": moved}


def details_from_raw(
    summary: dict[str, Any], raw: bytes, message: str, options: ReadOptions
) -> dict[str, Any]:
    """Message details from the raw source: the same MIME normalization as IMAP accounts."""
    parsed = parse_message(
        raw, max_text_bytes=options.max_bytes, text_type=options.text_type or "*"
    )
    text_id = pack_part_id(message, parsed.text_parts) if parsed.text_parts else None
    mime = parsed.to_contract(
        attachment_id=lambda part: pack_part_id(message, [part]),
        text_id=text_id,
        include_text=False,
    )
    text: dict[str, Any] = mime["text"]
    if options.text_type is not None:
        wants_html = options.text_type in ("*", "html") and parsed.text_html is not None
        images = (
            _cid_images_from_raw(raw, parsed)
            if options.embed_attached_images and wants_html
            else {}
        )
        _text_block(text, parsed.text_plain, parsed.text_html, parsed.has_more, options, images)
    if not text.get("id") and not text.get("encodedSize") and options.text_type is None:
        mime.pop("text")
    return merge_details(summary, mime)


#: Bytes per chunk when streaming a body already in memory.
STREAM_CHUNK = 256 * 1024


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), STREAM_CHUNK):
        yield data[start : start + STREAM_CHUNK]
