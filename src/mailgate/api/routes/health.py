"""``/health`` (is this process alive and its Redis reachable) and ``/ready``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from mailgate import __version__
from mailgate.api.deps import ContainerDep
from mailgate.errors import StoreError
from mailgate.store.redis import ping

router = APIRouter(tags=["Health"])


@router.get("/health", summary="Health check")
async def health(c: ContainerDep) -> JSONResponse:
    checks: dict[str, object] = {"version": __version__}
    ok = True
    try:
        await ping(c.redis)
        checks["redis"] = True
    except StoreError:
        checks["redis"] = False
        ok = False
    supervisor = c.supervisor
    if supervisor is not None and supervisor.run_accounts:
        checks["runners"] = len(supervisor.runners)
        checks["supervisor"] = supervisor.ready
        ok = ok and supervisor.ready
    checks["success"] = ok
    return JSONResponse(checks, status_code=200 if ok else 503)


@router.get("/ready", summary="Readiness check")
async def ready(c: ContainerDep) -> JSONResponse:
    return await health(c)
