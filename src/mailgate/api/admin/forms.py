"""Posted HTML forms: parsing (``application/x-www-form-urlencoded``), typed getters, and
pydantic validation errors turned into one message per form field.

Field names follow the request models' paths (``imap.host``, ``webhooks``), so a pydantic error
at ``("imap", "port")`` lands next to the ``imap.port`` input.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from pydantic import ValidationError

MAX_FORM_BYTES = 1024 * 1024  # bytes of one posted form (templates are the largest)
MAX_FIELDS = 2000  # fields in one posted form
MAX_LINES = 500  # lines of a one-per-line textarea (headers, scopes)
FORM_TYPE = "application/x-www-form-urlencoded"


class FormTooLarge(Exception):
    """The posted form is larger than ``MAX_FORM_BYTES`` or has too many fields."""


class FieldError(Exception):
    """An input that failed a check done by the page itself (not pydantic)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class Form:
    """The fields of a posted form (every value of a repeated name kept, in order)."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self.values: dict[str, list[str]] = {}
        for key, value in pairs:
            self.values.setdefault(key, []).append(value)

    def get(self, name: str, default: str = "") -> str:
        found = self.values.get(name)
        return found[-1] if found else default

    def text(self, name: str) -> str | None:
        """The stripped value, or None when empty or missing."""
        value = self.get(name).strip()
        return value or None

    def getlist(self, name: str) -> list[str]:
        return list(self.values.get(name, []))

    def checkbox(self, name: str) -> bool:
        return self.get(name) not in ("", "0", "false", "off")

    def number(self, name: str) -> int | str | None:
        """An int when the value is one, the raw text otherwise (pydantic reports it)."""
        value = self.get(name).strip()
        if not value:
            return None
        try:
            return int(value)
        except ValueError:
            return value

    def lines(self, name: str) -> list[str]:
        found = [line.strip() for line in self.get(name).splitlines()]
        found = [line for line in found if line]
        if len(found) > MAX_LINES:
            raise FieldError(name, f"At most {MAX_LINES} lines")
        return found

    def echo(self, *secret: str) -> dict[str, Any]:
        """The submitted values to render the form again with, secret fields left out."""
        out: dict[str, Any] = {}
        for key, values in self.values.items():
            if key in secret or key == "_csrf":
                continue
            out[key] = values[-1] if len(values) == 1 else list(values)
        return out


async def read_form(request: Request) -> Form:
    """The posted form (parsed once per request and cached on ``request.state``)."""
    cached = getattr(request.state, "admin_form", None)
    if isinstance(cached, Form):
        return cached
    form = Form()
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if request.method == "POST" and content_type == FORM_TYPE:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
            raise FormTooLarge
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise FormTooLarge
        try:
            pairs = parse_qsl(
                body.decode("utf-8", "replace"),
                keep_blank_values=True,
                max_num_fields=MAX_FIELDS,
            )
        except ValueError as exc:
            raise FormTooLarge from exc
        form = Form(pairs)
    request.state.admin_form = form
    return form


def _is_tag(part: str) -> bool:
    """A union branch tag pydantic puts into error locations (``ImapIn``, ``literal[False]``)."""
    return part[:1].isupper() or part.startswith(("literal[", "function-")) or part in _TYPES


def field_errors(exc: ValidationError, rename: dict[str, str] | None = None) -> dict[str, str]:
    """One message per form field from a pydantic error (the first error of each field).

    Unions such as ``ImapIn | Literal[False]`` report every branch; the errors of the model
    branch are kept and the "Input should be False" of the literal branch is dropped.
    """
    errors = exc.errors()
    tops = {str(e["loc"][0]) for e in errors if e.get("loc") and e["type"] != "literal_error"}
    out: dict[str, str] = {}
    for error in errors:
        raw = [str(p) for p in error.get("loc", ()) if not isinstance(p, int)]
        if error["type"] == "literal_error" and raw and raw[0] in tops and _is_tag(raw[-1]):
            continue
        key = ".".join(p for p in raw if not _is_tag(p)) or "_form"
        if rename:
            key = rename.get(key, key)
        out.setdefault(key, str(error.get("msg", "Invalid value")))
    return out


_TYPES = frozenset({"str", "int", "bool", "float", "list[str]", "dict[str,any]", "none"})


def parse_header_lines(form: Form, name: str) -> list[dict[str, str]]:
    """``Key: Value`` lines of a textarea as ``[{key, value}]`` (a :class:`FieldError` else)."""
    out = []
    for line in form.lines(name):
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise FieldError(name, f"Expected 'Header-Name: value', got {line[:80]!r}")
        out.append({"key": key.strip(), "value": value.strip()})
    return out


def header_lines(headers: object) -> str:
    """The textarea text of stored ``[{key, value}]`` headers."""
    if not isinstance(headers, list):
        return ""
    rows = []
    for item in headers:
        if isinstance(item, dict) and item.get("key"):
            rows.append(f"{item['key']}: {item.get('value', '')}")
    return "\n".join(rows)


MAX_PAGE = 100_000  # highest list page number accepted from a query string


def page_number(raw: str | None) -> int:
    """A list page number from a query string (0 when missing or not a number)."""
    try:
        return max(0, min(int(raw or 0), MAX_PAGE))
    except ValueError:
        return 0
