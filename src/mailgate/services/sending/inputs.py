"""Request bodies of the sending routes (field names as in EmailEngine's API).

Limits are named here; anything beyond them is a 400 before any work is done.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_ADDRESS = 320  # characters of one e-mail address (RFC 3696 errata)
MAX_NAME = 1024  # characters of a display name
MAX_RECIPIENTS = 1000  # to + cc + bcc of one message
MAX_ATTACHMENTS = 100  # attachments of one message
MAX_SUBJECT = 10_240  # characters of a subject
MAX_BODY_CHARS = 50 * 1024 * 1024  # characters of text/html (the message limit applies too)
MAX_HEADERS = 100  # custom headers of one message
MAX_HEADER_VALUE = 10_240  # characters of one custom header value
MAX_ID = 256  # characters of ids: gateway, template, queue, message
MAX_DELIVERY_ATTEMPTS = 100
MAX_TEMPLATE_CHARS = 5 * 1024 * 1024  # characters of each template content field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Lenient(BaseModel):
    """Fields of EmailEngine's body mailgate accepts but does not act on are ignored, not 400."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class AddressIn(_Lenient):
    name: str | None = Field(default=None, max_length=MAX_NAME)
    address: str = Field(max_length=MAX_ADDRESS)


class AttachmentIn(_Lenient):
    filename: str | None = Field(default=None, max_length=1024)
    content: str | None = Field(default=None, description="Base64 formatted attachment file")
    contentType: str | None = Field(default=None, max_length=256)
    contentDisposition: Literal["inline", "attachment"] | None = None
    cid: str | None = Field(default=None, max_length=998)
    encoding: Literal["base64"] = "base64"
    reference: str | None = Field(default=None, max_length=MAX_ID)


class EnvelopeIn(_Lenient):
    from_: str | None = Field(default=None, alias="from", max_length=MAX_ADDRESS)
    to: list[str] | None = Field(default=None, max_length=MAX_RECIPIENTS)


class ReferenceIn(_Lenient):
    message: str = Field(max_length=MAX_ID)
    action: Literal["forward", "reply", "reply-all"] = "reply"
    inline: bool = False
    forwardAttachments: bool = False
    ignoreMissing: bool = False
    messageId: str | None = Field(default=None, max_length=998)


class RenderIn(_Lenient):
    format: Literal["html", "markdown"] | None = None
    params: dict[str, Any] | None = None


class DsnIn(_Lenient):
    id: str | None = Field(default=None, max_length=100)
    return_: Literal["headers", "full"] | None = Field(default=None, alias="return")
    notify: list[Literal["never", "success", "failure", "delay"]] | None = None
    recipient: str | None = Field(default=None, max_length=MAX_ADDRESS)


class SubmitIn(_Lenient):
    """``POST /v1/account/{account}/submit``."""

    reference: ReferenceIn | None = None
    from_: AddressIn | None = Field(default=None, alias="from")
    replyTo: list[AddressIn] | AddressIn | None = None
    to: list[AddressIn] | AddressIn | None = None
    cc: list[AddressIn] | AddressIn | None = None
    bcc: list[AddressIn] | AddressIn | None = None
    subject: str | None = Field(default=None, max_length=MAX_SUBJECT)
    text: str | None = Field(default=None, max_length=MAX_BODY_CHARS)
    html: str | None = Field(default=None, max_length=MAX_BODY_CHARS)
    previewText: str | None = Field(default=None, max_length=1024)
    template: str | None = Field(default=None, max_length=MAX_ID)
    render: RenderIn | Literal[False] | None = None
    envelope: EnvelopeIn | None = None
    raw: str | None = None
    attachments: list[AttachmentIn] | None = Field(default=None, max_length=MAX_ATTACHMENTS)
    messageId: str | None = Field(default=None, max_length=998)
    headers: dict[str, str] | None = None
    copy_: bool | None = Field(default=None, alias="copy")
    sentMailPath: str | None = Field(default=None, max_length=1024)
    sendAt: str | None = Field(default=None, max_length=64)
    deliveryAttempts: int | None = Field(default=None, ge=0, le=MAX_DELIVERY_ATTEMPTS)
    gateway: str | None = Field(default=None, max_length=MAX_ID)
    dsn: DsnIn | None = None
    dryRun: bool = False
    locale: str | None = None
    tz: str | None = None
    mailMerge: list[dict[str, Any]] | None = None


class DraftSubmitIn(_Lenient):
    """``POST /v1/account/{account}/message/{message}/submit``."""

    envelope: EnvelopeIn | None = None
    copy_: bool | None = Field(default=None, alias="copy")
    sentMailPath: str | None = Field(default=None, max_length=1024)
    sendAt: str | None = Field(default=None, max_length=64)
    deliveryAttempts: int | None = Field(default=None, ge=0, le=MAX_DELIVERY_ATTEMPTS)
    gateway: str | None = Field(default=None, max_length=MAX_ID)
    dsn: DsnIn | None = None


class GatewayCreateIn(_Model):
    """``POST /v1/gateway``."""

    gateway: str | None = Field(default=None, max_length=MAX_ID)
    name: str = Field(max_length=MAX_NAME)
    user: str | None = Field(default=None, max_length=1024)
    pass_: str | None = Field(default=None, alias="pass", max_length=4096)
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(ge=1, le=65535)
    secure: bool = False


class GatewayUpdateIn(_Model):
    """``PUT /v1/gateway/edit/{gateway}``; ``null`` clears ``user``/``pass``."""

    name: str | None = Field(default=None, max_length=MAX_NAME)
    user: str | None = Field(default=None, max_length=1024)
    pass_: str | None = Field(default=None, alias="pass", max_length=4096)
    host: str | None = Field(default=None, min_length=1, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    secure: bool | None = None


class TemplateContentIn(_Model):
    subject: str | None = Field(default=None, max_length=MAX_SUBJECT)
    text: str | None = Field(default=None, max_length=MAX_TEMPLATE_CHARS)
    html: str | None = Field(default=None, max_length=MAX_TEMPLATE_CHARS)
    previewText: str | None = Field(default=None, max_length=1024)


class TemplateCreateIn(_Model):
    """``POST /v1/templates/template``."""

    account: str | None = Field(default=None, max_length=MAX_ID)
    name: str = Field(min_length=1, max_length=MAX_NAME)
    description: str | None = Field(default=None, max_length=10_240)
    format: Literal["html", "markdown"] = "html"
    content: TemplateContentIn


class TemplateUpdateIn(_Model):
    """``PUT /v1/templates/template/{template}``."""

    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME)
    description: str | None = Field(default=None, max_length=10_240)
    format: Literal["html", "markdown"] | None = None
    content: TemplateContentIn | None = None
