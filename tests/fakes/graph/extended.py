"""Single-value extended properties of messages, and ``$expand`` on messages.

Follows Microsoft's Graph v1.0 reference:

- https://learn.microsoft.com/en-us/graph/api/resources/extended-properties-overview?view=graph-rest-1.0
  (id formats ``"{type} {guid} Name {name}"``, ``"{type} {guid} Id {id}"``, ``"{type} {proptag}"``;
  the REST API cannot list every extended property of an instance)
- https://learn.microsoft.com/en-us/graph/api/singlevaluelegacyextendedproperty-get?view=graph-rest-1.0
  (``$expand=singleValueExtendedProperties($filter=id eq '{id}')`` on one message or a collection;
  a ``$filter`` with ``eq`` on **id** is the only way to get one; a message without the property
  comes back without the ``singleValueExtendedProperties`` collection)
  Also ``$filter`` on a collection by the properties' values (evaluated in ``odata``): only the
  lambda ``singleValueExtendedProperties/any(ep: ep/id eq '{id}' and <value test>)``, where the
  value test is ``ep/value eq|ne '…'`` or ``contains``/``startswith(ep/value, '…')`` for a
  String property, ``ep/value eq|ne|gt|ge|lt|le '…'`` for a numeric one, or
  ``cast(ep/value, Edm.<type>) <op> <literal>`` for a non-string one (request 4: ``Edm.Int32``
  for Integer, ``Edm.Guid`` for CLSID); names in the id are case-sensitive, values compare
  case-insensitively; a message without the property does not match the ``any``
- https://learn.microsoft.com/en-us/graph/api/singlevaluelegacyextendedproperty-post-singlevalueextendedproperties?view=graph-rest-1.0
  (created in a new message or by PATCH of an existing one: ``{"singleValueExtendedProperties":
  [{"id", "value"}]}``; values are strings; there is no way to delete one)

Ids are kept in one canonical spelling: the type as Graph names it, a proptag as ``0x`` and its
lower-case hex property id (a full 32-bit tag such as ``0x1081000F`` names property ``0x1081``),
so ``Integer 0x1081`` and ``integer 0x01081`` are the same property. Values of numeric types must
parse as numbers, else 400.

PidTagLastVerbExecuted (``Integer 0x1081``) is what Exchange sets on the original when a reply
(102), reply all (103) or forward (104) is sent, with PidTagLastVerbExecutionTime
(``SystemTime 0x1082``):
https://learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/how-to-respond-to-email-messages-by-using-ews-in-exchange
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes.graph.errors import GraphError, bad_request

#: Single-value extended property types (MAPI types by their Graph names).
TYPES: dict[str, str] = {
    t.lower(): t
    for t in (
        "ApplicationTime",
        "Binary",
        "Boolean",
        "CLSID",
        "Currency",
        "Double",
        "Error",
        "Float",
        "Integer",
        "Long",
        "Null",
        "Object",
        "Short",
        "String",
        "SystemTime",
    )
}
_NUMERIC = {"integer", "long", "short", "error", "double", "float", "currency"}
_GUID = r"\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}"
_NAMED = re.compile(rf"^(\w+)\s+({_GUID})\s+(Name|Id)\s+(.+)$")
_TAGGED = re.compile(r"^(\w+)\s+0x([0-9A-Fa-f]{1,8})$")
_ID_CLAUSE = re.compile(r"^\s*id\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)

LAST_VERB = "Integer 0x1081"
LAST_VERB_TIME = "SystemTime 0x1082"
VERBS = {"createReply": 102, "createReplyAll": 103, "createForward": 104}


#: How a ``$filter`` reaches a message's properties: the row it evaluates carries them here
#: (canonical id -> stored string); not a Graph property, never rendered.
FILTER_KEY = "@fake.extendedProperties"
_STRING_OPS = {"eq", "ne"}
_NUMERIC_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}


def _to_bool(text: str) -> bool:
    if text.lower() not in {"true", "false"}:
        raise ValueError(text)
    return text.lower() == "true"


def _to_guid(text: str) -> str:
    if not re.fullmatch(_GUID, "{" + text.strip("{}") + "}"):
        raise ValueError(text)
    return text.strip("{}").lower()


#: The Edm type ``ep/value`` is cast to, per property type, and how a stored value converts.
CASTS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "integer": ("Edm.Int32", int),
    "short": ("Edm.Int16", int),
    "long": ("Edm.Int64", int),
    "double": ("Edm.Double", float),
    "float": ("Edm.Single", float),
    "boolean": ("Edm.Boolean", _to_bool),
    "clsid": ("Edm.Guid", _to_guid),
}


def kind_of(prop_id: str) -> str:
    """The type of a canonical id, lower-case (``integer``, ``string``...)."""
    return prop_id.split(" ", 1)[0].lower()


def value_ops(prop_id: str) -> set[str]:
    """The comparison operators documented on an uncast ``ep/value`` of this property."""
    kind = kind_of(prop_id)
    if kind == "string":
        return _STRING_OPS
    return _NUMERIC_OPS if kind in _NUMERIC else set()


def check_cast(prop_id: str, edm: str) -> None:
    """400 unless ``edm`` is the Edm type of the property."""
    kind = kind_of(prop_id)
    if kind not in CASTS or CASTS[kind][0] != edm:
        raise bad_request(
            f"Invalid filter clause: cannot cast the value of '{prop_id}' to '{edm}'.",
            "ErrorInvalidUrlQuery",
        )


def cast_value(prop_id: str, edm: str, text: str) -> Any:
    """``cast(ep/value, edm)`` of a stored value: None when it does not convert (OData: a
    failed cast is null); 400 when ``edm`` is not the type of the property."""
    check_cast(prop_id, edm)
    try:
        return CASTS[kind_of(prop_id)][1](text.strip())
    except ValueError:
        return None


def compare_value(prop_id: str, stored: str, op: str, literal: str) -> bool:
    """``ep/value <op> '<literal>'`` (uncast): case-insensitive text for a String property,
    numbers for a numeric one."""
    if kind_of(prop_id) == "string":
        a, b = stored.lower(), literal.lower()
        return a == b if op == "eq" else a != b
    try:
        x, y = float(stored), float(literal)
    except ValueError:
        return False
    return {"eq": x == y, "ne": x != y, "gt": x > y, "ge": x >= y, "lt": x < y, "le": x <= y}[op]


def invalid_id(value: str) -> GraphError:
    return bad_request(f"The extended property id '{value}' is not valid.", "ErrorInvalidProperty")


def canonical_id(value: str) -> str:
    """The one spelling of an extended property id, or 400."""
    text = " ".join(str(value).split())
    named = _NAMED.match(text)
    if named:
        kind, guid, how, name = named.groups()
        if kind.lower() not in TYPES:
            raise invalid_id(value)
        if how == "Id":
            try:
                name = f"0x{int(name, 16):x}"
            except ValueError as exc:
                raise invalid_id(value) from exc
        return f"{TYPES[kind.lower()]} {guid.upper()} {how} {name}"
    tagged = _TAGGED.match(text)
    if tagged and tagged.group(1).lower() in TYPES:
        tag = int(tagged.group(2), 16)
        prop = tag >> 16 if tag > 0xFFFF else tag
        if not 0 < prop < 0x8000:  # proptags name MAPI's own properties, 0x0001-0x7fff
            raise invalid_id(value)
        return f"{TYPES[tagged.group(1).lower()]} 0x{prop:x}"
    raise invalid_id(value)


def check_value(prop_id: str, value: Any) -> str:
    """A property value as Graph stores it (a string), or 400 when it does not fit the type."""
    if value is None:
        raise bad_request(f"A value is required for the extended property '{prop_id}'.")
    text = str(value).lower() if isinstance(value, bool) else str(value)
    kind = prop_id.split(" ", 1)[0].lower()
    if kind in _NUMERIC:
        try:
            float(text) if kind in {"double", "float", "currency"} else int(text)
        except ValueError as exc:
            raise bad_request(
                f"The value '{text}' is not valid for the extended property '{prop_id}'.",
                "ErrorInvalidProperty",
            ) from exc
    elif kind == "boolean" and text.lower() not in {"true", "false"}:
        raise bad_request(f"The value '{text}' is not valid for the extended property '{prop_id}'.")
    return text


def apply_patch(ext: dict[str, str], items: Any) -> None:
    """Set the properties of a ``singleValueExtendedProperties`` request body into ``ext``."""
    if not isinstance(items, list):
        raise bad_request("singleValueExtendedProperties must be a collection.")
    staged: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict) or "id" not in item:
            raise bad_request("Each extended property needs an id and a value.")
        pid = canonical_id(str(item["id"]))
        staged[pid] = check_value(pid, item.get("value"))
    ext.update(staged)


# ---- $expand -------------------------------------------------------------------------------


@dataclass
class Expand:
    """What a message request expands: attachments, and the extended properties asked for."""

    attachments: bool = False
    properties: list[str] | None = None  # canonical ids; None: not expanded


def _split_top(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside parentheses and quotes."""
    out, depth, quoted, cur = [], 0, False, ""
    for ch in text:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == sep and depth == 0 and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [s.strip() for s in out if s.strip()]


