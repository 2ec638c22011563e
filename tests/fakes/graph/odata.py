"""OData query options on messages: ``$select``, ``$filter``, ``$orderby``, ``$search`` (KQL).

Follows https://learn.microsoft.com/en-us/graph/query-parameters and, for messages,
https://learn.microsoft.com/en-us/graph/api/user-list-messages?view=graph-rest-1.0 and
https://learn.microsoft.com/en-us/graph/search-query-parameter (KQL properties from, to, cc, bcc,
participants, subject, body, attachment, hasAttachments, received). Facts modelled:

- an unknown property (``size`` is not a v1.0 message property) is a 400;
- ``$search`` cannot be combined with ``$filter`` or ``$orderby`` on messages (400);
- with ``$filter`` and ``$orderby`` together, the ``$orderby`` properties must come first in
  ``$filter`` in the same order, else 400 ``InefficientFilter``
  (https://learn.microsoft.com/en-us/graph/api/user-list-messages#using-filter-and-orderby-in-the-same-query);
- ``singleValueExtendedProperties/any(ep: …)`` takes only the forms documented for extended
  properties (see ``extended``), anything else in it is a 400; ``not(…)`` negates it as any
  ``any`` (https://learn.microsoft.com/en-us/graph/filter-query-parameter#any-operator).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tests.fakes.graph.errors import GraphError, bad_request
from tests.fakes.graph.extended import (
    CASTS,
    FILTER_KEY,
    canonical_id,
    cast_value,
    check_cast,
    compare_value,
    kind_of,
    value_ops,
)
from tests.fakes.graph.model import parse_iso

Row = dict[str, Any]
Pred = Callable[[Row, dict[str, Any]], bool]
EXTENDED = "singleValueExtendedProperties"


def unknown_property(name: str, type_name: str = "microsoft.graph.message") -> GraphError:
    """The 400 Graph gives for a property the type does not have."""
    return bad_request(
        f"Could not find a property named '{name}' on type '{type_name}'.",
        "RequestBroker--ParseUri",
    )


def parse_select(value: str | None, allowed: tuple[str, ...], type_name: str) -> list[str] | None:
    """``$select`` as a list of names (None: the default projection)."""
    if not value:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    for n in names:
        if n not in allowed:
            raise unknown_property(n, type_name)
    return names


# ---- $filter -----------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')"
    r"|(?P<guid>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})"
    r"|(?P<dt>\d{4}-\d{2}-\d{2}(?:T[\d:.]+(?:Z|[+-]\d{2}:\d{2})?)?)"
    r"|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<punct>[():,])"
    r"|(?P<word>[A-Za-z_@][\w@./]*))"
)
_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}
_BOOL = {"true": True, "false": False, "null": None}


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise bad_request(
                f"Invalid filter clause: syntax error at position {pos} in '{text}'.", "BadRequest"
            )
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


class _Parser:
    """Recursive descent over the tokens; yields a predicate and the properties in order."""

    def __init__(self, text: str, allowed: tuple[str, ...]) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.allowed = allowed
        self.props: list[str] = []
        self.text = text

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1].lower() != value):
            raise bad_request(f"Invalid filter clause: syntax error in '{self.text}'.")
        self.i += 1
        return tok

    def parse(self) -> Pred:
        pred = self.or_expr(set())
        if self.peek() is not None:
            raise bad_request(f"Invalid filter clause: syntax error in '{self.text}'.")
        return pred

    def or_expr(self, env: set[str]) -> Pred:
        left = self.and_expr(env)
        while (t := self.peek()) and t[1] == "or":
            self.take()
            right = self.and_expr(env)
            left = _or(left, right)
        return left

    def and_expr(self, env: set[str]) -> Pred:
        left = self.not_expr(env)
        while (t := self.peek()) and t[1] == "and":
            self.take()
            right = self.not_expr(env)
            left = _and(left, right)
        return left

    def not_expr(self, env: set[str]) -> Pred:
        t = self.peek()
        if t and t[1] == "not":
            self.take()
            inner = self.not_expr(env)
            return lambda r, v: not inner(r, v)
        if t and t[1] == "(":
            self.take()
            inner = self.or_expr(env)
            self.take(")")
            return inner
        return self.comparison(env)

    def operand(self, env: set[str]) -> Callable[[Row, dict[str, Any]], Any] | Pred:
        kind, value = self.take()
        if kind == "str":
            s = value[1:-1].replace("''", "'")
            return lambda r, v: s
        if kind == "dt":
            dt = parse_iso(value)
            return lambda r, v: dt
        if kind == "num":
            n = float(value)
            return lambda r, v: n
        if kind == "word" and value in _BOOL:
            b = _BOOL[value]
            return lambda r, v: b
        if kind != "word":
            raise bad_request(f"Invalid filter clause: syntax error in '{self.text}'.")
        if value in {"startswith", "endswith", "contains"}:
            self.take("(")
            a = self.operand(env)
            self.take(",")
            b = self.operand(env)
            self.take(")")
            fn = {
                "startswith": str.startswith,
                "endswith": str.endswith,
                "contains": str.__contains__,
            }[value]
            return lambda r, v: fn(str(a(r, v) or "").lower(), str(b(r, v) or "").lower())
        parts = value.split("/")
        if parts[0] == EXTENDED and len(parts) == 2 and parts[1].lower() in {"any", "all"}:
            return self.extended_any(parts[1].lower())
        if parts[-1] in {"any", "all"}:
            return self.lambda_(parts[:-1], parts[-1], env)
        self.check_path(parts, env)
        return lambda r, v: _resolve(r, v, parts)

    def check_path(self, parts: list[str], env: set[str]) -> None:
        if parts[0] in env:
            return
        if parts[0] not in self.allowed:
            raise unknown_property(parts[0])
        self.props.append(parts[0])

    def lambda_(self, coll: list[str], kind: str, env: set[str]) -> Pred:
        self.check_path(coll, env)
        self.take("(")
        var = self.take()[1]
        self.take(":")
        body = self.or_expr(env | {var})
        self.take(")")

        def run(r: Row, v: dict[str, Any]) -> bool:
            items = _resolve(r, v, coll) or []
            results = (bool(body(r, {**v, var: it})) for it in items)
            return any(results) if kind == "any" else all(results)

        return run

    def bad(self) -> GraphError:
        return bad_request(f"Invalid filter clause: syntax error in '{self.text}'.")

    def member(self, var: str, name: str) -> None:
        """The range variable's ``id`` or ``value`` (Graph's examples spell them ``Id``…)."""
        kind, word = self.take()
        parts = word.split("/")
        if kind != "word" or len(parts) != 2 or parts[0] != var or parts[1].lower() != name:
            raise self.bad()

    def extended_any(self, kind: str) -> Pred:
        """``singleValueExtendedProperties/any(ep: ep/id eq '{id}' and <value test>)``."""
        if kind != "any":
            raise bad_request(
                "The 'all' operator is not supported on singleValueExtendedProperties.",
                "ErrorInvalidUrlQuery",
            )
        self.props.append(EXTENDED)
        self.take("(")
        var = self.take()
        if var[0] != "word" or "/" in var[1]:
            raise self.bad()
        self.take(":")
        self.member(var[1], "id")
        self.take("eq")
        lit = self.take()
        if lit[0] != "str":
            raise self.bad()
        pid = canonical_id(lit[1][1:-1].replace("''", "'"))
        self.take("and")
        test = self.extended_value(var[1], pid)
        self.take(")")

        def run(r: Row, v: dict[str, Any]) -> bool:
            stored = (r.get(FILTER_KEY) or {}).get(pid)
            return stored is not None and test(stored)

        return run

    def extended_value(self, var: str, pid: str) -> Callable[[str], bool]:
        """The value test of an extended-property lambda (the forms listed in ``extended``)."""
        word = self.take()
        fn = word[1].lower() if word[0] == "word" else ""
        if fn in {"contains", "startswith"}:
            if kind_of(pid) != "string":
                raise self.bad()
            self.take("(")
            self.member(var, "value")
            self.take(",")
            lit = self.take()
            self.take(")")
            if lit[0] != "str":
                raise self.bad()
            want = lit[1][1:-1].replace("''", "'").lower()
            if fn == "contains":
                return lambda stored: want in stored.lower()
            return lambda stored: stored.lower().startswith(want)
        if fn == "cast":
            self.take("(")
            self.member(var, "value")
            self.take(",")
            edm = self.take()[1]
            self.take(")")
            op = self.take()[1]
            if op not in _OPS:
                raise self.bad()
            literal = self.cast_literal(pid, edm)
            return lambda stored: _compare_cast(cast_value(pid, edm, stored), op, literal)
        self.i -= 1
        self.member(var, "value")
        op = self.take()[1]
        lit = self.take()
        if op not in value_ops(pid) or lit[0] != "str":
            raise self.bad()
        text = lit[1][1:-1].replace("''", "'")
        if kind_of(pid) != "string":
            try:
                float(text)
            except ValueError:
                raise self.bad() from None
        return lambda stored: compare_value(pid, stored, op, text)

    def cast_literal(self, pid: str, edm: str) -> Any:
        """The literal a cast value is compared with, of the cast's type (else 400)."""
        check_cast(pid, edm)
        convert = CASTS[kind_of(pid)][1]
        tok = self.take()
        if tok[1] == "(" and edm == "Edm.Guid":  # the documented example parenthesizes it
            tok = self.take()
            self.take(")")
        kind, value = tok
        if (edm == "Edm.Guid") != (kind == "guid") or kind in {"str", "punct", "dt"}:
            raise self.bad()
        try:
            return convert(value)
        except ValueError:
            raise self.bad() from None

    def comparison(self, env: set[str]) -> Pred:
        left = self.operand(env)
        t = self.peek()
        if not t or t[1] not in _OPS:
            return lambda r, v: bool(left(r, v))  # a bare boolean (function call / lambda)
        op = self.take()[1]
        right = self.operand(env)
        return lambda r, v: _compare(left(r, v), op, right(r, v))


