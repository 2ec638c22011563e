"""Maps errors to EmailEngine's error body: ``{statusCode, error, message, code}``."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mailgate.errors import (
    ApiError,
    AuthenticationError,
    BackendError,
    CommandError,
    ConnectError,
    StoreError,
)

log = structlog.get_logger("mailgate.api")


def error_body(status: int, message: str, code: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "statusCode": status,
        "error": HTTPStatus(status).phrase,
        "message": message,
    }
    if code:
        body["code"] = code
    body.update(extra)
    return body


def error_response(
    status: int, message: str, code: str | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(error_body(status, message, code, **extra), status_code=status)


def _field_key(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts)


async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
    fields = [
        {"message": e.get("msg", "invalid"), "key": _field_key(e.get("loc", ()))}
        for e in exc.errors()
    ]
    first = fields[0] if fields else {"message": "Invalid input", "key": ""}
    message = f'"{first["key"]}" {first["message"]}' if first["key"] else first["message"]
    return error_response(400, message, "InputValidationError", fields=fields)


async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status_code, exc.message, exc.code)


async def _backend_error(request: Request, exc: BackendError) -> JSONResponse:
    extra: dict[str, Any] = {}
    if exc.server_response:
        extra["details"] = exc.server_response
    if isinstance(exc, AuthenticationError):
        return error_response(
            503, "Authentication with the mail server failed", "AuthenticationFailed", **extra
        )
    if isinstance(exc, CommandError):
        return error_response(400, str(exc), exc.code or "ServerCommandFailed", **extra)
    if isinstance(exc, ConnectError):
        return error_response(
            503, f"Could not reach the mail server: {exc}", "ConnectionError", **extra
        )
    log.warning("backend error", path=request.url.path, error=str(exc))
    return error_response(502, str(exc), "BackendError", **extra)


async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
    log.error("store error", path=request.url.path, error=str(exc))
    return error_response(503, "The data store is not available", "StoreError")


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return error_response(exc.status_code, str(exc.detail), None)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", path=request.url.path)
    return error_response(500, "An internal error occurred", "InternalError")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(BackendError, _backend_error)  # type: ignore[arg-type]
    app.add_exception_handler(StoreError, _store_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
