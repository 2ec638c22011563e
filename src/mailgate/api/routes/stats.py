"""``GET /v1/stats`` and the Prometheus ``GET /metrics``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from mailgate.api.auth import InstanceToken, authenticate
from mailgate.api.deps import ContainerDep, get_container
from mailgate.runtime import metrics as process_metrics
from mailgate.runtime.container import Container
from mailgate.store.tokens import TokenRecord

router = APIRouter(tags=["Stats"])

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def require_metrics_token(
    request: Request, container: Annotated[Container, Depends(get_container)]
) -> TokenRecord:
    return await authenticate(request, container, "metrics")


@router.get("/v1/stats", summary="Return server stats")
async def stats(c: ContainerDep, _token: InstanceToken) -> dict[str, Any]:
    return await c.stats.stats()


@router.get("/metrics", summary="Prometheus metrics (token with the metrics scope)")
async def metrics(
    c: ContainerDep, _token: Annotated[TokenRecord, Depends(require_metrics_token)]
) -> Response:
    runners = len(c.supervisor.runners) if c.supervisor is not None else 0
    body = await c.stats.metrics(runners=runners, extra=(process_metrics.REGISTRY,))
    return Response(body, media_type=PROMETHEUS_CONTENT_TYPE)
