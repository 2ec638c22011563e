"""MIME building for ``POST /message`` (services/message_mime.py) and request models."""

from __future__ import annotations

import base64
from email import policy
from email.parser import BytesParser
from typing import Any

import pytest
from pydantic import ValidationError

from mailgate.api.routes.messages import content_disposition
from mailgate.errors import BadRequest
from mailgate.protocols.mime import parse_message
from mailgate.services.message_inputs import FlagOpsIn, MessageUploadIn
from mailgate.services.message_mime import build_upload, parse_internal_date


def upload(**fields: Any) -> MessageUploadIn:
    return MessageUploadIn.model_validate({"path": "INBOX", **fields})


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_raw_is_kept_byte_for_byte() -> None:
    raw = b"Subject: hi\r\nMessage-ID: <a@b>\r\n\r\nbody\n"
    out, mid = build_upload(upload(raw=b64(raw)))
    assert out == raw and mid == "<a@b>"


def test_raw_with_overrides_replaces_headers() -> None:
    raw = b"Subject: old\r\nFrom: x@example.test\r\n\r\nbody\r\n"
    out, mid = build_upload(upload(raw=b64(raw), subject="new ✓", headers={"X-A": "1"}))
    parsed = BytesParser(policy=policy.default).parsebytes(out)
    assert parsed["Subject"] == "new ✓" and parsed["X-A"] == "1"
    assert parsed.get_all("Subject") == ["new ✓"]
    assert parsed.get_content().strip() == "body" and mid is None


def test_fields_build_alternative_related_and_attachments() -> None:
    gif = b"GIF89a" + bytes(range(50))
    out, mid = build_upload(
        upload(
            **{"from": {"name": "Mé", "address": "me@example.test"}},
            to={"address": "you@example.test"},
            bcc=[{"address": "hidden@example.test"}],
            subject="Hello ✓",
            text="plain ✓",
            html='<p>html <img src="cid:img1"></p>',
            attachments=[
                {
                    "filename": "a.gif",
                    "contentType": "image/gif",
                    "cid": "img1",
                    "content": b64(gif),
                },
                {"filename": "ä.bin", "content": b64(b"\x00\x01")},
            ],
            messageId="custom@example.test",
        )
    )
    assert b"\r\n" in out and b"\n" not in out.replace(b"\r\n", b"")
    assert mid == "<custom@example.test>"
    parsed = parse_message(out)
    assert parsed.subject == "Hello ✓" and parsed.text_plain is not None
    assert parsed.text_plain.strip() == "plain ✓"
    assert parsed.bcc[0].address == "hidden@example.test"
    assert parsed.from_ is not None and parsed.from_.name == "Mé"
    by_name = {a.filename: a for a in parsed.attachments}
    assert by_name["a.gif"].embedded and by_name["a.gif"].content_id == "img1"
    assert by_name["ä.bin"].content_type == "application/octet-stream"
    assert parsed.headers["date"] and parsed.headers["mime-version"] == ["1.0"]


def test_message_id_is_made_up_from_the_sender_domain() -> None:
    _, mid = build_upload(upload(**{"from": {"address": "me@corp.test"}}, text="x"))
    assert mid is not None and mid.endswith("@corp.test>")


@pytest.mark.parametrize(
    "fields",
    [
        {"raw": "%%%"},
        {"raw": b64(b"   ")},
        {"text": "x", "headers": {"Content-Type": "text/html"}},
        {"text": "x", "headers": {"Bad Name": "v"}},
        {"text": "x", "headers": {"X-A": "a\r\nBcc: evil@example.test"}},
        {"attachments": [{"filename": "x"}]},
        {"attachments": [{"content": "!!"}]},
    ],
)
def test_bad_uploads_are_400(fields: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        build_upload(upload(**fields))


def test_internal_date() -> None:
    assert parse_internal_date("2021-07-08T07:06:34.336Z") is not None
    assert parse_internal_date(None) is None
    with pytest.raises(BadRequest):
        parse_internal_date("yesterday")


def test_flag_ops_accept_single_values_and_refuse_bad_flags() -> None:
    assert FlagOpsIn.model_validate({"add": "\\Seen"}).add == ["\\Seen"]
    with pytest.raises(ValidationError):
        FlagOpsIn.model_validate({"add": ["a b"]})


def test_content_disposition() -> None:
    assert content_disposition("report.pdf") == 'attachment; filename="report.pdf"'
    value = content_disposition('Grüße "x".txt')
    assert value.startswith('attachment; filename="Gr__e _x_.txt"')
    assert "filename*=UTF-8''Gr%C3%BC%C3%9Fe%20_x_.txt" in value
    assert content_disposition(None) == 'attachment; filename="attachment"'
