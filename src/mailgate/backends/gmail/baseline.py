"""The first index of a Gmail account, in resumable chunks.

Label bits come from listings, never from fetching messages: one ``messages.list`` walk of
every message (``""``) and one per tracked label, 500 ids a call. Each page is one fenced
commit of the ids it brought (OR-ed into a staging hash, message id -> label bits), the
listing's next page token (or "done"), and any new label bit numbers, so a crash, a lost lease
or a restart continues from the last page committed instead of starting over::

    gm:base missing, or of another indexer, or its history id expired
        ──► getProfile: history id H0 (captured once, at the start) ──► gm:base {H0, indexer}
    per listing still open (4 at a time): messages.list from its token ──► commit page
    all done ──► one commit: packed index (:mod:`.index`) + cursor H0 + accountInitialized
                 (+ messageNew for mail since notifyFrom), staging and progress dropped

The history from H0 then brings in whatever changed while the index was being built, as in a
single-step baseline: every message added after H0 is announced there (``messageNew``) once,
even when a listing page that ran after it arrived has already put it in the index, and no
message that was there at H0 ever is (only notifyFrom's, here). Nothing is announced while the
listings run, so an interrupted first index has nothing to take back or repeat. A page is
OR-ed under a lock (read, merge, commit), so parallel listings never lose each other's bits
and a page committed twice changes nothing.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from mailgate.backends.gmail.client import GmailNotFound
from mailgate.backends.gmail.index import build, stage_built, stage_drop
from mailgate.backends.gmail.labels import LabelSet
from mailgate.store import keys
from mailgate.store.commit import Batch
from mailgate.store.redis import str_map, text

if TYPE_CHECKING:
    from mailgate.backends.gmail.sync import GmailSyncer

#: Listings a first index walks at once.
CONCURRENCY = 4
#: History records per history.list call (Gmail's maximum).
HISTORY_PAGE = 500
#: Labels whose membership the full indexer does not keep (no flag, no mailbox).
UNTRACKED_PREFIXES = ("CATEGORY_", "CHAT")
ALL = ""  # the listing of every message


def tracked(label_id: str) -> bool:
    return not label_id.startswith(UNTRACKED_PREFIXES)


def _first(group: BaseExceptionGroup[Exception]) -> Exception:
    error = group.exceptions[0]
    return _first(error) if isinstance(error, BaseExceptionGroup) else error


class FirstIndex:
    """One account's first index (or rebuild after a reset), resumed if one was under way."""

    def __init__(self, syncer: GmailSyncer, labels: LabelSet) -> None:
        self.syncer = syncer
        self.labels = labels
        account = syncer.account
        self.base_key = keys.gmail_baseline(account)
        self.stage_key = keys.gmail_baseline_stage(account)
        self.meta_key = keys.sync_meta(account)
        self._lock = asyncio.Lock()
        self.pages = 0  # pages committed by this run (tests, logs)

    async def _resume_point(self, base: dict[str, str]) -> str | None:
        """The history id of a first index under way that can go on, else None."""
        history_id = base.get("historyId")
        if not history_id or base.get("indexer") != self.syncer.options.indexer:
            return None
        try:
            await self.syncer.client.request(
                "history.list",
                "GET",
                "history",
                params={"startHistoryId": history_id, "maxResults": 1, "fields": "historyId"},
            )
        except GmailNotFound:
            return None  # Google forgot H0: what was gathered cannot be brought up to date
        return history_id

    async def run(self, *, announce: bool) -> str:
        """Build (or finish building) the index; the history id it stands at, stored."""
        syncer = self.syncer
        redis = syncer.redis
        base = str_map(await redis.hgetall(self.base_key))
        history_id = await self._resume_point(base)
        if history_id is None:
            profile = await syncer.client.request("getProfile", "GET", "profile")
            history_id = str(profile["historyId"])
            total = int(profile.get("messagesTotal") or 0)
            base = {"historyId": history_id, "indexer": syncer.options.indexer,
                    "messagesTotal": str(total)}  # fmt: skip
            batch = Batch()
            base_key, stage_key, meta_key = self.base_key, self.stage_key, self.meta_key
            fresh = dict(base)
            batch.extra.append(lambda p: p.delete(base_key, stage_key))
            batch.extra.append(lambda p: p.hset(base_key, mapping=fresh))
            if announce:
                meta = {"indexer": syncer.options.indexer, "messagesTotal": total,
                        "messagesDone": 0}  # fmt: skip
                batch.extra.append(lambda p: p.hset(meta_key, mapping=meta))
            await syncer.committer.commit(batch)
        else:
            syncer.log.info("gmail first index resumed", historyId=history_id)
        if syncer.full:
            wanted = [ALL] + [label.id for label in self.labels.by_id.values() if tracked(label.id)]
            pending = [w for w in wanted if base.get(f"d:{w}") != "1"]
            gate = asyncio.Semaphore(CONCURRENCY)

            async def walk(label_id: str) -> None:
                async with gate:
                    await self._walk(label_id, base.get(f"t:{label_id}") or None, announce)

            try:
                async with asyncio.TaskGroup() as group:
                    for label_id in pending:
                        group.create_task(walk(label_id))
            except ExceptionGroup as failed:
                raise _first(failed) from failed  # callers handle ConnectError, LeaseLost...
        await self._finish(history_id, int(base.get("messagesTotal") or 0), announce=announce)
        return history_id

    async def _walk(self, label_id: str, token: str | None, announce: bool) -> None:
        syncer = self.syncer
        while True:
            params: list[tuple[str, Any]] = [
                ("maxResults", syncer.page_size),
                ("includeSpamTrash", True),
                ("fields", "messages/id,nextPageToken"),
            ]
            if label_id:
                params.append(("labelIds", label_id))
            if token:
                params.append(("pageToken", token))
            try:
                page = await syncer.client.request(
                    "messages.list", "GET", "messages", params=params
                )
            except GmailNotFound:
                page = {}  # the label was deleted meanwhile: the history will say so
            ids = [str(m["id"]) for m in page.get("messages") or []]
            token = page.get("nextPageToken") or None
            await self._commit_page(label_id, ids, token, announce)
            if token is None:
                return

    async def _commit_page(
        self, label_id: str, ids: list[str], token: str | None, announce: bool
    ) -> None:
        syncer = self.syncer
        async with self._lock:
            batch = Batch()
            bit = 1 << syncer.bits.bit(label_id) if label_id else 0
            syncer.bits.stage_into(batch.extra)
            stage_key, base_key, meta_key = self.stage_key, self.base_key, self.meta_key
            if ids:
                values = await syncer.redis.hmget(stage_key, ids)
                merged = {
                    m: str((int(text(v)) if v is not None else 0) | bit)
                    for m, v in zip(ids, values, strict=True)
                }
                batch.extra.append(lambda p: p.hset(stage_key, mapping=merged))
            if token is not None:
                batch.extra.append(lambda p: p.hset(base_key, f"t:{label_id}", token))
            else:
                batch.extra.append(lambda p: p.hset(base_key, f"d:{label_id}", "1"))
                batch.extra.append(lambda p: p.hdel(base_key, f"t:{label_id}"))
            if announce and label_id == ALL and ids:
                count = len(ids)
                batch.extra.append(lambda p: p.hincrby(meta_key, "messagesDone", count))
            await syncer.committer.commit(batch)
            self.pages += 1

    async def _finish(self, history_id: str, total: int, *, announce: bool) -> None:
        syncer = self.syncer
        account = syncer.account
        records: list[tuple[str, int]] = []
        if syncer.full:
            async for name, value in syncer.redis.hscan_iter(self.stage_key, count=5000):
                records.append((text(name), int(text(value))))
        built = build(records) if syncer.full else None
        old_bits = syncer.chunk_bits
        batch = Batch()
        legacy = keys.gmail_index(account)
        batch.extra.append(lambda p: stage_drop(p, account, old_bits))
        batch.extra.append(lambda p: p.delete(legacy))
        state: dict[str, str] = {"historyId": history_id, "indexer": syncer.options.indexer}
        state_key = keys.gmail_state(account)
        if built is not None:
            batch.extra.append(lambda p: stage_built(p, account, built))
            state["ixBits"] = str(built.chunk_bits)
        else:
            batch.extra.append(lambda p: p.hdel(state_key, "ixBits"))
        batch.extra.append(lambda p: p.hset(state_key, mapping=state))
        base_key, stage_key, meta_key = self.base_key, self.stage_key, self.meta_key
        batch.extra.append(lambda p: p.delete(base_key, stage_key))
        if announce:
            await self._announce_since_notify_from(batch, history_id)
            folders = len(self.labels.mailboxes())
            meta = {
                "initialized": "1",
                "indexer": syncer.options.indexer,
                "foldersTotal": folders,
                "foldersDone": folders,
                "messagesTotal": total,
                "messagesDone": total,
            }
            batch.extra.append(lambda p: p.hset(meta_key, mapping=meta))
            batch.emit("accountInitialized", {"initialized": True})
        else:
            batch.extra.append(lambda p: p.hset(meta_key, "initialized", "1"))
        await syncer.committer.commit(batch)
        syncer.chunk_bits = built.chunk_bits if built is not None else None

    async def _announce_since_notify_from(self, batch: Batch, history_id: str) -> None:
        """``messageNew`` for the mail received after notifyFrom that was there at H0.

        What arrived after H0 is left to the history from H0 (see :mod:`.sync`), which announces
        it whether or not a listing saw it. Those ids come from ``history.list`` asked *after*
        the search, so whatever the search found that arrived after H0 is among them: no
        message is announced by both."""
        syncer = self.syncer
        since = syncer.options.notify_from
        if since is None:
            return
        ids: list[str] = []
        token: str | None = None
        while True:
            params: list[tuple[str, Any]] = [
                ("maxResults", syncer.page_size),
                ("includeSpamTrash", True),
                ("fields", "messages/id,nextPageToken"),
                ("q", f"after:{int(since.timestamp())}"),
            ]
            if token:
                params.append(("pageToken", token))
            page = await syncer.client.request("messages.list", "GET", "messages", params=params)
            ids.extend(str(m["id"]) for m in page.get("messages") or [])
            token = page.get("nextPageToken")
            if not token:
                break
        if ids:
            later = await self._added_since(history_id)
            ids = [m for m in ids if m not in later]
        if ids:
            await syncer.announce(list(reversed(ids)), self.labels, batch, index_bits=None)

    async def _added_since(self, history_id: str) -> set[str]:
        """Ids of the messages added after ``history_id`` (empty if Google forgot it: the history
        replay then starts over from a new baseline and announces none of them)."""
        syncer = self.syncer
        found: set[str] = set()
        token: str | None = None
        while True:
            params: list[tuple[str, Any]] = [
                ("startHistoryId", history_id),
                ("historyTypes", "messageAdded"),
                ("maxResults", HISTORY_PAGE),
                ("fields", "history/messagesAdded/message/id,nextPageToken"),
            ]
            if token:
                params.append(("pageToken", token))
            try:
                page = await syncer.client.request("history.list", "GET", "history", params=params)
            except GmailNotFound:
                return set()
            for record in page.get("history") or []:
                for item in record.get("messagesAdded") or []:
                    found.add(str(item["message"]["id"]))
            token = page.get("nextPageToken")
            if not token:
                return found
