"""Submit use cases: build (or take) a message, then queue it — or show it (``dryRun``).

``submit`` order of work: account → Idempotency-Key replay → template → reference (IMAP) →
build → enqueue (one script that also claims the Idempotency-Key, so two concurrent requests
with one key queue one message). Nothing is queued for a request that fails validation.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from mailgate.backends.smtp.sender import Envelope
from mailgate.domain.account import AccountRecord
from mailgate.errors import BadRequest, NotFound
from mailgate.protocols.mime import decode_part, parse_message
from mailgate.services.accounts import AccountService
from mailgate.services.settings import SettingsService

from . import retry
from .builder import (
    MAX_MESSAGE_SIZE,
    Addr,
    Attachment,
    BuiltMessage,
    Draft,
    build_message,
    domain_of,
    prepare_raw,
    validate_address,
)
from .gateways import GatewayService
from .inputs import MAX_RECIPIENTS, AddressIn, DraftSubmitIn, DsnIn, EnvelopeIn, SubmitIn
from .mailstore import MailStore
from .outbox import MAX_PAGE_SIZE, JobState, Outbox, iso_ms, job_view, now_ms, pages
from .references import (
    Original,
    combine_html,
    combine_text,
    parse_original,
    prefixed_subject,
    reply_recipients,
    thread_headers,
)
from .templates import TemplateService, render_content

MAX_SCHEDULE_AHEAD_DAYS = 366  # sendAt at most about a year ahead


def _addresses(value: list[AddressIn] | AddressIn | None, what: str) -> list[Addr]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [Addr(address=validate_address(a.address, what), name=a.name or "") for a in items]


def parse_send_at(value: str | None, now: datetime | None = None) -> int | None:
    """``sendAt`` (ISO 8601) as ms since the epoch; None for "now"."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadRequest(f'Invalid sendAt "{value[:64]}"', "InputValidationError") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    if (when - current).days > MAX_SCHEDULE_AHEAD_DAYS:
        raise BadRequest("sendAt is too far in the future", "InputValidationError")
    return int(when.timestamp() * 1000)


def _b64(value: str, what: str) -> bytes:
    cleaned = "".join(value.split())
    if len(cleaned) > (MAX_MESSAGE_SIZE * 4) // 3 + 8:
        raise BadRequest(f"{what} is too large", "MessageTooLarge")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"{what} is not valid base64", "InputValidationError") from exc


def _envelope_override(env: EnvelopeIn | None) -> Envelope | None:
    if env is None:
        return None
    mail_from = validate_address(env.from_, "envelope.from") if env.from_ else ""
    rcpt = tuple(validate_address(a, "envelope.to") for a in env.to or ())
    return Envelope(mail_from=mail_from, rcpt_to=rcpt)


def _dsn(dsn: DsnIn | None) -> dict[str, Any] | None:
    if dsn is None:
        return None
    return {
        "id": dsn.id,
        "return": dsn.return_,
        "notify": list(dsn.notify or []),
        "recipient": dsn.recipient,
    }


