"""``GET /v1/pubsub/status``: the Pub/Sub apps Gmail API accounts receive push through.

EmailEngine's reply (``services/pubsub_status.py``: every ``baseScopes: "pubsub"`` app with its
``lastError`` / ``pubSubError``), with mailgate's additions per app: ``subscription`` holds the
pull loop's live facts (topic, subscription, last pull, notifications received, accounts
watching, last error) as the Gmail backend records them (``backends/gmail/pubsub.py``); a pull
error shows as ``pubSubError`` when the app has none of its own.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from mailgate.api.auth import InstanceToken
from mailgate.api.deps import ContainerDep
from mailgate.api.routes.available import need
from mailgate.backends.gmail.pubsub import puller_status
from mailgate.services.pubsub_status import pubsub_status

router = APIRouter(prefix="/v1", tags=["Pub/Sub"])

MAX_PAGE_SIZE = 1000


@router.get("/pubsub/status", summary="List Pub/Sub apps and their subscription status")
async def status(
    c: ContainerDep,
    _token: InstanceToken,
    page: int = Query(0, ge=0, le=1_000_000),
    pageSize: int = Query(20, ge=1, le=MAX_PAGE_SIZE),
) -> dict[str, Any]:
    out = await pubsub_status(need(c.oauth2, "OAuth2").apps, page, pageSize)
    pullers = await puller_status(c.redis)
    for app in out["apps"]:
        running = pullers.get(str(app.get("id")))
        if running is None:
            continue
        app["subscription"] = running
        if app.get("pubSubError") is None and running.get("lastError"):
            app["pubSubError"] = running["lastError"]
    return out
