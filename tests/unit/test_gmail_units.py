"""Pure parts of the Gmail backend: quota budget, retry rules, q compiler, labels, ids, batch."""

from __future__ import annotations

import random

import pytest

from mailgate.backends.gmail.client import parse_batch
from mailgate.backends.gmail.index import (
    PACKED_MASK,
    SPILLED,
    TARGET_PER_CHUNK,
    build,
    chunk_bits_for,
    chunk_of,
    id_number,
    unpack,
)
from mailgate.backends.gmail.labels import (
    ALL_MAIL_PATH,
    Label,
    LabelSet,
    flag_label_changes,
    flags_of,
    to_mailbox,
)
from mailgate.backends.gmail.messages import gmail_part_index
from mailgate.backends.gmail.quota import (
    MAX_RETRY_AFTER,
    QuotaBudget,
    parse_retry_after,
    retry_decision,
    units_of,
)
from mailgate.backends.gmail.sender import referenced_ids
from mailgate.backends.gmail.summary import (
    SUMMARY_FIELDS,
    encoded_size,
    listing_entry,
    pack_part_id,
    structure_fields,
    summarize,
    unpack_part_id,
)
from mailgate.backends.gmail.sync import decode_bits, encode_bits, update_payload
from mailgate.errors import BadRequest, NotFound
from mailgate.protocols.gmail_query import compile_gmail_query, label_term, quote

# -- quota ----------------------------------------------------------------------------------------


def test_budget_spends_then_waits_and_refills() -> None:
    budget = QuotaBudget(units_per_second=100, burst_seconds=1.0, now=0.0)
    assert budget.take(units_of("messages.send"), 0.0) == 0.0
    assert budget.take(5, 0.0) == pytest.approx(0.05)
    assert budget.take(5, 0.05) == 0.0
    assert budget.spent == 105


def test_budget_pause_blocks_every_request_until_retry_after() -> None:
    budget = QuotaBudget(units_per_second=250, now=0.0)
    budget.pause(2.0, now=10.0)
    assert budget.take(1, 11.0) == pytest.approx(1.0)
    assert budget.take(1, 12.0) > 0  # bucket starts empty after the pause
    assert budget.take(1, 12.1) == 0.0


@pytest.mark.parametrize(
    ("status", "reason", "retry"),
    [
        (429, "rateLimitExceeded", True),
        (403, "userRateLimitExceeded", True),
        (403, "insufficientPermissions", False),
        (500, "backendError", True),
        (503, None, True),
        (400, "invalidArgument", False),
        (404, "notFound", False),
    ],
)
def test_retry_rules(status: int, reason: str | None, retry: bool) -> None:
    decision = retry_decision(status, reason, None, 1, rng=random.Random(1))
    assert decision.retry is retry
    if retry and status in (429, 403):
        assert decision.throttled


def test_retry_after_is_honoured_and_capped() -> None:
    decision = retry_decision(429, None, "7", 1, rng=random.Random(1))
    assert decision.delay >= 7
    assert parse_retry_after("100000") == MAX_RETRY_AFTER
    assert parse_retry_after("soon") is None
    assert not retry_decision(429, None, "1", 8).retry


# -- q compiler ------------------------------------------------------------------------------------


def test_query_compiles_every_expressible_field() -> None:
    plan = compile_gmail_query(
        {
            "unseen": True,
            "flagged": False,
            "from": "Ann <ann@example.com>",
            "subject": 'say "hi"',
            "body": "invoice",
            "larger": 1000,
            "since": "2024-01-02",
            "before": "2024-01-03T00:00:00Z",
            "header": {"Message-ID": "<abc@x>"},
            "labels": {"has": ["My Work/Sub"], "not": ["\\Important"]},
            "gmailRaw": "has:attachment",
        }
    )
    assert plan.q == (
        'is:unread -is:starred from:"Ann <ann@example.com>" subject:"say hi" "invoice" '
        "larger:1000 after:1704153600 before:1704240000 rfc822msgid:abc@x "
        "label:My-Work-Sub -label:important (has:attachment)"
    )