def _unknown(name: str) -> GraphError:
    return bad_request(
        f"Parsing OData Select and Expand failed: Could not find a property named '{name}' on type "
        "'microsoft.graph.message'.",
        "BadRequest",
    )


def _property_filter(options: str) -> list[str]:
    """The ids of ``$filter=id eq '…' [or id eq '…']`` (the one documented form)."""
    opts = dict(
        (k.strip(), v.strip()) for k, _, v in (o.partition("=") for o in _split_top(options, ";"))
    )
    flt = opts.get("$filter")
    if not flt or set(opts) - {"$filter"}:
        raise bad_request(
            "Expanding singleValueExtendedProperties needs a $filter on the property id.",
            "ErrorInvalidUrlQuery",
        )
    ids = []
    for clause in re.split(r"\s+or\s+", flt, flags=re.IGNORECASE):
        m = _ID_CLAUSE.match(clause.strip().strip("()"))
        if not m:
            raise bad_request(f"Invalid filter clause: '{flt}'.", "ErrorInvalidUrlQuery")
        ids.append(canonical_id(m.group(1).replace("''", "'")))
    return ids


def parse_expand(value: str | None) -> Expand:
    """A message request's ``$expand``: ``attachments`` (nested options accepted) and
    ``singleValueExtendedProperties($filter=id eq '…')``, comma-separated."""
    out = Expand()
    for item in _split_top(value or "", ","):
        name, _, rest = item.partition("(")
        name = name.strip()
        options = rest[:-1] if rest.endswith(")") else rest
        if name == "attachments":
            out.attachments = True
        elif name == "singleValueExtendedProperties":
            out.properties = [*(out.properties or []), *_property_filter(options)]
        else:
            raise _unknown(name)
    return out
