"""Running one outbox job: deliver, classify a failure, report, and the post-send steps.

What happens to a claimed job depends on its state (see :mod:`.outbox`)::

    queued/processing  send: commit marks ``sending`` (before DATA), the 250 marks ``sent``;
                       a failure is classified (:mod:`.retry`): retry later, fail, or uncertain
    sent               only the post-send steps (a crash came after the 250)
    uncertain          report ``messageFailed`` (code ``EUNCERTAIN``) and drop it, never re-send

Post-send steps, each at most once per successful run: ``messageSent`` event, gateway counters,
copy to Sent over IMAP (``copy`` of the job, else of the account, default true; not for accounts
without IMAP), ``\\Answered``/``$Forwarded`` on the referenced message, removal of a sent draft.
A failing post-send step is logged and skipped: the message itself was delivered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from mailgate.backends.smtp.sender import (
    DsnOptions,
    Envelope,
    Phase,
    Provenance,
    Sender,
    SenderFactory,
    SendError,
    SmtpSender,
)
from mailgate.domain.account import AccountRecord, SmtpConfig
from mailgate.errors import MailgateError
from mailgate.services.settings import SettingsService
from mailgate.store.accounts import AccountStore
from mailgate.store.events import EventLog

from . import retry
from .builder import with_bcc
from .gateways import GatewayService
from .mailstore import MailStore
from .outbox import Job, JobState, LeaseLost, Outbox, iso_ms, now_ms

log = structlog.get_logger("mailgate.sending")

SETTINGS_TTL = 2.0  # seconds settings read by the worker are cached
RECORD_TTL = 1.0  # seconds an account record is reused for the next job of a burst
PostSend = Callable[[], Awaitable[None]]
REFERENCE_FLAGS = {"reply": "\\Answered", "reply-all": "\\Answered", "forward": "$Forwarded"}


def default_sender_factory(ehlo_name: str | None, ignore_cert_errors: bool) -> SenderFactory:
    def make(cfg: SmtpConfig) -> Sender:
        return SmtpSender(cfg, ehlo_name=ehlo_name, ignore_cert_errors=ignore_cert_errors)

    return make


@dataclass
class SenderSlot:
    """The sender one lane reuses for a burst, rebuilt when the SMTP settings change."""

    cfg: SmtpConfig | None = None
    sender: Sender | None = None
    tail: asyncio.Task[None] | None = field(default=None, repr=False)  # last post-send steps

    async def get(self, cfg: SmtpConfig, factory: SenderFactory) -> Sender:
        if self.sender is None or self.cfg != cfg:
            await self.close()
            self.cfg, self.sender = cfg, factory(cfg)
        return self.sender

    async def close(self) -> None:
        sender, self.sender, self.cfg = self.sender, None, None
        if sender is not None:
            await sender.close()


class _Settings:
    def __init__(self, settings: SettingsService) -> None:
        self.settings = settings
        self._cache: dict[str, tuple[float, Any]] = {}

    async def get(self, name: str) -> Any:
        hit = self._cache.get(name)
        if hit is not None and time.monotonic() - hit[0] < SETTINGS_TTL:
            return hit[1]
        value = await self.settings.get(name)
        self._cache[name] = (time.monotonic(), value)
        return value


def _dsn(job: Job) -> DsnOptions | None:
    data = job.json("dsn")
    if not data:
        return None
    ret = {"headers": "HDRS", "full": "FULL"}.get(str(data.get("return") or ""))
    return DsnOptions(
        envid=data.get("id"),
        ret=ret,
        notify=tuple(str(n).upper() for n in data.get("notify") or ()),
        orcpt=data.get("recipient"),
    )


def error_info(exc: SendError) -> dict[str, Any]:
    """The error fields EmailEngine reports for a failed attempt."""
    out: dict[str, Any] = {"message": str(exc), "code": exc.error_code}
    if exc.code is not None:
        out["statusCode"] = exc.code
    if exc.server_response:
        out["response"] = exc.server_response
    out["command"] = exc.phase.value
    return out


class Delivery:
    """Processes claimed jobs; one instance per worker, shared by its lanes."""

    # Senders of accounts that send over a provider API (Gmail API, Graph) instead of SMTP:
    # set by the container from ``backends.registry.build_api_sender``; None -> SMTP for all.
    api_senders: Callable[[AccountRecord], Awaitable[Sender | None]] | None = None
    #: fills an OAuth2 account's SMTP settings with a fresh token for XOAUTH2 (set by wiring)
    smtp_credentials: Callable[[AccountRecord, SmtpConfig], Awaitable[SmtpConfig]] | None = None

    def __init__(
        self,
        outbox: Outbox,
        accounts: AccountStore,
        settings: SettingsService,
        events: EventLog,
        mailstore: MailStore | None,
        gateways: GatewayService,
        *,
        token: str,
        sender_factory: SenderFactory | None = None,
        retry_delay: float | None = None,
    ) -> None:
        self.outbox = outbox
        self.accounts = accounts
        self.settings = _Settings(settings)
        self.events = events
        self.mailstore = mailstore
        self.gateways = gateways
        self.token = token
        self._factory = sender_factory
        self._retry_delay = retry_delay
        self._records: dict[str, tuple[float, AccountRecord | None]] = {}

    async def _sender_factory(self, record: AccountRecord | None) -> SenderFactory:
        if self._factory is not None:
            return self._factory
        ehlo = (record.smtp_ehlo_name if record else None) or await self.settings.get(
            "smtpEhloName"
        )
        ignore = bool(await self.settings.get("ignoreMailCertErrors"))
        return default_sender_factory(ehlo or None, ignore)

    async def _base_delay(self) -> float:
        if self._retry_delay is not None:
            return self._retry_delay
        value = await self.settings.get("deliveryRetryDelay")
        return float(value) if value else retry.DEFAULT_BASE_DELAY

    # -- one job ------------------------------------------------------------------------------

    async def load(self, queue_id: str) -> tuple[Job, bytes] | None:
        """The job and its message (the lane prefetches the next one while sending)."""
        return await self.outbox.load(queue_id)

    async def _record(self, account: str) -> AccountRecord | None:
        hit = self._records.get(account)
        if hit is not None and time.monotonic() - hit[0] < RECORD_TTL:
            return hit[1]
        record = await self.accounts.get(account)
        self._records[account] = (time.monotonic(), record)
        return record

    async def process(
        self,
        queue_id: str,
        slot: SenderSlot,
        loaded: tuple[Job, bytes] | None = None,
    ) -> PostSend | None:
        """Run one claimed job up to its next resting point. A job the server accepted returns
        its post-send steps, which the caller runs off the connection's critical path (the
        lane's next message goes out meanwhile); the job keeps its lease until they finish."""
        if loaded is None:
            loaded = await self.outbox.load(queue_id)
        if loaded is None:
            return None  # cancelled meanwhile
        job, raw = loaded
        if job.get("lease") != self.token:
            return None  # reaped and claimed elsewhere
        if job.state is JobState.UNCERTAIN:
            await self._report_uncertain(job)
            await self.outbox.finish(self.token, queue_id)
            return None
        record = await self._record(job.account)
        if job.state is JobState.SENT:
            await self._after_send(job, raw, record)
            return None
        if await self._send(job, raw, record, slot):
            return lambda: self._after_send(job, raw, record)
        return None

    async def _smtp_config(self, job: Job, record: AccountRecord | None) -> SmtpConfig:
        gateway = job.get("gateway")
        if gateway:
            try:
                return await self.gateways.smtp_config(gateway)
            except MailgateError as exc:
                raise SendError(
                    f"Gateway {gateway} is not available: {exc}",
                    provenance=Provenance.CONFIG,
                    phase=Phase.CONNECT,
                    error_code="EGATEWAY",
                ) from exc
        if record is None:
            raise SendError(
                "Account was deleted",
                provenance=Provenance.CONFIG,
                phase=Phase.CONNECT,
                error_code="ENOACCOUNT",
            )
        if record.smtp is None or not record.smtp.host:
            raise SendError(
                "Account has no SMTP settings",
                provenance=Provenance.CONFIG,
                phase=Phase.CONNECT,
                error_code="ENOSMTP",
            )
        if record.oauth2 and self.smtp_credentials is not None:
            try:
                return await self.smtp_credentials(record, record.smtp)
            except MailgateError as exc:
                raise SendError(
                    f"Could not get an OAuth2 token for SMTP: {exc}",
                    provenance=Provenance.NETWORK,
                    phase=Phase.AUTH,
                    error_code="EOAUTH2",
                ) from exc
        return record.smtp

    async def _send(
        self, job: Job, raw: bytes, record: AccountRecord | None, slot: SenderSlot
    ) -> bool:
        """Deliver; True when the server accepted the message (state ``sent`` recorded)."""
        qid = job.queue_id
        attempts_made = job.int("attemptsMade") + 1
        envelope_data = job.json("envelope") or {}
        envelope = Envelope(
            mail_from=str(envelope_data.get("from") or ""),
            rcpt_to=tuple(str(r) for r in envelope_data.get("to") or ()),
        )

        async def commit() -> None:
            await self.outbox.mark(
                self.token,
                qid,
                {
                    "state": JobState.SENDING.value,
                    "attemptsMade": attempts_made,
                    "progress": {"status": "smtp-starting"},
                },
            )

        try:
            sender: Sender | None = None
            if self.api_senders is not None and record is not None and not job.get("gateway"):
                sender = await self.api_senders(record)
            if sender is None:
                cfg = await self._smtp_config(job, record)
                sender = await slot.get(cfg, await self._sender_factory(record))
            result = await sender.send(envelope, raw, commit=commit, dsn=_dsn(job))
        except LeaseLost:
            log.info("outbox job lost its lease before sending", queue_id=qid)
            return False
        except SendError as exc:
            await self._failed(job, exc, attempts_made)
            return False
        # the server has the message: record it before anything else can fail
        progress = {
            "status": "submitted",
            "response": result.response,
            "messageId": job.get("messageId"),
        }
        fields: dict[str, object] = {
            "state": JobState.SENT.value,
            "response": result.response,
            "progress": progress,
            "sentAt": now_ms(),
        }
        if result.rejected:
            fields["rejected"] = [list(r) for r in result.rejected]
        try:
            await self.outbox.mark("", qid, fields)
        except LeaseLost:
            log.warning("outbox job vanished right after it was sent", queue_id=qid)
            return False
        job.fields["state"] = JobState.SENT.value
        job.fields["response"] = result.response
        return True

    # -- outcomes -----------------------------------------------------------------------------

    async def _failed(self, job: Job, exc: SendError, attempts_made: int) -> None:
        qid = job.queue_id
        max_attempts = job.int("attempts") or retry.DEFAULT_ATTEMPTS
        decision = retry.decide(
            exc.provenance, exc.code, attempts_made=attempts_made, max_attempts=max_attempts
        )
        info = error_info(exc)
        gateway = job.get("gateway")
        if gateway and exc.provenance is not Provenance.CONFIG:
            await self.gateways.record_error(
                gateway,
                {
                    "response": exc.server_response or str(exc),
                    "responseCode": exc.code,
                    "code": exc.error_code,
                    "command": exc.phase.value,
                    "description": str(exc),
                },
            )
        log.info(
            "delivery attempt failed",
            queue_id=qid,
            account=job.account,
            decision=decision.value,
            attempt=attempts_made,
            error=str(exc),
            code=exc.code,
        )
        if decision is retry.Decision.UNCERTAIN:
            await self.outbox.mark("", qid, {"state": JobState.UNCERTAIN.value, "lastError": info})
            await self._report_uncertain(job, str(exc))
            await self.outbox.finish("", qid)
            return
        next_attempt: int | None = None
        if decision is retry.Decision.RETRY:
            next_attempt = now_ms() + int(
                retry.retry_delay(attempts_made, base=await self._base_delay()) * 1000
            )
        await self._delivery_error_event(job, exc, attempts_made, max_attempts, next_attempt)
        if next_attempt is not None:
            ok = await self.outbox.reschedule(
                self.token,
                qid,
                next_attempt,
                {
                    "state": JobState.QUEUED.value,
                    "attemptsMade": attempts_made,
                    "nextAttempt": next_attempt,
                    "lastError": info,
                    "progress": {"status": "error", "error": info},
                },
            )
            if not ok:
                log.info("outbox job lost its lease before its retry was scheduled", queue_id=qid)
            return
        await self.events.append(
            job.account,
            "messageFailed",
            {
                "messageId": job.get("messageId"),
                "queueId": qid,
                "error": str(exc),
                "errorCode": exc.error_code,
                "smtpResponse": exc.server_response,
                "smtpResponseCode": exc.code,
                "envelope": job.json("envelope"),
            },
        )
        await self.outbox.finish("", qid)

    async def _delivery_error_event(
        self,
        job: Job,
        exc: SendError,
        attempts_made: int,
        max_attempts: int,
        next_attempt: int | None,
    ) -> None:
        await self.events.append(
            job.account,
            "messageDeliveryError",
            {
                "queueId": job.queue_id,
                "envelope": job.json("envelope"),
                "messageId": job.get("messageId"),
                "error": str(exc),
                "errorCode": exc.error_code,
                "smtpResponse": exc.server_response,
                "smtpResponseCode": exc.code,
                "smtpCommand": exc.phase.value,
                "networkRouting": None,
                "job": {
                    "attemptsMade": attempts_made,
                    "attempts": max_attempts,
                    "nextAttempt": iso_ms(next_attempt) if next_attempt else False,
                },
            },
        )

    async def _report_uncertain(self, job: Job, reason: str | None = None) -> None:
        await self.events.append(
            job.account,
            "messageFailed",
            {
                "messageId": job.get("messageId"),
                "queueId": job.queue_id,
                "error": (
                    "Delivery outcome unknown: the connection was lost after the message was "
                    "handed to the server; it is not sent again to avoid a duplicate"
                    + (f" ({reason})" if reason else "")
                ),
                "errorCode": "EUNCERTAIN",
                "envelope": job.json("envelope"),
            },
        )

    async def _after_send(self, job: Job, raw: bytes, record: AccountRecord | None) -> None:
        qid = job.queue_id
        done = set(filter(None, job.get("steps").split(",")))

        async def step(name: str) -> None:
            done.add(name)
            await self.outbox.mark("", qid, {"steps": ",".join(sorted(done))})

        if "event" not in done:
            data: dict[str, Any] = {
                "messageId": job.get("messageId"),
                "response": job.get("response"),
                "queueId": qid,
                "envelope": job.json("envelope"),
            }
            if job.get("gateway"):
                data["gateway"] = job.get("gateway")
            await self.events.append(job.account, "messageSent", data)
            if job.get("gateway"):
                await self.gateways.record_delivery(job.get("gateway"))
            steps_left = self._mailbox_steps(job, record)
            if not steps_left:
                await self.outbox.finish("", qid)
                return
            await step("event")
        if record is not None and self.mailstore is not None:
            for name in self._mailbox_steps(job, record):
                if name in done:
                    continue
                try:
                    await self._mailbox_step(name, job, raw, record)
                except (MailgateError, OSError) as exc:
                    log.warning("post-send step failed", step=name, queue_id=qid, error=str(exc))
                await step(name)
        await self.outbox.finish("", qid)

    def _mailbox_steps(self, job: Job, record: AccountRecord | None) -> list[str]:
        if record is None:
            return []
        steps: list[str] = []
        if record.imap is not None and record.imap.host:  # API providers file their own copy
            copy = job.get("copy")
            wants_copy = copy == "1" if copy else (record.copy if record.copy is not None else True)
            if wants_copy:
                steps.append("copy")
        # the referenced message and a sent draft are reached through the account's backend
        # (IMAP, Gmail API or Graph)
        if job.json("reference"):
            steps.append("flag")
        if job.get("draft"):
            steps.append("draft")
        return steps

    async def _mailbox_step(self, name: str, job: Job, raw: bytes, record: AccountRecord) -> None:
        assert self.mailstore is not None
        if name == "copy":
            bcc = job.json("bcc") or []
            await self.mailstore.append_sent(
                record, job.get("sentMailPath") or None, with_bcc(raw, bcc)
            )
        elif name == "flag":
            ref = job.json("reference") or {}
            flag = REFERENCE_FLAGS.get(str(ref.get("action") or "reply"), "\\Answered")
            await self.mailstore.add_flag(record, str(ref["message"]), flag)
        elif name == "draft":
            await self.mailstore.delete(record, job.get("draft"))
