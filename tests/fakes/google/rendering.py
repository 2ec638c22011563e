"""Turning stored state into Gmail JSON: message formats, paging tokens, partial responses.

- ``render_message`` follows ``users.messages.get``'s ``format`` enum: ``minimal`` (no payload),
  ``metadata`` (payload headers only, filtered by ``metadataHeaders``), ``full`` (the MIME tree,
  attachment bodies replaced by ``attachmentId``s that differ on every response, as Gmail's do),
  ``raw`` (base64url of the exact stored bytes, no payload).
- ``estimate`` makes ``resultSizeEstimate`` deliberately inexact: it is documented as an
  *estimate*, and clients must page with ``nextPageToken`` instead of trusting it.
- ``select_fields`` implements the standard ``fields`` parameter (partial response,
  https://developers.google.com/workspace/gmail/api/guides/performance#partial).
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from . import mime
from .errors import bad_request
from .mailbox import StoredMessage
from .util import b64url, b64url_decode, b64url_nopad

FORMATS = {"minimal", "metadata", "full", "raw"}
ATTACHMENT_PREFIX = "ANGjdJ"


def attachment_id(message_id: str, part_id: str) -> str:
    """A fresh opaque attachment id naming (message, part); a new one on every call."""
    nonce = secrets.token_urlsafe(24)
    return ATTACHMENT_PREFIX + b64url_nopad(f"{message_id}|{part_id}|{nonce}".encode())


def parse_attachment_id(value: str) -> tuple[str, str]:
    """(message id, part id) of an attachment id (400 if it is not one of ours)."""
    try:
        if not value.startswith(ATTACHMENT_PREFIX):
            raise ValueError(value)
        message_id, part_id, _nonce = (
            b64url_decode(value[len(ATTACHMENT_PREFIX) :]).decode().split("|")
        )
    except (ValueError, UnicodeDecodeError):
        raise bad_request("Invalid attachment token") from None
    return message_id, part_id


def render_message(
    message: StoredMessage, fmt: str = "full", metadata_headers: list[str] | None = None
) -> dict[str, Any]:
    """A ``Message`` resource in the requested format."""
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise bad_request(f"Invalid value at 'format' ({fmt})")
    out: dict[str, Any] = {
        "id": message.id,
        "threadId": message.thread_id,
        "labelIds": list(message.labels),
        "snippet": mime.snippet(message.parsed),
        "sizeEstimate": len(message.raw),
        "historyId": str(message.history_id),
        "internalDate": str(message.internal_date),
    }
    if not out["labelIds"]:
        del out["labelIds"]
    if fmt == "raw":
        out["raw"] = b64url(message.raw)
    elif fmt == "metadata":
        wanted = {h.lower() for h in metadata_headers or []} or None
        out["payload"] = mime.payload_tree(
            message.parsed, lambda _p: "", headers_only=True, header_filter=wanted
        )
    elif fmt == "full":
        out["payload"] = mime.payload_tree(
            message.parsed, lambda part_id: attachment_id(message.id, part_id)
        )
    return out


def brief(message: StoredMessage) -> dict[str, Any]:
    """``{id, threadId, labelIds}``, what modify/send/insert answer."""
    out: dict[str, Any] = {"id": message.id, "threadId": message.thread_id}
    if message.labels:
        out["labelIds"] = list(message.labels)
    return out


def estimate(count: int) -> int:
    """An inexact ``resultSizeEstimate``: 0 stays 0, else the next multiple of 10 above."""
    return 0 if count == 0 else (count // 10 + 1) * 10


def encode_page_token(key: Any) -> str:
    """An opaque page token carrying the last item's sort key."""
    return b64url_nopad(json.dumps(key).encode())


def decode_page_token(token: str) -> Any:
    """The sort key in a page token (400 if tampered)."""
    try:
        return json.loads(b64url_decode(token))
    except (ValueError, UnicodeDecodeError):
        raise bad_request("Invalid pageToken") from None


def max_results(value: str | None, default: int = 100, limit: int = 500) -> int:
    """``maxResults`` clamped the way Gmail documents it."""
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise bad_request("Invalid value for maxResults") from None
    if number < 1:
        raise bad_request("Invalid value for maxResults")
    return min(number, limit)


def paginate(
    items: list[StoredMessage], token: str | None, size: int
) -> tuple[list[StoredMessage], str | None]:
    """One page of messages sorted newest first; the token names the last one shown."""
    start = 0
    if token:
        last_date, last_id = decode_page_token(token)
        for index, item in enumerate(items):
            if (item.internal_date, item.id) < (last_date, last_id):
                start = index
                break
        else:
            start = len(items)
    page = items[start : start + size]
    more = start + size < len(items)
    next_token = encode_page_token([page[-1].internal_date, page[-1].id]) if more and page else None
    return page, next_token


_FIELD_TOKEN = re.compile(r"\s*([A-Za-z0-9_@.\-/*]+|[(),])")


def _parse_fields(text: str) -> dict[str, Any]:
    tokens = [m.group(1) for m in _FIELD_TOKEN.finditer(text)]
    pos = 0

    def parse_list() -> dict[str, Any]:
        nonlocal pos
        tree: dict[str, Any] = {}
        while pos < len(tokens) and tokens[pos] != ")":
            path = tokens[pos].split("/")
            pos += 1
            sub: dict[str, Any] | None = None
            if pos < len(tokens) and tokens[pos] == "(":
                pos += 1
                sub = parse_list()
                pos += 1
            node = tree
            for name in path[:-1]:
                node = node.setdefault(name, {})
                if node is True:
                    break
            else:
                node[path[-1]] = sub if sub is not None else True
            if pos < len(tokens) and tokens[pos] == ",":
                pos += 1
        return tree

    return parse_list()


def _apply(value: Any, tree: dict[str, Any] | bool) -> Any:
    if tree is True or not isinstance(tree, dict) or "*" in tree:
        return value
    if isinstance(value, list):
        return [_apply(v, tree) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, sub in tree.items():
        if key in value:
            out[key] = _apply(value[key], sub)
    return out


def select_fields(body: Any, fields: str | None) -> Any:
    """Apply a ``fields`` selector (``messages(id,threadId),nextPageToken``) to a body."""
    if not fields:
        return body
    return _apply(body, _parse_fields(fields))
