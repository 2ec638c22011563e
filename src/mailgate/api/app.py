"""The FastAPI application: routes, error handlers, and the process lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from mailgate import __version__
from mailgate.api.admin import install_admin
from mailgate.api.errors import install_error_handlers
from mailgate.api.routes import (
    accounts,
    autoconfig,
    blocklists,
    changes,
    delivery_test,
    deprecated,
    exports,
    gateways,
    graph_notifications,
    health,
    hosted,
    license,
    logs,
    mailboxes,
    messages,
    oauth2,
    outbox,
    pubsub,
    queues,
    settings,
    signatures,
    stats,
    submit,
    templates,
    tokens,
    webhook_routes,
)
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
        # every long-lived task of the process, owned here and stopped together
        tasks: list[asyncio.Task[None]] = []
        if c.supervisor is not None:
            tasks.append(asyncio.create_task(c.supervisor.run(), name="supervisor"))
        if c.sending is not None and c.sending.worker is not None:
            tasks.append(asyncio.create_task(c.sending.worker.run(), name="outbox-worker"))
        if c.webhooks is not None:
            tasks.append(asyncio.create_task(c.webhooks.run(), name="webhook-worker"))
        log.info(
            "mailgate started", version=__version__, roles=sorted(r.value for r in config.roles)
        )
        try:
            yield
        finally:
            log.info("mailgate stopping")
            for task in tasks:
                task.cancel()
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=config.shutdown_timeout)
                if pending:
                    log.warning("tasks did not stop in time", tasks=[t.get_name() for t in pending])
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
    for module in (health, accounts, mailboxes, tokens, settings, stats, queues):
        app.include_router(module.router)
    app.include_router(messages.router)
    app.include_router(messages.multi)
    for sending_module in (submit, outbox, gateways, templates):
        app.include_router(sending_module.router)
    app.include_router(oauth2.router)  # OAuth2 apps, oauth-token, authentication/form
    app.include_router(hosted.router)  # /oauth and /accounts/new pages
    app.include_router(graph_notifications.router)  # Microsoft Graph change notifications
    install_admin(app)  # /admin web UI and its static files
    # EmailEngine's smaller operations (licence, autoconfig, change stream, logs, blocklists...)
    for extra in (
        license,
        autoconfig,
        changes,
        logs,
        webhook_routes,
        blocklists,
        signatures,
        delivery_test,
        exports,
        deprecated,
        pubsub,
    ):
        app.include_router(extra.router)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_json() -> JSONResponse:
        return JSONResponse(app.openapi())

    return app
