"""The Gmail full indexer's per-message label bits, packed in chunked Redis strings.

A record is 12 bytes: the Gmail message id as a 64-bit number (ids are 16 hex digits) and 32
bits of label bits, big-endian. Records are spread over ``2 ** chunk_bits`` chunks by a
multiplicative hash of the id (Gmail ids grow with time, so their high bits would crowd one
chunk); each chunk is one Redis string of records sorted by id, read and rewritten whole, so a
change rewrites one small chunk. ``chunk_bits`` is chosen when the index is built (about
:data:`TARGET_PER_CHUNK` records a chunk) and kept in the account's Gmail state.

What does not fit a record goes to a side hash (message id -> decimal label bits): an id that
is not 16 hex digits, or label bits beyond bit 30 (an account with more than 31 tracked labels).
Bit 31 of a record (:data:`SPILLED`) says "look in the side hash"; records without it need no
second read. Nothing here talks to Gmail.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from mailgate.store import keys
from mailgate.store.redis import data, text

RECORD = struct.Struct(">QI")
#: Records a chunk holds on average right after the index was built.
TARGET_PER_CHUNK = 512
#: Most chunk bits (65,536 chunks: 33 million messages at the target fill).
MAX_CHUNK_BITS = 16
#: Record bit meaning "the label bits are in the side hash".
SPILLED = 1 << 31
#: Label bits a record holds itself.
PACKED_MASK = SPILLED - 1
_MIX = 0x9E3779B97F4A7C15  # 2**64 / golden ratio (Fibonacci hashing)
_MASK64 = (1 << 64) - 1
_HEX16 = re.compile(r"[0-9a-f]{16}")


def id_number(message_id: str) -> int | None:
    """The 64-bit number of a Gmail message id, None when it is not 16 lower-case hex digits."""
    return int(message_id, 16) if _HEX16.fullmatch(message_id) else None


def id_text(number: int) -> str:
    return f"{number:016x}"


def chunk_of(number: int, chunk_bits: int) -> int:
    if chunk_bits <= 0:
        return 0
    return ((number * _MIX) & _MASK64) >> (64 - chunk_bits)


def chunk_bits_for(count: int) -> int:
    """Chunk bits for an index of ``count`` messages."""
    bits = 0
    while bits < MAX_CHUNK_BITS and count > TARGET_PER_CHUNK << bits:
        bits += 1
    return bits


def pack(records: Mapping[int, int]) -> bytes:
    return b"".join(RECORD.pack(n, v) for n, v in sorted(records.items()))


def unpack(data: bytes) -> dict[int, int]:
    return dict(RECORD.iter_unpack(data))


def chunk_keys(account: str, chunk_bits: int) -> list[str]:
    return [keys.gmail_index_chunk(account, c) for c in range(1 << chunk_bits)]


@dataclass
class BuiltIndex:
    """A whole index, ready to be staged in one commit."""

    chunk_bits: int
    chunks: dict[int, bytes]
    spilled: dict[str, int]


def build(records: Iterable[tuple[str, int]], count_hint: int = 0) -> BuiltIndex:
    """Pack ``(message id, label bits)`` pairs into chunks (and the side hash)."""
    items = list(records)
    chunk_bits = chunk_bits_for(max(len(items), count_hint))
    grouped: dict[int, dict[int, int]] = {}
    spilled: dict[str, int] = {}
    for message_id, value in items:
        number = id_number(message_id)
        if number is None:
            spilled[message_id] = value
            continue
        record = value
        if value > PACKED_MASK:
            spilled[message_id] = value
            record = SPILLED
        grouped.setdefault(chunk_of(number, chunk_bits), {})[number] = record
    return BuiltIndex(chunk_bits, {c: pack(r) for c, r in grouped.items()}, spilled)


def stage_drop(pipe: Any, account: str, chunk_bits: int | None) -> None:
    """Delete an index built with ``chunk_bits`` (None: there is none)."""
    if chunk_bits is not None:
        names = chunk_keys(account, chunk_bits)
        for start in range(0, len(names), 1000):
            pipe.delete(*names[start : start + 1000])
    pipe.delete(keys.gmail_index_spill(account))


def stage_built(pipe: Any, account: str, built: BuiltIndex) -> None:
    for chunk, payload in built.chunks.items():
        pipe.set(keys.gmail_index_chunk(account, chunk), payload)
    spill_key = keys.gmail_index_spill(account)
    items = list(built.spilled.items())
    for start in range(0, len(items), 5000):
        pipe.hset(spill_key, mapping={k: str(v) for k, v in items[start : start + 5000]})


@dataclass
class GmailIndex:
    """A lazily loaded, writable view of one account's index (loaded chunks only)."""

    account: str
    chunk_bits: int
    chunks: dict[int, dict[int, int]] = field(default_factory=dict)
    dirty: set[int] = field(default_factory=set)
    spill_set: dict[str, int] = field(default_factory=dict)
    spill_del: set[str] = field(default_factory=set)

    async def lookup(self, redis: Redis, message_ids: Iterable[str]) -> dict[str, int | None]:
        """Label bits of each message (None: not indexed); loads the chunks involved."""
        ids = list(dict.fromkeys(message_ids))
        numbers = {m: id_number(m) for m in ids}
        wanted = sorted(
            {chunk_of(n, self.chunk_bits) for n in numbers.values() if n is not None}
            - self.chunks.keys()
        )
        if wanted:
            raws = await redis.mget([keys.gmail_index_chunk(self.account, c) for c in wanted])
            for chunk, raw in zip(wanted, raws, strict=True):
                self.chunks[chunk] = unpack(data(raw)) if raw else {}
        out: dict[str, int | None] = {}
        second: list[str] = []
        for message_id, number in numbers.items():
            if number is None:
                second.append(message_id)
                continue
            value = self.chunks[chunk_of(number, self.chunk_bits)].get(number)
            if value is not None and value & SPILLED:
                second.append(message_id)
            else:
                out[message_id] = value
        if second:
            values = await redis.hmget(keys.gmail_index_spill(self.account), second)
            for message_id, spilled in zip(second, values, strict=True):
                out[message_id] = int(text(spilled)) if spilled is not None else None
        return out

    def _chunk(self, number: int) -> dict[int, int]:
        chunk = chunk_of(number, self.chunk_bits)
        found = self.chunks.get(chunk)
        if found is None:
            raise RuntimeError("GmailIndex: look a message up before changing it")
        self.dirty.add(chunk)
        return found

    def set(self, message_id: str, value: int) -> None:
        number = id_number(message_id)
        if number is not None:
            records = self._chunk(number)
            if value <= PACKED_MASK:
                before = records.get(number)
                records[number] = value
                self.spill_set.pop(message_id, None)
                if before is not None and before & SPILLED:
                    self.spill_del.add(message_id)
                return
            records[number] = SPILLED
        self.spill_del.discard(message_id)
        self.spill_set[message_id] = value

    def delete(self, message_id: str) -> None:
        number = id_number(message_id)
        before = None
        if number is not None:
            before = self._chunk(number).pop(number, None)
        self.spill_set.pop(message_id, None)
        if number is None or (before is not None and before & SPILLED):
            self.spill_del.add(message_id)

    def stage(self, pipe: Any) -> None:
        """Write the changed chunks and side-hash entries (inside the caller's MULTI)."""
        for chunk in sorted(self.dirty):
            key = keys.gmail_index_chunk(self.account, chunk)
            records = self.chunks[chunk]
            if records:
                pipe.set(key, pack(records))
            else:
                pipe.delete(key)
        spill_key = keys.gmail_index_spill(self.account)
        if self.spill_del:
            pipe.hdel(spill_key, *sorted(self.spill_del))
        if self.spill_set:
            pipe.hset(spill_key, mapping={k: str(v) for k, v in self.spill_set.items()})

    def clean(self) -> None:
        self.dirty.clear()
        self.spill_set.clear()
        self.spill_del.clear()


