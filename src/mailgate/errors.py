"""One exception tree for all of mailgate.

Foreign exceptions (OSError, ssl.SSLError, redis errors, httpx errors) are mapped to these at the
layer boundary that catches them (``raise ... from exc``), so upper layers only see this tree::

    MailgateError
    ├── ConfigError                 bad settings or command line
    ├── StoreError                  Redis unreachable or a stored record is unreadable
    ├── ApiError                    carries an HTTP status and EmailEngine's error ``code``
    │   ├── BadRequest              400 (InputValidationError, ...)
    │   ├── Unauthorized            401
    │   ├── Forbidden               403
    │   ├── NotFound                404 (AccountNotFound, MailboxNotFound, MessageNotFound, ...)
    │   ├── Conflict                409 (AccountAlreadyExists, MailboxExists, ...)
    │   └── Unavailable             503 (a feature not wired in this process, a limit reached)
    └── BackendError                a mail server or provider API failed
        ├── ConnectError            could not reach or keep a connection (network, TLS, timeout)
        │   └── ProtocolError       the server sent something we cannot parse (hostile or broken)
        ├── AuthenticationError     the server refused the credentials
        ├── CommandError            the server answered NO/BAD to a command
        └── CursorExpired           a change cursor is no longer valid: rebuild the baseline
"""

from __future__ import annotations


class MailgateError(Exception):
    """Root of every error mailgate raises on purpose."""


class ConfigError(MailgateError):
    """Invalid configuration (settings, CLI flags, environment)."""


class StoreError(MailgateError):
    """Redis is unreachable, or a stored record cannot be read."""


class ApiError(MailgateError):
    """An error with an HTTP status and an EmailEngine-style error code."""

    status_code = 500
    error = "Internal Server Error"
    default_code = "InternalError"

    def __init__(self, message: str, code: str | None = None, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details


class BadRequest(ApiError):
    status_code = 400
    error = "Bad Request"
    default_code = "InputValidationError"


class Unauthorized(ApiError):
    status_code = 401
    error = "Unauthorized"
    default_code = "Unauthorized"


class Forbidden(ApiError):
    status_code = 403
    error = "Forbidden"
    default_code = "Forbidden"


class NotFound(ApiError):
    status_code = 404
    error = "Not Found"
    default_code = "NotFound"


class Conflict(ApiError):
    status_code = 409
    error = "Conflict"
    default_code = "Conflict"


class Unavailable(ApiError):
    status_code = 503
    error = "Service Unavailable"
    default_code = "ServiceUnavailable"


class BackendError(MailgateError):
    """A mail server or provider API failed. ``server_response`` is the server's own words."""

    def __init__(self, message: str, *, server_response: str | None = None) -> None:
        super().__init__(message)
        self.server_response = server_response


class ConnectError(BackendError):
    """Network, TLS or timeout failure talking to a server."""


class ProtocolError(ConnectError):
    """The server sent data we cannot parse; the connection is no longer usable."""


class AuthenticationError(BackendError):
    """The server rejected the credentials."""


class CommandError(BackendError):
    """The server answered NO or BAD to a command. ``status`` is ``NO`` or ``BAD``."""

    def __init__(
        self,
        message: str,
        *,
        status: str = "NO",
        code: str | None = None,
        server_response: str | None = None,
    ) -> None:
        super().__init__(message, server_response=server_response)
        self.status = status
        self.code = code


class CursorExpired(BackendError):
    """A change cursor (UIDVALIDITY, history id, delta token) is stale: rebuild the baseline."""
