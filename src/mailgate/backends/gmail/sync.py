"""The Gmail sync engine: a history cursor, an optional label index, and events.

State per account (:mod:`mailgate.store.keys`, ``gm:*``): the history id the account is synced
to, and with the full indexer a 12-byte record per message holding its label bits (each label
gets a small bit number) in chunked strings (:mod:`.index`). One pass::

    no cursor ──► baseline (:mod:`.baseline`): getProfile (history id H0); full indexer: every
        │         message id (messages.list, 500 a call) and, per tracked label, the ids in
        │         it — label bits without fetching a single message — one commit per page
        │         (progress + page token), so a restart resumes where it stopped. Messages
        │         received after the account's notifyFrom are announced once (first index only).
        ▼
    history.list from the cursor, 500 records a page; each page is one fenced commit of
    index changes + cursor + events:
        messagesAdded    → messageNew (summary from one batched format=metadata get)
        messagesDeleted  → messageDeleted            (full indexer)
        labelsAdded/Removed → messageUpdated with changes.flags / changes.labels (full)
    404 (history expired) ──► mailboxReset for every mailbox, drop the index, silent
                              baseline, continue: never a flood of messageNew.
    labels.list vs the labels seen last pass → mailboxNew / mailboxDeleted.

A ``messagesAdded`` record after the cursor always means a message that arrived after it, so it
is announced even when the index already holds it: a first index lists for a while after taking
H0, and a listing page may have caught mail that arrived meanwhile. The history from H0 is what
tells those apart from the mail that was there before (never announced); the IMAP first index
does the same with the UIDNEXT it took at the start. Each message has one such record, and the
record, the index and the event are committed together, so it is announced exactly once, also
when a first index or a history page is interrupted and done again.

Label changes, moves included (INBOX → a user label is ``labelsRemoved`` INBOX plus
``labelsAdded`` Label_n), are ``messageUpdated`` as EmailEngine's Gmail API backend sends them:
``{id, emailId, threadId, changes}`` where ``changes.flags`` (``UNREAD``, ``STARRED``, ``DRAFT``
as ``\\Seen``, ``\\Flagged``, ``\\Draft``) and ``changes.labels`` (every other label, as the
message's ``labels`` field names it) are ``{added, deleted, value}`` with an empty side left out
and ``value`` the message's flags or labels afterwards. One event per message and history page,
with the net change of that page (EmailEngine sends one per record and kind, so a move is two
events there); no event when the page changed nothing visible. The event's ``path`` is the
mailbox the message is in afterwards.

Events carry the same payloads as IMAP accounts (``id`` is Gmail's message id, ``emailId`` and
``threadId`` set) and the path of the message's main mailbox (:meth:`LabelSet.primary`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog
from redis.asyncio import Redis

from mailgate.backends.gmail.baseline import HISTORY_PAGE, FirstIndex, tracked
from mailgate.backends.gmail.client import GmailClient, GmailNotFound
from mailgate.backends.gmail.index import (
    GmailIndex,
    LabelBits,
    build,
    stage_built,
    stage_drop,
)
from mailgate.backends.gmail.labels import (
    ALL_MAIL_PATH,
    FLAG_LABELS,
    LabelCache,
    LabelSet,
    flags_of,
)
from mailgate.backends.gmail.messages import LIST_PAGE_MAX, summary_call
from mailgate.backends.gmail.summary import listing_entry, selected_headers
from mailgate.domain.sync import SyncOptions, change_set
from mailgate.errors import CursorExpired
from mailgate.store import keys
from mailgate.store.commit import Batch, Committer
from mailgate.store.redis import str_map, text

HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")

log = structlog.get_logger("mailgate.sync")


def encode_bits(label_ids: Iterable[str], bits: Mapping[str, int]) -> int:
    value = 0
    for label_id in label_ids:
        bit = bits.get(label_id)
        if bit is not None:
            value |= 1 << bit
    return value


def decode_bits(value: int, bits: Mapping[str, int]) -> list[str]:
    return [label_id for label_id, bit in bits.items() if value >> bit & 1]


def update_payload(
    message_id: str,
    before: Sequence[str],
    after: Sequence[str],
    labels: LabelSet,
    *,
    thread_id: str | None = None,
) -> dict[str, Any] | None:
    """``messageUpdated`` data for a label change, or None when nothing visible changed.

    ``UNREAD``/``STARRED``/``DRAFT`` are flag changes only; a change of any other shown label
    (a move between labels, a label added or taken off) is ``changes.labels``, whose ``value``
    is the message's whole ``labels`` field afterwards, as listings and ``messageNew`` show it.
    """
    changes: dict[str, Any] = {}
    old_flags, new_flags = flags_of(before), flags_of(after)
    if sorted(old_flags) != sorted(new_flags):
        changes["flags"] = change_set(old_flags, new_flags)
    flag_labels = set(FLAG_LABELS.values())
    old_labels = labels.shown_labels(x for x in before if x not in flag_labels)
    new_labels = labels.shown_labels(x for x in after if x not in flag_labels)
    if sorted(old_labels) != sorted(new_labels):
        changes["labels"] = change_set(old_labels, new_labels, labels.shown_labels(after))
    if not changes:
        return None
    data: dict[str, Any] = {"id": message_id, "emailId": message_id}
    if thread_id:
        data["threadId"] = thread_id
    data["changes"] = changes
    return data


class GmailSyncer:
    """Brings one Gmail account's index up to date and emits its events."""

    def __init__(
        self,
        account: str,
        client: GmailClient,
        labels: LabelCache,
        redis: Redis,
        committer: Committer,
        options: SyncOptions,
        *,
        page_size: int = LIST_PAGE_MAX,
    ) -> None:
        self.account = account
        self.client = client
        self.labels = labels
        self.redis = redis
        self.committer = committer
        self.options = options
        self.full = options.indexer != "fast"
        self.page_size = page_size
        self.bits = LabelBits(account)
        self.chunk_bits: int | None = None
        self.log = log.bind(account=account)

    # -- entry point ---------------------------------------------------------------------------
    async def run_pass(self) -> None:
        state = str_map(await self.redis.hgetall(keys.gmail_state(self.account)))
        labels = await self.labels.get(fresh=True)
        self.bits = await LabelBits.load(self.redis, self.account)
        self.chunk_bits = int(state["ixBits"]) if state.get("ixBits") else None
        history_id = state.get("historyId")
        if not history_id or state.get("indexer") != self.options.indexer:
            initialized = await self.redis.hget(keys.sync_meta(self.account), "initialized")
            history_id = await self._baseline(labels, announce=text(initialized or "") != "1")
        elif self.full and self.chunk_bits is None:
            await self._migrate_legacy()
        try:
            await self._history(labels, int(history_id))
        except CursorExpired:
            self.log.info("gmail history expired: rebuilding the baseline")
            await self._reset(labels, int(history_id))
            history_id = await self._baseline(labels, announce=False)
            await self._history(labels, int(history_id))
        await self._mailbox_changes(labels, state)

    def _encode(self, label_ids: Iterable[str]) -> int:
        value = 0
        for label_id in label_ids:
            if tracked(label_id):
                value |= 1 << self.bits.bit(label_id)
        return value

    def _index(self) -> GmailIndex:
        return GmailIndex(self.account, self.chunk_bits or 0)

    # -- baseline ------------------------------------------------------------------------------
    async def _baseline(self, labels: LabelSet, *, announce: bool) -> str:
        """Index the account as of a history id (returned) and store it as the cursor."""
        return await FirstIndex(self, labels).run(announce=announce)

    async def _migrate_legacy(self) -> None:
        """An index of the one-hash format (``gm:ix``) becomes packed chunks, in one commit."""
        legacy = keys.gmail_index(self.account)
        records: list[tuple[str, int]] = []
        async for name, value in self.redis.hscan_iter(legacy, count=5000):
            records.append((text(name), int(text(value))))
        built = build(records)
        batch = Batch()
        account = self.account
        batch.extra.append(lambda p: stage_drop(p, account, None))
        batch.extra.append(lambda p: stage_built(p, account, built))
        batch.extra.append(lambda p: p.delete(legacy))
        state_key = keys.gmail_state(account)
        batch.extra.append(lambda p: p.hset(state_key, "ixBits", str(built.chunk_bits)))
        await self.committer.commit(batch)
        self.chunk_bits = built.chunk_bits
        self.log.info("gmail index migrated to packed records", messages=len(records))

    # -- history -------------------------------------------------------------------------------
    async def _history_page(self, start: int, token: str | None) -> dict[str, Any]:
        params: list[tuple[str, Any]] = [("startHistoryId", start), ("maxResults", HISTORY_PAGE)]
        params += [("historyTypes", t) for t in HISTORY_TYPES]
        if token:
            params.append(("pageToken", token))
        try:
            page = await self.client.request("history.list", "GET", "history", params=params)
        except GmailNotFound as exc:
            raise CursorExpired(f"history id {start} is no longer available") from exc
        return dict(page)

    async def _history(self, labels: LabelSet, start: int) -> None:
        token: str | None = None
        while True:
            page = await self._history_page(start, token)
            records = list(page.get("history") or [])
            token = page.get("nextPageToken")
            cursor = int(records[-1]["id"]) if token and records else int(page["historyId"])
            if records or cursor != start:
                await self._apply(labels, records, cursor)
            if not token:
                return

    async def _apply(self, labels: LabelSet, records: list[dict[str, Any]], cursor: int) -> None:
        batch = Batch()
        touched: list[str] = []
        threads: dict[str, str] = {}
        for record in records:
            for kind in ("messagesAdded", "messagesDeleted", "labelsAdded", "labelsRemoved"):
                for item in record.get(kind) or []:
                    message = item["message"]
                    touched.append(str(message["id"]))
                    if message.get("threadId"):
                        threads[str(message["id"])] = str(message["threadId"])
        touched = list(dict.fromkeys(touched))
        origin: dict[str, int | None] = {}
        index = self._index()
        if self.full and touched:
            origin = await index.lookup(self.redis, touched)
        current: dict[str, set[str] | None] = {
            m: (set(decode_bits(v, self.bits.bits)) if v is not None else None)
            for m, v in origin.items()
        }
        added: list[str] = []  # arrived after the cursor: announced (see the module docstring)
        raced: set[str] = set()  # of those, already indexed by a first index listing meanwhile
        for record in records:
            for item in record.get("messagesAdded") or []:
                message = item["message"]
                message_id = str(message["id"])
                if message_id in added:
                    continue
                added.append(message_id)
                if not self.full:
                    continue
                # its history from this record on is complete: start from the record's labels
                # (a first index may have seen it in some of its listings and not in others)
                current[message_id] = {str(x) for x in message.get("labelIds") or []}
                if origin.get(message_id) is not None:
                    raced.add(message_id)
            if not self.full:
                continue
            for item in record.get("messagesDeleted") or []:
                current[str(item["message"]["id"])] = None
            for kind, adding in (("labelsAdded", True), ("labelsRemoved", False)):
                for item in record.get(kind) or []:
                    message_id = str(item["message"]["id"])
                    now = current.get(message_id)
                    if now is None:
                        if origin.get(message_id) is None and message_id not in added:
                            # unknown to the index (raced the baseline): adopt silently
                            seen = item["message"].get("labelIds") or []
                            current[message_id] = {str(x) for x in seen}
                        continue
                    changed = {str(x) for x in item.get("labelIds") or []}
                    current[message_id] = now | changed if adding else now - changed
        writes: dict[str, int] = {}
        deletes: list[str] = []
        if self.full:
            for message_id, labels_now in current.items():
                before_bits = origin.get(message_id)
                if labels_now is None:
                    if before_bits is not None:
                        deletes.append(message_id)
                        if message_id in raced:
                            continue  # gone before it was announced: it leaves silently
                        before = decode_bits(before_bits, self.bits.bits)
                        data = {"id": message_id, "emailId": message_id}
                        if message_id in threads:
                            data["threadId"] = threads[message_id]
                        self._emit(batch, labels, "messageDeleted", data, before)
                    continue
                after_bits = self._encode(labels_now)
                if after_bits != before_bits:
                    writes[message_id] = after_bits
                if before_bits is None or message_id in added:
                    continue
                before = decode_bits(before_bits, self.bits.bits)
                after = decode_bits(after_bits, self.bits.bits)
                payload = update_payload(
                    message_id, before, after, labels, thread_id=threads.get(message_id)
                )
                if payload is not None:
                    self._emit(batch, labels, "messageUpdated", payload, after)
        new_ids = [m for m in added if not self.full or current.get(m) is not None]
        if new_ids:
            await self.announce(new_ids, labels, batch, index_bits=writes)
        self.bits.stage_into(batch.extra)
        if self.full:
            for message_id, value in writes.items():
                index.set(message_id, value)
            for message_id in deletes:
                index.delete(message_id)
            batch.extra.append(index.stage)
        state_key = keys.gmail_state(self.account)
        batch.extra.append(lambda p: p.hset(state_key, "historyId", str(cursor)))
        await self.committer.commit(batch)

    def _emit(
        self,
        batch: Batch,
        labels: LabelSet,
        event: str,
        data: dict[str, Any],
        label_ids: Sequence[str],
    ) -> None:
        primary = labels.primary(label_ids)
        path = primary.path if primary is not None else ALL_MAIL_PATH
        special_use = primary.special_use if primary is not None else "\\All"
        if not self.options.watches(path, special_use):
            return
        batch.emit(event, data, path=path, special_use=special_use)

    async def announce(
        self,
        ids: Sequence[str],
        labels: LabelSet,
        batch: Batch,
        *,
        index_bits: dict[str, int] | None,
    ) -> None:
        """``messageNew`` for each message still there (summaries in batches)."""
        wanted = tuple(self.options.notify_headers)
        found = await self.client.batch([summary_call(m) for m in ids])
        for resource in found:
            if resource is None:
                continue  # deleted again before we looked
            label_ids = [str(x) for x in resource.get("labelIds") or []]
            if index_bits is not None and self.full:
                index_bits[str(resource["id"])] = self._encode(label_ids)
            primary = labels.primary(label_ids)
            path = primary.path if primary is not None else ALL_MAIL_PATH
            special_use = primary.special_use if primary is not None else "\\All"
            if not self.options.watches(path, special_use):
                continue
            data = listing_entry(resource, labels, path=path, special_use=special_use)
            if wanted:
                data["headers"] = selected_headers(resource, wanted)
            batch.emit("messageNew", data, path=path, special_use=special_use)

    # -- expiry and mailboxes ------------------------------------------------------------------
    async def _reset(self, labels: LabelSet, old_history: int) -> None:
        batch = Batch()
        profile = await self.client.request("getProfile", "GET", "profile")
        for label in labels.mailboxes():
            if not self.options.watches(label.path, label.special_use):
                continue
            batch.emit(
                "mailboxReset",
                {
                    "path": label.path,
                    "mailboxId": label.id,
                    "historyId": str(profile.get("historyId")),
                    "prevHistoryId": str(old_history),
                },
                path=label.path,
                special_use=label.special_use,
            )
        account, chunk_bits = self.account, self.chunk_bits
        state_key = keys.gmail_state(account)
        doomed = (keys.gmail_baseline(account), keys.gmail_baseline_stage(account))
        batch.extra.append(lambda p: stage_drop(p, account, chunk_bits))
        batch.extra.append(lambda p: p.delete(*doomed))
        batch.extra.append(lambda p: p.hdel(state_key, "historyId", "ixBits"))
        await self.committer.commit(batch)
        self.chunk_bits = None

    async def _mailbox_changes(self, labels: LabelSet, state: Mapping[str, str]) -> None:
        now = {label.id: label.path for label in labels.mailboxes()}
        try:
            before: dict[str, str] | None = (
                json.loads(state["labels"]) if "labels" in state else None
            )
        except ValueError:
            before = None
        if before == now:
            return
        batch = Batch()
        if before is not None:
            for label_id, path in before.items():
                if now.get(label_id) != path:
                    batch.emit("mailboxDeleted", {"path": path, "mailboxId": label_id}, path=path)
            for label_id, path in now.items():
                if before.get(label_id) != path:
                    label = labels.by_id[label_id]
                    batch.emit("mailboxNew", {"path": path, "mailboxId": label_id}, path=path,
                               special_use=label.special_use)  # fmt: skip
        encoded = json.dumps(now, separators=(",", ":"))
        state_key = keys.gmail_state(self.account)
        batch.extra.append(lambda p: p.hset(state_key, "labels", encoded))
        await self.committer.commit(batch)
