"""The full indexer's compact per-message records, and mailbox sync cursors, in Redis.

A record is 14 bytes: UID (4), flag bits (2), MODSEQ (8), big-endian. Records of one mailbox are
kept in chunks by UID range (``uid >> CHUNK_SHIFT``), each chunk one Redis string of sorted
records, so a change rewrites one small chunk, and the whole index costs ~15 bytes per message.
Custom keywords (rare) live in a side hash. Nothing here talks IMAP.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from redis.asyncio import Redis

from mailgate.store import keys
from mailgate.store.redis import data, str_map, text

RECORD = struct.Struct(">IHQ")
CHUNK_SHIFT = 12  # 4,096 UIDs per chunk: at most 57 KB per chunk string

FLAG_BITS: dict[str, int] = {
    "\\seen": 1 << 0,
    "\\answered": 1 << 1,
    "\\flagged": 1 << 2,
    "\\deleted": 1 << 3,
    "\\draft": 1 << 4,
    "$forwarded": 1 << 5,
    "$junk": 1 << 6,
    "$notjunk": 1 << 7,
    "$phishing": 1 << 8,
    "$mdnsent": 1 << 9,
    "$important": 1 << 10,
}
KEYWORDS_BIT = 1 << 15  # the message has custom keywords (kept in the keywords hash)
CANONICAL = {
    "\\seen": "\\Seen",
    "\\answered": "\\Answered",
    "\\flagged": "\\Flagged",
    "\\deleted": "\\Deleted",
    "\\draft": "\\Draft",
    "$forwarded": "$Forwarded",
    "$junk": "$Junk",
    "$notjunk": "$NotJunk",
    "$phishing": "$Phishing",
    "$mdnsent": "$MDNSent",
    "$important": "$Important",
}
IGNORED_FLAGS = frozenset({"\\recent"})


def encode_flags(flags: Iterable[str]) -> tuple[int, str]:
    """(bits, space-joined custom keywords) for a FLAGS list."""
    bits = 0
    extra: list[str] = []
    for flag in flags:
        lowered = flag.lower()
        if lowered in IGNORED_FLAGS:
            continue
        bit = FLAG_BITS.get(lowered)
        if bit is not None:
            bits |= bit
        else:
            extra.append(flag)
    if extra:
        bits |= KEYWORDS_BIT
    return bits, " ".join(sorted(set(extra)))


def decode_flags(bits: int, extra: str = "") -> list[str]:
    out = [CANONICAL[name] for name, bit in FLAG_BITS.items() if bits & bit]
    if extra:
        out.extend(extra.split(" "))
    return out


def pack_records(records: dict[int, tuple[int, int]]) -> bytes:
    return b"".join(
        RECORD.pack(uid, bits, modseq) for uid, (bits, modseq) in sorted(records.items())
    )


def unpack_records(data: bytes) -> dict[int, tuple[int, int]]:
    return {uid: (bits, modseq) for uid, bits, modseq in RECORD.iter_unpack(data)}


@dataclass
class MailboxCursor:
    """Where the indexer stands in one mailbox."""

    path: str
    uidvalidity: int = 0
    uidnext: int = 0
    highestmodseq: int = 0
    messages: int = 0
    indexer: str = "full"
    complete: bool = False  # the first index finished
    progress: int = 0  # highest UID indexed so far during the first index
    # what the first index announces when it completes: "initial" (mail received after the
    # account's notifyFrom), "all" (a folder that appeared later), "none" (after a reset)
    announce: str = "initial"

    def to_redis(self) -> dict[str, str]:
        return {
            "path": self.path,
            "uidvalidity": str(self.uidvalidity),
            "uidnext": str(self.uidnext),
            "highestmodseq": str(self.highestmodseq),
            "messages": str(self.messages),
            "indexer": self.indexer,
            "complete": "1" if self.complete else "0",
            "progress": str(self.progress),
            "announce": self.announce,
        }

    @classmethod
    def from_redis(cls, raw: dict[str, str]) -> MailboxCursor:
        get = raw
        return cls(
            path=get.get("path", ""),
            uidvalidity=int(get.get("uidvalidity", 0)),
            uidnext=int(get.get("uidnext", 0)),
            highestmodseq=int(get.get("highestmodseq", 0)),
            messages=int(get.get("messages", 0)),
            indexer=get.get("indexer", "full"),
            complete=get.get("complete") == "1",
            progress=int(get.get("progress", 0)),
            announce=get.get("announce", "initial"),
        )


@dataclass
class MailboxIndex:
    """A lazily loaded, writable view of one mailbox's records."""

    account: str
    mailbox_no: int
    chunks: dict[int, dict[int, tuple[int, int]]] = field(default_factory=dict)
    dirty: set[int] = field(default_factory=set)
    keywords: dict[int, str] = field(default_factory=dict)
    keywords_dirty: dict[int, str | None] = field(default_factory=dict)

    async def load(self, redis: Redis, chunk_numbers: Iterable[int]) -> None:
        wanted = sorted({c for c in chunk_numbers if c not in self.chunks})
        if not wanted:
            return
        raws = await redis.mget(
            [keys.index_chunk(self.account, self.mailbox_no, c) for c in wanted]
        )
        for chunk, raw in zip(wanted, raws, strict=True):
            self.chunks[chunk] = unpack_records(data(raw)) if raw else {}

    async def load_all(self, redis: Redis) -> None:
        members = await redis.smembers(keys.index_chunks(self.account, self.mailbox_no))
        await self.load(redis, (int(m) for m in members))
        raw_kw = await redis.hgetall(keys.keywords(self.account, self.mailbox_no))
        self.keywords = {int(k): v for k, v in str_map(raw_kw).items()}

    async def load_keywords(self, redis: Redis, uids: Iterable[int]) -> None:
        wanted = [u for u in uids if u not in self.keywords]
        if not wanted:
            return
        raws = await redis.hmget(
            keys.keywords(self.account, self.mailbox_no), [str(u) for u in wanted]
        )
        for uid, raw in zip(wanted, raws, strict=True):
            if raw is not None:
                self.keywords[uid] = text(raw)

    def get(self, uid: int) -> tuple[int, int] | None:
        return self.chunks.get(uid >> CHUNK_SHIFT, {}).get(uid)

    def uids(self) -> list[int]:
        return sorted(uid for chunk in self.chunks.values() for uid in chunk)

    def _loaded(self, uid: int) -> dict[int, tuple[int, int]]:
        chunk = self.chunks.get(uid >> CHUNK_SHIFT)
        if chunk is None:  # writing an unloaded chunk would drop its stored records
            raise RuntimeError(f"index chunk of uid {uid} was not loaded before a write")
        return chunk

    def put(self, uid: int, bits: int, modseq: int, extra: str = "") -> None:
        chunk = uid >> CHUNK_SHIFT
        self._loaded(uid)[uid] = (bits, modseq)
        self.dirty.add(chunk)
        if extra or uid in self.keywords:
            if extra != self.keywords.get(uid, ""):
                self.keywords_dirty[uid] = extra or None
            if extra:
                self.keywords[uid] = extra
            else:
                self.keywords.pop(uid, None)

    def remove(self, uid: int) -> bool:
        chunk = uid >> CHUNK_SHIFT
        records = self._loaded(uid)
        if uid not in records:
            return False
        del records[uid]
        self.dirty.add(chunk)
        if uid in self.keywords:
            self.keywords.pop(uid)
            self.keywords_dirty[uid] = None
        return True

    def count(self) -> int:
        return sum(len(c) for c in self.chunks.values())