async def index_memory(redis: Redis, account: str, chunk_bits: int) -> int:
    """Bytes of Redis the index takes (``MEMORY USAGE`` of its keys; for the benchmark)."""
    total = 0
    for key in [*chunk_keys(account, chunk_bits), keys.gmail_index_spill(account)]:
        total += int(await redis.memory_usage(key) or 0)
    return total


class LabelBits:
    """Bit numbers of an account's labels (stable: a new label takes the next free bit, staged
    in the same commit as the first record that uses it)."""

    def __init__(self, account: str, bits: Mapping[str, int] | None = None) -> None:
        self.account = account
        self.bits: dict[str, int] = dict(bits or {})
        self._new: dict[str, int] = {}

    @classmethod
    async def load(cls, redis: Redis, account: str) -> LabelBits:
        raw = await redis.hgetall(keys.gmail_label_bits(account))
        return cls(account, {text(k): int(text(v)) for k, v in raw.items()})

    def bit(self, label_id: str) -> int:
        bit = self.bits.get(label_id)
        if bit is None:
            bit = max(self.bits.values(), default=-1) + 1
            self.bits[label_id] = bit
            self._new[label_id] = bit
        return bit

    def stage_into(self, extra: list[Callable[[Any], None]]) -> None:
        """Stage the bits handed out since the last call (into a commit's ``extra`` steps)."""
        if self._new:
            fresh, self._new = dict(self._new), {}
            key = keys.gmail_label_bits(self.account)
            extra.append(lambda pipe: pipe.hset(key, mapping=fresh))
