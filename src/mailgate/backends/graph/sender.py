"""Sending through Graph ``sendMail``: the :class:`~mailgate.backends.smtp.sender.Sender` of
Microsoft Graph accounts.

The outbox builds the message with the same MIME builder as for SMTP; this sender posts it as
base64 MIME (``Content-Type: text/plain``) to ``{mailbox}/sendMail``. Graph files the Sent copy
itself (``server_side_sent_copy``) and keeps the conversation of a reply from its
``In-Reply-To``/``References`` headers. Graph sends to the recipients in the headers (Bcc
included); an envelope that differs from the headers cannot be honoured.

Failures map onto the outbox's retry rules (:mod:`mailgate.services.sending.retry`)::

    connect failure, token failure                     NETWORK    retried
    400 (bad message, no recipient)                    REPLY 554  permanent
    403 (scope, sending disabled)                      CONFIG     permanent
    429 / 5xx after the client's own waits             NETWORK    retried later
    connection lost after the request went out         UNCERTAIN  never re-sent blindly
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable

from mailgate.backends.graph.client import GraphClient, GraphUncertain
from mailgate.backends.smtp.sender import (
    DsnOptions,
    Envelope,
    Phase,
    Provenance,
    SendError,
    SendResult,
)
from mailgate.errors import BadRequest, Forbidden, MailgateError

MAX_MIME_BYTES = 4 * 1024 * 1024  # Graph's limit for a MIME sendMail request body (base64 aside)


class GraphSender:
    """Implements :class:`~mailgate.backends.smtp.sender.Sender` over Microsoft Graph."""

    def __init__(self, client: GraphClient) -> None:
        self.client = client

    async def send(
        self,
        envelope: Envelope,
        message: bytes,
        *,
        commit: Callable[[], Awaitable[None]],
        dsn: DsnOptions | None = None,
    ) -> SendResult:
        if len(message) > MAX_MIME_BYTES:
            raise SendError(
                f"message of {len(message)} bytes exceeds Graph's {MAX_MIME_BYTES}-byte limit",
                provenance=Provenance.REPLY,
                phase=Phase.DATA,
                code=552,
                error_code="EMESSAGE",
            )
        body = base64.b64encode(message)
        await commit()
        try:
            await self.client.post_once(
                "/sendMail", content=body, headers={"Content-Type": "text/plain"}
            )
        except GraphUncertain as exc:
            raise SendError(str(exc), provenance=Provenance.UNCERTAIN, phase=Phase.DATA,
                            error_code="EUNCERTAIN") from exc  # fmt: skip
        except BadRequest as exc:
            raise SendError(str(exc), provenance=Provenance.REPLY, phase=Phase.DATA, code=554,
                            server_response=str(exc), error_code="EAPI") from exc  # fmt: skip
        except Forbidden as exc:
            raise SendError(str(exc), provenance=Provenance.CONFIG, phase=Phase.AUTH,
                            error_code="EAUTH") from exc  # fmt: skip
        except MailgateError as exc:
            raise SendError(str(exc), provenance=Provenance.NETWORK, phase=Phase.DATA,
                            error_code="EAPI") from exc  # fmt: skip
        return SendResult(
            response="202 Accepted by Microsoft Graph",
            code=250,
            accepted=tuple(envelope.rcpt_to),
        )

    async def close(self) -> None:
        """Nothing to close: the HTTP pool is the process's."""
