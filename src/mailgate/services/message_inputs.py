"""Request bodies of the message routes (field names and limits as in EmailEngine's API)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Longest base64 ``raw`` message and attachment ``content`` (contract maxLength).
MAX_BASE64_LENGTH = 5 * 1024 * 1024 * 4 // 3 + 4
#: Longest ``text`` / ``html`` body (contract maxLength).
MAX_BODY_LENGTH = 5 * 1024 * 1024
MAX_PATH = 4096
MAX_FLAG = 128
MAX_FLAGS = 64
MAX_ADDRESSES = 1000
MAX_ATTACHMENTS = 100
MAX_HEADERS = 100


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Lenient(BaseModel):
    """Bodies that EmailEngine extends for other backends (``documentQuery``...): unknown
    fields are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def _as_list(value: Any) -> Any:
    """EmailEngine accepts a single value where a list is expected (``x-constraint single``)."""
    if isinstance(value, str | dict):
        return [value]
    return value


class FlagOpsIn(_Model):
    add: list[str] | None = Field(default=None, max_length=MAX_FLAGS)
    delete: list[str] | None = Field(default=None, max_length=MAX_FLAGS)
    set: list[str] | None = Field(default=None, max_length=MAX_FLAGS)

    @field_validator("add", "delete", "set", mode="before")
    @classmethod
    def _single(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("add", "delete", "set")
    @classmethod
    def _flag_length(cls, value: list[str] | None) -> list[str] | None:
        for flag in value or []:
            if not flag or len(flag) > MAX_FLAG or any(c in flag for c in '\r\n"(){ %*]'):
                raise ValueError(f"invalid flag {flag[:40]!r}")
        return value


class MessageUpdateIn(_Model):
    flags: FlagOpsIn | None = None
    labels: FlagOpsIn | None = None


class MessageMoveIn(_Model):
    path: str = Field(min_length=1, max_length=MAX_PATH)
    source: str | None = Field(default=None, max_length=MAX_PATH)


class SearchIn(_Lenient):
    search: dict[str, Any] = Field(default_factory=dict)


class MessagesUpdateIn(_Lenient):
    search: dict[str, Any]
    update: MessageUpdateIn = Field(default_factory=MessageUpdateIn)


class MessagesMoveIn(_Lenient):
    search: dict[str, Any]
    path: str = Field(min_length=1, max_length=MAX_PATH)


class MessagesDeleteIn(_Lenient):
    search: dict[str, Any]


class AddressIn(_Model):
    name: str | None = Field(default=None, max_length=256)
    address: str = Field(max_length=998)

    @field_validator("name")
    @classmethod
    def _trim(cls, value: str | None) -> str | None:
        return value.strip() if value is not None else None


class UploadAttachmentIn(_Model):
    filename: str | None = Field(default=None, max_length=256)
    contentType: str | None = Field(default=None, max_length=256)
    contentDisposition: Literal["inline", "attachment"] | None = None
    cid: str | None = Field(default=None, max_length=256)
    encoding: Literal["base64"] = "base64"
    reference: str | None = Field(default=None, max_length=256)
    content: str | None = Field(default=None, max_length=MAX_BASE64_LENGTH)

    @field_validator("contentType")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value is not None else None


class ReferenceIn(_Model):
    message: str | None = Field(default=None, max_length=256)
    action: Literal["forward", "reply", "reply-all"] = "reply"
    inline: bool = False
    forwardAttachments: bool = False
    ignoreMissing: bool = False
    messageId: str | None = Field(default=None, max_length=996)
    threadId: str | None = Field(default=None, max_length=256)


class MessageUploadIn(_Model):
    path: str = Field(min_length=1, max_length=MAX_PATH)
    flags: list[str] = Field(default_factory=list, max_length=MAX_FLAGS)
    internalDate: str | None = Field(default=None, max_length=64)
    reference: ReferenceIn | None = None
    raw: str | None = Field(default=None, max_length=MAX_BASE64_LENGTH)
    from_: AddressIn | None = Field(default=None, alias="from")
    to: list[AddressIn] | None = Field(default=None, max_length=MAX_ADDRESSES)
    cc: list[AddressIn] | None = Field(default=None, max_length=MAX_ADDRESSES)
    bcc: list[AddressIn] | None = Field(default=None, max_length=MAX_ADDRESSES)
    subject: str | None = Field(default=None, max_length=10240)
    text: str | None = Field(default=None, max_length=MAX_BODY_LENGTH)
    html: str | None = Field(default=None, max_length=MAX_BODY_LENGTH)
    attachments: list[UploadAttachmentIn] | None = Field(default=None, max_length=MAX_ATTACHMENTS)
    messageId: str | None = Field(default=None, max_length=996)
    headers: dict[str, str] | None = None
    locale: str | None = Field(default=None, max_length=100)
    tz: str | None = Field(default=None, max_length=100)

    @field_validator("to", "cc", "bcc", mode="before")
    @classmethod
    def _single(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("flags")
    @classmethod
    def _flags(cls, value: list[str]) -> list[str]:
        FlagOpsIn._flag_length(value)
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and len(value) > MAX_HEADERS:
            raise ValueError(f"at most {MAX_HEADERS} headers")
        return value
