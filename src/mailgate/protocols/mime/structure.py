"""MIME structure: split a raw message into a tree of entities with byte offsets.

Sans-IO and bounded (see ``limits``). Bodies are never copied: an ``Entity`` holds the buffer and
the offsets of its body in it, so encoded sizes are exact and a part is decoded only when asked
for. The one exception is an enclosed message (message/rfc822) that is itself base64 or
quoted-printable encoded: it is decoded into a new buffer, and its entities index into that.

Part numbers follow IMAP (RFC 3501 section 6.4.5): the children of the top-level multipart are
1, 2, ...; a non-multipart message has the single part 1; an enclosed message with number N has
parts N.1, N.2, ... (N.1 alone when it is not multipart).

Header fields are split here (name, raw value bytes, folding kept); values are decoded by the
caller. Boundaries are matched per RFC 2046: a delimiter is a line ``--boundary`` with optional
white space after it, the close delimiter ends with ``--``; the line break before a delimiter
belongs to it. A missing close delimiter ends the last part at the end of its container; a
multipart in which no delimiter is found is shown as a text/plain leaf.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field

from .charsets import decode_header_bytes
from .headers import b64decode_loose, decode_header_value, parse_content_fields, unfold
from .limits import (
    MAX_DECODED_ENCLOSED_BYTES,
    MAX_DEPTH,
    MAX_HEADER_BYTES,
    MAX_HEADER_FIELDS,
    MAX_PARTS,
)

_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
MESSAGE_TYPES = frozenset({"message/rfc822", "message/global", "message/news"})


@dataclass(slots=True, eq=False)
class Entity:
    """One MIME entity: its header fields and where its body is."""

    buf: bytes
    body_start: int
    end: int
    fields: list[tuple[str, bytes]]
    """(lower-case name, raw value with folding) in order."""
    depth: int
    content_type: str = "text/plain"
    charset: str | None = None
    boundary: str | None = None
    disposition: str | None = None
    filename: str | None = None
    method: str | None = None
    format_flowed: bool = False
    delsp: bool = False
    transfer_encoding: str | None = None
    content_id: str | None = None
    description: str | None = None
    part: str = ""
    children: list[Entity] = field(default_factory=list)
    enclosed: Entity | None = None

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    @property
    def body(self) -> bytes:
        return self.buf[self.body_start : self.end]

    @property
    def encoded_size(self) -> int:
        return self.end - self.body_start

    def first(self, name: str) -> bytes | None:
        for key, value in self.fields:
            if key == name:
                return value
        return None

    def first_str(self, name: str, fallback_charset: str | None = None) -> str | None:
        value = self.first(name)
        if value is None:
            return None
        return unfold(decode_header_bytes(value, fallback_charset)).strip()


class _Budget:
    __slots__ = ("defects", "parts")

    def __init__(self, defects: list[str]) -> None:
        self.parts = 0
        self.defects = defects

    def take(self) -> bool:
        if self.parts >= MAX_PARTS:
            if self.parts == MAX_PARTS:
                self.defects.append(f"more than {MAX_PARTS} MIME parts: the rest is ignored")
                self.parts += 1
            return False
        self.parts += 1
        return True


def split_header(
    buf: bytes, start: int, end: int, defects: list[str]
) -> tuple[list[tuple[str, bytes]], int]:
    """Header fields of the entity at ``buf[start:end]`` and the offset where its body starts."""
    names: list[str] = []
    values: list[list[bytes]] = []
    pos = start
    limit = start + MAX_HEADER_BYTES
    body_start = end
    while pos < end:
        if pos >= limit or len(names) >= MAX_HEADER_FIELDS:
            defects.append("header block too large: the rest of it is skipped")
            blank = _BLANK_LINE.search(buf, pos - 1 if pos > start else pos, end)
            body_start = blank.end() if blank else end
            break
        nl = buf.find(b"\n", pos, end)
        line_end = end if nl == -1 else nl + 1
        content = buf[pos : min(line_end, limit)].rstrip(b"\r\n")
        if not content:
            body_start = line_end
            break
        if content[:1] in (b" ", b"\t"):
            if values:
                values[-1].append(content)
            else:
                defects.append("header continuation line without a field")
        else:
            match = _FIELD_NAME.match(content)
            if match is not None:
                names.append(match.group(1).decode("ascii").lower())
                value = content[match.end() :]
                values.append([value[1:] if value[:1] == b" " else value])
            elif pos == start and content.startswith(b"From "):
                pass  # mbox separator line
            else:
                defects.append("header block ended by a line that is not a header field")
                body_start = pos
                break
        pos = line_end
    fields = [(name, b"\n".join(chunks)) for name, chunks in zip(names, values, strict=True)]
    return fields, body_start


class _Delimiters:
    """Finds delimiter lines of one boundary. The search is for the literal ``\\n--boundary``
    (fast, like ``bytes.find``); only the body's first line needs the anchored form."""

    __slots__ = ("_after_newline", "_at_start")

    def __init__(self, boundary: str) -> None:
        b = re.escape(boundary.encode("utf-8", "surrogateescape"))
        tail = rb"(--)?[ \t]*\r?$"
        self._at_start = re.compile(rb"--" + b + tail, re.MULTILINE)
        self._after_newline = re.compile(rb"\n--" + b + tail, re.MULTILINE)

    def find(self, buf: bytes, pos: int, end: int) -> tuple[int, int, bool] | None:
        """(start of the line break before it, end of the delimiter line, is close delimiter)
        of the first delimiter line starting at or after ``pos``."""
        if pos == 0 or buf[pos - 1 : pos] == b"\n":
            match = self._at_start.match(buf, pos, end)
            if match is not None:
                return pos, match.end(), match.group(1) is not None
        match = self._after_newline.search(buf, pos, end)
        if match is None:
            return None
        start = match.start()
        if start > pos and buf[start - 1 : start] == b"\r":
            start -= 1
        return start, match.end(), match.group(1) is not None