def _compare_cast(value: Any, op: str, literal: Any) -> bool:
    if value is None:  # the cast failed: null, which matches nothing
        return False
    return _compare(value, op, literal)


def _or(a: Pred, b: Pred) -> Pred:
    return lambda r, v: a(r, v) or b(r, v)


def _and(a: Pred, b: Pred) -> Pred:
    return lambda r, v: a(r, v) and b(r, v)


def _not_term(t: Callable[[Row, list[str]], bool]) -> Callable[[Row, list[str]], bool]:
    return lambda r, a: not t(r, a)


def _resolve(row: Row, env: dict[str, Any], parts: list[str]) -> Any:
    cur: Any = env[parts[0]] if parts[0] in env else row.get(parts[0])
    for p in parts[1:]:
        cur = cur.get(p) if isinstance(cur, dict) else None
    return cur


def _compare(a: Any, op: str, b: Any) -> bool:
    if isinstance(a, datetime) or isinstance(b, datetime):
        if a is None or b is None:
            return op == "ne"
        a = a if isinstance(a, datetime) else parse_iso(str(a))
        b = b if isinstance(b, datetime) else parse_iso(str(b))
    elif isinstance(a, str) and isinstance(b, str):
        a, b = a.lower(), b.lower()
    if op == "eq":
        return bool(a == b)
    if op == "ne":
        return bool(a != b)
    if a is None or b is None:
        return False
    try:
        return bool({"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[op])
    except TypeError:
        return False


def parse_filter(text: str, allowed: tuple[str, ...]) -> tuple[Callable[[Row], bool], list[str]]:
    """Compile ``$filter``; returns the predicate and the properties in order of appearance."""
    p = _Parser(text, allowed)
    pred = p.parse()
    return (lambda row: bool(pred(row, {}))), p.props


# ---- $orderby ----------------------------------------------------------------------------


def parse_orderby(text: str, allowed: tuple[str, ...]) -> list[tuple[str, bool]]:
    """``$orderby`` as ``[(property path, descending)]``."""
    out: list[tuple[str, bool]] = []
    for item in text.split(","):
        words = item.split()
        if not words:
            continue
        if words[0].split("/")[0] not in allowed:
            raise unknown_property(words[0])
        out.append((words[0], len(words) > 1 and words[1].lower() == "desc"))
    return out


def sort_rows(rows: list[Row], order: list[tuple[str, bool]]) -> list[Row]:
    """Stable multi-key sort; missing values sort first ascending."""
    for path, desc in reversed(order):
        parts = path.split("/")

        def key(r: Row, parts: list[str] = parts) -> tuple[int, Any]:
            v = _resolve(r, {}, parts)
            return (0, "") if v is None else (1, v.lower() if isinstance(v, str) else v)

        rows = sorted(rows, key=key, reverse=desc)
    return rows


def check_filter_orderby(filter_props: list[str], order: list[tuple[str, bool]]) -> None:
    """The documented rule for messages: $orderby properties first in $filter, same order."""
    wanted = [p.split("/")[0] for p, _ in order]
    if filter_props[: len(wanted)] != wanted:
        raise bad_request(
            "The restriction or sort order is too complex for this operation.", "InefficientFilter"
        )


# ---- $search (KQL) -----------------------------------------------------------------------

_KQL = re.compile(
    r'(?P<prop>\w+)\s*(?P<op>:|>=|<=|>|<|=)\s*(?:"(?P<qv>[^"]*)"|(?P<v>[^\s"]+))|"(?P<phrase>[^"]*)"|(?P<word>\S+)'
)


def _addresses(row: Row, *names: str) -> str:
    out: list[str] = []
    for n in names:
        vals = row.get(n)
        for r in vals if isinstance(vals, list) else [vals]:
            if r:
                ea = r.get("emailAddress") or {}
                out.append(f"{ea.get('name') or ''} {ea.get('address') or ''}")
    return " ".join(out).lower()


def _kql_term(prop: str | None, op: str, value: str) -> Callable[[Row, list[str]], bool]:
    v = value.lower()
    if prop is None:
        return lambda r, att: any(
            v in s
            for s in (
                (r.get("subject") or "").lower(),
                _body(r),
                _addresses(r, "from", "toRecipients", "ccRecipients"),
                " ".join(att),
            )
        )
    prop = prop.lower()
    fields = {
        "from": ("from",),
        "to": ("toRecipients",),
        "cc": ("ccRecipients",),
        "bcc": ("bccRecipients",),
        "participants": ("from", "toRecipients", "ccRecipients", "bccRecipients"),
        "recipients": ("toRecipients", "ccRecipients", "bccRecipients"),
    }
    if prop in fields:
        names = fields[prop]
        return lambda r, att: v in _addresses(r, *names)
    if prop == "subject":
        return lambda r, att: v in (r.get("subject") or "").lower()
    if prop == "body":
        return lambda r, att: v in _body(r)
    if prop in {"attachment", "attachments"}:
        return lambda r, att: any(v in a for a in att)
    if prop in {"hasattachment", "hasattachments"}:
        want = v == "true"
        return lambda r, att: bool(r.get("hasAttachments")) == want
    if prop in {"received", "sent"}:
        key = "receivedDateTime" if prop == "received" else "sentDateTime"
        when = parse_iso(value)
        return lambda r, att: bool(r.get(key)) and _compare(parse_iso(r[key]), _kql_op(op), when)
    raise bad_request(f"Property '{prop}' is not supported in $search.", "ErrorInvalidUrlQuery")


def _kql_op(op: str) -> str:
    return {":": "eq", "=": "eq", ">": "gt", ">=": "ge", "<": "lt", "<=": "le"}[op]


def _body(r: Row) -> str:
    body = r.get("body") or {}
    return re.sub(r"<[^>]+>", " ", str(body.get("content") or "")).lower()


def parse_search(text: str) -> Callable[[Row, list[str]], bool]:
    """Compile a KQL ``$search`` value (outer double quotes optional). Terms are ANDed;
    ``OR`` between two terms ORs them; ``NOT``/``-`` negates the next term."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"' and text.count('"') == 2:
        text = text[1:-1]
    groups: list[list[Callable[[Row, list[str]], bool]]] = [[]]
    negate = False
    for m in _KQL.finditer(text):
        word = m.group("word")
        if word in {"AND"}:
            continue
        if word == "OR":
            groups.append([])
            continue
        if word == "NOT":
            negate = True
            continue
        if m.group("prop"):
            term = _kql_term(
                m.group("prop"),
                m.group("op"),
                m.group("qv") if m.group("qv") is not None else m.group("v"),
            )
        else:
            value = m.group("phrase") if m.group("phrase") is not None else word
            if value.startswith("-") and len(value) > 1:
                negate, value = True, value[1:]
            term = _kql_term(None, ":", value)
        if negate:
            term = _not_term(term)
            negate = False
        groups[-1].append(term)
    return lambda r, att: any(all(t(r, att) for t in g) for g in groups if g)