class SubmitService:
    # Whether an account sends over a provider API (Gmail API, Graph) and needs no SMTP: set by
    # the container (``backends.registry.build_api_sender``); None -> every account needs SMTP.
    api_sending: Callable[[AccountRecord], Awaitable[bool]] | None = None

    def __init__(
        self,
        accounts: AccountService,
        settings: SettingsService,
        outbox: Outbox,
        mailstore: MailStore,
        gateways: GatewayService,
        templates: TemplateService,
    ) -> None:
        self.accounts = accounts
        self.settings = settings
        self.outbox = outbox
        self.mailstore = mailstore
        self.gateways = gateways
        self.templates = templates

    # -- submit ---------------------------------------------------------------------------------

    async def submit(
        self, account: str, body: SubmitIn, idempotency_key: str | None
    ) -> dict[str, Any]:
        record = await self.accounts.record(account)
        if idempotency_key is not None and not body.dryRun:
            replay = await self.outbox.remembered(account, idempotency_key)
            if replay is not None:
                return replay
        if body.mailMerge:
            raise BadRequest("mailMerge is not supported by mailgate", "NotSupported")
        await self._check_route(record, body.gateway)
        send_at = parse_send_at(body.sendAt)
        reference_info: dict[str, Any] | None = None
        envelope = _envelope_override(body.envelope)
        if body.raw is not None:
            built = self._from_raw(record, body, envelope)
            action = None
        else:
            draft, reference_info, action = await self._draft(record, body)
            built = build_message(
                draft,
                domain=domain_of(draft.from_.address, domain_of(record.email)),
                envelope=envelope,
            )
        if len(built.envelope.rcpt_to) > MAX_RECIPIENTS:
            raise BadRequest(f"Too many recipients (at most {MAX_RECIPIENTS})", "TooManyRecipients")
        if body.dryRun:
            out: dict[str, Any] = {
                "response": "Message built (dry run, nothing was queued)",
                "messageId": built.message_id,
                "preview": base64.b64encode(built.raw).decode("ascii"),
                "envelope": {"from": built.envelope.mail_from, "to": list(built.envelope.rcpt_to)},
            }
            if reference_info is not None:
                out["reference"] = reference_info
            return out
        reference = None
        if reference_info is not None and reference_info.get("success") and body.reference:
            reference = {"message": body.reference.message, "action": action}
        return await self._enqueue(
            record,
            built,
            idempotency_key=idempotency_key,
            send_at=send_at,
            delivery_attempts=body.deliveryAttempts,
            gateway=body.gateway,
            copy=body.copy_,
            sent_mail_path=body.sentMailPath,
            reference=reference,
            reference_info=reference_info,
            dsn=_dsn(body.dsn),
        )

    async def submit_draft(
        self, account: str, message: str, body: DraftSubmitIn, idempotency_key: str | None
    ) -> dict[str, Any]:
        """Send a stored draft (read over IMAP); it is removed once sent."""
        record = await self.accounts.record(account)
        if idempotency_key is not None:
            replay = await self.outbox.remembered(account, idempotency_key)
            if replay is not None:
                return replay
        await self._check_route(record, body.gateway)
        send_at = parse_send_at(body.sendAt)
        raw = await self.mailstore.raw(record, message)
        built = prepare_raw(
            raw,
            domain=domain_of(record.email),
            envelope=_envelope_override(body.envelope),
            fallback_from=record.email,
        )
        return await self._enqueue(
            record,
            built,
            idempotency_key=idempotency_key,
            send_at=send_at,
            delivery_attempts=body.deliveryAttempts,
            gateway=body.gateway,
            copy=body.copy_,
            sent_mail_path=body.sentMailPath,
            draft=message,
            dsn=_dsn(body.dsn),
        )

    async def _check_route(self, record: AccountRecord, gateway: str | None) -> None:
        if gateway:
            if not await self.gateways.exists(gateway):
                raise NotFound("Gateway was not found", "GatewayNotFound")
        elif (record.smtp is None or not record.smtp.host) and not (
            self.api_sending is not None and await self.api_sending(record)
        ):
            raise BadRequest(
                "This account has no SMTP settings; give a gateway", "NoSmtpConfiguration"
            )

    def _from_raw(
        self, record: AccountRecord, body: SubmitIn, envelope: Envelope | None
    ) -> BuiltMessage:
        assert body.raw is not None
        raw = _b64(body.raw, "raw")
        if b":" not in raw.split(b"\n", 1)[0]:
            raise BadRequest("raw is not an RFC 822 message", "InvalidRawMessage")
        return prepare_raw(
            raw, domain=domain_of(record.email), envelope=envelope, fallback_from=record.email
        )

    async def _draft(
        self, record: AccountRecord, body: SubmitIn
    ) -> tuple[Draft, dict[str, Any] | None, str | None]:
        subject, text, html, preview = body.subject, body.text, body.html, body.previewText
        if body.template:
            tpl = await self.templates.for_account(body.template, record.account)
            render = body.render
            rendered = render_content(
                tpl.get("content") or {},
                render.params if render else None,
                fmt=(render.format if render and render.format else tpl.get("format", "html")),
                render=render is not False,
            )
            subject = subject if subject is not None else rendered.subject
            text = text if text is not None else rendered.text
            html = html if html is not None else rendered.html
            preview = preview if preview is not None else rendered.preview_text

        if body.from_ is not None:
            from_ = Addr(validate_address(body.from_.address, "from"), body.from_.name or "")
        elif record.email:
            from_ = Addr(validate_address(record.email, "from"), record.name or "")
        else:
            raise BadRequest("A from address is required (the account has no email)")
        draft = Draft(
            from_=from_,
            to=_addresses(body.to, "to"),
            cc=_addresses(body.cc, "cc"),
            bcc=_addresses(body.bcc, "bcc"),
            reply_to=_addresses(body.replyTo, "replyTo"),
            subject=subject,
            text=text,
            html=html,
            preview_text=preview,
            headers=dict(body.headers or {}),
            message_id=body.messageId,
        )
        draft.attachments = await self._attachments(record, body)
        reference_info: dict[str, Any] | None = None
        action: str | None = None
        if body.reference is not None:
            ref = body.reference
            action = ref.action
            reference_info = {"message": ref.message, "success": True}
            try:
                original, raw = await self._original(
                    record,
                    ref.message,
                    full=ref.inline or (ref.action == "forward" and ref.forwardAttachments),
                )
            except NotFound:
                if not ref.ignoreMissing:
                    raise
                reference_info = {
                    "message": ref.message,
                    "success": False,
                    "error": "Referenced message was not found",
                }
            else:
                if ref.messageId and (original.message_id or "") != ref.messageId.strip():
                    raise BadRequest(
                        "The referenced message has another Message-ID", "MessageIdMismatch"
                    )
                self._apply_reference(record, draft, original, ref.action, ref.inline)
                if ref.action == "forward" and ref.forwardAttachments and raw is not None:
                    draft.attachments = forwarded_attachments(raw) + draft.attachments
        return draft, reference_info, action

    async def _original(
        self, record: AccountRecord, message: str, *, full: bool
    ) -> tuple[Original, bytes | None]:
        if full:
            raw = await self.mailstore.raw(record, message)
            return parse_original(raw), raw
        return parse_original(await self.mailstore.headers(record, message)), None

    def _apply_reference(
        self, record: AccountRecord, draft: Draft, original: Original, action: str, inline: bool
    ) -> None:
        in_reply_to, refs = thread_headers(original, action)
        draft.in_reply_to = in_reply_to
        draft.references = refs
        if draft.subject is None:
            draft.subject = prefixed_subject(original.subject, action)
        if action in ("reply", "reply-all") and not draft.to and not draft.cc:
            own = [record.email or "", draft.from_.address]
            draft.to, draft.cc = reply_recipients(original, action, own)
        if inline:
            if draft.text is not None or original.text is not None:
                draft.text = combine_text(draft.text, original, action)
            if draft.html is not None or original.html is not None:
                draft.html = combine_html(draft.html, original, action)

    async def _attachments(self, record: AccountRecord, body: SubmitIn) -> list[Attachment]:
        out: list[Attachment] = []
        total = 0
        for att in body.attachments or []:
            if att.content is not None:
                content = _b64(att.content, "Attachment content")
                ctype = att.contentType
                filename = att.filename
            elif att.reference:
                content, ctype, filename = await self._referenced_attachment(record, att.reference)
                ctype = att.contentType or ctype
                filename = att.filename or filename
            else:
                raise BadRequest("An attachment needs content or reference", "InputValidationError")
            total += len(content)
            if total > MAX_MESSAGE_SIZE:
                raise BadRequest("Attachments are too large", "MessageTooLarge")
            out.append(
                Attachment(
                    content=content,
                    filename=filename,
                    content_type=ctype,
                    disposition=att.contentDisposition,
                    cid=att.cid,
                )
            )
        return out

    async def _referenced_attachment(
        self, record: AccountRecord, attachment_id: str
    ) -> tuple[bytes, str | None, str | None]:
        return await self.mailstore.attachment(record, attachment_id)

    async def _enqueue(
        self,
        record: AccountRecord,
        built: BuiltMessage,
        *,
        idempotency_key: str | None,
        send_at: int | None,
        delivery_attempts: int | None,
        gateway: str | None,
        copy: bool | None,
        sent_mail_path: str | None,
        reference: dict[str, Any] | None = None,
        reference_info: dict[str, Any] | None = None,
        draft: str | None = None,
        dsn: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        queue_id = secrets.token_hex(10)
        created = now_ms()
        due = max(send_at or created, created)
        attempts = delivery_attempts or int(
            await self.settings.get("deliveryAttempts") or retry.DEFAULT_ATTEMPTS
        )
        envelope = {"from": built.envelope.mail_from, "to": list(built.envelope.rcpt_to)}
        fields: dict[str, object] = {
            "account": record.account,
            "state": JobState.QUEUED.value,
            "source": "api",
            "created": created,
            "scheduled": due,
            "attempts": attempts,
            "attemptsMade": 0,
            "messageId": built.message_id,
            "subject": built.subject,
            "envelope": envelope,
            "gateway": gateway,
            "idempotencyKey": idempotency_key,
            "copy": copy,
            "sentMailPath": sent_mail_path,
            "reference": reference,
            "draft": draft,
            "bcc": list(built.bcc) if built.bcc else None,
            "dsn": dsn,
            "progress": {"status": "queued"},
        }
        reply: dict[str, Any] = {
            "response": "Queued for delivery",
            "messageId": built.message_id,
            "queueId": queue_id,
            "sendAt": iso_ms(due),
        }
        if reference_info is not None:
            reply["reference"] = reference_info
        if idempotency_key is not None:
            reply["idempotency"] = {"key": idempotency_key, "status": "MISS"}
        first = await self.outbox.enqueue(
            queue_id,
            built.raw,
            fields,
            due_ms=due,
            reply=reply,
            account=record.account,
            idempotency_key=idempotency_key,
        )
        return first if first is not None else reply

    # -- outbox ---------------------------------------------------------------------------------

    async def list_outbox(self, page: int, page_size: int) -> dict[str, Any]:
        page_size = min(max(page_size, 1), MAX_PAGE_SIZE)
        total, jobs = await self.outbox.page(page, page_size)
        return {
            "total": total,
            "page": page,
            "pages": pages(total, page_size),
            "messages": [job_view(j) for j in jobs],
        }

    async def get_queued(self, queue_id: str) -> dict[str, Any]:
        job = await self.outbox.get(queue_id)
        if job is None:
            raise NotFound("Requested queue entry was not found", "NotFound")
        return job_view(job)

    async def cancel(self, queue_id: str) -> dict[str, Any]:
        await self.outbox.cancel(queue_id)
        return {"deleted": True}


def forwarded_attachments(raw: bytes) -> list[Attachment]:
    """The original's own attachments, decoded, ready to attach again."""
    parsed = parse_message(raw)
    out: list[Attachment] = []
    for info in parsed.attachments:
        found = decode_part(raw, info.part)
        if found is None:
            continue
        content, _ = found
        out.append(
            Attachment(
                content=content,
                filename=info.filename,
                content_type=info.content_type,
                disposition="attachment",
                cid=None,
            )
        )
    return out
