"""The Graph sync engine: per-folder delta queries turned into the same events as IMAP.

Each watched folder keeps a cursor (``keys.graph_folders``): the ``@odata.deltaLink`` of its last
complete round, or the ``@odata.nextLink`` of a round in progress (so an interrupted round
resumes). One page of a round — index changes, the cursor and the events it produced — is one
fenced commit (:mod:`mailgate.store.commit`).

- *first round* (no cursor): the baseline. The full indexer stores each message's flags and
  categories (``keys.graph_index``) and announces only mail received after the account's
  ``notifyFrom`` (``announce=initial``), everything for a folder that appeared later
  (``all``), nothing after a reset (``none``). The fast indexer asks only for messages created
  since then (``$filter=receivedDateTime ge …``, ``changeType=created``): nothing is indexed.
- *incremental*: the deltaLink's round. ``@removed`` → ``messageDeleted`` (full); an unknown id
  → ``messageNew``; a known one whose flags or categories changed → ``messageUpdated`` (full).
- *expired* (410, :class:`~mailgate.errors.CursorExpired`): the folder's index is dropped,
  ``mailboxReset`` is emitted and the baseline is rebuilt silently: never a flood of
  ``messageNew``.

Flags include ``\\Answered``: the delta query expands the last verb (PidTagLastVerbExecuted,
see :mod:`.summary`; delta queries on messages support ``$select``, ``$top`` and ``$expand``,
https://learn.microsoft.com/en-us/graph/api/message-delta?view=graph-rest-1.0), so a reply sent
from Outlook, or ``\\Answered`` set through the API, comes back as a ``messageUpdated`` flag change.
A delta link keeps the query options of the round that made it: a folder whose cursor predates
this expansion reports ``\\Answered`` once its cursor restarts (410, account flush).

Summaries come from the delta rows themselves (``$select`` of the summary fields), so announcing
new mail costs no request beyond the delta page, except one ``$batch`` per 20 messages with
attachments (their metadata). The ``notifyText`` / ``notifyHeaders`` settings fill
``data.text.{plain,html,hasMore}`` and ``data.headers`` as the IMAP sync does: with
``notifyText`` the MIME source of each new message (``$value``, in the same ``$batch``; parsed by
:func:`mailgate.protocols.mime.parse_message`, text cut at ``notifyTextSize``), with only
``notifyHeaders`` its ``internetMessageHeaders`` (``$select``: no body is read).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

import structlog
from redis.asyncio import Redis

from mailgate.backends.graph.client import BatchPart, GraphClient
from mailgate.backends.graph.folders import Folders, GraphFolder
from mailgate.backends.graph.summary import (
    ATTACHMENT_FIELDS,
    EXPAND_LAST_VERB,
    SUMMARY_FIELDS,
    attachment_entry,
    decode_state,
    query_value,
    state_of,
    summarize,
)
from mailgate.domain.sync import SyncOptions, change_set
from mailgate.errors import CursorExpired
from mailgate.protocols.mime import parse_message
from mailgate.store import keys
from mailgate.store.commit import Batch, Committer
from mailgate.store.redis import str_map

#: Messages per delta page (``Prefer: odata.maxpagesize``).
DELTA_PAGE_SIZE = 500
#: Ids remembered per folder by the fast indexer to never announce one twice.
FAST_RECENT_IDS = 200
#: Pages of one delta round followed in one pass (the rest resumes next pass).
MAX_PAGES_PER_PASS = 1000
#: Header block kept per announced message for ``notifyHeaders`` (as the IMAP sync).
HEADER_BYTES_LIMIT = 64 * 1024

log = structlog.get_logger("mailgate.graph.sync")


def folder_key(folder_id: str) -> str:
    """A short key part for a (long) Graph folder id."""
    return hashlib.sha1(folder_id.encode(), usedforsecurity=False).hexdigest()[:16]


def iso_utc(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def received_at(row: dict[str, Any]) -> datetime | None:
    value = row.get("receivedDateTime")
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _stage_hset(key: str, name: str, value: str) -> Callable[[Any], None]:
    return lambda pipe: pipe.hset(key, name, value)


def _stage_hmset(key: str, values: dict[str, str]) -> Callable[[Any], None]:
    return lambda pipe: pipe.hset(key, mapping=values)


def _stage_hdel(key: str, names: list[str]) -> Callable[[Any], None]:
    return lambda pipe: pipe.hdel(key, *names)


@dataclass
class FolderCursor:
    path: str
    special_use: str | None = None
    link: str | None = None  # relative to the API base: a nextLink (round open) or deltaLink
    complete: bool = False  # the first round finished
    announce: str = "initial"  # what the first round announces: initial | all | none
    recent: list[str] = field(default_factory=list)  # fast indexer: last announced ids

    def dump(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"))

    @classmethod
    def load(cls, raw: str) -> FolderCursor:
        data = json.loads(raw)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class Hints:
    """What a pass looks at: every folder (``full``), else the named folder ids."""

    full: bool = True
    folders: set[str] = field(default_factory=set)
    deleted_ids: set[str] = field(default_factory=set)


class GraphSyncer:
    def __init__(
        self,
        account: str,
        client: GraphClient,
        folders: Folders,
        redis: Redis,
        committer: Committer,
        options: Callable[[], Awaitable[SyncOptions]],
    ) -> None:
        self.account = account
        self.client = client
        self.folders = folders
        self.redis = redis
        self.committer = committer
        self._options = options
        self.options: SyncOptions | None = None
        self.log = log.bind(account=account)

    # -- account level -------------------------------------------------------------------------

    async def folders_of_ids(self, ids: Sequence[str]) -> set[str]:
        """Folder ids holding ``ids`` in the index (for deletions: the message is gone)."""
        states = str_map(await self.redis.hgetall(keys.graph_folders(self.account)))
        found: set[str] = set()
        if not ids or not states:
            return found
        async with self.redis.pipeline(transaction=False) as pipe:
            order = list(states)
            for fid in order:
                pipe.hmget(keys.graph_index(self.account, folder_key(fid)), list(ids))
            answers = await pipe.execute()
        for fid, values in zip(order, answers, strict=True):
            if any(v is not None for v in values):
                found.add(fid)
        return found

    async def run_pass(self, hints: Hints | None = None) -> None:
        hints = hints or Hints()
        options = self.options = await self._options()
        meta = str_map(await self.redis.hgetall(keys.sync_meta(self.account)))
        initialized = meta.get("initialized") == "1"
        tree = await self.folders.tree(fresh=hints.full or not initialized)
        watched = [f for f in tree.folders if options.watches(f.path, f.special_use)]
        raw = str_map(await self.redis.hgetall(keys.graph_folders(self.account)))
        cursors = {fid: FolderCursor.load(v) for fid, v in raw.items()}
        present = {f.id for f in watched}
        if hints.full:
            for fid, cursor in cursors.items():
                if fid not in present:
                    await self._folder_gone(fid, cursor)
        if not initialized:
            await self.redis.hset(
                keys.sync_meta(self.account),
                mapping={
                    "foldersTotal": len(watched),
                    "foldersDone": 0,
                    "messagesTotal": sum(f.total for f in watched),
                    "indexer": options.indexer,
                },
            )
        done = 0
        for folder in watched:
            if not (hints.full or folder.id in hints.folders or folder.id not in cursors):
                continue
            cursor = cursors.get(folder.id) or FolderCursor(
                folder.path, folder.special_use, announce="all" if initialized else "initial"
            )
            cursor.path, cursor.special_use = folder.path, folder.special_use
            await self.sync_folder(folder, cursor)
            done += 1
            if not initialized:
                await self.redis.hset(keys.sync_meta(self.account), "foldersDone", done)
        if not initialized:
            batch = Batch()
            batch.emit("accountInitialized", {"initialized": True})
            batch.extra.append(lambda p: p.hset(keys.sync_meta(self.account), "initialized", "1"))
            await self.committer.commit(batch)

    async def _folder_gone(self, folder_id: str, cursor: FolderCursor) -> None:
        batch = Batch()
        index_key = keys.graph_index(self.account, folder_key(folder_id))
        batch.extra.append(lambda p: p.hdel(keys.graph_folders(self.account), folder_id))
        batch.extra.append(lambda p: p.delete(index_key))
        batch.emit(
            "mailboxDeleted", {"path": cursor.path, "mailboxId": folder_id}, path=cursor.path
        )
        await self.committer.commit(batch)

    # -- folder level --------------------------------------------------------------------------

    def _first_link(self, folder: GraphFolder, cursor: FolderCursor) -> str:
        assert self.options is not None
        base = (
            f"{self.client.root}/mailFolders/{folder.id}/messages/delta?$select={SUMMARY_FIELDS}"
            f"&$expand={query_value(EXPAND_LAST_VERB)}"
        )
        if self.options.indexer != "fast":
            return base
        since: datetime | None = None
        if cursor.announce == "initial":
            since = self.options.notify_from or datetime.now(UTC)
        elif cursor.announce == "none":
            since = datetime.now(UTC)
        link = base + "&changeType=created"
        if since is not None:
            link += f"&$filter=receivedDateTime ge {iso_utc(since)}"
        return link

    async def sync_folder(self, folder: GraphFolder, cursor: FolderCursor) -> None:
        try:
            await self._rounds(folder, cursor)
        except CursorExpired:
            await self._reset(folder, cursor)
            fresh = FolderCursor(folder.path, folder.special_use, announce="none")
            await self._rounds(folder, fresh)

    async def _reset(self, folder: GraphFolder, cursor: FolderCursor) -> None:
        self.log.info("delta token expired: rebuilding the baseline", path=folder.path)
        index_key = keys.graph_index(self.account, folder_key(folder.id))
        batch = Batch()
        batch.extra.append(lambda p: p.delete(index_key))
        batch.extra.append(lambda p: p.hdel(keys.graph_folders(self.account), folder.id))
        batch.emit(
            "mailboxReset",
            {"path": folder.path, "mailboxId": folder.id},
            path=folder.path,
            special_use=folder.special_use,
        )
        await self.committer.commit(batch)

    async def _rounds(self, folder: GraphFolder, cursor: FolderCursor) -> None:
        link = cursor.link or self._first_link(folder, cursor)
        first = not cursor.complete
        prefer = {"Prefer": f'IdType="ImmutableId", odata.maxpagesize={DELTA_PAGE_SIZE}'}
        for _ in range(MAX_PAGES_PER_PASS):
            data = await self.client.get(self.client.base + link, headers=prefer)
            rows = [r for r in data.get("value") or [] if isinstance(r, dict)]
            next_link = data.get("@odata.nextLink")
            delta_link = data.get("@odata.deltaLink")
            batch = Batch()
            await self._apply(folder, cursor, rows, batch, first=first)
            new_link = str(next_link or delta_link or "")
            if new_link and self.client.same_origin(new_link):
                cursor.link = new_link[len(self.client.base) :]
            if delta_link:
                cursor.complete = True
            batch.extra.append(
                _stage_hset(keys.graph_folders(self.account), folder.id, cursor.dump())
            )
            await self.committer.commit(batch)
            if first and rows:
                await self.redis.hincrby(keys.sync_meta(self.account), "messagesDone", len(rows))
            if delta_link or not next_link:
                return
            link = cursor.link or ""

    def _announces(self, cursor: FolderCursor, row: dict[str, Any], first: bool) -> bool:
        if not first:
            return True
        if cursor.announce == "all":
            return True
        if cursor.announce == "none":
            return False
        assert self.options is not None
        since = self.options.notify_from
        when = received_at(row)
        return since is not None and when is not None and when >= since

    async def _apply(
        self,
        folder: GraphFolder,
        cursor: FolderCursor,
        rows: list[dict[str, Any]],
        batch: Batch,
        *,
        first: bool,
    ) -> None:
        assert self.options is not None
        path, use = folder.path, folder.special_use
        new_rows: list[dict[str, Any]] = []
        if self.options.indexer == "fast":
            for row in rows:
                mid = str(row.get("id") or "")
                if "@removed" in row or not mid or mid in cursor.recent:
                    continue
                if not self._announces(cursor, row, first):
                    continue
                cursor.recent = [*cursor.recent, mid][-FAST_RECENT_IDS:]
                new_rows.append(row)
            await self._announce(new_rows, path, use, batch)
            return
        index_key = keys.graph_index(self.account, folder_key(folder.id))
        ids = [str(r.get("id") or "") for r in rows]
        old_states = await self.redis.hmget(index_key, ids) if ids else []
        writes: dict[str, str] = {}
        removed: list[str] = []
        for row, mid, old_raw in zip(rows, ids, old_states, strict=True):
            if not mid:
                continue
            old = old_raw.decode() if isinstance(old_raw, bytes) else old_raw
            if "@removed" in row:
                if old is not None:
                    removed.append(mid)
                    batch.emit("messageDeleted", {"id": mid, "emailId": mid}, path=path,
                               special_use=use)  # fmt: skip
                continue
            state = state_of(row)
            writes[mid] = state
            if old is None:
                if self._announces(cursor, row, first):
                    new_rows.append(row)
                continue
            if old != state:
                data = self._updated(mid, old, state)
                if data is not None:
                    batch.emit("messageUpdated", data, path=path, special_use=use)
        if writes:
            batch.extra.append(_stage_hmset(index_key, dict(writes)))
        if removed:
            batch.extra.append(_stage_hdel(index_key, list(removed)))
        await self._announce(new_rows, path, use, batch)

    @staticmethod
    def _updated(mid: str, old: str, new: str) -> dict[str, Any] | None:
        old_flags, old_cats = decode_state(old)
        new_flags, new_cats = decode_state(new)
        diff: dict[str, Any] = {}
        if sorted(old_flags) != sorted(new_flags):
            diff["flags"] = change_set(old_flags, new_flags)
        if sorted(old_cats) != sorted(new_cats):
            diff["labels"] = change_set(old_cats, new_cats)
        if not diff:
            return None
        return {"id": mid, "emailId": mid, "changes": diff}

    async def _announce(
        self, rows: list[dict[str, Any]], path: str, use: str | None, batch: Batch
    ) -> None:
        if not rows:
            return
        assert self.options is not None
        wanted = tuple(h.lower() for h in self.options.notify_headers)
        with_text = self.options.notify_text
        with_atts = [r for r in rows if r.get("hasAttachments")]
        # one $batch for everything the summaries lack: attachment metadata, and for
        # notifyText the MIME source (text as IMAP gives it, and the headers), else for
        # notifyHeaders only the internetMessageHeaders
        parts = [
            BatchPart("GET", f"/messages/{r['id']}/attachments?$select={ATTACHMENT_FIELDS}")
            for r in with_atts
        ]
        if with_text:
            parts += [BatchPart("GET", f"/messages/{r['id']}/$value") for r in rows]
        elif wanted:
            parts += [
                BatchPart("GET", f"/messages/{r['id']}?$select=internetMessageHeaders")
                for r in rows
            ]
        results = await self.client.batch(parts) if parts else []
        attachments: dict[str, list[dict[str, Any]]] = {}
        for row, res in zip(with_atts, results[: len(with_atts)], strict=True):
            if res.ok and isinstance(res.body, dict):
                attachments[str(row["id"])] = [
                    a for a in res.body.get("value") or [] if isinstance(a, dict)
                ]
        extras = dict(
            zip((str(r.get("id")) for r in rows), results[len(with_atts) :], strict=False)
        )
        limit = self.options.notify_text_size or None
        for row in sorted(rows, key=lambda r: str(r.get("receivedDateTime") or "")):
            data = summarize(row, path=path, special_use=use)
            mid = str(row.get("id"))
            if mid in attachments:
                data["attachments"] = [attachment_entry(mid, a) for a in attachments[mid]]
            extra = extras.get(mid)
            if extra is not None and extra.ok:
                if with_text:
                    add_mime_extras(data, extra.raw(), wanted, limit)
                elif wanted and isinstance(extra.body, dict):
                    data["headers"] = graph_headers(
                        extra.body.get("internetMessageHeaders"), wanted
                    )
            elif wanted:
                data["headers"] = {}
            batch.emit("messageNew", data, path=path, special_use=use)


def select_headers(pairs: Iterable[tuple[str, str]], wanted: Sequence[str]) -> dict[str, list[str]]:
    """``notifyHeaders``: lower-case name → values (whitespace collapsed), for the names in
    ``wanted`` (``*``: every header), as the IMAP sync gives them."""
    every = "*" in wanted
    names = set(wanted)
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        key = name.lower()
        if every or key in names:
            out.setdefault(key, []).append(" ".join(str(value).split()))
    return out


def graph_headers(values: Any, wanted: Sequence[str]) -> dict[str, list[str]]:
    """:func:`select_headers` over Graph's ``internetMessageHeaders`` (``[{name, value}]``)."""
    pairs = [
        (str(h.get("name") or ""), str(h.get("value") or ""))
        for h in values or []
        if isinstance(h, dict) and h.get("name")
    ]
    return select_headers(pairs, wanted)


def add_mime_extras(
    data: dict[str, Any], raw: bytes, wanted: Sequence[str], limit: int | None
) -> None:
    """``notifyText`` (and ``notifyHeaders``) from the MIME source: ``text.plain`` /
    ``text.html`` cut at ``limit`` bytes with ``hasMore``, only the kinds the message has."""
    parsed = parse_message(raw, max_text_bytes=limit, text_type="*")
    if wanted:
        msg = BytesHeaderParser(policy=compat32).parsebytes(raw[:HEADER_BYTES_LIMIT])
        data["headers"] = select_headers(((k, str(v)) for k, v in msg.items()), wanted)
    text: dict[str, Any] = dict(data.get("text") or {})
    if parsed.text_plain is not None and not parsed.plain_generated:
        text["plain"] = parsed.text_plain
    if parsed.text_html is not None and not parsed.html_generated:
        text["html"] = parsed.text_html
    text["hasMore"] = parsed.has_more
    data["text"] = text