@pytest.mark.parametrize(
    "search",
    [
        {"answered": True},
        {"deleted": False},
        {"uid": "1:5"},
        {"seq": "1"},
        {"sentSince": "2024-01-01"},
        {"header": {"X-Custom": "v"}},
        {"nope": 1},
        {"since": "yesterday"},
        {"larger": -1},
        {"emailId": "../etc"},
    ],
)
def test_query_rejects_what_gmail_cannot_express(search: dict[str, object]) -> None:
    with pytest.raises(BadRequest) as info:
        compile_gmail_query(search)
    assert "search." in info.value.message


def test_query_ids_and_threads() -> None:
    assert compile_gmail_query({"emailIds": ["a1", "b2"], "subject": "x"}).message_ids == (
        "a1",
        "b2",
    )
    plan = compile_gmail_query({"threadId": "t1", "unseen": True})
    assert plan.thread_id == "t1" and plan.q == "is:unread"
    assert compile_gmail_query({}).q == ""
    assert quote('a "b" \\c') == '"a b c"'
    assert label_term("a b/c") == "a-b-c"


# -- labels, flags, summaries, ids ----------------------------------------------------------------


LABELS = LabelSet(
    [
        Label("INBOX", "INBOX", "system"),
        Label("SENT", "SENT", "system"),
        Label("TRASH", "TRASH", "system"),
        Label("UNREAD", "UNREAD", "system"),
        Label("STARRED", "STARRED", "system"),
        Label("Label_1", "Work/Projects"),
    ]
)


def test_labels_resolve_paths_and_special_uses() -> None:
    assert LABELS.find("inbox") is LABELS.by_id["INBOX"]
    assert LABELS.find("\\Sent") is LABELS.by_id["SENT"]
    assert LABELS.find("work/projects") is LABELS.by_id["Label_1"]
    assert LABELS.find("UNREAD") is None  # not a mailbox
    assert LABELS.label_id("\\Starred") == "STARRED"
    box = to_mailbox(LABELS.by_id["Label_1"], {"messagesTotal": 3, "messagesUnread": 1})
    assert (box.path, box.name, box.parent_path) == ("Work/Projects", "Projects", "Work")
    assert box.status is not None and box.status.unseen == 1
    assert LABELS.primary(["Label_1", "INBOX"]) is LABELS.by_id["INBOX"]
    assert LABELS.primary(["UNREAD"]) is None and ALL_MAIL_PATH.endswith("All Mail")


def test_flags_are_labels() -> None:
    assert flags_of(["INBOX", "UNREAD"]) == []
    assert flags_of(["STARRED", "DRAFT"]) == ["\\Seen", "\\Flagged", "\\Draft"]
    assert flag_label_changes(["\\Seen", "\\flagged", "\\Answered"], []) == (
        ["STARRED"],
        ["UNREAD"],
    )
    assert flag_label_changes([], ["\\Seen"]) == (["UNREAD"], [])


def test_summary_from_metadata() -> None:
    resource = {
        "id": "18c0ffee",
        "threadId": "18c0ffee",
        "labelIds": ["INBOX", "UNREAD", "Label_1"],
        "sizeEstimate": 1234,
        "internalDate": "1704067200000",
        "payload": {
            "headers": [
                {"name": "From", "value": "=?utf-8?q?J=C3=BCrgen?= <j@example.com>"},
                {"name": "To", "value": "a@example.com, B <b@example.com>"},
                {"name": "Subject", "value": "Hello"},
                {"name": "Message-ID", "value": "<m1@example.com>"},
            ]
        },
    }
    out = summarize(resource, LABELS, path="INBOX", special_use="\\Inbox")
    assert out["id"] == out["emailId"] == "18c0ffee"
    assert out["date"] == "2024-01-01T00:00:00.000Z"
    assert out["unseen"] is True and out["flags"] == []
    assert out["labels"] == ["\\Inbox", "Work/Projects"]
    assert out["from"] == {"name": "Jürgen", "address": "j@example.com"}
    assert [a["address"] for a in out["to"]] == ["a@example.com", "b@example.com"]
    assert out["messageId"] == "<m1@example.com>" and out["size"] == 1234


