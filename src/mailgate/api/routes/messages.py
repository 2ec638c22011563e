"""Message routes: the contract's "Message" and "Multi Message Actions" groups."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import msgspec
from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from mailgate.api.auth import ApiToken
from mailgate.api.deps import ContainerDep
from mailgate.backends.base import Download, PageRequest, ReadOptions
from mailgate.services.message_inputs import (
    MAX_PATH,
    MessageMoveIn,
    MessagesDeleteIn,
    MessagesMoveIn,
    MessagesUpdateIn,
    MessageUpdateIn,
    MessageUploadIn,
    SearchIn,
)

router = APIRouter(prefix="/v1/account/{account}", tags=["Message"])
multi = APIRouter(prefix="/v1/account/{account}", tags=["Multi Message Actions"])

MAX_PAGE = 1048576
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 1000
MAX_TEXT_BYTES = 2**31 - 1
_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f"\\]')


def content_disposition(filename: str | None, default: str = "attachment") -> str:
    """``attachment; filename=...`` with an RFC 6266 ``filename*`` for non-ASCII names."""
    name = _UNSAFE_FILENAME.sub("_", filename or default)
    fallback = name.encode("ascii", "replace").decode("ascii").replace("?", "_")
    value = f'attachment; filename="{fallback}"'
    if fallback != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


def stream(download: Download) -> StreamingResponse:
    aclose = getattr(download.chunks, "aclose", None)
    return StreamingResponse(
        download.chunks,
        media_type=download.content_type,
        headers={"Content-Disposition": content_disposition(download.filename)},
        background=BackgroundTask(aclose) if aclose is not None else None,
    )


def reply(data: dict[str, Any]) -> Response:
    """JSON encoded with msgspec: a page of 20 summaries in ~10 µs (FastAPI's encoder: ~1 ms)."""
    return Response(msgspec.json.encode(data), media_type="application/json")


def _paging(page: int, page_size: int, cursor: str | None) -> PageRequest:
    return PageRequest(page=page, page_size=page_size, cursor=cursor or None)


PageQ = Query(0, ge=0, le=MAX_PAGE)
PageSizeQ = Query(DEFAULT_PAGE_SIZE, alias="pageSize", ge=1, le=MAX_PAGE_SIZE)
CursorQ = Query(None, max_length=1024)


@router.get("/messages", summary="List messages in a folder")
async def list_messages(
    account: str,
    c: ContainerDep,
    _token: ApiToken,
    path: str = Query(..., min_length=1, max_length=MAX_PATH),
    cursor: str | None = CursorQ,
    page: int = PageQ,
    page_size: int = PageSizeQ,
) -> Response:
    return reply(
        await c.message_service.list_messages(account, path, _paging(page, page_size, cursor))
    )


@router.post("/search", summary="Search for messages")
async def search(
    account: str,
    body: SearchIn,
    c: ContainerDep,
    _token: ApiToken,
    path: str | None = Query(None, max_length=MAX_PATH),
    cursor: str | None = CursorQ,
    page: int = PageQ,
    page_size: int = PageSizeQ,
) -> Response:
    return reply(
        await c.message_service.search(account, path, body.search, _paging(page, page_size, cursor))
    )


@router.get("/message/{message}", summary="Get message information")
async def get_message(
    account: str,
    message: str,
    c: ContainerDep,
    _token: ApiToken,
    max_bytes: int | None = Query(None, alias="maxBytes", ge=0, le=MAX_TEXT_BYTES),
    text_type: str | None = Query(None, alias="textType", max_length=8),
    web_safe_html: bool = Query(False, alias="webSafeHtml"),
    embed_attached_images: bool = Query(False, alias="embedAttachedImages"),
    pre_process_html: bool = Query(False, alias="preProcessHtml"),
    mark_as_seen: bool = Query(False, alias="markAsSeen"),
) -> Response:
    options = ReadOptions(
        text_type=text_type,
        max_bytes=max_bytes,
        web_safe_html=web_safe_html,
        embed_attached_images=embed_attached_images,
        pre_process_html=pre_process_html,
        mark_as_seen=mark_as_seen,
    )
    return reply(await c.message_service.get_message(account, message, options))


@router.get("/message/{message}/source", summary="Download raw message")
async def message_source(
    account: str, message: str, c: ContainerDep, _token: ApiToken
) -> StreamingResponse:
    return stream(await c.message_service.source(account, message))


@router.get("/attachment/{attachment}", summary="Download attachment")
async def download_attachment(
    account: str, attachment: str, c: ContainerDep, _token: ApiToken
) -> StreamingResponse:
    return stream(await c.message_service.attachment(account, attachment))


@router.get("/text/{text}", summary="Retrieve message text")
async def get_text(
    account: str,
    text: str,
    c: ContainerDep,
    _token: ApiToken,
    max_bytes: int | None = Query(None, alias="maxBytes", ge=0, le=MAX_TEXT_BYTES),
    text_type: str = Query("*", alias="textType", max_length=8),
    web_safe_html: bool = Query(False, alias="webSafeHtml"),
) -> Response:
    return reply(
        await c.message_service.get_text(
            account, text, text_type=text_type, max_bytes=max_bytes, web_safe_html=web_safe_html
        )
    )


@router.put("/message/{message}", summary="Update message")
async def update_message(
    account: str, message: str, body: MessageUpdateIn, c: ContainerDep, _token: ApiToken
) -> Response:
    return reply(await c.message_service.update(account, message, body))


@router.put("/message/{message}/move", summary="Move a message to a specified folder")
async def move_message(
    account: str, message: str, body: MessageMoveIn, c: ContainerDep, _token: ApiToken
) -> Response:
    return reply(await c.message_service.move(account, message, body.path))


@router.delete("/message/{message}", summary="Delete message")
async def delete_message(
    account: str, message: str, c: ContainerDep, _token: ApiToken, force: bool = False
) -> Response:
    return reply(await c.message_service.delete(account, message, force=force))


@router.post("/message", summary="Upload message")
async def upload_message(
    account: str, body: MessageUploadIn, c: ContainerDep, _token: ApiToken
) -> Response:
    return reply(await c.message_service.upload(account, body))


@multi.put("/messages", summary="Update messages")
async def update_messages(
    account: str,
    body: MessagesUpdateIn,
    c: ContainerDep,
    _token: ApiToken,
    path: str = Query(..., min_length=1, max_length=MAX_PATH),
) -> Response:
    return reply(await c.message_service.update_many(account, path, body))


@multi.put("/messages/move", summary="Move messages")
async def move_messages(
    account: str,
    body: MessagesMoveIn,
    c: ContainerDep,
    _token: ApiToken,
    path: str = Query(..., min_length=1, max_length=MAX_PATH),
) -> Response:
    return reply(await c.message_service.move_many(account, path, body))


@multi.put("/messages/delete", summary="Delete messages")
async def delete_messages(
    account: str,
    body: MessagesDeleteIn,
    c: ContainerDep,
    _token: ApiToken,
    path: str = Query(..., min_length=1, max_length=MAX_PATH),
    force: bool = False,
) -> Response:
    return reply(await c.message_service.delete_many(account, path, body, force=force))
