"""Process-wide Prometheus metrics: counters and histograms of this process's own work.

``GET /metrics`` merges :data:`REGISTRY` into the gauges computed at scrape time from Redis
(:mod:`mailgate.services.stats`). Everything here is cheap enough for the hot paths that feed it:

- ``mailgate_connection_attempts_total{backend}`` and
  ``mailgate_connection_failures_total{backend,reason}``: account sessions opened by the
  runners of this process (:func:`count_connection` around ``Watcher.open``, every backend);
  ``reason`` is one of :data:`FAILURE_REASONS`.
- ``mailgate_imap_command_seconds{command}``: IMAP command latency, from writing a command to
  its tagged response, observed by the connection's reader (``backends/imap/connection.py``
  calls the observer :func:`install` sets). ``command`` is the upper-case command name from
  :data:`IMAP_COMMANDS`, anything else ``OTHER``; IDLE is never observed (its duration is a
  wait for mail, not a latency).
- ``process_*``: resident memory, CPU seconds, open files of this process.

Lower layers never import this module (``runtime`` is wiring): the IMAP connection exposes a
plain ``command_observer`` hook that :func:`install` fills in.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector

from mailgate.errors import AuthenticationError, ConfigError, ConnectError, ProtocolError

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

FAILURE_REASONS = ("auth", "tls", "timeout", "connect", "protocol", "config", "other")

#: Command names the latency histogram keeps apart; the rest share the label ``OTHER``.
IMAP_COMMANDS = frozenset(
    {
        "APPEND", "AUTHENTICATE", "CAPABILITY", "CLOSE", "COMPRESS", "COPY", "CREATE", "DELETE",
        "ENABLE", "EXAMINE", "EXPUNGE", "FETCH", "GETQUOTA", "GETQUOTAROOT", "ID", "LIST",
        "LOGIN", "LOGOUT", "LSUB", "MOVE", "NAMESPACE", "NOOP", "NOTIFY", "RENAME", "SEARCH",
        "SELECT", "STARTTLS", "STATUS", "STORE", "SUBSCRIBE", "UID COPY", "UID EXPUNGE",
        "UID FETCH", "UID MOVE", "UID SEARCH", "UID STORE", "UNSELECT", "UNSUBSCRIBE",
    }
)  # fmt: skip
NOT_OBSERVED = frozenset({"IDLE", "DONE"})  # waits for the server's news, not round trips
MAX_CACHED_NAMES = 256  # command spellings remembered by the observer (they come from code)

# round trips on loopback are sub-millisecond; a big FETCH or a slow server takes seconds
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0,
)  # fmt: skip

CONNECTION_ATTEMPTS = Counter(
    "mailgate_connection_attempts",
    "Account sessions (connect + login) opened by this process's runners",
    ["backend"],
    registry=REGISTRY,
)
CONNECTION_FAILURES = Counter(
    "mailgate_connection_failures",
    "Account sessions that failed to open, by reason",
    ["backend", "reason"],
    registry=REGISTRY,
)
IMAP_COMMAND_SECONDS = Histogram(
    "mailgate_imap_command_seconds",
    "IMAP command latency: command written to tagged response",
    ["command"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)


# --- pure helpers ---------------------------------------------------------------------------
def imap_command_label(name: str) -> str | None:
    """The histogram label of a command as sent (``"UID FETCH"``, ``"AUTHENTICATE PLAIN"``);
    None for the commands whose duration is not a latency (IDLE)."""
    words = name.upper().split()
    if not words:
        return "OTHER"
    head = " ".join(words[:2]) if words[0] == "UID" and len(words) > 1 else words[0]
    if head in NOT_OBSERVED:
        return None
    return head if head in IMAP_COMMANDS else "OTHER"


def backend_label(watcher: object) -> str:
    """``imap`` / ``gmail`` / ``graph`` from the watcher's class (``ImapWatcher`` ...)."""
    name = type(watcher).__name__.removesuffix("Watcher").lower()
    return name or "other"


def failure_reason(exc: BaseException) -> str:
    """Why a session did not open, as one of :data:`FAILURE_REASONS`."""
    if isinstance(exc, AuthenticationError):
        return "auth"
    if isinstance(exc, ConfigError):
        return "config"
    cause: BaseException | None = exc
    for _ in range(5):  # the foreign error a ConnectError was raised from
        if cause is None:
            break
        if isinstance(cause, ssl.SSLError):
            return "tls"
        if isinstance(cause, TimeoutError):
            return "timeout"
        cause = cause.__cause__
    if isinstance(exc, ProtocolError):
        return "protocol"
    if isinstance(exc, ConnectError):
        return "timeout" if str(exc).startswith("timed out") else "connect"
    if isinstance(exc, OSError):
        return "connect"
    return "other"


# --- feeding --------------------------------------------------------------------------------
async def count_connection(backend: str, opening: Awaitable[None]) -> None:
    """Await ``opening`` (a watcher's ``open()``), counting the attempt and any failure."""
    CONNECTION_ATTEMPTS.labels(backend=backend).inc()
    try:
        await opening
    except Exception as exc:
        CONNECTION_FAILURES.labels(backend=backend, reason=failure_reason(exc)).inc()
        raise


def _skip(_seconds: float) -> None:
    return None


_observers: dict[str, Callable[[float], None]] = {}


def observe_imap_command(name: str, seconds: float) -> None:
    """Record one command's latency (the hot path: one dict lookup and one observe)."""
    observe = _observers.get(name)
    if observe is None:
        label = imap_command_label(name)
        observe = _skip if label is None else IMAP_COMMAND_SECONDS.labels(command=label).observe
        if len(_observers) < MAX_CACHED_NAMES:
            _observers[name] = observe
    observe(seconds)


def install() -> None:
    """Feed the IMAP command histogram from every IMAP connection of this process."""
    from mailgate.backends.imap import connection

    connection.command_observer = observe_imap_command