def stage_index_writes(pipe: object, index: MailboxIndex) -> None:
    """Queue the dirty chunks and keywords of ``index`` on a MULTI pipeline."""
    p = pipe  # redis.asyncio.client.Pipeline; typed loosely to keep this module import-light
    account, mbno = index.account, index.mailbox_no
    for chunk in sorted(index.dirty):
        records = index.chunks.get(chunk, {})
        key = keys.index_chunk(account, mbno, chunk)
        if records:
            p.set(key, pack_records(records))  # type: ignore[attr-defined]
            p.sadd(keys.index_chunks(account, mbno), chunk)  # type: ignore[attr-defined]
        else:
            p.delete(key)  # type: ignore[attr-defined]
            p.srem(keys.index_chunks(account, mbno), chunk)  # type: ignore[attr-defined]
    kw_key = keys.keywords(account, mbno)
    for uid, value in index.keywords_dirty.items():
        if value:
            p.hset(kw_key, str(uid), value)  # type: ignore[attr-defined]
        else:
            p.hdel(kw_key, str(uid))  # type: ignore[attr-defined]


def mark_clean(index: MailboxIndex) -> None:
    index.dirty.clear()
    index.keywords_dirty.clear()


async def drop_index(redis: Redis, account: str, mailbox_no: int) -> None:
    members = await redis.smembers(keys.index_chunks(account, mailbox_no))
    doomed = [keys.index_chunk(account, mailbox_no, int(m)) for m in members]
    doomed += [keys.index_chunks(account, mailbox_no), keys.keywords(account, mailbox_no)]
    doomed.append(keys.mailbox_state(account, mailbox_no))
    await redis.delete(*doomed)
