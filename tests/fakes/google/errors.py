"""Google's JSON error body and the exception the fake's handlers raise.

Shape (Google API design guide, "Errors"; the ``errors`` array is the legacy part Gmail still
sends, https://developers.google.com/workspace/gmail/api/guides/handle-errors)::

    {"error": {"code": 404, "message": "Requested entity was not found.",
               "errors": [{"message": "...", "domain": "global", "reason": "notFound"}],
               "status": "NOT_FOUND"}}

Pub/Sub (a gRPC-transcoded API) answers without the ``errors`` array; OAuth2 endpoints answer
RFC 6749 bodies (``{"error": "invalid_grant", "error_description": "..."}``), see ``auth.py``.

Exception tree::

    GoogleError        any non-2xx answer of Gmail or Pub/Sub: code, message, reason, headers
"""

from __future__ import annotations

import json
from typing import Any

STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class GoogleError(Exception):
    """An error answer; turned into Google's error JSON by the route wrapper."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str = "",
        domain: str = "global",
        status: str | None = None,
        headers: dict[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
        legacy_errors: bool = True,
        extra: dict[str, str] | None = None,
        error_message: str | None = None,
    ) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")
        self.headers = headers or {}
        self.details = details or []
        self.legacy_errors = legacy_errors
        self.extra = extra or {}
        self.error_message = error_message or message

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.legacy_errors:
            item: dict[str, Any] = {
                "message": self.error_message,
                "domain": self.domain,
                "reason": self.reason,
            }
            item.update(self.extra)
            error["errors"] = [item]
        error["status"] = self.status
        if self.details:
            error["details"] = self.details
        return {"error": error}

    def to_bytes(self) -> bytes:
        """The JSON body as bytes."""
        return json.dumps(self.body(), indent=2).encode()


def bad_request(message: str, reason: str = "invalidArgument") -> GoogleError:
    """400 INVALID_ARGUMENT, e.g. ``Invalid id value``."""
    return GoogleError(400, message, reason=reason)


def failed_precondition(message: str) -> GoogleError:
    """400 FAILED_PRECONDITION (Gmail's answer to e.g. an empty raw message)."""
    return GoogleError(400, message, reason="failedPrecondition", status="FAILED_PRECONDITION")


def not_found(message: str = "Requested entity was not found.") -> GoogleError:
    """404 as Gmail answers an unknown id and an expired ``startHistoryId``."""
    return GoogleError(404, message, reason="notFound")


def conflict(message: str) -> GoogleError:
    """409, e.g. ``Label name exists or conflicts``."""
    return GoogleError(409, message, reason="duplicate", status="ABORTED")


def forbidden(message: str, reason: str = "forbidden") -> GoogleError:
    """403 PERMISSION_DENIED (e.g. ``Delegation denied for ...``)."""
    return GoogleError(403, message, reason=reason)


def unauthenticated(*, missing: bool) -> GoogleError:
    """401 with the real bodies for a missing and for an invalid/expired bearer token."""
    if missing:
        message = (
            "Request is missing required authentication credential. Expected OAuth 2 access "
            "token, login cookie or other valid authentication credential. See "
            "https://developers.google.com/identity/sign-in/web/devconsole-project."
        )
        item_message, reason = "Login Required.", "required"
    else:
        message = (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential. See "
            "https://developers.google.com/identity/sign-in/web/devconsole-project."
        )
        item_message, reason = "Invalid Credentials", "authError"
    return GoogleError(
        401,
        message,
        reason=reason,
        error_message=item_message,
        extra={"location": "Authorization", "locationType": "header"},
        headers={
            "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'
            + ("" if missing else ', error="invalid_token"')
        },
    )


def insufficient_scope(service: str, method: str, scopes: list[str]) -> GoogleError:
    """403 ACCESS_TOKEN_SCOPE_INSUFFICIENT (e.g. ``messages.delete`` with ``gmail.modify``)."""
    return GoogleError(
        403,
        "Request had insufficient authentication scopes.",
        reason="insufficientPermissions",
        error_message="Insufficient Permission",
        headers={
            "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
            f'error="insufficient_scope", scope="{" ".join(scopes)}"'
        },
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                "domain": "googleapis.com",
                "metadata": {"service": service, "method": method},
            }
        ],
    )


def rate_limited(retry_after: int, *, forbidden_variant: bool, user: bool = True) -> GoogleError:
    """429 ``rateLimitExceeded`` (or Gmail's 403 ``userRateLimitExceeded`` variant).

    https://developers.google.com/workspace/gmail/api/guides/handle-errors#resolve_a_403_error_user_rate_limit_exceeded
    and #resolve_a_429_error_too_many_requests.
    """
    headers = {"Retry-After": str(retry_after)}
    if forbidden_variant:
        return GoogleError(
            403,
            "User Rate Limit Exceeded",
            reason="userRateLimitExceeded",
            domain="usageLimits",
            headers=headers,
        )
    return GoogleError(
        429,
        "User-rate limit exceeded." if user else "Rate Limit Exceeded",
        reason="userRateLimitExceeded" if user else "rateLimitExceeded",
        domain="usageLimits",
        headers=headers,
    )


def injected(status: int) -> GoogleError:
    """An error injected with ``FakeGoogle.fail_next``: the body Gmail gives for ``status``."""
    if status == 429:
        return rate_limited(1, forbidden_variant=False, user=False)
    if status == 403:
        return rate_limited(1, forbidden_variant=True)
    if status == 503:
        return GoogleError(
            503,
            "The service is currently unavailable.",
            reason="backendError",
            headers={"Retry-After": "1"},
        )
    if status == 500:
        return GoogleError(500, "Backend Error", reason="backendError")
    if status == 401:
        return unauthenticated(missing=False)
    return GoogleError(status, f"Injected error {status}", reason="injected")
