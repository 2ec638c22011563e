"""Admin sign-in: password hashing, CSRF comparison, sessions, and the sign-in rate limit.

The Redis side runs against a small in-memory stand-in (only the commands AdminAuth uses), so
these stay pure unit tests.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from mailgate.api.admin.auth import safe_next
from mailgate.services import admin_auth
from mailgate.services.admin_auth import (
    FIRST_LOCKOUT,
    FREE_FAILURES,
    MAX_LOCKOUT,
    MIN_PASSWORD,
    AdminAuth,
    PasswordTooWeak,
    csrf_matches,
    hash_password,
    lockout_seconds,
    needs_rehash,
    verify_password,
)
from mailgate.store import keys


class FakeRedis:
    """The handful of Redis commands AdminAuth issues, in memory (TTLs recorded, not enforced
    unless ``expire_now`` is called)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.ttl: dict[str, int] = {}

    # strings
    async def get(self, key: str) -> bytes | None:
        value = self.data.get(key)
        return value.encode() if isinstance(value, str) else value

    async def set(self, key: str, value: str, nx: bool = False, xx: bool = False) -> bool:
        if (nx and key in self.data) or (xx and key not in self.data):
            return False
        self.data[key] = value
        return True

    async def exists(self, key: str) -> int:
        return int(key in self.data)

    async def delete(self, *names: str) -> int:
        return sum(1 for n in names if self.data.pop(n, None) is not None)

    async def expire(self, key: str, seconds: int) -> bool:
        self.ttl[key] = seconds
        return key in self.data

    # hashes
    def _hash(self, key: str) -> dict[str, str]:
        return self.data.setdefault(key, {})  # type: ignore[no-any-return]

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        return {k.encode(): str(v).encode() for k, v in self.data.get(key, {}).items()}

    async def hget(self, key: str, field: str) -> bytes | None:
        value = self.data.get(key, {}).get(field)
        return None if value is None else str(value).encode()

    async def hset(
        self, key: str, field: str | None = None, value: Any = None, mapping: Any = None
    ) -> int:
        h = self._hash(key)
        if field is not None:
            h[field] = str(value)
        for k, v in (mapping or {}).items():
            h[k] = str(v)
        return 1

    async def hdel(self, key: str, *fields: str) -> int:
        h = self.data.get(key, {})
        return sum(1 for f in fields if h.pop(f, None) is not None)

    async def hincrby(self, key: str, field: str, amount: int) -> int:
        h = self._hash(key)
        h[field] = str(int(h.get(field, 0)) + amount)
        return int(h[field])

    # sorted sets
    async def zadd(self, key: str, mapping: dict[str, float]) -> int:
        z = self.data.setdefault(key, {})
        z.update(mapping)
        return len(mapping)

    async def zrem(self, key: str, *members: str) -> int:
        z = self.data.get(key, {})
        return sum(1 for m in members if z.pop(m, None) is not None)

    async def zrange(self, key: str, start: int, stop: int) -> list[bytes]:
        z = self.data.get(key, {})
        ordered = sorted(z, key=lambda m: z[m])
        return [m.encode() for m in (ordered[start:] if stop == -1 else ordered[start : stop + 1])]

    async def zremrangebyscore(self, key: str, low: Any, high: float) -> int:
        z = self.data.get(key, {})
        doomed = [m for m, s in z.items() if s <= high]
        for m in doomed:
            del z[m]
        return len(doomed)

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)


class FakePipeline:
    def __init__(self, redis: FakeRedis) -> None:
        self.redis = redis
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        def queue(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args, kwargs))

        return queue

    async def execute(self) -> list[Any]:
        return [await getattr(self.redis, n)(*a, **kw) for n, a, kw in self.calls]


@pytest.fixture
def auth() -> tuple[AdminAuth, FakeRedis]:
    redis = FakeRedis()
    return AdminAuth(redis), redis  # type: ignore[arg-type]


# --- hashing --------------------------------------------------------------------------------


def test_hash_is_argon2id_salted_and_verifies() -> None:
    first = hash_password("correct horse battery")
    second = hash_password("correct horse battery")
    assert first.startswith("$argon2id$")
    assert first != second  # a fresh salt each time
    assert "correct horse" not in first
    assert verify_password(first, "correct horse battery")
    assert not verify_password(first, "correct horse battery!")
    assert not needs_rehash(first)


def test_verify_rejects_malformed_hash_and_oversized_input() -> None:
    assert not verify_password("not-a-hash", "whatever1")
    stored = hash_password("x" * MIN_PASSWORD)
    assert not verify_password(stored, "x" * (admin_auth.MAX_PASSWORD + 1))


@pytest.mark.parametrize("bad", ["", "short", "x" * (MIN_PASSWORD - 1)])
def test_short_passwords_are_refused(bad: str) -> None:
    with pytest.raises(PasswordTooWeak):
        hash_password(bad)


