"""Every bound the IMAP parser enforces, named in one place.

A server is untrusted input: a hostile or broken one must not make mailgate allocate without
bound or recurse without bound. Each limit below is checked by the sans-IO parser; exceeding one
raises :class:`mailgate.errors.ProtocolError` and the connection is dropped.

The defaults are sized for real mailboxes: a plain ``SEARCH`` answer for a 1,000,000-message folder
is about 8 MB on one line, so the line limit is generous; message literals are capped at what
mailgate is willing to hold in memory for one message.
"""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True, slots=True)
class ImapLimits:
    """Bounds for one connection's parser. All sizes are in bytes."""

    #: Longest line (text between literals, without CRLF) a response may contain.
    max_line_length: int = 16 * MIB
    #: Largest single literal (``{n}`` or ``~{n}``) accepted.
    max_literal_size: int = 256 * MIB
    #: Most bytes one response may total (all its lines and literals together).
    max_response_size: int = 512 * MIB
    #: Most literals inside one response (a FETCH of many body sections).
    max_literals_per_response: int = 1_000
    #: Deepest nesting of parenthesised lists (BODYSTRUCTURE of nested multiparts).
    max_nesting_depth: int = 64
    #: Most numbers one sequence set (``1:5000,7``) may expand to.
    max_sequence_set_expansion: int = 5_000_000
    #: Most tokens (atoms, strings, parentheses) in one response.
    max_tokens_per_response: int = 2_000_000


DEFAULT_LIMITS = ImapLimits()

#: Largest string the command serializer sends as a quoted string; longer ones become literals.
MAX_QUOTED_LENGTH = 1_000
#: LITERAL- (RFC 7888) allows non-synchronizing literals only up to this size.
LITERAL_MINUS_MAX = 4_096
