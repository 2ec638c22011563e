"""Asyncio IMAP client (IMAP4rev1 + CONDSTORE/QRESYNC, UIDPLUS, MOVE, ESEARCH, LIST-EXTENDED,
LIST-STATUS, SPECIAL-USE, IDLE, NOTIFY, ENABLE, ID, NAMESPACE, LITERAL+, SASL-IR, XOAUTH2,
OAUTHBEARER) on mailgate's own sans-IO parser.

One :class:`ImapClient` per connection::

    client = await ImapClient.connect("imap.example.org", 993, secure=True)
    await client.login("user", "secret")
    box = await client.select("INBOX", condstore=True)
    msgs = await client.uid_fetch("1:*", ["UID", "FLAGS", "MODSEQ"])
    await client.logout()

Many tasks may issue commands on one client at once: they are pipelined (see
:mod:`.connection`). While :meth:`ImapClient.idle` runs, a new command makes the IDLE finish
early (DONE), then runs. SELECT/EXAMINE should not be pipelined with commands that depend on the
selected mailbox. Connection states are drawn in :mod:`.state`.

Errors: NO/BAD → :class:`CommandError` (``code`` = response code name); refused credentials →
:class:`AuthenticationError`; network, TLS, timeouts, BYE/EOF → :class:`ConnectError`; garbage
from the server → :class:`ProtocolError`. Mailbox names are ``str``: modified UTF-7 on the wire,
or UTF-8 once ``UTF8=ACCEPT`` is enabled.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import contextlib
import ssl
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import structlog
from structlog.typing import FilteringBoundLogger

from mailgate.errors import AuthenticationError, CommandError, ConnectError, ProtocolError
from mailgate.protocols.imap.commands import (
    Arg,
    Literal,
    Mailbox,
    Raw,
    Secret,
    format_internaldate,
)
from mailgate.protocols.imap.commands import sequence_arg as _seq
from mailgate.protocols.imap.limits import DEFAULT_LIMITS, ImapLimits
from mailgate.protocols.imap.responses import (
    AppendUid,
    CapabilityResponse,
    CopyUid,
    EnabledResponse,
    EsearchResponse,
    ExistsResponse,
    ExpungeResponse,
    FetchResponse,
    FlagsResponse,
    IdResponse,
    ListResponse,
    MailboxStatusResponse,
    NamespaceEntry,
    NamespaceResponse,
    RecentResponse,
    Response,
    SearchResponse,
    TaggedResponse,
    UntaggedStatus,
    VanishedResponse,
)
from mailgate.protocols.imap.sequence import SequenceMatcher

from .connection import Collector, ImapConnection, _Pending
from .state import (
    ConnectionState,
    FetchResult,
    ImapTimeouts,
    ListEntry,
    Namespaces,
    QresyncParams,
    SelectedMailbox,
)
from .transport import make_ssl_context, open_stream, upgrade_to_tls

__all__ = [
    "AppendUid",
    "ConnectionState",
    "CopyUid",
    "FetchResult",
    "ImapClient",
    "ImapTimeouts",
    "ListEntry",
    "Namespaces",
    "QresyncParams",
    "SelectedMailbox",
]

_STORE_OPS = frozenset({"+FLAGS", "-FLAGS", "FLAGS"})


def _same_mailbox(a: str, b: str) -> bool:
    return a == b or (a.upper() == "INBOX" and b.upper() == "INBOX")


def _atom(value: str) -> Raw:
    if not value or any(c in value for c in ' ()"{\r\n') or not value.isprintable():
        raise ValueError(f"not a valid IMAP atom: {value!r}")
    return Raw(value)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii") if data else "="


class ImapClient(ImapConnection):
    """One IMAP connection. Create with :meth:`connect`."""

    # -- connecting ----------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        secure: bool,
        starttls: bool = True,
        tls_verify: bool = True,
        server_name: str | None = None,
        timeouts: ImapTimeouts = ImapTimeouts(),  # noqa: B008 - frozen, shared on purpose
        log: FilteringBoundLogger | None = None,
        limits: ImapLimits = DEFAULT_LIMITS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> ImapClient:
        """Connect, read the greeting, negotiate TLS, learn capabilities.

        ``secure=True``: implicit TLS. ``secure=False``: STARTTLS when ``starttls`` and the server
        advertises it; plain otherwise (with a warning when ``starttls`` was wanted).
        """
        base_log = log if log is not None else structlog.get_logger("mailgate.imap")
        bound: FilteringBoundLogger = base_log.bind(host=host, port=port)
        ctx = ssl_context or make_ssl_context(tls_verify)
        reader, writer = await open_stream(
            host,
            port,
            tls=ctx if secure else None,
            server_name=server_name,
            seconds=timeouts.connect,
        )
        client = cls(reader, writer, timeouts=timeouts, log=bound, limits=limits)
        await client._guard(client._handshake(host, secure, starttls, ctx, server_name))
        return client

    async def _handshake(
        self,
        host: str,
        secure: bool,
        starttls: bool,
        ctx: ssl.SSLContext,
        server_name: str | None,
    ) -> None:
        greeting = await self._read_direct(
            lambda r: isinstance(r, UntaggedStatus), self.timeouts.greeting
        )
        status = next(r for r in greeting if isinstance(r, UntaggedStatus))
        if status.status == "BYE":
            raise self._fail(f"server refused the connection: {status.text}")
        if status.status not in ("OK", "PREAUTH"):
            self._abort(ProtocolError(f"unexpected greeting {status.status} {status.text}"))
            raise ProtocolError(f"unexpected greeting: {status.status} {status.text}")
        if status.status == "PREAUTH":
            self.state = ConnectionState.AUTHENTICATED
        if not secure and starttls:
            if not self._caps_version:
                await self._direct_command("CAPABILITY")
            if self.has_capability("STARTTLS") and self.state is not ConnectionState.AUTHENTICATED:
                await self._direct_command("STARTTLS")
                if not self._parser.idle:
                    raise self._protocol_failure("data injected after STARTTLS")
                await upgrade_to_tls(
                    self._writer,
                    ctx,
                    server_name=server_name or host,
                    seconds=self.timeouts.connect,
                )
                self._parser = type(self._parser)(self._limits)
                self.capabilities = frozenset()
                self._caps_version = 0
            else:
                self._log.warning("imap.starttls_unavailable")
        self._start_reader()
        if not self._caps_version:
            await self.capability()

    def _protocol_failure(self, message: str) -> ProtocolError:
        err = ProtocolError(message)
        self._abort(err)
        return err

    async def _direct_command(self, name: str) -> TaggedResponse:
        tag = self._tags()
        self._log.debug("imap.send", line=f"{tag} {name}")
        self._write(f"{tag} {name}\r\n".encode("ascii"))
        await self._drain()
        out = await self._read_direct(
            lambda r: isinstance(r, TaggedResponse) and r.tag == tag, self.timeouts.command
        )
        tagged = out[-1]
        if not isinstance(tagged, TaggedResponse) or tagged.tag != tag:
            raise self._protocol_failure(f"unexpected data after the {name} response")
        try:
            return self._check(tagged, name)
        except CommandError as exc:
            raise self._fail(f"{name} failed: {exc}") from exc

    async def __aenter__(self) -> ImapClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.logout()

    # -- any state -----------------------------------------------------------------------------

    async def capability(self) -> frozenset[str]:
        """CAPABILITY: refresh and return :attr:`capabilities`."""
        await self._run("CAPABILITY", collect=lambda _t, r: isinstance(r, CapabilityResponse))
        return self.capabilities

    async def noop(self) -> None:
        await self._run("NOOP")

    async def id(self, fields: dict[str, str] | None = None) -> dict[str, str] | None:
        """ID (RFC 2971): send our fields, return the server's (None for NIL)."""
        arg: Arg = Raw("NIL")
        if fields:
            arg = [item for kv in fields.items() for item in kv]
        _, untagged = await self._run("ID", arg, collect=lambda _t, r: isinstance(r, IdResponse))
        for resp in untagged:
            if isinstance(resp, IdResponse):
                return resp.fields
        return None

    async def logout(self) -> None:
        """LOGOUT with the short ``logout`` timeout, then close. Never raises (but re-raises
        cancellation after closing)."""
        if self.closed:
            return
        try:
            pending = await asyncio.wait_for(self._send("LOGOUT"), self.timeouts.logout)
            self.state = ConnectionState.LOGOUT
            await self._result(pending, self.timeouts.logout)
        except (ConnectError, CommandError, TimeoutError, OSError):
            pass
        finally:
            await self.close()

    # -- not authenticated ---------------------------------------------------------------------

    async def login(self, user: str, password: str) -> None:
        """LOGIN. NO → :class:`AuthenticationError` (server text in ``server_response``)."""
        version = self._caps_version
        tagged, _ = await self._run("LOGIN", user, Secret(password), check=False)
        if tagged.status == "NO":
            raise AuthenticationError(f"LOGIN failed: {tagged.text}", server_response=tagged.text)
        self._check(tagged, "LOGIN")
        await self._authenticated(version)

    async def authenticate_plain(self, user: str, password: str) -> None:
        """AUTHENTICATE PLAIN (initial response inline with SASL-IR)."""
        payload = b"\x00" + user.encode("utf-8") + b"\x00" + password.encode("utf-8")
        await self._authenticate("PLAIN", payload, abort_reply=b"*")

    async def authenticate_xoauth2(self, user: str, token: str) -> None:
        """AUTHENTICATE XOAUTH2 (Google/Microsoft). A failure's base64 JSON challenge is answered
        with an empty line; the decoded JSON becomes ``server_response``."""
        payload = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
        await self._authenticate("XOAUTH2", payload, abort_reply=b"")

    async def authenticate_oauthbearer(self, user: str, token: str, host: str, port: int) -> None:
        """AUTHENTICATE OAUTHBEARER (RFC 7628); failures answered with ``%x01`` as the RFC says."""
        user_field = user.replace("=", "=3D").replace(",", "=2C")
        payload = f"n,a={user_field},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"
        await self._authenticate("OAUTHBEARER", payload.encode(), abort_reply=b"AQ==")

    async def _authenticate(self, mechanism: str, payload: bytes, *, abort_reply: bytes) -> None:
        self._ensure_open()
        version = self._caps_version
        sasl_ir = self.has_capability("SASL-IR")
        error_detail: str | None = None
        async with self._write_lock:
            self._ensure_open()
            tag = self._tags()
            pending = _Pending(tag, f"AUTHENTICATE {mechanism}", None)
            self._pending[tag] = pending
            line = f"{tag} AUTHENTICATE {mechanism}"
            self._log.debug("imap.send", line=line + (" ***" if sasl_ir else ""))
            if sasl_ir:
                line += " " + _b64(payload)
            self._cont_waiter = pending
            try:
                cont = pending.expect_continuation()
                self._write(line.encode("ascii") + b"\r\n")
                await self._drain()
                sent = sasl_ir
                while True:
                    challenge = await self._wait(cont, self.timeouts.command, "AUTHENTICATE")
                    if challenge is None:
                        break
                    cont = pending.expect_continuation()
                    if not sent:
                        self._log.debug("imap.send", line="***")
                        self._write(_b64(payload).encode("ascii") + b"\r\n")
                        sent = True
                    else:
                        error_detail = _decode_challenge(challenge.raw)
                        self._log.debug("imap.send", line="<sasl abort>")
                        self._write(abort_reply + b"\r\n")
                    await self._drain()
            except asyncio.CancelledError:
                self._abort(ConnectError("AUTHENTICATE cancelled mid-exchange"))
                raise
            finally:
                self._cont_waiter = None
        tagged, _ = await self._result(pending)
        if tagged.status != "OK":
            raise AuthenticationError(
                f"AUTHENTICATE {mechanism} failed: {tagged.text}",
                server_response=error_detail or tagged.text,
            )
        await self._authenticated(version)

    async def _authenticated(self, caps_version: int) -> None:
        self.state = ConnectionState.AUTHENTICATED
        if self._caps_version == caps_version:  # no CAPABILITY code came with the OK
            await self.capability()

    # -- authenticated -------------------------------------------------------------------------

    async def enable(self, *caps: str) -> frozenset[str]:
        """ENABLE (RFC 5161); returns what the server enabled now."""
        if not caps:
            return frozenset()
        _, untagged = await self._run(
            "ENABLE",
            *(_atom(c) for c in caps),
            collect=lambda _t, r: isinstance(r, EnabledResponse),
        )
        out: set[str] = set()
        for resp in untagged:
            if isinstance(resp, EnabledResponse):
                out |= resp.capabilities
        return frozenset(out)

    async def namespace(self) -> Namespaces:
        """NAMESPACE (RFC 2342); without it: one personal namespace "" with LIST's delimiter."""
        if not self.has_capability("NAMESPACE"):
            entries = await self.list("", "")
            delim = entries[0].delimiter if entries else None
            return Namespaces(personal=(NamespaceEntry("", delim),))
        _, untagged = await self._run(
            "NAMESPACE", collect=lambda _t, r: isinstance(r, NamespaceResponse)
        )
        for resp in untagged:
            if isinstance(resp, NamespaceResponse):
                return Namespaces(resp.personal, resp.other, resp.shared)
        return Namespaces(personal=())

    async def list(
        self,
        reference: str = "",
        pattern: str = "*",
        *,
        special_use: bool = False,
        subscribed_info: bool = False,
        status_items: Sequence[str] = (),
    ) -> builtins.list[ListEntry]:
        """LIST with LIST-EXTENDED return options where offered, else LIST (+ LSUB, + STATUS)."""
        extended = self.has_capability("LIST-EXTENDED")
        list_status = self.has_capability("LIST-STATUS")
        options: builtins.list[Arg] = []
        if special_use and extended and self.has_capability("SPECIAL-USE"):
            options.append(Raw("SPECIAL-USE"))
        if subscribed_info and extended:
            options.append(Raw("SUBSCRIBED"))
        if status_items and list_status:
            options += [Raw("STATUS"), [_atom(i) for i in status_items]]
        args: builtins.list[Arg] = [Mailbox(reference), Mailbox(pattern)]
        if options:
            args += [Raw("RETURN"), options]
        _, untagged = await self._run(
            "LIST",
            *args,
            collect=lambda _t, r: (
                (isinstance(r, ListResponse) and r.kind == "LIST")
                or isinstance(r, MailboxStatusResponse)
            ),
        )
        lists = [r for r in untagged if isinstance(r, ListResponse)]
        statuses = {r.mailbox: r.items for r in untagged if isinstance(r, MailboxStatusResponse)}
        subscribed: set[str] | None = None
        if subscribed_info and not extended:
            subscribed = {e.name for e in await self._lsub(reference, pattern)}
        entries: builtins.list[ListEntry] = []
        for r in lists:
            flags = set(r.flags)
            if subscribed is not None and r.name in subscribed:
                flags.add("\\Subscribed")
            status: dict[str, int] | None = None
            if status_items:
                status = statuses.get(r.name)
                if status is None and r.name.upper() == "INBOX":
                    status = next((v for k, v in statuses.items() if k.upper() == "INBOX"), None)
            entries.append(ListEntry(r.name, r.delimiter, frozenset(flags), status, r.raw_name))
        if status_items and not list_status:
            entries = await self._fill_status(entries, status_items)
        return entries

    async def _lsub(self, reference: str, pattern: str) -> builtins.list[ListResponse]:
        _, untagged = await self._run(
            "LSUB",
            Mailbox(reference),
            Mailbox(pattern),
            collect=lambda _t, r: isinstance(r, ListResponse) and r.kind == "LSUB",
        )
        return [r for r in untagged if isinstance(r, ListResponse)]

    async def _fill_status(
        self, entries: builtins.list[ListEntry], items: Sequence[str]
    ) -> builtins.list[ListEntry]:
        async def one(entry: ListEntry) -> ListEntry:
            if not entry.selectable:
                return entry
            try:
                status = await self.status(entry.name, items)
            except CommandError:
                return entry
            return ListEntry(entry.name, entry.delimiter, entry.flags, status, entry.raw_name)

        return builtins.list(await asyncio.gather(*(one(e) for e in entries)))

    async def status(self, mailbox: str, items: Sequence[str]) -> dict[str, int]:
        """STATUS mailbox (items); item names upper-case in the result."""

        def collect(_tag: str, r: Response) -> bool:
            return isinstance(r, MailboxStatusResponse) and _same_mailbox(r.mailbox, mailbox)

        _, untagged = await self._run(
            "STATUS", Mailbox(mailbox), [_atom(i) for i in items], collect=collect
        )
        out: dict[str, int] = {}
        for resp in untagged:
            if isinstance(resp, MailboxStatusResponse):
                out.update(resp.items)
        return out

    async def select(
        self,
        mailbox: str,
        *,
        readonly: bool = False,
        condstore: bool = False,
        qresync: QresyncParams | None = None,
    ) -> SelectedMailbox:
        """SELECT/EXAMINE. ``qresync`` enables QRESYNC first when needed; without server support
        it falls back to CONDSTORE (``SelectedMailbox.qresync`` tells which happened)."""
        use_qresync = qresync is not None and self.has_capability("QRESYNC")
        if use_qresync and "QRESYNC" not in self.enabled:
            if self.has_capability("ENABLE"):
                await self.enable("QRESYNC")
            use_qresync = "QRESYNC" in self.enabled
        params: builtins.list[Arg] = []
        if use_qresync and qresync is not None:
            q: builtins.list[Arg] = [qresync.uidvalidity, qresync.modseq]
            if qresync.known_uids:
                q.append(Raw(_seq(qresync.known_uids)))
            params = [Raw("QRESYNC"), q]
        elif (condstore or qresync is not None) and self.has_capability("CONDSTORE"):
            params = [Raw("CONDSTORE")]
        box = SelectedMailbox(name=mailbox, readonly=readonly, qresync=use_qresync)
        self._selecting = box
        try:
            tagged, untagged = await self._run(
                "EXAMINE" if readonly else "SELECT",
                Mailbox(mailbox),
                *([params] if params else []),
                collect=_select_collect,
                check=False,
            )
        finally:
            self._selecting = None
        if tagged.status != "OK":
            self.selected = None
            if self.state is ConnectionState.SELECTED:
                self.state = ConnectionState.AUTHENTICATED
            self._check(tagged, "SELECT")
        if tagged.code is not None:
            box.apply_code(tagged.code)
        for resp in untagged:
            if isinstance(resp, VanishedResponse):
                box.vanished.extend(resp.uids)
            elif isinstance(resp, FetchResponse):
                box.fetches.append(resp)
        self.selected = box
        self.state = ConnectionState.SELECTED
        return box

    async def create(self, mailbox: str) -> None:
        await self._run("CREATE", Mailbox(mailbox))

    async def delete(self, mailbox: str) -> None:
        await self._run("DELETE", Mailbox(mailbox))

    async def rename(self, old: str, new: str) -> None:
        await self._run("RENAME", Mailbox(old), Mailbox(new))

    async def subscribe(self, mailbox: str) -> None:
        await self._run("SUBSCRIBE", Mailbox(mailbox))

    async def unsubscribe(self, mailbox: str) -> None:
        await self._run("UNSUBSCRIBE", Mailbox(mailbox))

    async def append(
        self,
        mailbox: str,
        message: bytes,
        *,
        flags: Sequence[str] = (),
        internal_date: datetime | None = None,
    ) -> AppendUid | None:
        """APPEND (LITERAL+ when offered); the APPENDUID of UIDPLUS servers, else None."""
        args: builtins.list[Arg] = [Mailbox(mailbox)]
        if flags:
            args.append([_atom(f) for f in flags])
        if internal_date is not None:
            args.append(format_internaldate(internal_date))
        args.append(Literal(message))
        tagged, _ = await self._run("APPEND", *args)
        value = tagged.code.value if tagged.code else None
        return value if isinstance(value, AppendUid) else None

    async def notify_set(self, spec: str) -> builtins.list[Response]:
        """NOTIFY SET <spec> (RFC 5465); ``spec`` is sent as given. With the STATUS indicator
        the server first reports every watched mailbox: those STATUS/LIST responses are
        returned (not passed to listeners)."""
        _, untagged = await self._run(
            "NOTIFY",
            Raw("SET " + spec),
            collect=lambda _t, r: isinstance(r, MailboxStatusResponse | ListResponse),
        )
        return untagged

    async def notify_none(self) -> None:
        await self._run("NOTIFY", Raw("NONE"))

    # -- selected ------------------------------------------------------------------------------

    async def unselect(self) -> None:
        """UNSELECT, or CLOSE where UNSELECT is missing (CLOSE expunges \\Deleted messages)."""
        await self._run("UNSELECT" if self.has_capability("UNSELECT") else "CLOSE")
        self.selected = None
        self.state = ConnectionState.AUTHENTICATED

    async def expunge(self) -> None:
        await self._run("EXPUNGE", collect=_expunge_collect)

    async def uid_fetch(
        self,
        uids: str | Sequence[int],
        items: Sequence[str],
        *,
        changedsince: int | None = None,
        vanished: bool = False,
    ) -> FetchResult:
        """UID FETCH. ``items`` are rendered atoms (``"BODY.PEEK[HEADER]"``). Returns the FETCH
        responses for the requested UIDs (a list; ``.vanished`` has VANISHED (EARLIER) UIDs)."""
        seq = _seq(uids)
        matcher = SequenceMatcher(seq)
        args: builtins.list[Arg] = [Raw(seq), Raw("(" + " ".join(items) + ")")]
        if changedsince is not None:
            mods: builtins.list[Arg] = [Raw("CHANGEDSINCE"), changedsince]
            if vanished:
                mods.append(Raw("VANISHED"))
            args.append(mods)

        collect = _fetch_collector(matcher, vanished=True)

        _, untagged = await self._run("UID FETCH", *args, collect=collect)
        result = FetchResult([r for r in untagged if isinstance(r, FetchResponse)])
        for r in untagged:
            if isinstance(r, VanishedResponse):
                result.vanished.extend(r.uids)
        return result

    async def fetch(self, low: int, high: int, items: Sequence[str]) -> FetchResult:
        """FETCH by message sequence numbers ``low:high`` of the current view (no EXPUNGE can
        arrive while it runs, RFC 3501 §7.4.1). One response per number: the first that carries
        an item besides UID/FLAGS/MODSEQ (unsolicited flag updates are left alone)."""
        names = [i.upper() for i in items]
        wanted = next((n for n in names if n not in ("UID", "FLAGS", "MODSEQ")), "UID")
        seen: set[int] = set()

        def collect(_tag: str, r: Response) -> bool:
            if not isinstance(r, FetchResponse) or not low <= r.seq <= high or r.seq in seen:
                return False
            if wanted not in r.attrs:
                return False
            seen.add(r.seq)
            return True

        seq = Raw(f"{low}:{high}")
        _, untagged = await self._run(
            "FETCH", seq, Raw("(" + " ".join(items) + ")"), collect=collect
        )
        return FetchResult([r for r in untagged if isinstance(r, FetchResponse)])

    async def uid_search(
        self, criteria: Sequence[str | bytes], *, charset: str | None = None
    ) -> builtins.list[int]:
        """UID SEARCH. ``str`` parts are sent as given, ``bytes`` as literals (CHARSET UTF-8 is
        added for non-ASCII bytes when no charset is given). ESEARCH is used when offered."""
        args: builtins.list[Arg] = []
        esearch = self.has_capability("ESEARCH")
        if esearch:
            args += [Raw("RETURN"), [Raw("ALL")]]
        if charset is None and any(isinstance(c, bytes) and not c.isascii() for c in criteria):
            charset = "UTF-8"
        if charset:
            args += [Raw("CHARSET"), _atom(charset)]
        for c in criteria:
            args.append(c if isinstance(c, bytes) else Raw(c))
        if not criteria:
            args.append(Raw("ALL"))

        def collect(tag: str, r: Response) -> bool:
            if isinstance(r, EsearchResponse):
                return r.tag is None or r.tag == tag
            return isinstance(r, SearchResponse)

        _, untagged = await self._run("UID SEARCH", *args, collect=collect)
        found: set[int] = set()
        for r in untagged:
            if isinstance(r, SearchResponse | EsearchResponse):
                found.update(r.ids)
        return sorted(found)

    async def uid_store(
        self,
        uids: str | Sequence[int],
        op: str,
        flags: Sequence[str],
        *,
        silent: bool = True,
        unchangedsince: int | None = None,
    ) -> FetchResult:
        """UID STORE ``op`` (``+FLAGS``/``-FLAGS``/``FLAGS``). ``.modified`` lists UIDs the
        server refused because of ``unchangedsince`` (RFC 7162 MODIFIED)."""
        op = op.upper()
        if op not in _STORE_OPS:
            raise ValueError(f"bad STORE operation {op!r}")
        seq = _seq(uids)
        matcher = SequenceMatcher(seq)
        args: builtins.list[Arg] = [Raw(seq)]
        if unchangedsince is not None:
            args.append([Raw("UNCHANGEDSINCE"), unchangedsince])
        args.append(Raw(op + (".SILENT" if silent else "")))
        args.append([_atom(f) for f in flags])
        tagged, untagged = await self._run(
            "UID STORE",
            *args,
            collect=_fetch_collector(matcher, vanished=False),
        )
        code = tagged.code
        modified: tuple[int, ...] = ()
        if code is not None and code.name == "MODIFIED" and isinstance(code.value, tuple):
            modified = tuple(v for v in code.value if isinstance(v, int))
        return FetchResult([r for r in untagged if isinstance(r, FetchResponse)], modified=modified)

    async def uid_copy(self, uids: str | Sequence[int], mailbox: str) -> CopyUid | None:
        tagged, _ = await self._run("UID COPY", Raw(_seq(uids)), Mailbox(mailbox))
        value = tagged.code.value if tagged.code else None
        return value if isinstance(value, CopyUid) else None

    async def uid_move(
        self, uids: str | Sequence[int], mailbox: str, *, use_move: bool = True
    ) -> CopyUid | None:
        """UID MOVE (RFC 6851), else COPY + STORE \\Deleted + UID EXPUNGE (or EXPUNGE).
        ``use_move=False`` forces the fallback."""
        seq = _seq(uids)
        if use_move and self.has_capability("MOVE"):

            def collect(_tag: str, r: Response) -> bool:
                if isinstance(r, UntaggedStatus):
                    return r.code is not None and r.code.name == "COPYUID"
                return _expunge_collect(_tag, r)

            tagged, untagged = await self._run(
                "UID MOVE", Raw(seq), Mailbox(mailbox), collect=collect
            )
            for r in [tagged, *untagged]:
                code = r.code if isinstance(r, UntaggedStatus | TaggedResponse) else None
                if code is not None and isinstance(code.value, CopyUid):
                    return code.value
            return None
        copied = await self.uid_copy(seq, mailbox)
        await self.uid_store(seq, "+FLAGS", ["\\Deleted"])
        if self.has_capability("UIDPLUS"):
            await self.uid_expunge(seq)
        else:
            await self.expunge()
        return copied

    async def uid_expunge(self, uids: str | Sequence[int]) -> builtins.list[int]:
        """UID EXPUNGE (UIDPLUS). Returns the expunged UIDs when the server reports them as
        VANISHED (QRESYNC enabled); otherwise the requested UIDs if every one was expunged."""
        if not self.has_capability("UIDPLUS"):
            raise CommandError("UID EXPUNGE needs UIDPLUS", status="BAD")
        seq = _seq(uids)
        _, untagged = await self._run("UID EXPUNGE", Raw(seq), collect=_expunge_collect)
        vanished = [u for r in untagged if isinstance(r, VanishedResponse) for u in r.uids]
        if vanished:
            return sorted(vanished)
        expunged = sum(1 for r in untagged if isinstance(r, ExpungeResponse))
        if not isinstance(uids, str) and expunged == len(set(uids)):
            return sorted(set(uids))
        return []

    # -- IDLE ----------------------------------------------------------------------------------

    async def idle(self, max_seconds: float) -> builtins.list[Response]:
        """IDLE until a mailbox change arrives, ``max_seconds`` pass, or another command wants
        the connection; then DONE. Returns every untagged response that arrived meanwhile.

        Cancellation sends DONE and leaves the connection usable.
        """
        if not self.has_capability("IDLE"):
            raise CommandError("server does not support IDLE", status="BAD")
        self._ensure_open()
        max_seconds = min(max_seconds, self.timeouts.idle)
        sink: builtins.list[Response] = []
        previous = self.state
        async with self._write_lock:
            self._ensure_open()
            tag = self._tags()
            pending = _Pending(tag, "IDLE", None)
            self._pending[tag] = pending
            wake: asyncio.Future[None] = self._loop.create_future()
            self._idle_sink, self._idle_wake = sink, wake
            self._cont_waiter = pending
            done_sent = False
            try:
                cont = pending.expect_continuation()
                self._log.debug("imap.send", line=f"{tag} IDLE")
                self._write(f"{tag} IDLE\r\n".encode("ascii"))
                await self._drain()
                if await self._wait(cont, self.timeouts.command, "IDLE") is None:
                    tagged = pending.future.result()
                    self._check(tagged, "IDLE")
                    return sink
                self._cont_waiter = None
                self.state = ConnectionState.IDLE
                if not wake.done():
                    waiters: set[asyncio.Future[Any]] = {wake, pending.future}
                    await asyncio.wait(
                        waiters, timeout=max_seconds, return_when=asyncio.FIRST_COMPLETED
                    )
                self._ensure_open()
                if not pending.future.done():
                    self._write(b"DONE\r\n")
                    done_sent = True
                    await self._drain()
                tagged, _ = await self._result(pending)
                self._check(tagged, "IDLE")
            except asyncio.CancelledError:
                if not done_sent and not self.closed and not pending.future.done():
                    with contextlib.suppress(ConnectError):
                        self._write(b"DONE\r\n")
                raise
            finally:
                self._cont_waiter = None
                self._idle_sink, self._idle_wake = None, None
                if self.state is ConnectionState.IDLE:
                    self.state = previous
        return sink


def _fetch_collector(matcher: SequenceMatcher, *, vanished: bool) -> Collector:
    """FETCH responses for UIDs in ``matcher``. A second FETCH for a UID already collected is
    left to the next pending command: pipelined commands asking for the same UIDs (which servers
    may run in parallel) each get their own."""
    seen: set[int] = set()

    def collect(_tag: str, r: Response) -> bool:
        if isinstance(r, FetchResponse):
            uid = r.uid
            if uid is None or uid not in matcher or uid in seen:
                return False
            seen.add(uid)
            return True
        return vanished and isinstance(r, VanishedResponse) and r.earlier

    return collect


def _select_collect(_tag: str, r: Response) -> bool:
    if isinstance(r, UntaggedStatus):
        return r.status == "OK" and r.code is not None
    return isinstance(
        r, FetchResponse | VanishedResponse | ExistsResponse | RecentResponse | FlagsResponse
    )


def _expunge_collect(_tag: str, r: Response) -> bool:
    return isinstance(r, ExpungeResponse) or (isinstance(r, VanishedResponse) and not r.earlier)


def _decode_challenge(raw: bytes) -> str:
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return raw.decode("utf-8", "replace")
