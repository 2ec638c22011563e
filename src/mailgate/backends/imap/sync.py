"""The IMAP sync engine: keeps the index of every mailbox and turns differences into events.

One pass (:meth:`AccountSyncer.run_pass`) lists every mailbox with its STATUS in one command
(LIST-STATUS where offered) and syncs only those whose UIDVALIDITY, UIDNEXT, message count or
HIGHESTMODSEQ moved. Per mailbox:

- *first index* (no cursor, or an unfinished one): ``UID FETCH lo:hi (UID FLAGS MODSEQ)`` in
  resumable UID ranges, each committed with its progress, announcing nothing except messages
  received after the account's ``notifyFrom``;
- *UIDVALIDITY changed*: the old index is dropped, ``mailboxReset`` is emitted and the mailbox is
  indexed again silently (never a flood of ``messageNew``);
- *incremental*: with QRESYNC the SELECT itself returns what vanished and what changed since the
  stored MODSEQ; with CONDSTORE only, ``UID FETCH 1:* (FLAGS) (CHANGEDSINCE m)`` plus a UID list
  when messages disappeared; with neither, a full flag comparison. New UIDs become
  ``messageNew`` (summary fetched in batches), vanished ones ``messageDeleted`` and flag changes
  ``messageUpdated`` (full indexer); the fast indexer only keeps the cursor and reports new mail.

Every step's index changes, cursor and events are written in one fenced transaction
(:mod:`.commit`).
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from redis.asyncio import Redis

from mailgate.backends.imap.client import ImapClient, ListEntry, QresyncParams
from mailgate.backends.imap.listing import ListItem, to_mailboxes
from mailgate.backends.imap.summary import summarize, summary_items
from mailgate.domain.ids import pack_message_id
from mailgate.domain.sync import SyncOptions, change_set
from mailgate.errors import CommandError
from mailgate.protocols.imap import FetchResponse
from mailgate.store import keys
from mailgate.store.commit import Batch, Committer
from mailgate.store.index import (
    CHUNK_SHIFT,
    MailboxCursor,
    MailboxIndex,
    decode_flags,
    drop_index,
    encode_flags,
)
from mailgate.store.mailboxes import MailboxRegistry
from mailgate.store.redis import str_map

FIRST_INDEX_CHUNK = 5_000  # UIDs per resumable step of a first index (default)
NEW_MESSAGE_BATCH = 200  # messages per summary FETCH when announcing new mail
HEADER_BYTES_LIMIT = 64 * 1024  # header block kept per announced message
STATUS_WANTED = ("MESSAGES", "UIDNEXT", "UIDVALIDITY")

log = structlog.get_logger("mailgate.sync")


@dataclass
class MailboxInfo:
    path: str
    special_use: str | None
    status: dict[str, int]
    selectable: bool


class AccountSyncer:
    def __init__(
        self,
        account: str,
        redis: Redis,
        registry: MailboxRegistry,
        committer: Committer,
        options: SyncOptions,
        *,
        chunk: int = FIRST_INDEX_CHUNK,
    ) -> None:
        self.account = account
        self.chunk = chunk
        self.redis = redis
        self.registry = registry
        self.committer = committer
        self.options = options
        self.log = log.bind(account=account)

    # --- account level ----------------------------------------------------------------------
    async def list_mailboxes(self, client: ImapClient) -> list[MailboxInfo]:
        items = list(STATUS_WANTED)
        if client.has_capability("CONDSTORE"):
            items.append("HIGHESTMODSEQ")
        entries: list[ListEntry] = await client.list("", "*", special_use=True, status_items=items)
        boxes = to_mailboxes(
            [ListItem(e.name, e.delimiter, e.flags, e.status) for e in entries], counters=False
        )
        by_path = {e.name: e for e in entries}
        out = []
        for box in boxes:
            entry = by_path[box.path]
            out.append(
                MailboxInfo(
                    path=box.path,
                    special_use=box.special_use,
                    status=dict(entry.status or {}),
                    selectable=not box.no_select,
                )
            )
        return out

    async def run_pass(self, client: ImapClient, hints: Sequence[str] = ()) -> None:
        """Sync every watched mailbox that changed (or was hinted)."""
        meta = str_map(await self.redis.hgetall(keys.sync_meta(self.account)))
        initialized = meta.get("initialized") == "1"
        mailboxes = [m for m in await self.list_mailboxes(client) if m.selectable]
        watched = [m for m in mailboxes if self.options.watches(m.path, m.special_use)]
        synced = {
            k: int(v)
            for k, v in str_map(
                await self.redis.hgetall(keys.synced_mailboxes(self.account))
            ).items()
        }
        # folders that went away
        present = {m.path for m in watched}
        for path, mbno in synced.items():
            if path not in present:
                await self._mailbox_gone(path, mbno)
        total = len(watched)
        if not initialized:
            await self.redis.hset(
                keys.sync_meta(self.account),
                mapping={
                    "foldersTotal": total,
                    "foldersDone": 0,
                    "messagesTotal": sum(m.status.get("MESSAGES", 0) for m in watched),
                    "indexer": self.options.indexer,
                },
            )
        for done, box in enumerate(watched, start=1):
            is_new_folder = box.path not in synced
            announce = ("all" if is_new_folder else "none") if initialized else "initial"
            await self.sync_mailbox(client, box, announce=announce, hinted=box.path in hints)
            if not initialized:
                await self.redis.hset(keys.sync_meta(self.account), "foldersDone", done)
        if not initialized:
            batch = Batch()
            batch.emit("accountInitialized", {"initialized": True})
            batch.extra.append(lambda p: p.hset(keys.sync_meta(self.account), "initialized", "1"))
            await self.committer.commit(batch)

    def _stage_synced(self, path: str, mbno: int) -> Callable[[Any], None]:
        key = keys.synced_mailboxes(self.account)
        return lambda pipe: pipe.hset(key, path, mbno)

    async def _mailbox_gone(self, path: str, mbno: int) -> None:
        await drop_index(self.redis, self.account, mbno)
        batch = Batch()
        batch.extra.append(lambda p: p.hdel(keys.synced_mailboxes(self.account), path))
        batch.emit("mailboxDeleted", {"path": path, "mailboxId": str(mbno)}, path=path)
        await self.committer.commit(batch)

    # --- mailbox level ----------------------------------------------------------------------
    async def _cursor(self, mbno: int) -> MailboxCursor | None:
        raw = await self.redis.hgetall(keys.mailbox_state(self.account, mbno))
        return MailboxCursor.from_redis(str_map(raw)) if raw else None

    async def sync_mailbox(
        self,
        client: ImapClient,
        box: MailboxInfo,
        *,
        announce: str = "initial",
        hinted: bool = False,
    ) -> None:
        """Sync one mailbox. ``announce`` says what a first index of it reports (see
        :class:`~mailgate.store.index.MailboxCursor`)."""
        path = box.path
        uidvalidity = box.status.get("UIDVALIDITY")
        if uidvalidity is None:
            uidvalidity = (await client.status(path, ["UIDVALIDITY"]))["UIDVALIDITY"]
        current_no = await self.redis.hget(keys.synced_mailboxes(self.account), path)
        cursor = await self._cursor(int(current_no)) if current_no is not None else None
        if cursor is not None and cursor.uidvalidity != uidvalidity:
            await self._reset(path, int(current_no), cursor, uidvalidity, box.special_use)  # type: ignore[arg-type]
            cursor = None
            announce = "none"
        mbno = await self.registry.number(self.account, path, uidvalidity)
        if cursor is None or not cursor.complete:
            await self._first_index(client, box, mbno, uidvalidity, cursor, announce)
            return
        # a hint (IDLE/NOTIFY) forces a look only when STATUS cannot show flag changes
        if self._unchanged(cursor, box.status) and (not hinted or "HIGHESTMODSEQ" in box.status):
            return
        if self.options.indexer == "fast":
            await self._sync_fast(client, box, mbno, cursor)
        else:
            await self._sync_full(client, box, mbno, cursor)

    @staticmethod
    def _unchanged(cursor: MailboxCursor, status: dict[str, int]) -> bool:
        if not status:
            return False
        if status.get("UIDNEXT") != cursor.uidnext or status.get("MESSAGES") != cursor.messages:
            return False
        modseq = status.get("HIGHESTMODSEQ")
        return modseq is None or modseq == cursor.highestmodseq

    async def _reset(
        self,
        path: str,
        old_no: int,
        cursor: MailboxCursor,
        uidvalidity: int,
        special_use: str | None,
    ) -> None:
        self.log.info("uidvalidity changed", path=path, old=cursor.uidvalidity, new=uidvalidity)
        await drop_index(self.redis, self.account, old_no)
        batch = Batch()
        batch.emit(
            "mailboxReset",
            {
                "path": path,
                "uidValidity": str(uidvalidity),
                "prevUidValidity": str(cursor.uidvalidity),
            },
            path=path,
            special_use=special_use,
        )
        batch.extra.append(lambda p: p.hdel(keys.synced_mailboxes(self.account), path))
        await self.committer.commit(batch)

    async def _first_index(
        self,
        client: ImapClient,
        box: MailboxInfo,
        mbno: int,
        uidvalidity: int,
        cursor: MailboxCursor | None,
        announce: str,
    ) -> None:
        path = box.path
        full = self.options.indexer == "full"
        condstore = client.has_capability("CONDSTORE")
        sel = await client.select(path, readonly=True, condstore=condstore)
        if sel.uidvalidity is not None and sel.uidvalidity != uidvalidity:
            return  # changed between LIST and SELECT: the next pass resets it
        if cursor is None:
            cursor = MailboxCursor(
                path=path, uidvalidity=uidvalidity, indexer=self.options.indexer, announce=announce
            )
        uidnext = sel.uidnext or 1
        items = ("UID", "FLAGS", "MODSEQ") if condstore else ("UID", "FLAGS")
        index = MailboxIndex(self.account, mbno)
        start = cursor.progress + 1
        done = 0
        while full and start < uidnext:
            end = min(start + self.chunk - 1, uidnext - 1)
            # chunks this step writes into may already hold records (earlier steps, a crash)
            await index.load(self.redis, range(start >> CHUNK_SHIFT, (end >> CHUNK_SHIFT) + 1))
            fetches = await client.uid_fetch(f"{start}:{end}", items)
            for f in fetches:
                uid = f.uid
                if uid is None or uid < start or uid > end:
                    continue
                bits, extra = encode_flags(f.flags or ())
                index.put(uid, bits, f.modseq or 0, extra)
            done += len(fetches)
            cursor.progress = end
            batch = Batch(index=index, cursor=(mbno, cursor))
            batch.extra.append(self._stage_synced(path, mbno))
            await self.committer.commit(batch)
            for finished in [c for c in index.chunks if c < (end + 1) >> CHUNK_SHIFT]:
                del index.chunks[finished]  # written and complete: keep memory flat
            await self.redis.hincrby(keys.sync_meta(self.account), "messagesDone", len(fetches))
            start = end + 1
        cursor.uidnext = uidnext
        cursor.highestmodseq = sel.highestmodseq or 0
        cursor.messages = sel.exists
        cursor.complete = True
        cursor.progress = max(cursor.progress, uidnext - 1)
        batch = Batch(cursor=(mbno, cursor))
        batch.extra.append(self._stage_synced(path, mbno))
        # the mode stored when this first index began wins (it may have been interrupted)
        if cursor.announce == "all":
            batch.emit("mailboxNew", {"path": path, "mailboxId": str(mbno)}, path=path,
                       special_use=box.special_use)  # fmt: skip
        recent: list[int] = []
        if sel.exists and cursor.announce == "initial":
            recent = await self._received_since_notify_from(client)
        elif sel.exists and cursor.announce == "all":
            recent = list(await client.uid_search(["ALL"]))
        # a message that arrived after SELECT (UID >= uidnext) is the next pass's to announce
        recent = [uid for uid in recent if uid < uidnext]
        if recent:
            await self._announce_new(client, box, mbno, recent, batch, index=None)
        await self.committer.commit(batch)

    async def _received_since_notify_from(self, client: ImapClient) -> list[int]:
        """UIDs of messages received after the account's notifyFrom (its registration)."""
        since = self.options.notify_from
        if since is None:
            return []
        day = since.strftime("%d-%b-%Y")
        try:
            candidates = await client.uid_search(["SINCE", day])
        except CommandError:
            return []
        if not candidates:
            return []
        fetches = await client.uid_fetch(candidates, ("UID", "INTERNALDATE"))
        return sorted(
            f.uid
            for f in fetches
            if f.uid is not None and f.internaldate is not None and f.internaldate >= since
        )

    async def _sync_fast(
        self, client: ImapClient, box: MailboxInfo, mbno: int, cursor: MailboxCursor
    ) -> None:
        sel = await client.select(
            box.path, readonly=True, condstore=client.has_capability("CONDSTORE")
        )
        batch = Batch(cursor=(mbno, cursor))
        uidnext = sel.uidnext or cursor.uidnext
        if uidnext > cursor.uidnext:
            fetches = await client.uid_fetch(f"{cursor.uidnext}:*", ("UID",))
            new = sorted(f.uid for f in fetches if f.uid is not None and f.uid >= cursor.uidnext)
            if new:
                await self._announce_new(client, box, mbno, new, batch, index=None)
        cursor.uidnext = max(uidnext, cursor.uidnext)
        cursor.messages = sel.exists
        cursor.highestmodseq = sel.highestmodseq or cursor.highestmodseq
        await self.committer.commit(batch)

    async def _sync_full(
        self, client: ImapClient, box: MailboxInfo, mbno: int, cursor: MailboxCursor
    ) -> None:
        path = box.path
        index = MailboxIndex(self.account, mbno)
        batch = Batch(index=index, cursor=(mbno, cursor))
        qresync = client.has_capability("QRESYNC") and cursor.highestmodseq > 0
        condstore = client.has_capability("CONDSTORE") and cursor.highestmodseq > 0
        changed: list[FetchResponse] = []
        vanished: list[int] = []
        if qresync:
            sel = await client.select(
                path, readonly=True, condstore=True,
                qresync=QresyncParams(cursor.uidvalidity, cursor.highestmodseq),
            )  # fmt: skip
            vanished = list(sel.vanished)
            changed = list(sel.fetches)
        else:
            sel = await client.select(
                path, readonly=True, condstore=client.has_capability("CONDSTORE")
            )
            if condstore:
                changed = await client.uid_fetch(
                    "1:*", ("UID", "FLAGS", "MODSEQ"), changedsince=cursor.highestmodseq
                )
            else:
                changed = await client.uid_fetch("1:*", ("UID", "FLAGS"))
        uidnext = sel.uidnext or cursor.uidnext
        new_uids = sorted({f.uid for f in changed if f.uid is not None and f.uid >= cursor.uidnext})
        if uidnext > cursor.uidnext and not new_uids:
            more = await client.uid_fetch(f"{cursor.uidnext}:*", ("UID", "FLAGS"))
            changed.extend(more)
            new_uids = sorted(
                {f.uid for f in more if f.uid is not None and f.uid >= cursor.uidnext}
            )
        old_changed = [f for f in changed if f.uid is not None and f.uid < cursor.uidnext]
        if not qresync:
            # deletions: the server's UID list against ours (only when counts disagree)
            await index.load_all(self.redis)
            known = set(index.uids())
            if condstore:
                expected = len(known) + len(new_uids)
                if sel.exists != expected:
                    present = set(await client.uid_search(["ALL"]))
                    vanished = sorted(known - present)
            else:
                present = {f.uid for f in changed if f.uid is not None}
                vanished = sorted(known - present)
        await index.load(
            self.redis,
            {u >> CHUNK_SHIFT for u in vanished}
            | {u >> CHUNK_SHIFT for u in new_uids}
            | {f.uid >> CHUNK_SHIFT for f in old_changed if f.uid},
        )
        await index.load_keywords(self.redis, [f.uid for f in old_changed if f.uid])
        for uid in vanished:
            if index.remove(uid):
                data: dict[str, Any] = {"id": pack_message_id(mbno, uid), "uid": uid}
                batch.emit("messageDeleted", data, path=path, special_use=box.special_use)
        for f in old_changed:
            if f.uid is None:
                continue
            uid = f.uid
            bits, extra = encode_flags(f.flags or ())
            old = index.get(uid)
            if old is None:
                index.put(uid, bits, f.modseq or 0, extra)  # unknown to us: adopt silently
                continue
            if old[0] != bits or (extra != index.keywords.get(uid, "")):
                before = decode_flags(old[0], index.keywords.get(uid, ""))
                after = decode_flags(bits, extra)
                index.put(uid, bits, f.modseq or old[1], extra)
                if sorted(before) != sorted(after):
                    batch.emit(
                        "messageUpdated",
                        {"id": pack_message_id(mbno, uid), "uid": uid,
                         "changes": {"flags": change_set(before, after)}},
                        path=path, special_use=box.special_use,
                    )  # fmt: skip
            elif (f.modseq or 0) != old[1]:
                index.put(uid, bits, f.modseq or old[1], extra)
        if new_uids:
            await self._announce_new(client, box, mbno, new_uids, batch, index=index)
        cursor.uidnext = max(uidnext, cursor.uidnext)
        cursor.messages = sel.exists
        if sel.highestmodseq:
            cursor.highestmodseq = sel.highestmodseq
        await self.committer.commit(batch)

    # --- new messages -----------------------------------------------------------------------
    async def _announce_new(
        self,
        client: ImapClient,
        box: MailboxInfo,
        mbno: int,
        uids: list[int],
        batch: Batch,
        *,
        index: MailboxIndex | None,
    ) -> None:
        items = list(summary_items(client.capabilities))
        if self.options.notify_headers:
            items.append("BODY.PEEK[HEADER]")
        for i in range(0, len(uids), NEW_MESSAGE_BATCH):
            chunk = uids[i : i + NEW_MESSAGE_BATCH]
            fetches = await client.uid_fetch(chunk, items)
            for f in sorted(fetches, key=lambda x: x.uid or 0):
                uid = f.uid
                if uid is None:
                    continue
                if index is not None:
                    bits, extra = encode_flags(f.flags or ())
                    index.put(uid, bits, f.modseq or 0, extra)
                data = summarize(f, mbno, path=box.path, special_use=box.special_use)
                if self.options.notify_headers:
                    data["headers"] = self._headers(f)
                if self.options.notify_text and data.get("text"):
                    await self._add_text(client, f, data)
                batch.emit("messageNew", data, path=box.path, special_use=box.special_use)

    def _headers(self, f: FetchResponse) -> dict[str, list[str]]:
        raw = (f.section("HEADER") or b"")[:HEADER_BYTES_LIMIT]
        msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
        wanted = {h.lower() for h in self.options.notify_headers}
        out: dict[str, list[str]] = {}
        for name, value in msg.items():
            key = name.lower()
            if "*" in wanted or key in wanted:
                out.setdefault(key, []).append(" ".join(str(value).split()))
        return out

    async def _add_text(self, client: ImapClient, f: FetchResponse, data: dict[str, Any]) -> None:
        from mailgate.backends.imap.summary import text_parts
        from mailgate.protocols.mime import decode_body, decode_text

        root = f.bodystructure
        if root is None or f.uid is None:
            return
        limit = self.options.notify_text_size or None
        parts = text_parts(root)
        sections = [
            f"BODY.PEEK[{p.part}]" + (f"<0.{limit}>" if limit else "") for p in parts.values()
        ]
        fetched = await client.uid_fetch([f.uid], sections)
        if not fetched:
            return
        text: dict[str, Any] = dict(data["text"])
        has_more = False
        for kind, part in parts.items():
            raw = fetched[0].section(part.part) or b""
            body = decode_text(decode_body(raw, part.encoding), part.params.get("charset"))
            text[kind] = body
            if limit and (part.size or 0) > limit:
                has_more = True
        text["hasMore"] = has_more
        data["text"] = text


def uids_of(fetches: Sequence[FetchResponse]) -> list[int]:
    return sorted(f.uid for f in fetches if f.uid is not None)


def newest_first(dates: dict[int, datetime]) -> list[int]:
    return sorted(dates, key=lambda u: dates[u], reverse=True)
