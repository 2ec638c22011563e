"""The FastAPI application: routes, error handlers, and the process lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from mailgate import __version__
from mailgate.api.errors import install_error_handlers
from mailgate.api.routes import accounts, health, mailboxes, settings, tokens
from mailgate.runtime.config import Config
from mailgate.runtime.container import Container, build_container

log = structlog.get_logger("mailgate")

DESCRIPTION = (
    "mailgate: one REST API and one webhook stream over IMAP/SMTP, Gmail API and Microsoft Graph "
    "accounts. Compatible with EmailEngine's REST API v1."
)


def create_app(config: Config, container: Container | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = container is None
        c = container or await build_container(config)
        app.state.container = c
        supervisor_task: asyncio.Task[None] | None = None
        if c.supervisor is not None:
            supervisor_task = asyncio.create_task(c.supervisor.run(), name="supervisor")
        log.info(
            "mailgate started", version=__version__, roles=sorted(r.value for r in config.roles)
        )
        try:
            yield
        finally:
            log.info("mailgate stopping")
            if supervisor_task is not None:
                supervisor_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(supervisor_task, config.shutdown_timeout)
            if own:
                await c.close()
            log.info("mailgate stopped")

    app = FastAPI(
        title="mailgate",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/swagger.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for module in (health, accounts, mailboxes, tokens, settings):
        app.include_router(module.router)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_json() -> JSONResponse:
        return JSONResponse(app.openapi())

    return app