def _decode_enclosed(entity: Entity, defects: list[str]) -> tuple[bytes, int, int]:
    cte = entity.transfer_encoding
    if cte in ("base64", "quoted-printable") and entity.encoded_size <= MAX_DECODED_ENCLOSED_BYTES:
        body = entity.body
        try:
            data = b64decode_loose(body) if cte == "base64" else binascii.a2b_qp(body)
        except (binascii.Error, ValueError):
            defects.append("undecodable enclosed message")
            data = body
        return data, 0, len(data)
    return entity.buf, entity.body_start, entity.end


def parse_entity(
    buf: bytes,
    start: int,
    end: int,
    *,
    depth: int,
    budget: _Budget,
    default_type: str = "text/plain",
) -> Entity:
    """Parse the entity in ``buf[start:end]`` and, within the limits, everything inside it."""
    defects = budget.defects
    fields, body_start = split_header(buf, start, end, defects)
    entity = Entity(buf=buf, body_start=body_start, end=end, fields=fields, depth=depth)
    ctype_raw = entity.first_str("content-type")
    disp_raw = entity.first_str("content-disposition")
    info = parse_content_fields(ctype_raw, disp_raw, default_type=default_type)
    defects.extend(info.defects)
    entity.content_type = info.content_type
    entity.charset = info.charset
    charset_hint = info.charset
    entity.boundary = info.boundary
    entity.disposition = info.disposition
    entity.filename = info.filename
    entity.method = info.method
    entity.format_flowed = info.format_flowed
    entity.delsp = info.delsp
    cte = entity.first_str("content-transfer-encoding")
    if cte:
        entity.transfer_encoding = cte.split(";", 1)[0].strip().strip("\"'").lower() or None
    cid = entity.first_str("content-id", charset_hint)
    if cid:
        cid = cid.strip()
        if cid.startswith("<") and ">" in cid:
            cid = cid[1 : cid.index(">")]
        entity.content_id = cid.strip() or None
    desc = entity.first("content-description")
    if desc is not None:
        entity.description = decode_header_value(desc, charset_hint).strip() or None

    if (entity.is_multipart or entity.content_type in MESSAGE_TYPES) and depth >= MAX_DEPTH:
        defects.append(f"MIME nesting deeper than {MAX_DEPTH}: shown as an opaque part")
        entity.content_type = "application/octet-stream"
        return entity
    if entity.is_multipart:
        _split_multipart(entity, budget)
    elif entity.content_type in MESSAGE_TYPES:
        data, lo, hi = _decode_enclosed(entity, defects)
        if budget.take():
            entity.enclosed = parse_entity(data, lo, hi, depth=depth + 1, budget=budget)
    return entity


