"""Fault tests for the foundation: mail server down and back, service restarts, SIGTERM."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable, Iterator

import pytest

from tests.integration.helpers import imap_account, wait_state
from tests.servers.dovecot import Dovecot, make_base_dir, start_dovecot
from tests.servers.mailgate import MailgateProcess

pytestmark = [pytest.mark.integration, pytest.mark.fault]


@pytest.fixture
def own_dovecot() -> Iterator[Dovecot]:
    """A private Dovecot this test may stop and start without disturbing the others."""
    base = make_base_dir("mg-dovecot-fault-")
    dc = start_dovecot(base, {"dave": "dave-secret"})
    yield dc
    dc.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_server_down_gives_connect_error_then_recovers(
    own_dovecot: Dovecot, mailgate: MailgateProcess
) -> None:
    body = imap_account(
        "fault-down", "dave", "dave-secret", own_dovecot.host, own_dovecot.imap_port
    )
    with mailgate.client() as http:
        assert http.post("/v1/account", json=body).status_code == 200
        wait_state(http, "fault-down", "connected")
        own_dovecot.stop()
        info = wait_state(http, "fault-down", "connectError", timeout=30)
        assert info["lastError"]["response"]
        # API calls fail cleanly while the server is away
        resp = http.get("/v1/account/fault-down/mailboxes")
        assert resp.status_code == 503
        assert resp.json()["code"] == "ConnectionError"
        own_dovecot.start()
        wait_state(http, "fault-down", "connected", timeout=45)
        assert http.get("/v1/account/fault-down/mailboxes").status_code == 200
        http.delete("/v1/account/fault-down")


def test_embedded_redis_keeps_accounts_and_tokens_across_restart(
    mailgate_factory: Callable[..., MailgateProcess], dovecot: Dovecot
) -> None:
    mg = mailgate_factory()  # no REDIS_URL: the service starts its own embedded Redis
    assert (mg.data / "redis" / "redis.sock").exists()
    user = "alice"
    body = imap_account("persist", user, dovecot.users[user], dovecot.host, dovecot.imap_port)
    with mg.client() as http:
        assert http.post("/v1/account", json=body).status_code == 200
        wait_state(http, "persist", "connected")
    # a token issued by the CLI while the service runs works at once
    live_token = mg.issue_token("--scope", "api", "--description", "while running")
    with mg.client(token=live_token) as http:
        assert http.get("/v1/account/persist").status_code == 200

    mg.stop()
    # the CLI works against the data directory while the service is down, too
    offline_token = mg.issue_token("--scope", "api")
    mg.start()
    for token in (mg.token, live_token, offline_token):
        with mg.client(token=token) as http:
            info = wait_state(http, "persist", "connected")
            assert info["imap"]["auth"]["pass"] == "******"


def test_sigterm_stops_quickly_and_logs_out(
    mailgate_factory: Callable[..., MailgateProcess], dovecot: Dovecot
) -> None:
    mg = mailgate_factory()
    body = imap_account("term", "bob", dovecot.users["bob"], dovecot.host, dovecot.imap_port)
    with mg.client() as http:
        http.post("/v1/account", json=body)
        wait_state(http, "term", "connected")
    started = time.monotonic()
    code = mg.stop(timeout=20)
    elapsed = time.monotonic() - started
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly
    assert code in (0, -signal.SIGTERM), mg.log_tail()
    assert elapsed < 10, f"shutdown took {elapsed:.1f}s"
    log = mg.log_path.read_text()
    assert "mailgate stopped" in log
    assert "embedded redis stopped" in log


def test_wrong_secret_is_refused_clearly(
    mailgate_factory: Callable[..., MailgateProcess], tmp_path_factory: pytest.TempPathFactory
) -> None:
    mg = mailgate_factory()
    mg.stop()
    other = MailgateProcess(mg.data, secret="a-different-secret", issue_token=False)
    with pytest.raises(RuntimeError, match="MAILGATE_SECRET"):
        other.start()