# --- CSRF -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "presented", "ok"),
    [
        ("tok-123", "tok-123", True),
        ("tok-123", "tok-124", False),
        ("tok-123", "", False),
        ("tok-123", None, False),
        ("", "", False),  # a missing session token never matches anything
        ("tok-123", "tok-123\u00e9", False),
    ],
)
def test_csrf_comparison(expected: str, presented: str | None, ok: bool) -> None:
    assert csrf_matches(expected, presented) is ok


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/admin/accounts?q=x", "/admin/accounts?q=x"),
        ("/admin", "/admin"),
        ("https://evil.example/admin", "/admin"),
        ("//evil.example/admin", "/admin"),
        ("/\\evil.example", "/admin"),
        ("/v1/accounts", "/admin"),
        ("/admin\r\nSet-Cookie: x=1", "/admin"),
        (None, "/admin"),
    ],
)
def test_next_location_stays_local(location: str | None, expected: str) -> None:
    assert safe_next(location) == expected


# --- rate limit -----------------------------------------------------------------------------


def test_lockout_grows_and_is_capped() -> None:
    assert [lockout_seconds(n) for n in range(FREE_FAILURES + 1)] == [0.0] * (FREE_FAILURES + 1)
    delays = [lockout_seconds(FREE_FAILURES + n) for n in range(1, 8)]
    assert delays[0] == FIRST_LOCKOUT
    assert all(b == 2 * a for a, b in itertools.pairwise(delays))
    assert lockout_seconds(FREE_FAILURES + 1000) == MAX_LOCKOUT


async def test_failures_lock_out_an_address_and_success_clears(
    auth: tuple[AdminAuth, FakeRedis],
) -> None:
    service, redis = auth
    for _ in range(FREE_FAILURES):
        result = await service.record_failure("10.0.0.1")
        assert not result.locked
    locked = await service.record_failure("10.0.0.1")
    assert locked.locked and locked.retry_after == FIRST_LOCKOUT
    assert (await service.limit("10.0.0.1")).locked
    assert not (await service.limit("10.0.0.2")).locked  # per address
    key = keys.admin_signin_failures("10.0.0.1")
    assert redis.ttl[key] >= admin_auth.FAILURE_WINDOW  # forgotten after a quiet window
    await service.clear_failures("10.0.0.1")
    assert (await service.limit("10.0.0.1")).failures == 0


async def test_lockout_ends_when_its_time_is_over(
    auth: tuple[AdminAuth, FakeRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, _ = auth
    for _ in range(FREE_FAILURES + 1):
        await service.record_failure("10.0.0.9")
    start = time.time()
    monkeypatch.setattr(admin_auth.time, "time", lambda: start + FIRST_LOCKOUT + 0.5)
    limit = await service.limit("10.0.0.9")
    assert not limit.locked and limit.failures == FREE_FAILURES + 1
    # the next failure doubles the lockout
    assert (await service.record_failure("10.0.0.9")).retry_after == 2 * FIRST_LOCKOUT


# --- password and sessions ------------------------------------------------------------------


async def test_first_password_is_set_only_once(auth: tuple[AdminAuth, FakeRedis]) -> None:
    service, _ = auth
    assert not await service.has_password()
    assert await service.set_first_password("first-password")
    assert not await service.set_first_password("second-password")
    assert await service.check_password("first-password")
    assert not await service.check_password("second-password")


async def test_sessions_hold_a_csrf_token_and_store_no_cookie(
    auth: tuple[AdminAuth, FakeRedis],
) -> None:
    service, redis = auth
    created = await service.create_session("127.0.0.1")
    assert created.cookie and created.csrf and created.cookie != created.csrf
    assert not any(created.cookie in str(v) or created.cookie in k for k, v in redis.data.items())
    loaded = await service.session(created.cookie)
    assert loaded is not None and loaded.csrf == created.csrf and loaded.hash == created.hash
    assert await service.session("forged-cookie-value") is None
    assert await service.session(None) is None
    await service.end_session(created.hash)
    assert await service.session(created.cookie) is None


async def test_session_expires_after_max_age(
    auth: tuple[AdminAuth, FakeRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, _ = auth
    created = await service.create_session(None)
    later = time.time() + admin_auth.SESSION_MAX_AGE + 1
    monkeypatch.setattr(admin_auth.time, "time", lambda: later)
    assert await service.session(created.cookie) is None


async def test_new_password_ends_every_session(auth: tuple[AdminAuth, FakeRedis]) -> None:
    service, _ = auth
    await service.set_password("old-password")
    one = await service.create_session("a")
    two = await service.create_session("b")
    await service.set_password("new-password")
    assert await service.session(one.cookie) is None
    assert await service.session(two.cookie) is None
    assert await service.check_password("new-password")


async def test_flash_is_shown_once(auth: tuple[AdminAuth, FakeRedis]) -> None:
    service, _ = auth
    session = await service.create_session(None)
    await service.flash(session, "ok", "Saved.")
    assert await service.pop_flash(session) == {"kind": "ok", "message": "Saved."}
    assert await service.pop_flash(session) is None