def _split_multipart(entity: Entity, budget: _Budget) -> None:
    defects = budget.defects
    if not entity.boundary:
        defects.append(f"{entity.content_type} without a boundary: shown as text")
        entity.content_type = "text/plain"
        return
    buf, lo, hi = entity.buf, entity.body_start, entity.end
    delimiters = _Delimiters(entity.boundary)
    child_type = "message/rfc822" if entity.content_type == "multipart/digest" else "text/plain"
    found = delimiters.find(buf, lo, hi)
    if found is None:
        defects.append(f"no boundary delimiter found in {entity.content_type}: shown as text")
        entity.content_type = "text/plain"
        return
    if found[2]:
        defects.append(f"{entity.content_type} has no parts: shown as text")
        entity.content_type = "text/plain"
        return
    while found is not None:
        _, line_end, is_close = found
        if is_close:
            return
        part_start = line_end
        if buf[part_start : part_start + 2] == b"\r\n":
            part_start += 2
        elif buf[part_start : part_start + 1] == b"\n":
            part_start += 1
        nxt = delimiters.find(buf, part_start, hi) if part_start < hi else None
        part_end = hi if nxt is None else nxt[0]
        if nxt is None:
            defects.append("missing final boundary")
        if not budget.take():
            return
        child = parse_entity(
            buf,
            part_start,
            max(part_start, part_end),
            depth=entity.depth + 1,
            budget=budget,
            default_type=child_type,
        )
        entity.children.append(child)
        found = nxt


def parse_tree(raw: bytes, defects: list[str]) -> Entity:
    """Parse a whole message and number its parts."""
    budget = _Budget(defects)
    budget.take()
    root = parse_entity(raw, 0, len(raw), depth=0, budget=budget)
    number_message(root, "")
    return root


def _join(prefix: str, index: int) -> str:
    return f"{prefix}.{index}" if prefix else str(index)


def number_message(entity: Entity, prefix: str) -> None:
    """Number the parts of a message (top-level or enclosed) whose own number is ``prefix``."""
    if entity.is_multipart:
        entity.part = prefix
        _number_children(entity, prefix)
    else:
        entity.part = _join(prefix, 1)
        _number_leaf(entity)


def _number_children(entity: Entity, prefix: str) -> None:
    for index, child in enumerate(entity.children, start=1):
        number = _join(prefix, index)
        child.part = number
        if child.is_multipart:
            _number_children(child, number)
        else:
            _number_leaf(child)


def _number_leaf(entity: Entity) -> None:
    if entity.enclosed is not None:
        number_message(entity.enclosed, entity.part)


def iter_entities(entity: Entity) -> list[Entity]:
    """Every entity in document order (containers, leaves and enclosed messages)."""
    out: list[Entity] = []
    stack = [entity]
    while stack:
        node = stack.pop()
        out.append(node)
        if node.enclosed is not None:
            stack.append(node.enclosed)
        stack.extend(reversed(node.children))
    return out
