"""EmailEngine search object → Microsoft Graph message query (pure: no I/O).

Sibling of :mod:`mailgate.protocols.imap.search`. :func:`compile_query` validates the same
``search`` object and returns a :class:`GraphQuery`:

    field                         Graph
    seen / unseen: bool           $filter isRead eq true|false
    flagged: bool                 $filter flag/flagStatus eq|ne 'flagged'
    draft: bool                   $filter isDraft eq true|false
    answered: bool                $filter on PidTagLastVerbExecuted (see below)
    deleted: false                (nothing: Graph lists no deleted messages); true → 400
    since / before                $filter receivedDateTime ge|lt <ISO>   (KQL received>=|< with text)
    sentSince / sentBefore        $filter sentDateTime ge|lt <ISO>       (KQL sent>=|<)
    from/to/cc/bcc/subject/body   KQL $search  from:x to:x cc:x bcc:x subject:x body:x
    labels {has, not}             $filter categories/any(c:c eq 'x') / not(...)
    threadId                      $filter conversationId eq '...' over ALL folders (``everywhere``)
    emailId / emailIds            the messages by id (``ids``)
    larger, smaller, header, seq, uid, modseq, gmailRaw               → 400 (not expressible)

``\\Answered`` on Graph is the MAPI property PidTagLastVerbExecuted (extended property id
``Integer 0x1081``) holding 102 (reply) or 103 (reply all); see
:mod:`mailgate.backends.graph.summary`. Graph filters a collection on a numeric extended property
with a lambda over ``singleValueExtendedProperties`` whose value is cast to its Edm type
(https://learn.microsoft.com/en-us/graph/api/singlevaluelegacyextendedproperty-get?view=graph-rest-1.0,
"GET resource instances that include numeric extended properties matching a filter" and request
4), and negates an ``any`` with ``not``
(https://learn.microsoft.com/en-us/graph/filter-query-parameter#any-operator)::

    answered: true    (singleValueExtendedProperties/any(ep:ep/id eq 'Integer 0x1081' and
                       cast(ep/value, Edm.Int32) eq 102) or …any(… eq 103))
    answered: false   not(…any(… eq 102)) and not(…any(… eq 103))

A message without the property (never answered) matches ``answered: false``. With text terms the
answered test is a residual like the other flags (the caller expands the property).

Graph refuses ``$search`` together with ``$filter`` or ``$orderby``: a query with text terms
puts dates into the KQL and keeps the flag terms as a ``residual`` predicate that the caller
applies to the ``$search`` results (the second step). ``$filter`` alone is sent with
``$orderby=receivedDateTime desc``, so it starts with ``receivedDateTime`` (Graph's rule for
``$filter`` with ``$orderby`` on messages).

Every invalid input raises :class:`mailgate.errors.BadRequest` naming the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mailgate.errors import BadRequest

__all__ = ["LAST_VERB_ID", "MAX_IDS", "GraphQuery", "answered_clause", "compile_query", "last_verb"]

#: Most ids in ``emailIds``.
MAX_IDS = 1000
#: Longest text value.
MAX_TEXT = 2560
#: Most labels in ``labels.has`` plus ``labels.not``.
MAX_LABELS = 64
#: The lower bound that lets ``$filter`` start with ``receivedDateTime`` (see module doc).
EPOCH_FLOOR = "1900-01-01T00:00:00Z"

_TEXTS = ("from", "to", "cc", "bcc", "subject", "body")
_BOOLS = ("seen", "unseen", "flagged", "draft", "deleted")
_DATES = {
    "since": ("receivedDateTime", "ge", "received>="),
    "before": ("receivedDateTime", "lt", "received<"),
    "sentSince": ("sentDateTime", "ge", "sent>="),
    "sentBefore": ("sentDateTime", "lt", "sent<"),
}
_UNSUPPORTED = {
    "larger": "Microsoft Graph v1.0 messages have no size to search by",
    "smaller": "Microsoft Graph v1.0 messages have no size to search by",
    "header": "Microsoft Graph cannot search by header",
    "seq": "Microsoft Graph messages have no sequence numbers",
    "uid": "Microsoft Graph messages have no UIDs",
    "modseq": "Microsoft Graph messages have no MODSEQ",
    "gmailRaw": "gmailRaw is a Gmail search",
}
KNOWN_FIELDS = frozenset(
    {*_TEXTS, *_BOOLS, "answered", *_DATES, *_UNSUPPORTED, "labels", "threadId", "emailId",
     "emailIds"}
)  # fmt: skip
#: PidTagLastVerbExecuted as a Graph extended property id (see the module docstring).
LAST_VERB_ID = "Integer 0x1081"
LAST_VERB_TAG = 0x1081
#: The verbs that make a message answered: reply, reply all (104, a forward, does not).
ANSWERED_VERBS = (102, 103)
#: The collection a residual ``answered`` test reads (the caller expands the last verb into it).
EXTENDED = "singleValueExtendedProperties"
_ID_RE = re.compile(r"[A-Za-z0-9_=+-]{1,1024}")

Row = Mapping[str, Any]


@dataclass
class GraphQuery:
    """What to send: ``filter`` or ``search`` (never both), and what to check locally."""

    filter: str | None = None
    search: str | None = None
    everywhere: bool = False  # across all folders (threadId)
    ids: list[str] | None = None  # fetch these messages by id instead of querying
    residual: list[Callable[[Row], bool]] = field(default_factory=list)
    residual_fields: set[str] = field(default_factory=set)

    def params(self) -> dict[str, str]:
        """Query options of the listing request (without paging)."""
        if self.search is not None:
            return {"$search": self.search}
        out = {"$orderby": "receivedDateTime desc"}
        if self.filter:
            out["$filter"] = self.filter
        return out

    def matches(self, row: Row) -> bool:
        return all(test(row) for test in self.residual)


def _bad(name: str, problem: str) -> BadRequest:
    return BadRequest(f"search.{name} {problem}", "InputValidationError", key=f"search.{name}")


def _odata_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _kql_value(value: str) -> str:
    cleaned = " ".join(value.replace('"', " ").split())
    if not cleaned:
        raise _bad("text", "must contain searchable characters")
    if re.fullmatch(r"[^\s():]+", cleaned):
        return cleaned
    return f'"{cleaned}"'


def _date(value: object, name: str) -> str:
    if isinstance(value, bool):
        raise _bad(name, "must be an ISO 8601 date or epoch milliseconds")
    when: datetime
    if isinstance(value, int | float):
        try:
            if not math.isfinite(value):
                raise ValueError
            when = datetime.fromtimestamp(value / 1000, tz=UTC)
        except (ValueError, OverflowError, OSError):
            raise _bad(name, "is not a valid timestamp") from None
    elif isinstance(value, str):
        try:
            if len(value) > 64:
                raise ValueError
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise _bad(name, "must be an ISO 8601 date or date-time") from None
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    else:
        raise _bad(name, "must be an ISO 8601 date or epoch milliseconds")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(query: Row, name: str) -> str | None:
    value = query.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(name, "must be a string")
    if not value:
        raise _bad(name, "must not be empty")
    if len(value) > MAX_TEXT:
        raise _bad(name, f"must be at most {MAX_TEXT} characters long")
    return value


def _graph_id(value: object, name: str) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise _bad(name, "must be a Microsoft Graph id")
    return value


def _bool_test(prop: str, want: bool) -> Callable[[Row], bool]:
    def test(row: Row) -> bool:
        return bool(row.get(prop)) == want

    return test


def _flagged_test(want: bool) -> Callable[[Row], bool]:
    def test(row: Row) -> bool:
        return ((row.get("flag") or {}).get("flagStatus") == "flagged") == want

    return test


def _label_test(label: str, present: bool) -> Callable[[Row], bool]:
    def test(row: Row) -> bool:
        return (label in (row.get("categories") or [])) == present

    return test


def _thread_test(thread: str) -> Callable[[Row], bool]:
    def test(row: Row) -> bool:
        return row.get("conversationId") == thread

    return test


def _is_last_verb_id(value: Any) -> bool:
    """``Integer 0x1081`` in any spelling Graph may answer with (``integer 0x01081``...)."""
    kind, _, tag = str(value or "").strip().partition(" ")
    if kind.lower() != "integer":
        return False
    try:
        return int(tag.strip(), 16) == LAST_VERB_TAG
    except ValueError:
        return False


def last_verb(row: Row) -> int | None:
    """PidTagLastVerbExecuted of a message expanded with
    ``singleValueExtendedProperties($filter=id eq 'Integer 0x1081')`` (None: the message has
    none, or it was not expanded)."""
    for prop in row.get(EXTENDED) or []:
        if isinstance(prop, Mapping) and _is_last_verb_id(prop.get("id")):
            try:
                return int(str(prop.get("value") or "").strip())
            except ValueError:
                return None
    return None


def _answered_test(want: bool) -> Callable[[Row], bool]:
    def test(row: Row) -> bool:
        return (last_verb(row) in ANSWERED_VERBS) == want

    return test


def _verb_clause(verb: int) -> str:
    """Messages whose PidTagLastVerbExecuted is ``verb`` (the documented lambda, value cast to
    the property's type)."""
    return (
        f"{EXTENDED}/any(ep:ep/id eq {_odata_string(LAST_VERB_ID)} "
        f"and cast(ep/value, Edm.Int32) eq {verb})"
    )


def answered_clause(want: bool) -> str:
    """The ``$filter`` clause of ``answered: want``."""
    if want:
        return "(" + " or ".join(_verb_clause(v) for v in ANSWERED_VERBS) + ")"
    return " and ".join(f"not({_verb_clause(v)})" for v in ANSWERED_VERBS)


def _flag_tests(query: Row) -> list[tuple[str, str, Callable[[Row], bool]]]:
    """(field, $filter clause, local predicate) of the flag fields."""
    out: list[tuple[str, str, Callable[[Row], bool]]] = []
    for name in _BOOLS:
        value = query.get(name)
        if value is None:
            continue
        if not isinstance(value, bool):
            raise _bad(name, "must be a boolean")
        if name == "deleted":
            if value:
                raise _bad(name, "can not be searched: Microsoft Graph lists no deleted messages")
            continue
        if name in ("seen", "unseen"):
            read = value if name == "seen" else not value
            out.append(
                (
                    "isRead",
                    f"isRead eq {'true' if read else 'false'}",
                    _bool_test("isRead", read),
                )
            )
        elif name == "flagged":
            op = "eq" if value else "ne"
            out.append(
                (
                    "flag",
                    f"flag/flagStatus {op} 'flagged'",
                    _flagged_test(value),
                )
            )
        else:
            out.append(
                (
                    "isDraft",
                    f"isDraft eq {'true' if value else 'false'}",
                    _bool_test("isDraft", value),
                )
            )
    answered = query.get("answered")
    if answered is not None:
        if not isinstance(answered, bool):
            raise _bad("answered", "must be a boolean")
        out.append((EXTENDED, answered_clause(answered), _answered_test(answered)))
    return out


def _label_tests(query: Row) -> list[tuple[str, Callable[[Row], bool]]]:
    labels = query.get("labels")
    if labels is None:
        return []
    if not isinstance(labels, Mapping) or set(labels) - {"has", "not"}:
        raise _bad("labels", 'must be an object with "has" and/or "not"')
    out: list[tuple[str, Callable[[Row], bool]]] = []
    count = 0
    for key in ("has", "not"):
        values = labels.get(key) or []
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise _bad(f"labels.{key}", "must be a list of names")
        count += len(values)
        for value in values:
            clause = f"categories/any(c:c eq {_odata_string(value)})"
            present = key == "has"
            out.append(
                (
                    clause if present else f"not({clause})",
                    _label_test(value, present),
                )
            )
    if count > MAX_LABELS:
        raise _bad("labels", f"may name at most {MAX_LABELS} labels")
    return out


def compile_query(search: Mapping[str, Any]) -> GraphQuery:
    """Validate ``search`` and compile it (see the module docstring)."""
    if not isinstance(search, Mapping):
        raise BadRequest("search must be an object", "InputValidationError")
    query = {k: v for k, v in search.items() if v is not None}
    for name in query:
        if name not in KNOWN_FIELDS:
            raise _bad(name, "is not a known search field")
        if name in _UNSUPPORTED:
            raise _bad(name, f"can not be searched on this account: {_UNSUPPORTED[name]}")
    if "emailIds" in query:
        ids = query["emailIds"]
        if not isinstance(ids, list) or len(ids) > MAX_IDS:
            raise _bad("emailIds", f"must be a list of at most {MAX_IDS} ids")
        return GraphQuery(ids=[_graph_id(v, "emailIds") for v in ids], everywhere=True)
    if "emailId" in query:
        return GraphQuery(ids=[_graph_id(query["emailId"], "emailId")], everywhere=True)

    kql: list[str] = []
    for name in _TEXTS:
        value = _text(query, name)
        if value is not None:
            kql.append(f"{name}:{_kql_value(value)}")
    flags = _flag_tests(query)
    labels = _label_tests(query)
    dates = []
    for name, (prop, op, kql_op) in _DATES.items():
        if name in query:
            value = _date(query[name], name)
            dates.append((prop, op, kql_op, value))
    thread = query.get("threadId")
    if thread is not None and not (isinstance(thread, str) and _ID_RE.fullmatch(thread)):
        raise _bad("threadId", "must be a Microsoft Graph conversation id")

    if kql:
        # $search cannot be combined with $filter: dates go into the KQL, the rest is checked
        # on the results (two steps)
        kql += [f"{kql_op}{value[:10] if value.endswith('T00:00:00Z') else value}"
                for _, _, kql_op, value in dates]  # fmt: skip
        out = GraphQuery(search=" ".join(kql), everywhere=thread is not None)
        if thread is not None:
            out.residual.append(_thread_test(thread))
            out.residual_fields.add("conversationId")
        for prop, _clause, test in flags:
            out.residual.append(test)
            out.residual_fields.add(prop)
        for _clause, label_test in labels:
            out.residual.append(label_test)
            out.residual_fields.add("categories")
        # Graph requires the value of $search in double quotes unless it carries its own
        if '"' not in out.search:  # type: ignore[operator]
            out.search = f'"{out.search}"'
        return out

    clauses: list[str] = []
    received = [d for d in dates if d[0] == "receivedDateTime"]
    if received:
        clauses += [f"{prop} {op} {value}" for prop, op, _, value in received]
    else:
        clauses.append(f"receivedDateTime ge {EPOCH_FLOOR}")
    clauses += [
        f"{prop} {op} {value}" for prop, op, _, value in dates if prop != "receivedDateTime"
    ]
    if thread is not None:
        clauses.append(f"conversationId eq {_odata_string(thread)}")
    clauses += [clause for _, clause, _ in flags]
    clauses += [clause for clause, _ in labels]
    only_floor = clauses == [f"receivedDateTime ge {EPOCH_FLOOR}"]
    return GraphQuery(filter=None if only_floor else " and ".join(clauses),
                      everywhere=thread is not None)  # fmt: skip
