"""The pure parts of the process metrics (runtime/metrics.py) and the scrape-time helpers."""

from __future__ import annotations

import ssl

import pytest

from mailgate.errors import (
    AuthenticationError,
    CommandError,
    ConfigError,
    ConnectError,
    ProtocolError,
)
from mailgate.runtime import metrics
from mailgate.services.stats import age_seconds, stream_id_ms


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("SELECT", "SELECT"),
        ("select", "SELECT"),
        ("UID FETCH", "UID FETCH"),
        ("UID SEARCH", "UID SEARCH"),
        ("AUTHENTICATE PLAIN", "AUTHENTICATE"),
        ("AUTHENTICATE XOAUTH2", "AUTHENTICATE"),
        ("NOTIFY", "NOTIFY"),
        ("X-GM-EXT-1", "OTHER"),
        ("UID XYZZY", "OTHER"),
        ("UID", "OTHER"),
        ("", "OTHER"),
        ("IDLE", None),
        ("idle", None),
    ],
)
def test_imap_command_label(name: str, label: str | None) -> None:
    assert metrics.imap_command_label(name) == label


def test_command_labels_are_bounded() -> None:
    labels = {metrics.imap_command_label(f"CMD{i}") for i in range(1000)}
    assert labels == {"OTHER"}


def _raised_from(exc: Exception, cause: BaseException) -> Exception:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (AuthenticationError("LOGIN failed"), "auth"),
        (ConfigError("no auth.user"), "config"),
        (_raised_from(ConnectError("TLS handshake failed"), ssl.SSLError(1, "bad cert")), "tls"),
        (
            _raised_from(
                ConnectError("STARTTLS handshake failed"),
                ssl.SSLCertVerificationError(1, "certificate verify failed"),
            ),
            "tls",
        ),
        (_raised_from(ConnectError("timed out connecting"), TimeoutError()), "timeout"),
        (ConnectError("timed out after 10s waiting for LOGIN"), "timeout"),
        (_raised_from(ConnectError("cannot connect"), ConnectionRefusedError()), "connect"),
        (ConnectError("server closed the connection"), "connect"),
        (ProtocolError("unexpected greeting"), "protocol"),
        (ConnectionResetError(), "connect"),
        (CommandError("ENABLE failed", status="NO"), "other"),
        (RuntimeError("a bug"), "other"),
    ],
)
def test_failure_reason(exc: Exception, reason: str) -> None:
    assert metrics.failure_reason(exc) == reason
    assert reason in metrics.FAILURE_REASONS


def test_backend_label() -> None:
    class ImapWatcher: ...

    class GraphWatcher: ...

    class Watcher: ...

    assert metrics.backend_label(ImapWatcher()) == "imap"
    assert metrics.backend_label(GraphWatcher()) == "graph"
    assert metrics.backend_label(Watcher()) == "other"


def _sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_observe_imap_command_skips_idle_and_maps_unknown() -> None:
    before_noop = _sample("mailgate_imap_command_seconds_count", command="NOOP")
    before_other = _sample("mailgate_imap_command_seconds_count", command="OTHER")
    metrics.observe_imap_command("NOOP", 0.002)
    metrics.observe_imap_command("NOOP", 0.004)
    metrics.observe_imap_command("IDLE", 1700.0)
    metrics.observe_imap_command("XLIST", 0.01)
    assert _sample("mailgate_imap_command_seconds_count", command="NOOP") == before_noop + 2
    assert _sample("mailgate_imap_command_seconds_count", command="OTHER") == before_other + 1
    assert metrics.REGISTRY.get_sample_value(
        "mailgate_imap_command_seconds_count", {"command": "IDLE"}
    ) in (None, 0.0)


async def test_count_connection_counts_attempts_and_failures() -> None:
    attempts = _sample("mailgate_connection_attempts_total", backend="unit")
    auth = _sample("mailgate_connection_failures_total", backend="unit", reason="auth")

    async def ok() -> None:
        return None

    async def refused() -> None:
        raise AuthenticationError("LOGIN failed")

    await metrics.count_connection("unit", ok())
    with pytest.raises(AuthenticationError):
        await metrics.count_connection("unit", refused())
    assert _sample("mailgate_connection_attempts_total", backend="unit") == attempts + 2
    assert _sample("mailgate_connection_failures_total", backend="unit", reason="auth") == auth + 1


def test_age_and_stream_time() -> None:
    assert stream_id_ms("1700000000123-4") == 1700000000123
    assert stream_id_ms("1700000000123") == 1700000000123
    assert age_seconds(None, 5000) == 0.0
    assert age_seconds(2000, 5000) == 3.0
    assert age_seconds(9000, 5000) == 0.0  # due in the future: not late
