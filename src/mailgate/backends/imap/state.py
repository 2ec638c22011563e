"""Connection state, timeouts and the records an :class:`~.client.ImapClient` returns.

Connection state machine (:class:`ConnectionState`)::

    connect ──► NOT_AUTHENTICATED ──LOGIN/AUTHENTICATE──► AUTHENTICATED ◄──┐
                    │  (greeting PREAUTH skips to AUTHENTICATED)  │         │ UNSELECT/CLOSE,
                    │                                 SELECT/EXAMINE       │ failed SELECT
                    │                                             ▼         │
                    │                                          SELECTED ───┘
                    │                        IDLE ◄──IDLE── AUTHENTICATED | SELECTED
                    │                        IDLE ──DONE + tagged OK──► previous state
                    ▼
    any state ──LOGOUT / BYE / EOF / timeout / ProtocolError──► LOGOUT (closed, terminal)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from mailgate.protocols.imap.responses import (
    ExistsResponse,
    ExpungeResponse,
    FetchResponse,
    FlagsResponse,
    NamespaceEntry,
    RecentResponse,
    Response,
    ResponseCode,
    UntaggedStatus,
    VanishedResponse,
)

__all__ = [
    "ConnectionState",
    "FetchResult",
    "ImapTimeouts",
    "ListEntry",
    "Namespaces",
    "QresyncParams",
    "SelectedMailbox",
]


class ConnectionState(enum.Enum):
    NOT_AUTHENTICATED = "not-authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    IDLE = "idle"
    LOGOUT = "logout"


@dataclass(frozen=True)
class ImapTimeouts:
    """Seconds allowed for each phase. ``command`` is an inactivity timeout: it restarts whenever
    the server sends data, so a long FETCH that keeps streaming never times out."""

    connect: float = 15
    greeting: float = 15
    command: float = 60
    idle: float = 25 * 60
    logout: float = 5


@dataclass(frozen=True)
class QresyncParams:
    """``SELECT ... (QRESYNC (uidvalidity modseq [known-uids]))`` (RFC 7162)."""

    uidvalidity: int
    modseq: int
    known_uids: str | None = None


@dataclass
class SelectedMailbox:
    """What the server told us about the selected mailbox; kept current by unsolicited data."""

    name: str
    readonly: bool = False
    exists: int = 0
    recent: int = 0
    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None
    nomodseq: bool = False
    unseen: int | None = None
    mailbox_id: str | None = None
    flags: tuple[str, ...] = ()
    permanentflags: tuple[str, ...] = ()
    #: QRESYNC was used for this SELECT (so ``vanished``/``fetches`` are meaningful).
    qresync: bool = False
    #: UIDs from ``VANISHED (EARLIER)`` received during a QRESYNC select.
    vanished: list[int] = field(default_factory=list)
    #: FETCH responses (changed messages) received during a QRESYNC select.
    fetches: list[FetchResponse] = field(default_factory=list)

    def apply(self, resp: Response) -> None:
        """Update from an untagged response (EXISTS, RECENT, EXPUNGE, VANISHED, FLAGS, codes)."""
        if isinstance(resp, ExistsResponse):
            self.exists = resp.count
        elif isinstance(resp, ExpungeResponse):
            self.exists = max(0, self.exists - 1)
        elif isinstance(resp, VanishedResponse):
            if not resp.earlier:
                self.exists = max(0, self.exists - len(resp.uids))
        elif isinstance(resp, RecentResponse):
            self.recent = resp.count
        elif isinstance(resp, FlagsResponse):
            self.flags = resp.flags
        elif isinstance(resp, UntaggedStatus) and resp.code is not None:
            self.apply_code(resp.code)

    def apply_code(self, code: ResponseCode) -> None:
        name, value = code.name, code.value
        if name == "UIDVALIDITY" and isinstance(value, int):
            self.uidvalidity = value
        elif name == "UIDNEXT" and isinstance(value, int):
            self.uidnext = value
        elif name == "HIGHESTMODSEQ" and isinstance(value, int):
            self.highestmodseq = value
            self.nomodseq = False
        elif name == "NOMODSEQ":
            self.nomodseq = True
            self.highestmodseq = None
        elif name == "UNSEEN" and isinstance(value, int):
            self.unseen = value
        elif name == "PERMANENTFLAGS" and isinstance(value, tuple):
            self.permanentflags = tuple(str(v) for v in value)
        elif name == "READ-ONLY":
            self.readonly = True
        elif name == "READ-WRITE":
            self.readonly = False
        elif name == "MAILBOXID" and isinstance(value, str):
            self.mailbox_id = value


@dataclass(frozen=True)
class ListEntry:
    """One mailbox from LIST. ``flags`` keep the server's case (``\\Sent``, ``\\HasNoChildren``,
    ``\\Subscribed``, ``\\Noselect``); ``status`` is filled when status items were asked for."""

    name: str
    delimiter: str | None
    flags: frozenset[str]
    status: dict[str, int] | None = None
    raw_name: bytes = b""

    def has_flag(self, flag: str) -> bool:
        low = flag.lower()
        return any(f.lower() == low for f in self.flags)

    @property
    def selectable(self) -> bool:
        return not (self.has_flag("\\Noselect") or self.has_flag("\\NonExistent"))

    @property
    def subscribed(self) -> bool:
        return self.has_flag("\\Subscribed")

    @property
    def special_use(self) -> str | None:
        for flag in self.flags:
            if flag.lower() in _SPECIAL_USE:
                return _SPECIAL_USE[flag.lower()]
        return None


_SPECIAL_USE = {
    f.lower(): f
    for f in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
}


@dataclass(frozen=True)
class Namespaces:
    personal: tuple[NamespaceEntry, ...]
    other: tuple[NamespaceEntry, ...] = ()
    shared: tuple[NamespaceEntry, ...] = ()


class FetchResult(list[FetchResponse]):
    """The FETCH responses of a command, plus what came with them.

    ``vanished``: UIDs of ``VANISHED (EARLIER)`` (UID FETCH with ``vanished=True``);
    ``modified``: UIDs of a ``[MODIFIED ...]`` code (UID STORE with ``unchangedsince``).
    """

    def __init__(
        self,
        items: list[FetchResponse] | None = None,
        *,
        vanished: list[int] | None = None,
        modified: tuple[int, ...] = (),
    ) -> None:
        super().__init__(items or [])
        self.vanished: list[int] = vanished or []
        self.modified: tuple[int, ...] = modified