def test_part_ids_round_trip_and_reject_garbage() -> None:
    packed = pack_part_id("18c0ffee", ["1.2", "2"])
    assert unpack_part_id(packed, "AttachmentNotFound") == ("18c0ffee", ["1.2", "2"])
    for bad in ("", "!!!", pack_part_id("18c0ffee", []) if False else "bm9zbGFzaA", "A" * 5000):
        with pytest.raises(NotFound):
            unpack_part_id(bad, "AttachmentNotFound")


def test_gmail_part_numbers_map_to_imap_numbers() -> None:
    payload = {
        "mimeType": "multipart/mixed",
        "parts": [
            {"partId": "0", "mimeType": "multipart/alternative", "parts": [
                {"partId": "0.0", "mimeType": "text/plain"},
                {"partId": "0.1", "mimeType": "text/html"},
            ]},
            {"partId": "1", "mimeType": "application/pdf"},
        ],
    }  # fmt: skip
    index = gmail_part_index(payload)
    assert {k: v["partId"] for k, v in index.items()} == {"1.1": "0.0", "1.2": "0.1", "2": "1"}
    assert gmail_part_index({"mimeType": "text/plain", "partId": ""})["1"]["partId"] == ""


def test_label_bits_and_update_payloads() -> None:
    bits = {"INBOX": 0, "UNREAD": 1, "STARRED": 2, "Label_1": 3}
    value = encode_bits(["INBOX", "UNREAD", "CATEGORY_X"], bits)
    assert value == 3 and sorted(decode_bits(value, bits)) == ["INBOX", "UNREAD"]
    data = update_payload("m", ["INBOX", "UNREAD"], ["INBOX", "STARRED", "Label_1"], LABELS)
    assert data is not None
    assert data["changes"]["flags"] == {
        "added": ["\\Flagged", "\\Seen"],
        "value": ["\\Flagged", "\\Seen"],
    }
    assert data["changes"]["labels"]["added"] == ["Work/Projects"]
    assert update_payload("m", ["INBOX"], ["INBOX"], LABELS) is None


def test_batch_answers_are_parsed_by_content_id() -> None:
    body = (
        b"--b\r\nContent-Type: application/http\r\nContent-ID: <response-item3>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n"
        b'{"id":"x"}\r\n'
        b"--b\r\nContent-Type: application/http\r\nContent-ID: <response-item4>\r\n\r\n"
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\n\r\n{}\r\n--b--\r\n"
    )
    parts = parse_batch("multipart/mixed; boundary=b", body)
    assert parts["item3"][0] == 200 and parts["item3"][2] == b'{"id":"x"'
    assert parts["item4"][0] == 429 and parts["item4"][1]["retry-after"] == "2"


def test_reply_ids_come_from_in_reply_to_then_references() -> None:
    raw = b"In-Reply-To: <b@x>\r\nReferences: <a@x> <b@x>\r\nSubject: s\r\n\r\nbody"
    assert referenced_ids(raw) == ["b@x", "a@x"]


