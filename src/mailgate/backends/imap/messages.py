"""Message operations of one IMAP account over its pool of API connections.

Each operation borrows one pooled connection (:func:`.mailbox_access.lease`), selects the mailbox
it needs (reusing the selection a connection already has) and answers in EmailEngine's JSON.
Costs, in IMAP round trips after the selection:

    listing            NOOP (reused selection) + one FETCH of the page's summaries by sequence
                       numbers; with a cursor, as a search
    search             UID SEARCH (the criteria) + one UID FETCH of the page's summaries
    get message        one UID FETCH (summary + the whole message when under 2 MiB)
    text               one UID FETCH (BODYSTRUCTURE + the text parts)
    source/attachment  one UID FETCH of metadata, then one per 1 MiB chunk while streaming
    flags / move / delete / bulk   one existence check (or search) + the command(s)

Ids are unpacked here (:mod:`mailgate.domain.ids`): an id whose mailbox number is unknown, whose
UIDVALIDITY is no longer the folder's, or whose UID is gone is a 404, never a 500.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from mailgate.backends.base import Download, MessageChanges, PageRequest, ReadOptions
from mailgate.backends.imap.attachments import make_decoder, stream_section
from mailgate.backends.imap.client import ImapClient, SelectedMailbox
from mailgate.backends.imap.mailbox_access import (
    MailboxNumbers,
    SpecialFolders,
    lease,
    open_mailbox,
    same_mailbox,
    synced,
)
from mailgate.backends.imap.paging import (
    PageSlice,
    decode_cursor,
    sequence_page,
    sequence_window,
    slice_page,
)
from mailgate.backends.imap.pool import ImapPool
from mailgate.backends.imap.reading import (
    MAX_TEXT_PART_BYTES,
    WHOLE_ITEM,
    WHOLE_MESSAGE_LIMIT,
    compose_text,
    details_from_parts,
    details_from_raw,
    effective_options,
    find_part,
    large_message_items,
)
from mailgate.backends.imap.summary import summarize, summary_items
from mailgate.backends.imap.updates import apply_flag_changes, delete_uids, moved_entry
from mailgate.domain.ids import (
    pack_message_id,
    unpack_attachment_id,
    unpack_message_id,
    unpack_text_id,
)
from mailgate.errors import NotFound
from mailgate.protocols.imap import BodyStructure, FetchResponse
from mailgate.protocols.imap.search import compile_search
from mailgate.protocols.mime import sanitize_html

#: Most text parts a text id may fetch at once.
MAX_TEXT_ID_PARTS = 16


def _message_missing() -> NotFound:
    return NotFound("Requested message was not found", "MessageNotFound")


def _attachment_missing() -> NotFound:
    return NotFound("Requested attachment was not found", "AttachmentNotFound")


def _mailbox_missing() -> NotFound:
    return NotFound("Mailbox does not exist", "MailboxNotFound")


class ImapMessages:
    """The message half of :class:`~.backend.ImapBackend`."""

    def __init__(self, pool: ImapPool, numbers: MailboxNumbers, folders: SpecialFolders) -> None:
        self.pool = pool
        self.numbers = numbers
        self.folders = folders

    # -- locating ------------------------------------------------------------------------------

    async def _where(self, mailbox_no: int, missing: NotFound) -> tuple[str, int]:
        found = await self.numbers.lookup(mailbox_no)
        if found is None:
            raise missing
        return found

    async def _select_for(
        self, client: ImapClient, path: str, uidvalidity: int, missing: NotFound
    ) -> bool:
        """Select the mailbox of an id; True when the selection was reused (see ``synced``)."""
        box, reused = await open_mailbox(client, path, missing=missing)
        if box.uidvalidity != uidvalidity:
            raise missing
        return reused

    async def _fetch_one(
        self,
        client: ImapClient,
        uid: int,
        items: Sequence[str],
        missing: NotFound,
        *,
        reused: bool = False,
    ) -> FetchResponse:
        fetched = await synced(client, reused, client.uid_fetch([uid], items))
        for item in fetched:
            if item.uid == uid:
                return item
        raise missing

    # -- listing and search --------------------------------------------------------------------

    async def list_messages(
        self, path: str, paging: PageRequest, search: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        cursor = decode_cursor(paging.cursor) if paging.cursor else None
        async with lease(self.pool) as client:
            path = await self.folders.resolve(client, path)
            plan = (
                compile_search(search, capabilities=client.capabilities)
                if search is not None
                else None
            )
            box, reused = await open_mailbox(client, path, missing=_mailbox_missing())
            mailbox_no = await self.numbers.number(path, box.uidvalidity or 0)
            items = summary_items(client.capabilities)
            if plan is None and cursor is None:
                page, fetched = await self._numbered_page(client, box, reused, mailbox_no, paging)
            else:
                criteria = plan.criteria if plan is not None else ["ALL"]
                charset = plan.charset if plan is not None else None
                uids = await synced(client, reused, client.uid_search(criteria, charset=charset))
                page = slice_page(
                    uids,
                    mailbox=mailbox_no,
                    page_size=paging.page_size,
                    page=paging.page,
                    cursor=cursor,
                )
                fetched = await client.uid_fetch(page.uids, items) if page.uids else []
            special_use = await self.folders.special_use(client, path)
        by_uid = {f.uid: f for f in fetched}
        messages = [
            summarize(by_uid[uid], mailbox_no, path=path, special_use=special_use)
            for uid in page.uids
            if uid in by_uid
        ]
        return {**page.fields(), "messages": messages}

    async def _numbered_page(
        self,
        client: ImapClient,
        box: SelectedMailbox,
        reused: bool,
        mailbox_no: int,
        paging: PageRequest,
    ) -> tuple[PageSlice, list[FetchResponse]]:
        """A plain listing by page number: the NOOP (on a reused selection) brings the view's
        message count up to date, then one ``FETCH lo:hi`` by sequence numbers; no SEARCH (which
        costs the server a pass over the whole mailbox)."""
        if reused:
            await client.noop()
        total = box.exists
        size, number = paging.page_size, paging.page
        window = sequence_window(total, page_size=size, page=number)
        fetched: list[FetchResponse] = []
        if window is not None:
            fetched = await client.fetch(*window, summary_items(client.capabilities))
        found = {f.seq: f.uid for f in fetched if f.uid is not None}
        page = sequence_page(total, found, mailbox=mailbox_no, page_size=size, page=number)
        return page, fetched

    # -- reading -------------------------------------------------------------------------------

    async def get_message(self, message: str, options: ReadOptions) -> dict[str, Any]:
        options = effective_options(options)
        mailbox_no, uid = unpack_message_id(message)
        path, uidvalidity = await self._where(mailbox_no, _message_missing())
        async with lease(self.pool) as client:
            reused = await self._select_for(client, path, uidvalidity, _message_missing())
            items = [*summary_items(client.capabilities), WHOLE_ITEM]
            fetched = await self._fetch_one(client, uid, items, _message_missing(), reused=reused)
            special_use = await self.folders.special_use(client, path)
            summary = summarize(fetched, mailbox_no, path=path, special_use=special_use)
            root = fetched.bodystructure
            size = fetched.size or 0
            raw = fetched.section("")
            if size > WHOLE_MESSAGE_LIMIT and root is not None:
                parts = await self._fetch_one(
                    client, uid, large_message_items(root), _message_missing()
                )
                details = details_from_parts(summary, parts, root, options)
            else:
                details = details_from_raw(summary, raw or b"", mailbox_no, uid, options)
            if options.mark_as_seen and details.get("unseen"):
                await client.uid_store([uid], "+FLAGS", ["\\Seen"])
                details["flags"] = [*details.get("flags", []), "\\Seen"]
                details["unseen"] = False
        if special_use:
            details["specialUse"] = special_use
        return details

    async def get_text(
        self, text: str, *, text_type: str, max_bytes: int | None, web_safe_html: bool
    ) -> dict[str, Any]:
        mailbox_no, uid, numbers = unpack_text_id(text)
        path, uidvalidity = await self._where(mailbox_no, _message_missing())
        async with lease(self.pool) as client:
            reused = await self._select_for(client, path, uidvalidity, _message_missing())
            items = ["UID", "BODYSTRUCTURE"] + [
                f"BODY.PEEK[{n}]<0.{MAX_TEXT_PART_BYTES}>" for n in numbers[:MAX_TEXT_ID_PARTS]
            ]
            fetched = await self._fetch_one(client, uid, items, _message_missing(), reused=reused)
        root = fetched.bodystructure
        if root is None:
            raise _message_missing()
        parts: list[tuple[BodyStructure, bytes]] = []
        for number in numbers[:MAX_TEXT_ID_PARTS]:
            node = find_part(root, number)
            if node is None or node.type != "text":
                raise _message_missing()
            parts.append((node, fetched.section(number) or b""))
        if web_safe_html:
            _, html, more = compose_text(parts, text_type="html", max_bytes=max_bytes)
            return {"html": sanitize_html(html or ""), "webSafe": True, "hasMore": more}
        plain, html, more = compose_text(parts, text_type=text_type, max_bytes=max_bytes)
        out: dict[str, Any] = {}
        if plain is not None:
            out["plain"] = plain
        if html is not None:
            out["html"] = html
        out["hasMore"] = more
        return out

    # -- streaming -----------------------------------------------------------------------------

    async def _stream(
        self, mailbox_no: int, uid: int, part: str | None, missing: NotFound
    ) -> AsyncIterator[Download | bytes]:
        """First yields the :class:`Download` head (after every check), then the chunks."""
        path, uidvalidity = await self._where(mailbox_no, missing)
        async with lease(self.pool) as client:
            reused = await self._select_for(client, path, uidvalidity, missing)
            if part is None:
                await self._fetch_one(client, uid, ["UID", "RFC822.SIZE"], missing, reused=reused)
                head = Download("message/rfc822", None, _empty())
                section, encoding = "", None
            else:
                fetched = await self._fetch_one(
                    client, uid, ["UID", "BODYSTRUCTURE"], missing, reused=reused
                )
                root = fetched.bodystructure
                node = find_part(root, part) if root is not None else None
                if node is None or node.is_multipart:
                    raise missing
                head = Download(node.content_type, node.filename, _empty())
                section, encoding = part, node.encoding
                if node.type == "message" and node.subtype in ("rfc822", "global"):
                    encoding = None if (encoding or "").lower() in ("7bit", "8bit") else encoding
            yield head
            async for chunk in stream_section(client, uid, section, make_decoder(encoding)):
                yield chunk

    async def _download(self, stream: AsyncIterator[Download | bytes]) -> Download:
        head = await anext(stream)
        if not isinstance(head, Download):  # pragma: no cover - the generator's contract
            raise TypeError("stream must start with its Download head")
        head.chunks = _bytes_only(stream)
        return head

    async def message_source(self, message: str) -> Download:
        mailbox_no, uid = unpack_message_id(message)
        download = await self._download(self._stream(mailbox_no, uid, None, _message_missing()))
        download.filename = f"{message}.eml"
        return download

    async def download_attachment(self, attachment: str) -> Download:
        mailbox_no, uid, part = unpack_attachment_id(attachment)
        return await self._download(self._stream(mailbox_no, uid, part, _attachment_missing()))

    # -- changes -------------------------------------------------------------------------------

    async def update_message(self, message: str, changes: MessageChanges) -> dict[str, Any]:
        mailbox_no, uid = unpack_message_id(message)
        path, uidvalidity = await self._where(mailbox_no, _message_missing())
        async with lease(self.pool) as client:
            reused = await self._select_for(client, path, uidvalidity, _message_missing())
            await self._fetch_one(client, uid, ["UID"], _message_missing(), reused=reused)
            return await apply_flag_changes(client, [uid], changes)

    async def move_message(self, message: str, target: str) -> dict[str, Any]:
        mailbox_no, uid = unpack_message_id(message)
        path, uidvalidity = await self._where(mailbox_no, _message_missing())
        async with lease(self.pool) as client:
            target = await self.folders.resolve(client, target)
            reused = await self._select_for(client, path, uidvalidity, _message_missing())
            await self._fetch_one(client, uid, ["UID"], _message_missing(), reused=reused)
            copied = await client.uid_move([uid], target)
        out: dict[str, Any] = {"path": target}
        if copied is not None and uid in copied.mapping():
            new_uid = copied.mapping()[uid]
            target_no = await self.numbers.number(target, copied.uidvalidity)
            out["id"] = pack_message_id(target_no, new_uid)
            out["uid"] = new_uid
        return out

    async def delete_message(self, message: str, *, force: bool) -> dict[str, Any]:
        mailbox_no, uid = unpack_message_id(message)
        path, uidvalidity = await self._where(mailbox_no, _message_missing())
        async with lease(self.pool) as client:
            trash = await self.folders.path_of(client, "\\Trash")
            reused = await self._select_for(client, path, uidvalidity, _message_missing())
            await self._fetch_one(client, uid, ["UID"], _message_missing(), reused=reused)
            if force or trash is None or same_mailbox(path, trash):
                await delete_uids(client, [uid])
                return {"deleted": True}
            copied = await client.uid_move([uid], trash)
        moved = await moved_entry(self.numbers, trash, copied, mailbox_no, [uid])
        out: dict[str, Any] = {"destination": trash}
        if moved:
            out["message"] = moved[0][1]
        return {"deleted": False, "moved": out}

    async def append_message(
        self,
        path: str,
        raw: bytes,
        *,
        flags: Sequence[str] = (),
        internal_date: datetime | None = None,
    ) -> dict[str, Any]:
        async with lease(self.pool) as client:
            path = await self.folders.resolve(client, path)
            appended = await client.append(path, raw, flags=flags, internal_date=internal_date)
        out: dict[str, Any] = {"path": path}
        if appended is not None:
            number = await self.numbers.number(path, appended.uidvalidity)
            out = {
                "id": pack_message_id(number, appended.uid),
                "path": path,
                "uid": appended.uid,
                "uidValidity": str(appended.uidvalidity),
            }
        return out

    # -- bulk ----------------------------------------------------------------------------------

    async def _matching(
        self, client: ImapClient, path: str, search: Mapping[str, Any]
    ) -> tuple[str, int, list[int]]:
        path = await self.folders.resolve(client, path)
        plan = compile_search(search, capabilities=client.capabilities)
        box, reused = await open_mailbox(client, path, missing=_mailbox_missing())
        mailbox_no = await self.numbers.number(path, box.uidvalidity or 0)
        uids = await synced(client, reused, client.uid_search(plan.criteria, charset=plan.charset))
        return path, mailbox_no, uids

    async def update_messages(
        self, path: str, search: Mapping[str, Any], changes: MessageChanges
    ) -> dict[str, Any]:
        async with lease(self.pool) as client:
            _, _, uids = await self._matching(client, path, search)
            return await apply_flag_changes(client, uids, changes)

    async def move_messages(
        self, path: str, search: Mapping[str, Any], target: str
    ) -> dict[str, Any]:
        async with lease(self.pool) as client:
            target = await self.folders.resolve(client, target)
            _, mailbox_no, uids = await self._matching(client, path, search)
            copied = await client.uid_move(uids, target) if uids else None
        out: dict[str, Any] = {"path": target}
        pairs = await moved_entry(self.numbers, target, copied, mailbox_no, uids)
        if pairs:
            out["idMap"] = [list(p) for p in pairs]
        return out

    async def delete_messages(
        self, path: str, search: Mapping[str, Any], *, force: bool
    ) -> dict[str, Any]:
        async with lease(self.pool) as client:
            trash = await self.folders.path_of(client, "\\Trash")
            source, mailbox_no, uids = await self._matching(client, path, search)
            if force or trash is None or same_mailbox(source, trash):
                if uids:
                    await delete_uids(client, uids)
                return {"deleted": bool(uids)}
            copied = await client.uid_move(uids, trash) if uids else None
        moved: dict[str, Any] = {"destination": trash}
        pairs = await moved_entry(self.numbers, trash, copied, mailbox_no, uids)
        if pairs:
            moved["idMap"] = [list(p) for p in pairs]
        return {"deleted": False, "moved": moved}


_NO_CHUNKS: tuple[bytes, ...] = ()


async def _empty() -> AsyncIterator[bytes]:
    for chunk in _NO_CHUNKS:
        yield chunk


async def _bytes_only(stream: AsyncIterator[Download | bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in stream:
            if isinstance(chunk, bytes):
                yield chunk
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
