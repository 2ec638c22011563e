"""The pipelining engine under :class:`~.client.ImapClient`: one reader task, serialized writes.

- **Writes.** One :class:`asyncio.Lock` serializes whole commands: a command's parts (split at
  synchronizing literals, each waiting for the server's ``+``) never interleave with another's.
  Commands are pipelined: a task takes the lock only to *write*; it waits for its tagged answer
  after releasing it.
- **Reads.** A single reader task (owned by the connection, cancelled on close) feeds the sans-IO
  :class:`~mailgate.protocols.imap.parser.ResponseParser` and dispatches: tagged responses to the
  command with that tag; ``+`` to the command currently writing; untagged data first to the
  selected-mailbox state, then to the first pending command whose *collector* claims it, else to
  the unsolicited listeners (and a running IDLE).
- **Failures.** EOF, BYE then EOF, a socket error, garbage (:class:`ProtocolError`) or a timeout
  close the connection and fail every pending command with :class:`ConnectError`.
  ``command`` timeouts measure inactivity: any byte from the server restarts the clock.
- **Cancellation.** A command cancelled while waiting for its answer leaves the connection usable
  (the late answer is dropped). One cancelled half-way through writing a synchronizing literal
  leaves the stream in an unknown state, so the connection is closed. ``CancelledError`` is
  always re-raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from structlog.typing import FilteringBoundLogger

from mailgate.errors import CommandError, ConnectError, ProtocolError
from mailgate.protocols.imap.commands import Arg, CommandEncoder, TagGenerator
from mailgate.protocols.imap.limits import DEFAULT_LIMITS, ImapLimits
from mailgate.protocols.imap.parser import ResponseParser
from mailgate.protocols.imap.responses import (
    CapabilityResponse,
    Continuation,
    EnabledResponse,
    ExistsResponse,
    ExpungeResponse,
    FetchResponse,
    ListResponse,
    MailboxStatusResponse,
    Response,
    ResponseCode,
    TaggedResponse,
    UntaggedStatus,
    VanishedResponse,
)

from .state import ConnectionState, ImapTimeouts, SelectedMailbox
from .transport import READ_CHUNK

__all__ = ["Collector", "ImapConnection"]

T = TypeVar("T")

#: Decides whether an untagged response belongs to a command: ``collector(tag, response)``.
Collector = Callable[[str, Response], bool]

#: Called with (command name, seconds from write to tagged response) for every completed
#: command; set by the process wiring (``runtime/metrics.py``) to feed its latency histogram.
command_observer: Callable[[str, float], None] | None = None

#: Unsolicited responses that end an IDLE wait.
_IDLE_WAKERS = (
    ExistsResponse,
    ExpungeResponse,
    FetchResponse,
    VanishedResponse,
    MailboxStatusResponse,
    ListResponse,
)


def _consume(fut: asyncio.Future[Any]) -> None:
    """Mark a future's exception as retrieved (no 'never retrieved' warnings)."""
    if not fut.cancelled():
        fut.exception()


class _Pending:
    """A command written (or being written) and waiting for its tagged response."""

    __slots__ = ("collect", "cont", "future", "name", "started", "tag", "untagged")

    def __init__(self, tag: str, name: str, collect: Collector | None) -> None:
        loop = asyncio.get_running_loop()
        self.started = time.perf_counter()  # loop.time() is in whole ms under uvloop
        self.tag = tag
        self.name = name
        self.collect = collect
        self.untagged: list[Response] = []
        self.future: asyncio.Future[TaggedResponse] = loop.create_future()
        self.future.add_done_callback(_consume)
        self.cont: asyncio.Future[Continuation | None] | None = None

    def expect_continuation(self) -> asyncio.Future[Continuation | None]:
        fut: asyncio.Future[Continuation | None] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_consume)
        self.cont = fut
        return fut


