"""Gmail's batch endpoint: ``POST /batch/gmail/v1`` with ``multipart/mixed`` of ``application/http``.

Follows "Batching requests" (https://developers.google.com/workspace/gmail/api/guides/batch):
each part is one HTTP request (request line, headers, body); headers of the outer request other
than ``Content-*`` apply to every part; at most 100 calls per batch; the answer is
``multipart/mixed`` whose parts carry ``Content-ID: <response-ID>`` and the HTTP response of the
matching request, in order. Each part is charged to quota on its own. The legacy global
``/batch`` path (google-api-python-client's default ``batchPath``) is served too.
"""

from __future__ import annotations

import json
import secrets
import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from .errors import bad_request
from .util import split_head

MAX_PARTS = 100
REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
REASONS |= {
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def _parts(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    boundary = ""
    for piece in content_type.split(";")[1:]:
        key, _, value = piece.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip().strip('"')
    if not content_type.lower().startswith("multipart/mixed") or not boundary:
        raise bad_request("Batch requests must be multipart/mixed with a boundary")
    out: list[tuple[dict[str, str], bytes]] = []
    for piece in body.split(b"--" + boundary.encode())[1:]:
        if piece.startswith(b"--"):
            break
        head, _, inner = _split_head(piece.lstrip(b"\r\n"))
        out.append((_headers(head), inner.rstrip(b"\r\n")))
    return out


def _split_head(data: bytes) -> tuple[bytes, bytes, bytes]:
    head, rest = split_head(data)
    return head, b"", rest


def _headers(head: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return headers


async def _call(
    app: ASGIApp, method: str, target: str, headers: dict[str, str], body: bytes, client_host: str
) -> tuple[int, dict[str, str], bytes]:
    parsed = urllib.parse.urlsplit(target)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method.upper(),
        "scheme": "http",
        "path": urllib.parse.unquote(parsed.path),
        "raw_path": parsed.path.encode(),
        "query_string": parsed.query.encode(),
        "root_path": "",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "client": (client_host, 0),
        "server": ("fake-google", 80),
    }
    sent = False
    status = 500
    out_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            for key, value in message.get("headers", []):
                out_headers[key.decode("latin-1").lower()] = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, out_headers, b"".join(chunks)


def routes(app_ref: list[ASGIApp]) -> list[Route]:
    """The batch routes; ``app_ref[0]`` is the app that answers the inner requests."""

    async def batch(request: Request) -> Response:
        try:
            parts = _parts(request.headers.get("content-type", ""), await request.body())
            if len(parts) > MAX_PARTS:
                raise bad_request(f"Too many requests in batch; the limit is {MAX_PARTS}.")
        except Exception as exc:
            from .errors import GoogleError

            if isinstance(exc, GoogleError):
                return Response(
                    exc.to_bytes(), exc.code, media_type="application/json; charset=UTF-8"
                )
            raise
        outer = {
            k: v
            for k, v in request.headers.items()
            if not k.startswith("content-")
            and k not in {"host", "content-length", "transfer-encoding"}
        }
        boundary = "batch_" + secrets.token_hex(12)
        pieces: list[bytes] = []
        client_host = request.client.host if request.client else "127.0.0.1"
        for part_headers, payload in parts:
            head, _, inner_body = _split_head(payload)
            lines = head.decode("latin-1").splitlines()
            request_line = lines[0].split() if lines else []
            if len(request_line) < 2:
                status, headers, content = (
                    400,
                    {"content-type": "application/json"},
                    json.dumps(bad_request("Malformed batch part").body()).encode(),
                )
            else:
                inner_headers = dict(outer)
                inner_headers.update(_headers("\n".join(lines[1:]).encode("latin-1")))
                inner_headers.pop("content-length", None)
                inner_headers["content-length"] = str(len(inner_body))
                status, headers, content = await _call(
                    app_ref[0],
                    request_line[0],
                    request_line[1],
                    inner_headers,
                    inner_body,
                    client_host,
                )
            content_id = part_headers.get("content-id", "")
            response_id = f"<response-{content_id.strip('<>')}>" if content_id else ""
            head_lines = [f"--{boundary}", "Content-Type: application/http"]
            if response_id:
                head_lines.append(f"Content-ID: {response_id}")
            head_lines += ["", f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
            head_lines += [
                f"{k.title()}: {v}" for k, v in headers.items() if k not in {"content-length"}
            ]
            head_lines += [f"Content-Length: {len(content)}", "", ""]
            pieces.append("\r\n".join(head_lines).encode("latin-1") + content + b"\r\n")
        pieces.append(f"--{boundary}--\r\n".encode())
        return Response(b"".join(pieces), 200, media_type=f"multipart/mixed; boundary={boundary}")

    return [
        Route("/batch/gmail/v1", batch, methods=["POST"]),
        Route("/batch", batch, methods=["POST"]),
    ]
