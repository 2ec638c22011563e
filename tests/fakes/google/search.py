"""A useful subset of Gmail's search syntax for ``q`` (messages.list, threads.list, drafts.list).

Follows https://support.google.com/mail/answer/7190 ("Refine searches in Gmail"):

- ``from:`` ``to:`` ``cc:`` ``bcc:`` ``deliveredto:`` ``list:`` (substring of the header;
  ``from:me`` is the mailbox owner), ``subject:`` (word or quoted phrase),
- ``after:`` ``before:`` (``YYYY/MM/DD``, ``YYYY-MM-DD``, ``MM/DD/YYYY`` at midnight
  America/Los_Angeles, or epoch seconds; ``after`` inclusive, ``before`` exclusive), ``older:``
  ``newer:`` (aliases), ``older_than:`` / ``newer_than:`` (``3d``, ``2m``, ``1y``),
- ``larger:`` / ``smaller:`` (bytes, ``K`` or ``M`` suffix), ``size:``,
- ``is:unread|read|starred|important|snoozed``, ``label:`` (name, with ``-`` for spaces and
  ``/``, or id), ``in:inbox|sent|drafts|trash|spam|starred|important|anywhere``,
  ``category:``, ``has:attachment|userlabels|nouserlabels``, ``filename:``, ``rfc822msgid:``,
- plain words (whole words in subject, addresses, body text, attachment names), ``"phrases"``,
- ``-term`` / ``NOT term``, ``a OR b``, ``{a b}`` (any of), ``( … )`` grouping; terms are ANDed.

Not modelled: ``around``, ``AROUND``, stemming, ``has:drive`` & co., ``list:`` on ids only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\() | (?P<rparen>\)) | (?P<lbrace>\{) | (?P<rbrace>\}) |
        (?P<neg>-)(?=\S) |
        (?P<term>(?:[A-Za-z_0-9]+:)?(?:"[^"]*"|[^\s(){}"]+)) |
        (?P<phrase>"[^"]*")
    )""",
    re.VERBOSE,
)


class Searchable(Protocol):
    """What a query is evaluated against (one stored message)."""

    def header_text(self, name: str) -> str: ...
    def address_text(self, *names: str) -> str: ...
    def full_text(self) -> str: ...
    def label_ids(self) -> set[str]: ...
    def size(self) -> int: ...
    def internal_date_ms(self) -> int: ...
    def message_id(self) -> str: ...
    def attachment_names(self) -> list[str]: ...


@dataclass(frozen=True)
class Context:
    """Mailbox facts a query needs: owner, label name → id map, current time."""

    owner: str
    label_names: dict[str, str]
    now_ms: int


Predicate = Callable[[Searchable, Context], bool]


class QueryError(ValueError):
    """A ``q`` the fake cannot parse."""


SYSTEM_IN = {
    "inbox": "INBOX",
    "sent": "SENT",
    "drafts": "DRAFT",
    "draft": "DRAFT",
    "trash": "TRASH",
    "spam": "SPAM",
    "starred": "STARRED",
    "important": "IMPORTANT",
    "unread": "UNREAD",
    "chats": "CHAT",
}
CATEGORIES = {
    "primary": "CATEGORY_PERSONAL",
    "personal": "CATEGORY_PERSONAL",
    "social": "CATEGORY_SOCIAL",
    "promotions": "CATEGORY_PROMOTIONS",
    "updates": "CATEGORY_UPDATES",
    "forums": "CATEGORY_FORUMS",
}


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def _contains_word(haystack: str, needle: str) -> bool:
    needle = _words(needle)
    if not needle:
        return True
    return re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", _words(haystack)) is not None


def _date_ms(value: str) -> int:
    if value.isdigit():
        return int(value) * 1000
    for fmt in ("%Y/%m/%d", "%Y-%m-%d", "%m/%d/%Y"):
        try:
            day = datetime.strptime(value, fmt)
        except ValueError:
            continue
        return int(day.replace(tzinfo=PACIFIC).timestamp() * 1000)
    raise QueryError(f"bad date {value!r}")


def _size(value: str) -> int:
    match = re.fullmatch(r"(\d+)([kKmM]?)", value)
    if not match:
        raise QueryError(f"bad size {value!r}")
    factor = {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2).lower()]
    return int(match.group(1)) * factor


def _relative_ms(value: str) -> int:
    match = re.fullmatch(r"(\d+)([dmy])", value.lower())
    if not match:
        raise QueryError(f"bad relative date {value!r}")
    days = int(match.group(1)) * {"d": 1, "m": 30, "y": 365}[match.group(2)]
    return int(timedelta(days=days).total_seconds() * 1000)


def _label_match(value: str, ctx: Context) -> str | None:
    wanted = value.lower()
    for key in (wanted, wanted.replace(" ", "-").replace("/", "-")):
        if key in ctx.label_names:
            return ctx.label_names[key]
    return SYSTEM_IN.get(wanted)


