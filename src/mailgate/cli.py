"""The ``mailgate`` command: ``serve``, ``tokens issue``, ``password``, ``status``."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mailgate import __version__
from mailgate.errors import MailgateError
from mailgate.runtime.config import Config, Role
from mailgate.runtime.logging import configure_logging

app = typer.Typer(help="mailgate: a self-hosted email API gateway", no_args_is_help=True)
tokens_app = typer.Typer(help="Manage API access tokens", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")


def _config(**overrides: Any) -> Config:
    values = {k: v for k, v in overrides.items() if v is not None}
    return Config(**values)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address [env MAILGATE_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [env MAILGATE_PORT]")] = None,
    data: Annotated[Path | None, typer.Option(help="Data directory [env MAILGATE_DATA]")] = None,
    role: Annotated[
        list[Role] | None, typer.Option(help="Roles of this process (repeatable)")
    ] = None,
    max_accounts: Annotated[
        int | None, typer.Option(help="Most accounts this process runs")
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="Log level [env MAILGATE_LOG_LEVEL]")
    ] = None,
) -> None:
    """Start the service: HTTP API, account runners and workers (embedded Redis without REDIS_URL)."""
    import uvicorn

    from mailgate.api.app import create_app

    config = _config(
        host=host,
        port=port,
        data=data,
        roles=frozenset(role) if role else None,
        max_accounts=max_accounts,
        log_level=log_level,
    )
    configure_logging(config.log_level, config.log_format)
    config.data.mkdir(parents=True, exist_ok=True)
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=int(config.shutdown_timeout),
        lifespan="on",
    )


async def _issue(config: Config, scopes: list[str], account: str | None, description: str) -> str:
    from mailgate.runtime.container import open_redis
    from mailgate.store.tokens import TokenStore

    redis, embedded = await open_redis(config)
    try:
        token, _record = await TokenStore(redis).issue(
            scopes=scopes, account=account, description=description
        )
        return token
    finally:
        await redis.aclose()
        if embedded is not None:
            embedded.stop()


@tokens_app.command("issue")
def tokens_issue(
    account: Annotated[str | None, typer.Option(help="Bind the token to one account")] = None,
    scope: Annotated[list[str] | None, typer.Option(help="api, *, metrics (repeatable)")] = None,
    description: Annotated[str, typer.Option(help="What the token is for")] = "",
    data: Annotated[Path | None, typer.Option(help="Data directory [env MAILGATE_DATA]")] = None,
) -> None:
    """Print a new API token (works whether or not the service is running)."""
    scopes = scope or ["api"]
    allowed = {"*", "api", "metrics", "smtp", "imap-proxy"}
    bad = [s for s in scopes if s not in allowed]
    if bad:
        raise typer.BadParameter(f"unknown scope(s) {bad}; use one of {sorted(allowed)}")
    config = _config(data=data, log_level="warning")
    configure_logging("warning", config.log_format)
    try:
        token = asyncio.run(_issue(config, scopes, account, description))
    except MailgateError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(token)


async def _set_admin_password(config: Config, password: str) -> None:
    from mailgate.runtime.container import open_redis
    from mailgate.services.admin_auth import AdminAuth

    redis, embedded = await open_redis(config)
    try:
        await AdminAuth(redis).set_password(password)
    finally:
        await redis.aclose()
        if embedded is not None:
            embedded.stop()


@app.command()
def password(
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the password from the first line of stdin")
    ] = False,
    data: Annotated[Path | None, typer.Option(help="Data directory [env MAILGATE_DATA]")] = None,
) -> None:
    """Set the password of the admin web UI (/admin) and end its open sessions."""
    from mailgate.services.admin_auth import check_password_rules

    if stdin:
        new_password = sys.stdin.readline().rstrip("\r\n")
    else:
        new_password = typer.prompt("Admin password", hide_input=True, confirmation_prompt=True)
    config = _config(data=data, log_level="warning")
    configure_logging("warning", config.log_format)
    try:
        check_password_rules(new_password)
        asyncio.run(_set_admin_password(config, new_password))
    except MailgateError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo("admin password set; open sessions were signed out")


async def _status(config: Config) -> list[dict[str, str]]:
    from mailgate.runtime.container import open_redis
    from mailgate.store import keys
    from mailgate.store.leases import LeaseStore
    from mailgate.store.redis import str_map

    redis, embedded = await open_redis(config)
    try:
        leases = LeaseStore(redis, "cli")
        rows = []
        for node_id in await leases.live_nodes():
            rows.append({"node": node_id, **str_map(await redis.hgetall(keys.node(node_id)))})
        return rows
    finally:
        await redis.aclose()
        if embedded is not None:
            embedded.stop()


@app.command()
def status(
    data: Annotated[Path | None, typer.Option(help="Data directory [env MAILGATE_DATA]")] = None,
) -> None:
    """List the live mailgate processes: roles, accounts owned, last heartbeat (JSON lines)."""
    config = _config(data=data, log_level="warning")
    configure_logging("warning", config.log_format)
    try:
        rows = asyncio.run(_status(config))
    except MailgateError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for row in rows:
        typer.echo(json.dumps(row))


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(json.dumps({"mailgate": __version__, "python": sys.version.split()[0]}))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