class ImapConnection:
    """Transport, reader task and command pipeline; protocol commands live in the subclass."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        timeouts: ImapTimeouts,
        log: FilteringBoundLogger,
        limits: ImapLimits = DEFAULT_LIMITS,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.timeouts = timeouts
        self._log = log
        self._limits = limits
        self._parser = ResponseParser(limits)
        self._encoder = CommandEncoder()
        self._tags = TagGenerator()
        self._pending: dict[str, _Pending] = {}
        self._write_lock = asyncio.Lock()
        self._cont_waiter: _Pending | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[Response], None]] = []
        self._loop = asyncio.get_running_loop()
        self._last_activity = self._loop.time()
        self._closed = False
        self._close_reason: ConnectError | None = None
        self._bye: UntaggedStatus | None = None
        self._idle_sink: list[Response] | None = None
        self._idle_wake: asyncio.Future[None] | None = None
        self.state = ConnectionState.NOT_AUTHENTICATED
        self.capabilities: frozenset[str] = frozenset()
        self._caps_version = 0
        self.enabled: set[str] = set()
        self.selected: SelectedMailbox | None = None
        self._selecting: SelectedMailbox | None = None
        #: Most commands ever in flight at once (a pipelining figure for tests and metrics).
        self.max_in_flight = 0

    # -- public state ------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def has_capability(self, name: str) -> bool:
        return name.upper() in self.capabilities

    def add_unsolicited_listener(self, cb: Callable[[Response], None]) -> Callable[[], None]:
        """Call ``cb`` for every untagged response no command claims; returns a remover."""
        self._listeners.append(cb)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(cb)

        return remove

    # -- capability / state bookkeeping --------------------------------------------------------

    def _set_capabilities(self, caps: frozenset[str]) -> None:
        self.capabilities = caps
        self._caps_version += 1
        self._encoder.literal_plus = "LITERAL+" in caps
        self._encoder.literal_minus = "LITERAL-" in caps

    def _apply_code(self, code: ResponseCode | None, box: SelectedMailbox | None) -> None:
        if code is None:
            return
        if code.name == "CAPABILITY" and isinstance(code.value, frozenset):
            self._set_capabilities(code.value)
        elif code.name == "ALERT":
            self._log.warning("imap.alert", code=code.name)
        elif box is not None:
            box.apply_code(code)

    def _apply_state(self, resp: Response) -> None:
        box = self._selecting or self.selected
        if isinstance(resp, UntaggedStatus):
            if resp.status == "BYE":
                self._bye = resp
            self._apply_code(resp.code, box)
            if resp.status in ("NO", "BAD"):
                self._log.warning("imap.untagged_error", status=resp.status, text=resp.text[:200])
        elif isinstance(resp, CapabilityResponse):
            self._set_capabilities(resp.capabilities)
        elif isinstance(resp, EnabledResponse):
            self.enabled |= resp.capabilities
            if "UTF8=ACCEPT" in self.enabled or "UTF8=ONLY" in self.enabled:
                self._encoder.utf8 = True
                self._parser.utf8_mailboxes = True
        elif box is not None:
            box.apply(resp)

    # -- reader --------------------------------------------------------------------------------

    def _start_reader(self) -> None:
        self._reader_task = asyncio.create_task(self._read_loop(), name="imap-reader")

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    if self._bye is not None:
                        raise ConnectError(
                            f"server closed the connection: {self._bye.text}",
                            server_response=self._bye.text,
                        )
                    raise ConnectError("server closed the connection")
                self._last_activity = self._loop.time()
                for resp in self._parser.feed(data):
                    self._dispatch(resp)
        except asyncio.CancelledError:
            raise
        except ConnectError as exc:  # includes ProtocolError
            self._abort(exc)
        except (OSError, ssl.SSLError) as exc:
            err = ConnectError(f"connection lost: {exc}")
            err.__cause__ = exc
            self._abort(err)
        except Exception as exc:  # a bug in dispatch must not leave commands hanging
            err = ProtocolError(f"internal error handling server data: {exc!r}")
            err.__cause__ = exc
            self._log.exception("imap.reader_failed")
            self._abort(err)

    def _dispatch(self, resp: Response) -> None:
        if isinstance(resp, TaggedResponse):
            pending = self._pending.pop(resp.tag, None)
            self._apply_code(resp.code, self._selecting or self.selected)
            if pending is None:
                self._log.warning("imap.unknown_tag", tag=resp.tag)
                return
            if pending.cont is not None and not pending.cont.done():
                pending.cont.set_result(None)
            if not pending.future.done():
                pending.future.set_result(resp)
            if command_observer is not None:
                command_observer(pending.name, time.perf_counter() - pending.started)
            self._log.debug("imap.done", tag=resp.tag, status=resp.status, text=resp.text[:200])
            return
        if isinstance(resp, Continuation):
            waiter = self._cont_waiter
            if waiter is not None and waiter.cont is not None and not waiter.cont.done():
                waiter.cont.set_result(resp)
            else:
                self._log.debug("imap.unexpected_continuation", text=resp.text[:80])
            return
        self._apply_state(resp)
        for pending in self._pending.values():
            if pending.collect is not None and pending.collect(pending.tag, resp):
                pending.untagged.append(resp)
                return
        self._unsolicited(resp)

    def _unsolicited(self, resp: Response) -> None:
        sink = self._idle_sink
        if sink is not None:
            sink.append(resp)
            wake = self._idle_wake
            if isinstance(resp, _IDLE_WAKERS) and wake is not None and not wake.done():
                wake.set_result(None)
        for cb in list(self._listeners):
            try:
                cb(resp)
            except Exception:
                self._log.exception("imap.listener_failed")

    # -- failure / close -----------------------------------------------------------------------

    def _abort(self, exc: ConnectError) -> None:
        """Close now and fail everything pending with ``exc`` (idempotent, synchronous)."""
        if self._closed:
            return
        self._closed = True
        self._close_reason = exc
        self.state = ConnectionState.LOGOUT
        self._log.debug("imap.closed", reason=str(exc))
        for pending in self._pending.values():
            if pending.cont is not None and not pending.cont.done():
                pending.cont.set_exception(exc)
            if not pending.future.done():
                pending.future.set_exception(exc)
        self._pending.clear()
        if self._idle_wake is not None and not self._idle_wake.done():
            self._idle_wake.set_result(None)
        with contextlib.suppress(Exception):
            self._writer.transport.abort()
        task = self._reader_task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()

    def _ensure_open(self) -> None:
        if self._closed:
            reason = self._close_reason
            raise ConnectError(f"IMAP connection is closed ({reason})" if reason else "closed")

    def _fail(self, message: str) -> ConnectError:
        """Close with a :class:`ConnectError` and return it for raising."""
        err = ConnectError(message)
        self._abort(err)
        return err

    async def close(self) -> None:
        """Abort the transport and stop the reader task. Never raises (except cancellation)."""
        self._abort(ConnectError("connection closed by the client"))
        task = self._reader_task
        if task is not None and task is not asyncio.current_task() and not task.done():
            await asyncio.wait({task})

    # -- waiting -------------------------------------------------------------------------------

    async def _wait(self, fut: asyncio.Future[T], seconds: float, what: str) -> T:
        """Wait for ``fut``; the timeout restarts whenever the server sends something."""
        start = self._loop.time()
        while True:
            deadline = max(start, self._last_activity) + seconds
            remaining = deadline - self._loop.time()
            if remaining > 0:
                done, _ = await asyncio.wait({fut}, timeout=remaining)
                if done:
                    return fut.result()
                if self._loop.time() < max(start, self._last_activity) + seconds:
                    continue
            raise self._fail(f"timed out after {seconds:g}s waiting for {what}")

    async def _drain(self) -> None:
        try:
            await asyncio.wait_for(self._writer.drain(), self.timeouts.command)
        except TimeoutError as exc:
            raise self._fail("timed out writing to the server") from exc
        except (OSError, ssl.SSLError) as exc:
            raise self._fail(f"connection lost while writing: {exc}") from exc

    def _write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
        except (OSError, RuntimeError) as exc:
            raise self._fail(f"connection lost while writing: {exc}") from exc

    # -- commands ------------------------------------------------------------------------------

    def _yield_idle(self) -> None:
        """A command wants the wire: ask a running IDLE to finish."""
        wake = self._idle_wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _send(self, name: str, *args: Arg, collect: Collector | None = None) -> _Pending:
        """Write one command (waiting for ``+`` at synchronizing literals); return its pending."""
        self._ensure_open()
        self._yield_idle()
        async with self._write_lock:
            self._ensure_open()
            tag = self._tags()
            rendered = self._encoder.render(tag, name, *args)
            pending = _Pending(tag, name, collect)
            self._pending[tag] = pending
            self.max_in_flight = max(self.max_in_flight, len(self._pending))
            self._log.debug("imap.send", line=rendered.log_line)
            parts = rendered.parts
            if len(parts) == 1:
                self._write(parts[0])
                await self._drain()
                return pending
            self._cont_waiter = pending
            try:
                for i, part in enumerate(parts):
                    if i == len(parts) - 1:
                        self._write(part)
                        await self._drain()
                        break
                    cont = pending.expect_continuation()
                    self._write(part)
                    await self._drain()
                    if (
                        await self._wait(cont, self.timeouts.command, f"{name} continuation")
                        is None
                    ):
                        break  # the server answered (NO/BAD) instead of '+'
            except asyncio.CancelledError:
                self._abort(ConnectError(f"{name} cancelled in the middle of a literal"))
                raise
            finally:
                self._cont_waiter = None
            return pending

    async def _result(
        self, pending: _Pending, seconds: float | None = None
    ) -> tuple[TaggedResponse, list[Response]]:
        tagged = await self._wait(
            pending.future, self.timeouts.command if seconds is None else seconds, pending.name
        )
        return tagged, pending.untagged

    async def _run(
        self, name: str, *args: Arg, collect: Collector | None = None, check: bool = True
    ) -> tuple[TaggedResponse, list[Response]]:
        """Send a command and wait for its tagged response; NO/BAD raise CommandError."""
        pending = await self._send(name, *args, collect=collect)
        tagged, untagged = await self._result(pending)
        if check:
            self._check(tagged, name)
        return tagged, untagged

    @staticmethod
    def _check(tagged: TaggedResponse, what: str) -> TaggedResponse:
        if tagged.status != "OK":
            raise CommandError(
                f"{what} failed: {tagged.status} {tagged.text}".strip(),
                status=tagged.status,
                code=tagged.code.name if tagged.code else None,
                server_response=tagged.text,
            )
        return tagged

    # -- direct reads (before the reader task runs: greeting, STARTTLS) -------------------------

    async def _read_direct(
        self, until: Callable[[Response], bool], seconds: float
    ) -> list[Response]:
        out: list[Response] = []
        deadline = self._loop.time() + seconds
        while True:
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                raise self._fail("timed out waiting for the server")
            try:
                data = await asyncio.wait_for(self._reader.read(READ_CHUNK), remaining)
            except TimeoutError as exc:
                raise self._fail("timed out waiting for the server") from exc
            except (OSError, ssl.SSLError) as exc:
                raise self._fail(f"connection lost: {exc}") from exc
            if not data:
                text = self._bye.text if self._bye else ""
                raise self._fail(f"server closed the connection {text}".strip())
            try:
                responses = self._parser.feed(data)
            except ProtocolError as exc:
                self._abort(exc)
                raise
            done = False
            for resp in responses:
                if isinstance(resp, TaggedResponse):
                    self._apply_code(resp.code, None)
                elif not isinstance(resp, Continuation):
                    self._apply_state(resp)
                out.append(resp)
                done = done or until(resp)
            if done:
                return out

    async def _guard(self, coro: Awaitable[T]) -> T:
        """Run a coroutine; on any failure other than our own errors, close and re-raise."""
        try:
            return await coro
        except BaseException:
            if not self._closed:
                self._abort(ConnectError("connection setup failed"))
            raise
