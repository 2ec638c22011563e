"""``GET /metrics`` of a running service: process counters and histograms next to the
scrape-time gauges (accounts by owner, first indexes, event-log backlog, outbox)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailgate.backends.imap.client import ImapClient, ImapTimeouts
from mailgate.runtime import metrics
from tests.conftest import MailUser
from tests.integration.helpers import imap_account, wait_for, wait_state
from tests.servers.dovecot import Dovecot
from tests.servers.mailgate import MailgateProcess

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(mailgate: MailgateProcess, token: str) -> Samples:
    with mailgate.client(token=token) as http:
        resp = http.get("/metrics")
    assert resp.status_code == 200, resp.text
    out: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def values(samples: Samples, name: str, **labels: str) -> list[float]:
    """Every sample called ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return [v for (n, lab), v in samples.items() if n == name and want <= set(lab)]


def one(samples: Samples, name: str, **labels: str) -> float:
    found = values(samples, name, **labels)
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_metrics_after_connecting_accounts(
    mailgate: MailgateProcess,
    dovecot: Dovecot,
    user_factory: Callable[..., MailUser],
) -> None:
    token = mailgate.issue_token("--scope", "metrics")
    user = user_factory("metrics")
    good = f"metrics-{uuid.uuid4().hex[:6]}"
    bad = f"metrics-bad-{uuid.uuid4().hex[:6]}"
    with mailgate.client() as http:
        # held back deliveries keep this account's events in the event log
        assert http.put("/v1/settings/queue/notify", json={"paused": True}).status_code == 200
        try:
            body = imap_account(good, user.name, user.password, dovecot.host, dovecot.imap_port)
            assert http.post("/v1/account", json=body).status_code == 200
            wrong = imap_account(
                bad, user.name, "not-the-password", dovecot.host, dovecot.imap_port
            )
            assert http.post("/v1/account", json=wrong).status_code == 200
            wait_state(http, good, "connected", timeout=60)
            wait_state(http, bad, "authenticationError", timeout=60)

            def backlog() -> Samples | None:
                got = scrape(mailgate, token)
                behind = one(got, "mailgate_event_log_undelivered") >= 1
                aged = one(got, "mailgate_event_log_oldest_undelivered_seconds") > 0
                owned = max(values(got, "mailgate_node_accounts"), default=0) >= 2
                return got if behind and aged and owned else None

            found = wait_for(backlog, timeout=30, what="backlog and owner in /metrics")
            assert found is not None
            samples = found
        finally:
            http.put("/v1/settings/queue/notify", json={"paused": False})
            for account in (good, bad):
                http.delete(f"/v1/account/{account}")

    # connection attempts and failures, fed by the runners
    assert one(samples, "mailgate_connection_attempts_total", backend="imap") >= 2
    assert one(samples, "mailgate_connection_failures_total", backend="imap", reason="auth") >= 1
    # IMAP command latency: commands the watcher sent, never IDLE
    commands = {
        dict(labels)["command"]: value
        for (name, labels), value in samples.items()
        if name == "mailgate_imap_command_seconds_count"
    }
    assert commands.get("LOGIN", 0) >= 1
    assert sum(commands.get(c, 0) for c in ("SELECT", "EXAMINE", "LIST", "UID FETCH")) > 0
    assert "IDLE" not in commands
    assert one(samples, "mailgate_imap_command_seconds_sum", command="LOGIN") > 0
    # accounts by owner (the single process of the session owns both)
    assert one(samples, "mailgate_nodes") >= 1
    assert one(samples, "mailgate_accounts_owned") >= 2
    # index progress, webhook queue, event log, outbox
    assert one(samples, "mailgate_accounts_first_index") >= 0
    assert one(samples, "mailgate_webhook_queue_accounts") >= 1
    assert one(samples, "mailgate_webhook_queue_lag_seconds") >= 0
    for result in ("completed", "failed", "skipped"):
        assert one(samples, "mailgate_webhook_events_total", result=result) >= 0
    assert one(samples, "mailgate_outbox_jobs", state="waiting") >= 0
    assert one(samples, "mailgate_outbox_oldest_due_seconds") >= 0
    assert one(samples, "mailgate_outbox_jobs_retrying") >= 0
    assert one(samples, "mailgate_outbox_attempts_made") >= 0
    # the process collector
    assert one(samples, "process_resident_memory_bytes") > 0


async def test_imap_latency_observed_at_tagged_response(dovecot: Dovecot, mail_user: Any) -> None:
    metrics.install()

    def count(command: str) -> float:
        return (
            metrics.REGISTRY.get_sample_value(
                "mailgate_imap_command_seconds_count", {"command": command}
            )
            or 0.0
        )

    before = {c: count(c) for c in ("LOGIN", "NOOP", "SELECT", "IDLE")}
    client = await ImapClient.connect(
        dovecot.host,
        dovecot.imap_port,
        secure=False,
        starttls=False,
        timeouts=ImapTimeouts(connect=5, greeting=5, command=10, idle=60, logout=2),
    )
    try:
        await client.login(mail_user.name, mail_user.password)
        await client.select("INBOX")
        await client.noop()
        await client.noop()
        await client.idle(0.2)
    finally:
        await client.logout()
    assert count("LOGIN") == before["LOGIN"] + 1
    assert count("SELECT") == before["SELECT"] + 1
    assert count("NOOP") == before["NOOP"] + 2
    assert count("IDLE") == before["IDLE"] == 0
