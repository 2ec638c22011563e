"""Session-wide real servers for the tests: Dovecot, Redis, an SMTP capture and mailgate.

Every server starts lazily (only tests that ask for it pay) and once per session, on 127.0.0.1
and free ports. A server that does not start fails the test with its log tail (never a skip).

Fixtures
--------
smtp_capture          session  SmtpCapture; its messages and forced replies are cleared before
                               every test
oauth2_introspection  session  TokenIntrospection (RFC 7662 endpoint Dovecot's passdb oauth2 asks)
dovecot               session  Dovecot with users alice/bob/carol (passwords in DOVECOT_USERS),
                               relaying submission to smtp_capture, XOAUTH2 via
                               oauth2_introspection
user_factory          function make_user(prefix="user") -> MailUser: a fresh Dovecot user
mail_user             function one fresh MailUser
redis_server          session  RedisServer (own redis-server, AOF on)
redis_factory         function make_redis() -> RedisServer: a fresh private Redis per call
mailgate              session  MailgateProcess against redis_server, with a token
mailgate_factory      function make_mailgate(**kw) -> MailgateProcess, stopped after the test
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from tests.servers.dovecot import Dovecot, TokenIntrospection, make_base_dir, start_dovecot
from tests.servers.mailgate import MailgateProcess
from tests.servers.redis import RedisServer, start_redis
from tests.servers.redis_cluster import start_redis_cluster
from tests.servers.smtp import SmtpCapture, start_smtp_capture

DOVECOT_USERS: dict[str, str] = {
    "alice": "alice-secret",
    "bob": "bob-secret",
    "carol": "carol-secret",
}
KEEP_DIRS = os.environ.get("MAILGATE_TEST_KEEP") == "1"


@dataclass(frozen=True)
class MailUser:
    """A Dovecot user. ``email`` is a nominal address; mail reaches Dovecot via deliver()."""

    name: str
    password: str

    @property
    def email(self) -> str:
        return f"{self.name}@example.test"


# ---- log tails for failure reports ---------------------------------------------------------

# session servers by the fixture name that makes them
_SESSION_LOGS: dict[str, Callable[[], str]] = {}
_SMTP: SmtpCapture | None = None
_ITEM_LOGS = pytest.StashKey[list[tuple[str, Callable[[], str]]]]()


def _register_item_log(node: pytest.Item, title: str, tail: Callable[[], str]) -> None:
    node.stash.setdefault(_ITEM_LOGS, []).append((title, tail))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if _SMTP is not None:  # each test starts with an empty capture and no forced replies
        _SMTP.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        used = set(getattr(item, "fixturenames", ()))
        sources = [
            (f"{name} log tail", tail) for name, tail in _SESSION_LOGS.items() if name in used
        ]
        if _ITEM_LOGS in item.stash:
            item_logs = item.stash[_ITEM_LOGS]
            sources += item_logs
        for title, tail in sources:
            try:
                text = tail()
            except Exception as exc:  # the report must not fail on a missing log
                text = f"(could not read the log: {exc!r})"
            if text:
                report.sections.append((title, text))
    return report


def _rmtree(path: Path) -> None:
    if not KEEP_DIRS:
        shutil.rmtree(path, ignore_errors=True)


# ---- SMTP ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def smtp_capture() -> Iterator[SmtpCapture]:
    global _SMTP
    capture = start_smtp_capture()
    _SMTP = capture
    yield capture
    _SMTP = None
    capture.stop()


# ---- Dovecot -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def oauth2_introspection() -> Iterator[TokenIntrospection]:
    server = TokenIntrospection().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dovecot(
    smtp_capture: SmtpCapture,
    oauth2_introspection: TokenIntrospection,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Dovecot]:
    base = make_base_dir()  # under /tmp: the dovecot and vmail users must traverse it
    try:
        dc = start_dovecot(
            base,
            dict(DOVECOT_USERS),
            oauth2_introspection_url=oauth2_introspection.url,
            smtp_relay=smtp_capture.address,
        )
    except Exception:
        _keep_log(base, tmp_path_factory)
        _rmtree(base)
        raise
    _SESSION_LOGS["dovecot"] = dc.log_tail
    yield dc
    _SESSION_LOGS.pop("dovecot", None)
    dc.stop()
    _keep_log(base, tmp_path_factory)
    _rmtree(base)


def _keep_log(base: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    with contextlib.suppress(OSError):
        shutil.copy(base / "dovecot.log", tmp_path_factory.getbasetemp() / "dovecot.log")


_user_counter = itertools.count(1)


@pytest.fixture
def user_factory(dovecot: Dovecot) -> Callable[..., MailUser]:
    """make_user(prefix="user", password=None) -> a new user nobody else uses."""

    def make_user(prefix: str = "user", password: str | None = None) -> MailUser:
        name = f"{prefix}{next(_user_counter)}-{uuid.uuid4().hex[:6]}"
        user = MailUser(name, password or f"pw-{uuid.uuid4().hex[:12]}")
        dovecot.add_user(user.name, user.password)
        return user

    return make_user


@pytest.fixture
def mail_user(user_factory: Callable[..., MailUser]) -> MailUser:
    return user_factory()


# ---- Redis ---------------------------------------------------------------------------------


REDIS_KIND = os.environ.get("MAILGATE_TEST_REDIS", "single")  # "cluster": a 3-master cluster


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's Redis; with ``MAILGATE_TEST_REDIS=cluster`` a real 3-master Redis Cluster
    (its ``url`` lists the nodes, as a user's ``REDIS_URL`` would)."""
    base = tmp_path_factory.mktemp("redis")
    server = (
        cast(RedisServer, start_redis_cluster(base))
        if REDIS_KIND == "cluster"
        else start_redis(base)
    )
    _SESSION_LOGS["redis_server"] = server.log_tail
    yield server
    _SESSION_LOGS.pop("redis_server", None)
    server.stop()