# -- listing structure from a format=full payload, packed index -----------------------------------
FULL_PAYLOAD = {
    "partId": "",
    "mimeType": "multipart/mixed",
    "filename": "",
    "headers": [{"name": "Subject", "value": "s"}],
    "body": {"size": 0},
    "parts": [
        {"partId": "0", "mimeType": "multipart/related", "filename": "", "headers": [],
         "body": {"size": 0}, "parts": [
            {"partId": "0.0", "mimeType": "multipart/alternative", "filename": "",
             "headers": [], "body": {"size": 0}, "parts": [
                {"partId": "0.0.0", "mimeType": "text/plain", "filename": "",
                 "headers": [{"name": "Content-Transfer-Encoding", "value": "7bit"}],
                 "body": {"size": 10}},
                {"partId": "0.0.1", "mimeType": "text/html", "filename": "",
                 "headers": [{"name": "Content-Transfer-Encoding", "value": "base64"}],
                 "body": {"size": 300}},
            ]},
            {"partId": "0.1", "mimeType": "image/png", "filename": "logo.png",
             "headers": [{"name": "Content-ID", "value": "<logo@x>"},
                         {"name": "Content-Transfer-Encoding", "value": "base64"}],
             "body": {"size": 57}},
        ]},
        {"partId": "1", "mimeType": "text/calendar", "filename": "invite.ics",
         "headers": [{"name": "Content-Type", "value": "text/calendar; method=request"},
                     {"name": "Content-Disposition", "value": "attachment; filename=invite.ics"}],
         "body": {"size": 5}},
        {"partId": "2", "mimeType": "message/rfc822", "filename": "", "headers": [],
         "body": {"size": 99}},
    ],
}  # fmt: skip


def test_listing_structure_matches_the_mime_parser_numbering() -> None:
    out = structure_fields("18c0ffee00000001", FULL_PAYLOAD)
    assert out["text"] == {
        "id": pack_part_id("18c0ffee00000001", ["1.1.1", "1.1.2"]),
        "encodedSize": {"plain": 10, "html": 400 + 2 * 6},  # 300 B as base64, 76-char lines
    }
    logo, invite, enclosed = out["attachments"]
    assert logo == {
        "id": pack_part_id("18c0ffee00000001", ["1.2"]),
        "contentType": "image/png",
        "encodedSize": encoded_size(FULL_PAYLOAD["parts"][0]["parts"][1]),  # type: ignore[index]
        "filename": "logo.png",
        "embedded": True,
        "inline": True,
        "contentId": "<logo@x>",
    }
    assert invite["method"] == "REQUEST" and invite["embedded"] is False
    assert invite["inline"] is False and invite["id"] == pack_part_id("18c0ffee00000001", ["2"])
    assert enclosed["contentType"] == "message/rfc822" and "filename" not in enclosed
    single = {"partId": "", "mimeType": "text/plain", "headers": [], "body": {"size": 4}}
    assert structure_fields("m", single) == {
        "attachments": [],
        "text": {"id": pack_part_id("m", ["1"]), "encodedSize": {"plain": 4}},
    }
    entry = listing_entry(
        {"id": "m", "labelIds": ["INBOX", "CATEGORY_SOCIAL"], "snippet": "a &amp; b",
         "payload": single},
        LABELS,
    )  # fmt: skip
    assert entry["preview"] == "a & b" and entry["category"] == "social"
    assert entry["attachments"] == [] and entry["text"]["encodedSize"] == {"plain": 4}
    # the fields selector names every level it needs, never body data or attachment ids
    assert "data" not in SUMMARY_FIELDS and "attachmentId" not in SUMMARY_FIELDS
    assert SUMMARY_FIELDS.count("parts(") >= 4


def test_index_records_pack_into_hashed_chunks_and_spill_what_does_not_fit() -> None:
    assert chunk_bits_for(0) == 0 and chunk_bits_for(TARGET_PER_CHUNK) == 0
    assert chunk_bits_for(100_000) == 8
    ids = [f"{0x18F0000000000000 + n * 0x1000:016x}" for n in range(5000)]
    built = build([(m, n % 7) for n, m in enumerate(ids)] + [("not-hex", 1), (ids[0], 1 << 40)])
    assert built.chunk_bits == chunk_bits_for(5002)
    sizes = [len(unpack(c)) for c in built.chunks.values()]
    assert sum(sizes) == 5000 and max(sizes) < 2 * TARGET_PER_CHUNK  # ids spread evenly
    first = id_number(ids[0])
    assert first is not None
    assert unpack(built.chunks[chunk_of(first, built.chunk_bits)])[first] == SPILLED
    assert built.spilled == {"not-hex": 1, ids[0]: 1 << 40}
    assert PACKED_MASK == (1 << 31) - 1 and id_number("18C0FFEE") is None
