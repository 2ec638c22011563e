"""Gmail's media upload protocols for insert / import / send / drafts.

Follows "Uploading attachments" (https://developers.google.com/workspace/gmail/api/guides/uploads)
and the ``mediaUpload`` sections of ``gmail.v1.json`` (``/upload/gmail/v1/users/{userId}/…``):

- ``uploadType=media``: the body is the RFC 822 message;
- ``uploadType=multipart``: ``multipart/related``, JSON metadata first, then the message
  (``Content-Transfer-Encoding: binary`` or ``base64``);
- ``uploadType=resumable``: a first request with the metadata answers ``Location`` with an
  ``upload_id``; chunks are PUT there with ``Content-Range``; incomplete uploads answer 308 with
  ``Range``; the last chunk runs the method.

Without ``uploadType`` the message travels as base64url ``raw`` in the JSON body.
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from .errors import bad_request
from .util import b64url_decode, split_head

if TYPE_CHECKING:
    from .gmail_api import Call

_resumable: dict[str, dict[str, Any]] = {}


def _split_multipart(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    boundary = ""
    for piece in content_type.split(";")[1:]:
        key, _, value = piece.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        raise bad_request("Missing multipart boundary")
    delimiter = b"--" + boundary.encode()
    parts: list[tuple[dict[str, str], bytes]] = []
    for piece in body.split(delimiter)[1:]:
        if piece.startswith(b"--"):
            break
        head, content = split_head(piece[2:] if piece.startswith(b"\r\n") else piece.lstrip(b"\n"))
        if content.endswith(b"\r\n"):
            content = content[:-2]
        elif content.endswith(b"\n"):
            content = content[:-1]
        headers = {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("content-transfer-encoding", "").lower() == "base64":
            content = b64url_decode(content.decode("ascii"))
        parts.append((headers, content))
    return parts


def media(call: Call, nested: str | None = None) -> tuple[dict[str, Any], bytes | None]:
    """(metadata, raw message) of an insert/import/send/draft request, uploaded or JSON."""
    upload_type = call.q("uploadType")
    if upload_type == "media":
        return {}, call.body
    if upload_type == "multipart":
        parts = _split_multipart(call.request.headers.get("content-type", ""), call.body)
        if not parts:
            raise bad_request("Empty multipart body")
        metadata = json.loads(parts[0][1] or b"{}") if len(parts) > 1 else {}
        return metadata, parts[-1][1]
    if upload_type == "resumable":
        session = _resumable.pop(call.q("upload_id") or "", None)
        if session is None:
            raise bad_request("Invalid upload_id")
        return session["metadata"], bytes(session["data"])
    metadata = call.json()
    container = metadata.get(nested, {}) if nested else metadata
    raw = container.get("raw") if isinstance(container, dict) else None
    return metadata, (b64url_decode(raw) if raw else None)


async def resumable_step(request: Request, path_upload: str) -> Response | None:
    """Handle the session-start and incomplete-chunk steps of a resumable upload."""
    if request.query_params.get("uploadType") != "resumable":
        return None
    upload_id = request.query_params.get("upload_id")
    if upload_id is None:
        body = await request.body()
        upload_id = secrets.token_urlsafe(16)
        _resumable[upload_id] = {
            "metadata": json.loads(body) if body.strip() else {},
            "data": bytearray(),
        }
        location = f"{request.url.scheme}://{request.url.netloc}{path_upload}?uploadType=resumable&upload_id={upload_id}"
        return Response(b"", 200, {"Location": location, "X-GUploader-UploadID": upload_id})
    session = _resumable.get(upload_id)
    if session is None:
        return Response(b"", 404)
    chunk = await request.body()
    session["data"].extend(chunk)
    content_range = request.headers.get("content-range", "")
    total = content_range.rpartition("/")[2]
    if total in {"", "*"} or len(session["data"]) < int(total):
        end = len(session["data"]) - 1
        headers = {"Range": f"bytes=0-{end}"} if end >= 0 else {}
        return Response(b"", 308, headers)
    return None
