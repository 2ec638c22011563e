"""Sending through ``users.messages.send``: the :class:`~mailgate.backends.smtp.sender.Sender`
of Gmail API accounts.

The outbox builds the message with the same MIME builder as for SMTP; this sender uploads it
(``uploadType=multipart``, so messages up to Gmail's 35 MB limit fit) with the ``threadId`` of
the message it replies to (found by its ``In-Reply-To`` / ``References`` ids, one
``messages.list q=rfc822msgid:``), so Gmail threads the reply. Gmail files the sent message in
Sent itself (``server_side_sent_copy``) and sends to the recipients in the headers (Bcc
included, and stripped) — an envelope that differs from the headers cannot be honoured.

Failures map onto the outbox's retry rules (:mod:`mailgate.services.sending.retry`)::

    before the upload (thread lookup, token)            NETWORK    retried
    400 (bad message, no recipient)                     REPLY 554  permanent
    403 (scope, sending disabled)                       CONFIG     permanent
    429 / 5xx after the client's own retries            NETWORK    retried later
    connection lost mid-upload (GmailUncertain)         UNCERTAIN  never re-sent blindly
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import secrets
from collections.abc import Awaitable, Callable

from mailgate.backends.gmail.client import GmailClient, GmailUncertain
from mailgate.backends.smtp.sender import (
    DsnOptions,
    Envelope,
    Phase,
    Provenance,
    SendError,
    SendResult,
)
from mailgate.errors import (
    AuthenticationError,
    BadRequest,
    ConnectError,
    Forbidden,
    MailgateError,
)

#: Header bytes read to find the ids of the message a reply refers to.
HEADER_SCAN_LIMIT = 64 * 1024
_MSGID_RE = re.compile(r"<([^<>\s]{1,250})>")


def referenced_ids(message: bytes) -> list[str]:
    """Message-IDs (without brackets) a message replies to: In-Reply-To first, then References
    from the newest."""
    head = message[:HEADER_SCAN_LIMIT].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    ids = _MSGID_RE.findall(str(parsed.get("In-Reply-To") or ""))
    ids += list(reversed(_MSGID_RE.findall(str(parsed.get("References") or ""))))
    return list(dict.fromkeys(ids))


class GmailSender:
    """Implements :class:`~mailgate.backends.smtp.sender.Sender` over the Gmail API."""

    def __init__(self, client: GmailClient) -> None:
        self.client = client

    async def _thread_id(self, message: bytes) -> str | None:
        for msgid in referenced_ids(message)[:3]:
            found = await self.client.request(
                "messages.list",
                "GET",
                "messages",
                params={
                    "q": f"rfc822msgid:{msgid}",
                    "includeSpamTrash": True,
                    "maxResults": 1,
                    "fields": "messages(id,threadId)",
                },
            )
            for item in found.get("messages") or []:
                if item.get("threadId"):
                    return str(item["threadId"])
        return None

    async def send(
        self,
        envelope: Envelope,
        message: bytes,
        *,
        commit: Callable[[], Awaitable[None]],
        dsn: DsnOptions | None = None,
    ) -> SendResult:
        try:
            thread_id = await self._thread_id(message)
        except MailgateError as exc:
            raise SendError(
                f"Gmail API unavailable: {exc}",
                provenance=Provenance.NETWORK,
                phase=Phase.CONNECT,
                error_code="EAPI",
            ) from exc
        boundary = "mg_" + secrets.token_hex(12)
        meta = json.dumps({"threadId": thread_id} if thread_id else {}).encode()
        body = (
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode()
            + meta
            + f"\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n".encode()
            + message
            + f"\r\n--{boundary}--\r\n".encode()
        )
        await commit()
        try:
            sent = await self.client.request(
                "messages.send",
                "POST",
                "messages/send",
                params={"uploadType": "multipart"},
                content=body,
                headers={"Content-Type": f"multipart/related; boundary={boundary}"},
                upload=True,
                idempotent=False,
            )
        except GmailUncertain as exc:
            raise SendError(str(exc), provenance=Provenance.UNCERTAIN, phase=Phase.DATA,
                            error_code="EUNCERTAIN") from exc  # fmt: skip
        except BadRequest as exc:
            raise SendError(str(exc), provenance=Provenance.REPLY, phase=Phase.DATA, code=554,
                            server_response=str(exc), error_code="EAPI") from exc  # fmt: skip
        except Forbidden as exc:
            raise SendError(str(exc), provenance=Provenance.CONFIG, phase=Phase.AUTH,
                            error_code="EAUTH") from exc  # fmt: skip
        except (AuthenticationError, ConnectError) as exc:
            raise SendError(str(exc), provenance=Provenance.NETWORK, phase=Phase.DATA,
                            error_code="EAPI") from exc  # fmt: skip
        except MailgateError as exc:
            raise SendError(str(exc), provenance=Provenance.NETWORK, phase=Phase.DATA,
                            error_code="EAPI") from exc  # fmt: skip
        message_id = str(sent.get("id") or "")
        return SendResult(
            response=f"250 Message queued as {message_id}",
            code=250,
            accepted=tuple(envelope.rcpt_to),
        )

    async def close(self) -> None:
        """Nothing to close: the HTTP pool is the process's."""
