"""The admin web UI's sign-in: one admin password, sessions in Redis, a sign-in rate limit.

- **Password.** One admin password per instance, stored only as an argon2id hash
  (``keys.ADMIN_PASSWORD``). Set with ``mailgate password`` or on the first visit to ``/admin``
  while none is set. Setting it ends every open session.
- **Sessions.** A random 256-bit cookie value; Redis keeps only its SHA-256
  (``keys.admin_session``) with the session's CSRF token, creation time and address. A session
  expires after ``SESSION_IDLE`` without use and ``SESSION_MAX_AGE`` after sign-in, whichever
  comes first. The CSRF token is per session and compared in constant time.
- **Rate limit.** Failed sign-ins are counted per client address (``keys.admin_signin_failures``,
  forgotten ``FAILURE_WINDOW`` after the last failure). The first ``FREE_FAILURES`` cost nothing;
  each further failure locks the address out for a doubling delay
  (:func:`lockout_seconds`, up to ``MAX_LOCKOUT``). While locked out, the password is not even
  checked.

Errors: :class:`PasswordTooWeak` for a password outside the length limits; Redis errors
propagate as ``redis.exceptions.RedisError`` (the API maps them).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from redis.asyncio import Redis

from mailgate.errors import BadRequest
from mailgate.store import keys
from mailgate.store.redis import str_map, text

T = TypeVar("T")

MIN_PASSWORD = 8  # characters
MAX_PASSWORD = 1024  # characters (argon2 hashes anything, but a bound keeps work bounded)
SESSION_BYTES = 32  # random bytes of a session cookie value
CSRF_BYTES = 32  # random bytes of a CSRF token
SESSION_IDLE = 12 * 3600  # seconds a session lives without use
SESSION_MAX_AGE = 7 * 24 * 3600  # seconds a session lives at most after sign-in
FREE_FAILURES = 5  # failed sign-ins from one address before lockouts start
FIRST_LOCKOUT = 2.0  # seconds of the first lockout; doubles with every further failure
MAX_LOCKOUT = 15 * 60  # seconds: the longest lockout
FAILURE_WINDOW = 3600  # seconds after the last failure when an address's count is forgotten
MAX_FLASH = 2000  # characters of a flash message kept in a session
MAX_CONCURRENT_HASHES = 2  # argon2 runs at once per process (each takes ~64 MiB and a core)

_hasher = PasswordHasher()  # argon2id with argon2-cffi's default (RFC 9106 low-memory) costs
_hash_slots: asyncio.Semaphore | None = None


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a slow hash in a worker thread, at most ``MAX_CONCURRENT_HASHES`` at a time."""
    global _hash_slots
    if _hash_slots is None:
        _hash_slots = asyncio.Semaphore(MAX_CONCURRENT_HASHES)
    async with _hash_slots:
        return await asyncio.to_thread(fn, *args)


class PasswordTooWeak(BadRequest):
    """The new admin password is too short or too long."""


def check_password_rules(password: str) -> None:
    """Raise :class:`PasswordTooWeak` for a password outside the length limits."""
    if len(password) < MIN_PASSWORD:
        raise PasswordTooWeak(f"The password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise PasswordTooWeak(f"The password must have at most {MAX_PASSWORD} characters")


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string with salt and costs) of ``password``."""
    check_password_rules(password)
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches the stored hash (False for a malformed hash)."""
    if len(password) > MAX_PASSWORD:
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether the stored hash uses weaker costs than the current defaults."""
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return False


def lockout_seconds(failures: int) -> float:
    """How long an address is locked out after its ``failures``-th failed sign-in."""
    extra = failures - FREE_FAILURES
    if extra <= 0:
        return 0.0
    return float(min(FIRST_LOCKOUT * (2 ** min(extra - 1, 30)), MAX_LOCKOUT))


def session_hash(cookie_value: str) -> str:
    return hashlib.sha256(cookie_value.encode("utf-8", "replace")).hexdigest()


def csrf_matches(expected: str, presented: str | None) -> bool:
    """Constant-time comparison of a presented CSRF token (None or empty never matches)."""
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode("utf-8", "replace"))


@dataclass(frozen=True)
class Session:
    """A signed-in admin session (``cookie`` is only known right after sign-in)."""

    hash: str
    csrf: str
    created: float
    ip: str | None = None
    cookie: str | None = None


@dataclass(frozen=True)
class SignInLimit:
    """A client's standing with the rate limit: locked out for ``retry_after`` seconds or not."""

    failures: int
    retry_after: float

    @property
    def locked(self) -> bool:
        return self.retry_after > 0


