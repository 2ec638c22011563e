"""The Graph subscription lifetime: typed configuration (``MAILGATE_GRAPH_SUBSCRIPTION_LIFETIME``)
→ ``BackendOptions`` → the watcher, which reads no environment itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from mailgate.backends.graph import watcher as w
from mailgate.backends.registry import BackendOptions, GraphRuntime, build_graph_watcher
from mailgate.domain.account import AccountRecord
from mailgate.runtime.config import Config

ENV = "MAILGATE_GRAPH_SUBSCRIPTION_LIFETIME"


def test_configured_lifetime() -> None:
    assert w.configured_lifetime(None) == w.SUBSCRIPTION_LIFETIME
    assert w.configured_lifetime(0) == w.configured_lifetime(-5) == w.SUBSCRIPTION_LIFETIME
    assert w.configured_lifetime(8) == timedelta(seconds=8)
    assert w.configured_lifetime(10**9) == w.MAX_LIFETIME


def test_config_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert Config().graph_subscription_lifetime is None
    monkeypatch.setenv(ENV, "8")
    assert Config().graph_subscription_lifetime == 8.0
    for bad in ("x", "0", "-5"):
        monkeypatch.setenv(ENV, bad)
        with pytest.raises(ValidationError):
            Config()


def test_watcher_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    def watcher(**kw: timedelta) -> w.GraphWatcher:
        return w.GraphWatcher("a", None, None, None, None, **kw)  # type: ignore[arg-type]

    monkeypatch.setenv(ENV, "8")
    assert watcher().lifetime == w.SUBSCRIPTION_LIFETIME
    assert watcher().renew_margin == w.RENEW_MARGIN
    eight = watcher(lifetime=timedelta(seconds=8))
    assert eight.renew_margin == timedelta(seconds=2)  # a quarter of 8 s
    assert watcher(lifetime=timedelta(days=30)).lifetime == w.MAX_LIFETIME
    short = watcher(lifetime=timedelta(minutes=20), renew_margin=timedelta(minutes=1))
    assert (short.lifetime, short.renew_margin) == (timedelta(minutes=20), timedelta(minutes=1))


class Apps:
    async def load(self, app_id: str) -> dict[str, Any]:
        return {"provider": "outlook", "baseScopes": "api", "apiUrl": "http://127.0.0.1:9"}


async def test_backend_options_reach_the_watcher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    record = AccountRecord(account="g1", oauth2={"provider": "app1", "auth": {"user": "u@x"}})

    async def nothing() -> Any:
        return None

    runtime = GraphRuntime(redis=None, sync_options=nothing, service_url=nothing)  # type: ignore[arg-type]

    async def lifetime(seconds: float | None) -> timedelta:
        options = BackendOptions(
            tokens=object(),  # type: ignore[arg-type]
            apps=Apps(),
            graph_subscription_lifetime=seconds,
        )
        made = await build_graph_watcher(record, options, runtime, None)
        assert isinstance(made, w.GraphWatcher)
        return made.lifetime

    assert await lifetime(8.0) == timedelta(seconds=8)
    assert await lifetime(None) == w.SUBSCRIPTION_LIFETIME
