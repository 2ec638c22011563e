"""The dashboard: accounts by state, first indexes under way, webhook queue, outbox, Redis."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from mailgate.api.admin.auth import AdminSession, admin_router, container_of, show
from mailgate.services.admin_overview import AdminOverview

router = admin_router()


@router.get("")
@router.get("/")
async def dashboard(request: Request, session: AdminSession) -> Response:
    c = container_of(request)
    default_indexer = str(await c.settings.get("imapIndexer") or "full")
    outbox = await c.sending.submit.outbox.counts() if c.sending is not None else None
    overview = AdminOverview(c.redis, c.accounts, c.stats)
    data = await overview.dashboard(default_indexer=default_indexer, outbox=outbox)
    return await show(request, session, "dashboard.html", d=data, default_indexer=default_indexer)