@pytest.fixture
def redis_factory(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[[], RedisServer]]:
    """make_redis() -> a fresh private Redis (stopped after the test); a private 3-master
    cluster with ``MAILGATE_TEST_REDIS=cluster``."""
    servers: list[RedisServer] = []

    def make_redis() -> RedisServer:
        base = tmp_path_factory.mktemp("redis-own")
        server = (
            cast(RedisServer, start_redis_cluster(base))
            if REDIS_KIND == "cluster"
            else start_redis(base)
        )
        servers.append(server)
        _register_item_log(request.node, f"redis :{server.port} log tail", server.log_tail)
        return server

    yield make_redis
    for server in servers:
        server.stop()


# ---- mailgate ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mailgate(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MailgateProcess]:
    proc = MailgateProcess(tmp_path_factory.mktemp("mailgate"), redis_url=redis_server.url)
    _SESSION_LOGS["mailgate"] = proc.log_tail
    proc.start()
    yield proc
    _SESSION_LOGS.pop("mailgate", None)
    proc.stop()


@pytest.fixture
def mailgate_factory(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[..., MailgateProcess]]:
    """make_mailgate(*, start=True, redis_url=None, env=None, ...) -> MailgateProcess.

    Without ``redis_url`` the service runs its own embedded Redis under its data dir. Keyword
    arguments go to MailgateProcess. Every process is stopped after the test.
    """
    procs: list[MailgateProcess] = []

    def make_mailgate(*, start: bool = True, **kwargs: Any) -> MailgateProcess:
        data = kwargs.pop("data", None) or tmp_path_factory.mktemp("mailgate-own")
        proc = MailgateProcess(data, **kwargs)
        procs.append(proc)
        _register_item_log(request.node, f"mailgate :{proc.port} log tail", proc.log_tail)
        if start:
            proc.start()
        return proc

    yield make_mailgate
    for proc in procs:
        proc.stop()
