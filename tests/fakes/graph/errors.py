"""Graph's error body and the one exception the fake's handlers raise.

Every error leaves the fake in Graph's documented shape
(https://learn.microsoft.com/en-us/graph/errors)::

    {"error": {"code": "...", "message": "...",
               "innerError": {"date": "...", "request-id": "...", "client-request-id": "..."}}}

Exception tree::

    GraphError            any non-2xx answer: status, code, message, extra headers
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any


class GraphError(Exception):
    """An error answer: raised anywhere in a handler, turned into Graph's error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        inner: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.inner = inner or {}


def error_body(
    code: str,
    message: str,
    *,
    client_request_id: str | None = None,
    inner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Graph's error object, with the ``innerError`` fields real Graph always adds."""
    inner_error: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": str(uuid.uuid4()),
        "client-request-id": client_request_id or str(uuid.uuid4()),
    }
    inner_error.update(inner or {})
    return {"error": {"code": code, "message": message, "innerError": inner_error}}


def error_bytes(err: GraphError, client_request_id: str | None = None) -> bytes:
    """The JSON bytes of ``err``'s body."""
    return json.dumps(
        error_body(err.code, err.message, client_request_id=client_request_id, inner=err.inner)
    ).encode()


def bad_request(message: str, code: str = "BadRequest") -> GraphError:
    """400 with ``code``."""
    return GraphError(400, code, message)


def not_found(what: str = "The specified object was not found in the store.") -> GraphError:
    """404 ``ErrorItemNotFound``, as Outlook answers an unknown message or folder id."""
    return GraphError(404, "ErrorItemNotFound", what)


def access_denied() -> GraphError:
    """403 ``ErrorAccessDenied`` (https://learn.microsoft.com/en-us/graph/resolve-auth-errors)."""
    return GraphError(
        403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
    )
