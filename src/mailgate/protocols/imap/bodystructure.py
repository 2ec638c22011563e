"""BODYSTRUCTURE / BODY (RFC 3501 §7.4.2) → a typed tree of :class:`BodyStructure` parts.

Part numbers are computed the IMAP way: a single-part message is ``"1"``; children of a multipart
are ``"1"``, ``"2"``...; children of a nested multipart at ``"2"`` are ``"2.1"``...; the body of a
``message/rfc822`` part at ``"3"`` is ``"3.1"`` when single-part, and its multipart children are
``"3.1"``, ``"3.2"``. A multipart container has no number of its own at the top level: its
``part`` is ``"TEXT"`` (and ``"3.TEXT"`` inside a message/rfc822 at ``"3"``), which is also the
section that fetches its body.

Servers vary: missing extension data, NIL where a list belongs, a disposition sent as a bare
string, sizes sent as strings, a multipart without children. All are accepted; only a structure
that is not a list at all is rejected (returned as None).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailgate.errors import ProtocolError

from .envelope import Envelope, parse_envelope
from .values import opt_int, text

__all__ = ["BodyStructure", "parse_bodystructure"]


@dataclass(frozen=True, slots=True)
class BodyStructure:
    part: str
    type: str
    subtype: str
    params: dict[str, str] = field(default_factory=dict)
    id: str | None = None
    description: str | None = None
    encoding: str | None = None
    size: int | None = None
    lines: int | None = None
    md5: str | None = None
    disposition: str | None = None
    disposition_params: dict[str, str] = field(default_factory=dict)
    language: tuple[str, ...] | None = None
    location: str | None = None
    children: tuple[BodyStructure, ...] = ()
    envelope: Envelope | None = None  # message/rfc822 only
    body: BodyStructure | None = None  # message/rfc822 only

    @property
    def content_type(self) -> str:
        return f"{self.type}/{self.subtype}"

    @property
    def is_multipart(self) -> bool:
        return self.type == "multipart"

    @property
    def filename(self) -> str | None:
        return self.disposition_params.get("filename") or self.params.get("name")

    def walk(self) -> list[BodyStructure]:
        """This part and every part below it, depth first."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        if self.body is not None:
            out.extend(self.body.walk())
        return out


def _params(tok: Any) -> dict[str, str]:
    if not isinstance(tok, list):
        return {}
    out: dict[str, str] = {}
    items = [t for t in tok if not isinstance(t, list)]
    for i in range(0, len(items) - 1, 2):
        key = text(items[i])
        value = text(items[i + 1])
        if key is not None:
            out[key.lower()] = value or ""
    return out


def _str(tok: Any) -> str | None:
    if tok is None or isinstance(tok, list):
        return None
    return text(tok)


def _lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


def _language(tok: Any) -> tuple[str, ...] | None:
    if tok is None:
        return None
    if isinstance(tok, list):
        return tuple(v for v in (_str(t) for t in tok) if v is not None)
    v = _str(tok)
    return None if v is None else (v,)


def _disposition(tok: Any) -> tuple[str | None, dict[str, str]]:
    if isinstance(tok, list):
        if not tok:
            return None, {}
        name = _str(tok[0])
        return (name.lower() if name else None), _params(tok[1] if len(tok) > 1 else None)
    name = _str(tok)
    return (name.lower() if name else None), {}


def _child_number(parent: str, index: int) -> str:
    if parent in ("", "TEXT"):
        return str(index)
    if parent.endswith(".TEXT"):
        return f"{parent[:-5]}.{index}"
    return f"{parent}.{index}"


def _parse(tok: list[Any], part: str, depth: int) -> BodyStructure:
    if depth > 64:
        raise ValueError("body structure nested too deeply")
    if (tok and isinstance(tok[0], list)) or len(tok) == 1:  # 1 item: a childless multipart
        return _parse_multipart(tok, part, depth)
    return _parse_single(tok, part, depth)


def _parse_multipart(tok: list[Any], part: str, depth: int) -> BodyStructure:
    kids_tok: list[list[Any]] = []
    i = 0
    while i < len(tok) and isinstance(tok[i], list):
        kids_tok.append(tok[i])
        i += 1
    rest = tok[i:] + [None] * 5
    number = part or "TEXT"
    children = tuple(
        _parse(kid, _child_number(number, n), depth + 1) for n, kid in enumerate(kids_tok, 1)
    )
    subtype = (_str(rest[0]) or "mixed").lower()
    disposition, dparams = _disposition(rest[2])
    return BodyStructure(
        part=number,
        type="multipart",
        subtype=subtype,
        params=_params(rest[1]),
        disposition=disposition,
        disposition_params=dparams,
        language=_language(rest[3]),
        location=_str(rest[4]),
        children=children,
    )


def _parse_single(tok: list[Any], part: str, depth: int) -> BodyStructure:
    number = part or "1"
    f = list(tok) + [None] * (12 - len(tok)) if len(tok) < 12 else list(tok)
    mtype = (_str(f[0]) or "text").lower()
    subtype = (_str(f[1]) or "plain").lower()
    lines: int | None = None
    envelope: Envelope | None = None
    body: BodyStructure | None = None
    ext = 7
    if (
        mtype == "message"
        and subtype in ("rfc822", "global")
        and isinstance(f[7], list)
        and isinstance(f[8], list)
    ):
        envelope = parse_envelope(f[7])
        inner = f[8]
        inner_part = f"{number}.TEXT" if inner and isinstance(inner[0], list) else f"{number}.1"
        body = _parse(inner, inner_part, depth + 1) if inner else None
        lines = opt_int(f[9])
        ext = 10
    elif mtype == "text":
        lines = opt_int(f[7])
        ext = 8
    f += [None] * 4
    disposition, dparams = _disposition(f[ext + 1])
    return BodyStructure(
        part=number,
        type=mtype,
        subtype=subtype,
        params=_params(f[2]),
        id=_str(f[3]),
        description=_str(f[4]),
        encoding=_lower(_str(f[5])),
        size=opt_int(f[6]),
        lines=lines,
        md5=_str(f[ext]),
        disposition=disposition,
        disposition_params=dparams,
        language=_language(f[ext + 2]),
        location=_str(f[ext + 3]),
        envelope=envelope,
        body=body,
    )


def parse_bodystructure(tok: Any) -> BodyStructure | None:
    """Build the part tree from a BODYSTRUCTURE/BODY list; None for anything unusable."""
    if not isinstance(tok, list) or not tok:
        return None
    try:
        return _parse(tok, "", 0)
    except (ValueError, IndexError, TypeError, ProtocolError):
        return None
