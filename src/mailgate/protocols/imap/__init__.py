"""Sans-IO IMAP4rev1/rev2 codec: no asyncio, no sockets.

Stages: :mod:`.lexer` (framing + tokens) → :mod:`.parser` (typed :mod:`.responses`), with
:mod:`.envelope` / :mod:`.bodystructure` for FETCH data, :mod:`.commands` for the client side,
:mod:`.utf7` for mailbox names, :mod:`.sequence` for sequence sets and :mod:`.limits` for every
bound enforced against the server.
"""

from __future__ import annotations

from .bodystructure import BodyStructure, parse_bodystructure
from .commands import CommandEncoder, Literal, Mailbox, Raw, RenderedCommand, Secret, TagGenerator
from .envelope import Address, Envelope, parse_envelope
from .limits import DEFAULT_LIMITS, ImapLimits
from .parser import ResponseParser
from .responses import (
    AppendUid,
    CapabilityResponse,
    Continuation,
    CopyUid,
    EnabledResponse,
    EsearchResponse,
    ExistsResponse,
    ExpungeResponse,
    FetchResponse,
    FlagsResponse,
    GenericResponse,
    IdResponse,
    ListResponse,
    MailboxStatusResponse,
    NamespaceEntry,
    NamespaceResponse,
    RecentResponse,
    Response,
    ResponseCode,
    SearchResponse,
    TaggedResponse,
    UntaggedStatus,
    VanishedResponse,
)
from .sequence import SequenceMatcher, compress, expand
from .utf7 import decode_utf7, encode_utf7

__all__ = [
    "DEFAULT_LIMITS",
    "Address",
    "AppendUid",
    "BodyStructure",
    "CapabilityResponse",
    "CommandEncoder",
    "Continuation",
    "CopyUid",
    "EnabledResponse",
    "Envelope",
    "EsearchResponse",
    "ExistsResponse",
    "ExpungeResponse",
    "FetchResponse",
    "FlagsResponse",
    "GenericResponse",
    "IdResponse",
    "ImapLimits",
    "ListResponse",
    "Literal",
    "Mailbox",
    "MailboxStatusResponse",
    "NamespaceEntry",
    "NamespaceResponse",
    "Raw",
    "RecentResponse",
    "RenderedCommand",
    "Response",
    "ResponseCode",
    "ResponseParser",
    "SearchResponse",
    "Secret",
    "SequenceMatcher",
    "TagGenerator",
    "TaggedResponse",
    "UntaggedStatus",
    "VanishedResponse",
    "compress",
    "decode_utf7",
    "encode_utf7",
    "expand",
    "parse_bodystructure",
    "parse_envelope",
]
