"""Address lists (From, To, Cc, ...) into ``Address(name, address)``, tolerant of anything.

The RFC 5322 parser of ``email.policy.default`` is tried first (it understands groups, quoted
names, comments and encoded words); it is pure Python and raises on some hostile input, so long
values and failures go to the compat32 splitter (``email.utils.getaddresses``) instead. Groups
are flattened; names are RFC 2047 decoded (also inside quotes, as every mail client does).
"""

from __future__ import annotations

import email.utils
from email.policy import default as default_policy
from typing import Any

from .headers import decode_header_value, unfold
from .limits import MAX_ADDRESS_HEADER_CHARS, MAX_ADDRESSES
from .model import Address


def _clean_name(name: str) -> str:
    name = name.strip()
    if "=?" in name:
        name = decode_header_value(name).strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        name = name[1:-1].strip()
    return name.replace("\x00", "")


def _strict(value: str) -> list[Address] | None:
    try:
        header: Any = default_policy.header_factory("to", value)
        addresses = header.addresses
    except Exception:
        return None
    out: list[Address] = []
    for item in addresses:
        try:
            name = str(item.display_name or "")
            addr = str(item.addr_spec or "")
        except Exception:
            return None
        if addr == "<>":
            addr = ""
        out.append(Address(name=_clean_name(name), address=addr.strip()))
    return out


def _loose(value: str) -> list[Address]:
    out: list[Address] = []
    try:
        pairs = email.utils.getaddresses([value])
    except Exception:
        pairs = [("", part.strip()) for part in value.split(",") if part.strip()]
    for name, addr in pairs:
        if not name and not addr:
            continue
        out.append(Address(name=_clean_name(name), address=addr.strip()))
    return out


def parse_addresses(value: str | None) -> list[Address]:
    """Parse an address header value. Never raises; may return an empty list."""
    if not value:
        return []
    value = unfold(value).strip()
    if not value:
        return []
    result: list[Address] | None = None
    if len(value) <= MAX_ADDRESS_HEADER_CHARS:
        result = _strict(value)
        if result is not None and not any(a.address for a in result) and "@" in value:
            result = None  # the strict parser gave up on the syntax; the loose one does better
    if result is None:
        result = _loose(value)
    elif "(" in value and any(not a.name for a in result):
        # "user@example.com (Full Name)": the comment is the only name there is
        names = {a.address: a.name for a in _loose(value) if a.name}
        result = [a if a.name else Address(names.get(a.address, ""), a.address) for a in result]
    return [a for a in result if a.address or a.name][:MAX_ADDRESSES]


def first_address(value: str | None) -> Address | None:
    found = parse_addresses(value)
    return found[0] if found else None