def term_predicate(key: str, value: str) -> Predicate:
    """The predicate of one ``key:value`` (``key`` "" for a plain word or phrase)."""
    raw_value = value
    value = _unquote(value)
    low = value.lower()
    if key in {"from", "to", "cc", "bcc", "deliveredto"}:
        headers = {"deliveredto": ("Delivered-To",), "bcc": ("Bcc",)}.get(key, (key.title(),))
        if key == "to":
            headers = ("To", "Cc", "Bcc")

        def addr(m: Searchable, ctx: Context) -> bool:
            needle = ctx.owner.lower() if low == "me" else low
            return needle in m.address_text(*headers).lower()

        return addr
    if key == "list":
        return lambda m, _c: low in m.header_text("List-Id").lower()
    if key == "subject":
        return lambda m, _c: _contains_word(m.header_text("Subject"), value)
    if key in {"after", "newer"}:
        limit = _date_ms(value)
        return lambda m, _c: m.internal_date_ms() >= limit
    if key in {"before", "older"}:
        limit = _date_ms(value)
        return lambda m, _c: m.internal_date_ms() < limit
    if key == "newer_than":
        span = _relative_ms(value)
        return lambda m, c: m.internal_date_ms() >= c.now_ms - span
    if key == "older_than":
        span = _relative_ms(value)
        return lambda m, c: m.internal_date_ms() < c.now_ms - span
    if key in {"larger", "size"}:
        limit = _size(value)
        return lambda m, _c: m.size() > limit if key == "larger" else m.size() >= limit
    if key == "smaller":
        limit = _size(value)
        return lambda m, _c: m.size() < limit
    if key == "is":
        if low == "read":
            return lambda m, _c: "UNREAD" not in m.label_ids()
        label = SYSTEM_IN.get(low)
        if label is None:
            raise QueryError(f"unsupported is:{value}")
        return lambda m, _c: label in m.label_ids()
    if key == "in":
        if low == "anywhere":
            return lambda _m, _c: True
        label = SYSTEM_IN.get(low)
        if label is None:
            return term_predicate("label", raw_value)
        return lambda m, _c: label in m.label_ids()
    if key == "label":

        def has_label(m: Searchable, ctx: Context) -> bool:
            label_id = _label_match(value, ctx)
            return label_id is not None and label_id in m.label_ids()

        return has_label
    if key == "category":
        label = CATEGORIES.get(low)
        if label is None:
            raise QueryError(f"unknown category {value!r}")
        return lambda m, _c: label in m.label_ids()
    if key == "has":
        if low == "attachment":
            return lambda m, _c: bool(m.attachment_names())
        if low in {"userlabels", "nouserlabels"}:
            want = low == "userlabels"
            return lambda m, _c: any(x.startswith("Label_") for x in m.label_ids()) == want
        if low == "yellow-star":
            return lambda m, _c: "STARRED" in m.label_ids()
        raise QueryError(f"unsupported has:{value}")
    if key == "filename":
        return lambda m, _c: any(
            low == name.lower() or name.lower().endswith(f".{low}") or low in name.lower()
            for name in m.attachment_names()
        )
    if key == "rfc822msgid":
        wanted = low.strip("<>")
        return lambda m, _c: m.message_id().lower().strip("<>") == wanted
    if key == "":
        if raw_value.startswith('"'):
            return lambda m, _c: _words(value) in _words(m.full_text())
        return lambda m, _c: _contains_word(m.full_text(), value)
    # Unknown operator: Gmail searches the whole text for "key:value".
    whole = f"{key}:{value}"
    return lambda m, _c: _contains_word(m.full_text(), whole)


class _Parser:
    def __init__(self, query: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        query = query.strip()
        while pos < len(query):
            match = _TOKEN.match(query, pos)
            if not match or match.end() == pos:
                raise QueryError(f"cannot parse q at {query[pos:]!r}")
            pos = match.end()
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse_all(self) -> Predicate:
        terms: list[Predicate] = []
        while self.peek() is not None and self.peek() != ("rparen", ")"):
            terms.append(self.parse_or())
        return _all(terms)

    def parse_or(self) -> Predicate:
        options = [self.parse_unary()]
        while self.peek() == ("term", "OR"):
            self.take()
            options.append(self.parse_unary())
        return options[0] if len(options) == 1 else _any(options)

    def parse_unary(self) -> Predicate:
        token = self.peek()
        if token is None:
            raise QueryError("unexpected end of q")
        if token[0] == "neg" or token == ("term", "NOT"):
            self.take()
            inner = self.parse_unary()
            return lambda m, c: not inner(m, c)
        if token[0] == "lparen":
            self.take()
            inner = self.parse_all()
            if self.peek() == ("rparen", ")"):
                self.take()
            return inner
        if token[0] == "lbrace":
            self.take()
            options: list[Predicate] = []
            while self.peek() not in (None, ("rbrace", "}")):
                options.append(self.parse_unary())
            if self.peek() == ("rbrace", "}"):
                self.take()
            return _any(options)
        kind, text = self.take()
        if kind == "rbrace":
            return lambda _m, _c: True
        if kind == "term" and text == "AND":
            return lambda _m, _c: True
        if kind == "term" and re.match(r"^[A-Za-z_0-9]+:", text) and not text.startswith('"'):
            key, _, value = text.partition(":")
            return term_predicate(key.lower(), value)
        return term_predicate("", text)


def _all(terms: list[Predicate]) -> Predicate:
    return lambda m, c: all(t(m, c) for t in terms)


def _any(terms: list[Predicate]) -> Predicate:
    return lambda m, c: any(t(m, c) for t in terms)


def compile_query(query: str) -> Predicate:
    """Compile ``q`` into a predicate over a stored message; ``QueryError`` if unparsable."""
    parser = _Parser(query)
    predicate = parser.parse_all()
    if parser.peek() is not None:
        raise QueryError("unbalanced parentheses in q")
    return predicate


def mentions_spam_or_trash(query: str) -> bool:
    """Whether ``q`` asks for SPAM/TRASH itself (then they are not excluded by default)."""
    return (
        re.search(r"(?<![-\w])(in|label|is):(spam|trash|anywhere)\b", query, re.IGNORECASE)
        is not None
    )
