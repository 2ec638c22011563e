"""``GET /v1/changes``: every account's events as a Server-Sent Events stream."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from mailgate.api.auth import ApiToken
from mailgate.api.deps import ContainerDep
from mailgate.api.routes.available import need

router = APIRouter(prefix="/v1", tags=["Account"])


@router.get(
    "/changes",
    summary="Stream state changes",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def changes(c: ContainerDep, token: ApiToken) -> StreamingResponse:
    """Events of every account (of the token's account only, for an account token)."""
    feed = need(c.changes, "The change stream")
    feed.reserve()
    return StreamingResponse(
        feed.stream(token.account),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
