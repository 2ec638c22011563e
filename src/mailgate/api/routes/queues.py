"""Queue routes: ``GET/PUT /v1/settings/queue/{queue}`` (EmailEngine's queue counters).

``notify`` is the webhook delivery queue (services/webhooks). ``submit`` and ``documents`` answer
with zero counters until mailgate has those queues; pausing is stored for every queue name.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from mailgate.api.auth import InstanceToken
from mailgate.api.deps import ContainerDep
from mailgate.services.webhooks import NOTIFY_QUEUE, WebhookQueue

router = APIRouter(prefix="/v1", tags=["Settings"])

QueueId = Literal["notify", "submit", "documents"]


class QueuePause(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paused: bool | None = None


@router.get(
    "/settings/queue/{queue}",
    summary="Show queue information",
    description="Show queue status and current state",
)
async def get_queue(queue: QueueId, c: ContainerDep, _token: InstanceToken) -> dict[str, Any]:
    q = WebhookQueue(c.redis)
    if queue == NOTIFY_QUEUE:
        return await q.stats()
    return {
        "queue": queue,
        "jobs": {"active": 0, "delayed": 0, "paused": 0, "waiting": 0},
        "paused": await q.paused(queue),
    }


@router.put(
    "/settings/queue/{queue}", summary="Set queue settings", description="Set queue settings"
)
async def put_queue(
    queue: QueueId, body: QueuePause, c: ContainerDep, _token: InstanceToken
) -> dict[str, Any]:
    q = WebhookQueue(c.redis)
    if body.paused is not None:
        await q.set_paused(body.paused, queue)
    return {"queue": queue, "paused": await q.paused(queue)}