class AdminAuth:
    """Password, sessions and sign-in rate limit of the admin web UI, in Redis."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    # --- password -----------------------------------------------------------------------------
    async def has_password(self) -> bool:
        return bool(await self.redis.exists(keys.ADMIN_PASSWORD))

    async def set_password(self, password: str) -> None:
        """Store a new admin password and end every session."""
        hashed = await _in_thread(hash_password, password)
        await self.redis.set(keys.ADMIN_PASSWORD, hashed)
        await self.end_all_sessions()

    async def set_first_password(self, password: str) -> bool:
        """Store the password only when none is set yet (first visit); False when one is."""
        hashed = await _in_thread(hash_password, password)
        return bool(await self.redis.set(keys.ADMIN_PASSWORD, hashed, nx=True))

    async def check_password(self, password: str) -> bool:
        raw = await self.redis.get(keys.ADMIN_PASSWORD)
        if raw is None:
            return False
        stored = text(raw)
        ok = await _in_thread(verify_password, stored, password)
        if ok and needs_rehash(stored):
            rehashed = await _in_thread(hash_password, password)
            await self.redis.set(keys.ADMIN_PASSWORD, rehashed, xx=True)
        return ok

    # --- rate limit ---------------------------------------------------------------------------
    async def limit(self, client: str) -> SignInLimit:
        raw = str_map(await self.redis.hgetall(keys.admin_signin_failures(client)))
        failures = int(raw.get("count", 0) or 0)
        until = float(raw.get("until", 0) or 0)
        return SignInLimit(failures, max(0.0, until - time.time()))

    async def record_failure(self, client: str) -> SignInLimit:
        """Count a failed sign-in; returns the lockout it causes."""
        key = keys.admin_signin_failures(client)
        failures = int(await self.redis.hincrby(key, "count", 1))
        wait = lockout_seconds(failures)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, "until", str(time.time() + wait))
            pipe.expire(key, FAILURE_WINDOW + int(wait))
            await pipe.execute()
        return SignInLimit(failures, wait)

    async def clear_failures(self, client: str) -> None:
        await self.redis.delete(keys.admin_signin_failures(client))

    # --- sessions -----------------------------------------------------------------------------
    async def create_session(self, ip: str | None) -> Session:
        cookie = secrets.token_urlsafe(SESSION_BYTES)
        hashed = session_hash(cookie)
        now = time.time()
        session = Session(hashed, secrets.token_urlsafe(CSRF_BYTES), now, ip, cookie)
        fields = {"csrf": session.csrf, "created": str(now), "ip": ip or ""}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.admin_session(hashed), mapping=fields)  # type: ignore[arg-type]
            pipe.expire(keys.admin_session(hashed), SESSION_IDLE)
            pipe.zadd(keys.ADMIN_SESSIONS, {hashed: int((now + SESSION_MAX_AGE) * 1000)})
            pipe.zremrangebyscore(keys.ADMIN_SESSIONS, "-inf", int(now * 1000))
            await pipe.execute()
        return session

    async def session(self, cookie: str | None) -> Session | None:
        """The live session of a cookie value (its idle timer restarted), or None."""
        if not cookie or len(cookie) > 2 * SESSION_BYTES + 16:
            return None
        hashed = session_hash(cookie)
        key = keys.admin_session(hashed)
        raw = str_map(await self.redis.hgetall(key))
        if not raw or "csrf" not in raw:
            return None
        created = float(raw.get("created", 0) or 0)
        remaining = created + SESSION_MAX_AGE - time.time()
        if remaining <= 0:
            await self.end_session(hashed)
            return None
        await self.redis.expire(key, int(min(SESSION_IDLE, remaining)) or 1)
        return Session(hashed, raw["csrf"], created, raw.get("ip") or None)

    async def end_session(self, hashed: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.admin_session(hashed))
            pipe.zrem(keys.ADMIN_SESSIONS, hashed)
            await pipe.execute()

    async def end_all_sessions(self) -> int:
        hashes = [text(h) for h in await self.redis.zrange(keys.ADMIN_SESSIONS, 0, -1)]
        async with self.redis.pipeline(transaction=True) as pipe:
            for hashed in hashes:
                pipe.delete(keys.admin_session(hashed))
            pipe.delete(keys.ADMIN_SESSIONS)
            await pipe.execute()
        return len(hashes)

    # --- flash messages (shown once on the next page) -----------------------------------------
    async def flash(self, session: Session, kind: str, message: str) -> None:
        value = json.dumps({"kind": kind, "message": message[:MAX_FLASH]})
        await self.redis.hset(keys.admin_session(session.hash), "flash", value)

    async def pop_flash(self, session: Session) -> dict[str, Any] | None:
        key = keys.admin_session(session.hash)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(key, "flash")
            pipe.hdel(key, "flash")
            raw, _ = await pipe.execute()
        if raw is None:
            return None
        value: dict[str, Any] = json.loads(raw)
        return value
