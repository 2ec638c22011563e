"""Message, attachment and text ids: exact encodings, round trips, and NotFound for anything else."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailgate.domain.ids import (
    MAX_ATTACHMENT_ID_LENGTH,
    MAX_PART_LENGTH,
    MAX_TEXT_ID_LENGTH,
    MAX_TEXT_PARTS,
    MESSAGE_ID_LENGTH,
    is_part_number,
    pack_attachment_id,
    pack_message_id,
    pack_text_id,
    unpack_attachment_id,
    unpack_message_id,
    unpack_text_id,
)
from mailgate.errors import NotFound

U32 = 2**32 - 1


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# -- exact encodings -------------------------------------------------------------------------

MESSAGE_IDS = [
    (1, 42, "AAAAAQAAACo"),
    (0, 1, "AAAAAAAAAAE"),
    (U32, U32, "__________8"),
    (7, 0x01020304, b64(b"\x00\x00\x00\x07\x01\x02\x03\x04")),
]


@pytest.mark.parametrize(("mailbox", "uid", "expected"), MESSAGE_IDS)
def test_message_id_encoding(mailbox: int, uid: int, expected: str) -> None:
    assert pack_message_id(mailbox, uid) == expected
    assert len(expected) == MESSAGE_ID_LENGTH
    assert unpack_message_id(expected) == (mailbox, uid)


ATTACHMENT_IDS = [
    (1, 42, "1.2", "AAAAAQAAACoxLjI"),
    (1, 42, "2", b64(b"\x00\x00\x00\x01\x00\x00\x00\x2a2")),
    (3, 9, "3.1.TEXT", b64(b"\x00\x00\x00\x03\x00\x00\x00\x093.1.TEXT")),
    (3, 9, "3.HEADER", b64(b"\x00\x00\x00\x03\x00\x00\x00\x093.HEADER")),
]


@pytest.mark.parametrize(("mailbox", "uid", "part", "expected"), ATTACHMENT_IDS)
def test_attachment_id_encoding(mailbox: int, uid: int, part: str, expected: str) -> None:
    assert pack_attachment_id(mailbox, uid, part) == expected
    assert unpack_attachment_id(expected) == (mailbox, uid, part)


TEXT_IDS = [
    (1, 42, ["1.1", "1.2"], "AAAAAQAAACoxLjEsMS4y"),
    (1, 42, ["1"], b64(b"\x00\x00\x00\x01\x00\x00\x00\x2a1")),
    (2, 5, ["2", "1", "3.1"], b64(b"\x00\x00\x00\x02\x00\x00\x00\x052,1,3.1")),
]


@pytest.mark.parametrize(("mailbox", "uid", "parts", "expected"), TEXT_IDS)
def test_text_id_encoding(mailbox: int, uid: int, parts: list[str], expected: str) -> None:
    assert pack_text_id(mailbox, uid, parts) == expected
    assert pack_text_id(mailbox, uid, tuple(parts)) == expected
    assert unpack_text_id(expected) == (mailbox, uid, parts)


def test_message_id_is_prefix_of_attachment_and_text_ids() -> None:
    # the first 8 bytes are shared, so a client can see which message an attachment belongs to
    raw = base64.urlsafe_b64decode(pack_attachment_id(5, 6, "1") + "==")
    assert raw[:8] == base64.urlsafe_b64decode(pack_message_id(5, 6) + "=")


# -- packing invalid arguments is a programming error ----------------------------------------

BAD_PACK_HEADS = [(-1, 1), (U32 + 1, 1), (1, 0), (1, -5), (1, U32 + 1), (True, 1), (1, True)]


@pytest.mark.parametrize(("mailbox", "uid"), BAD_PACK_HEADS)
def test_pack_rejects_out_of_range(mailbox: int, uid: int) -> None:
    with pytest.raises(ValueError):
        pack_message_id(mailbox, uid)
    with pytest.raises(ValueError):
        pack_attachment_id(mailbox, uid, "1")
    with pytest.raises(ValueError):
        pack_text_id(mailbox, uid, ["1"])


BAD_PARTS = [
    "",
    "0",
    "01",
    "1.0",
    "1.",
    ".1",
    "1..2",
    "a",
    "1,2",
    "TEXT",
    "HEADER",
    "1.text",
    "1.MIME",
    "1.TEXT.2",
    "1 ",
    "١",  # Arabic-Indic digit one: \d would accept it, we do not
    "4294967296",
    "1." + "1" * 11,
    ".".join(["1"] * 70),  # longer than MAX_PART_LENGTH
]


@pytest.mark.parametrize("part", BAD_PARTS)
def test_pack_rejects_bad_part(part: str) -> None:
    assert not is_part_number(part)
    with pytest.raises(ValueError):
        pack_attachment_id(1, 1, part)
    with pytest.raises(ValueError):
        pack_text_id(1, 1, [part])


@pytest.mark.parametrize("parts", [[], ["1"] * (MAX_TEXT_PARTS + 1), "1.2"])
def test_pack_text_rejects_bad_part_lists(parts: list[str]) -> None:
    with pytest.raises(ValueError):
        pack_text_id(1, 1, parts)


GOOD_PARTS = ["1", "2", "1.2", "10.20.30", "4294967295", "3.TEXT", "3.1.HEADER"]


@pytest.mark.parametrize("part", GOOD_PARTS)
def test_good_parts(part: str) -> None:
    assert is_part_number(part)
    assert unpack_attachment_id(pack_attachment_id(1, 1, part))[2] == part


# -- unpacking malformed input: NotFound, with the right code --------------------------------

HEAD = b"\x00\x00\x00\x01\x00\x00\x00\x2a"
BAD_MESSAGE_IDS = [
    "",
    "A",
    "AAAAAQAAAC",  # 10 chars: 7.5 bytes
    "AAAAAQAAACoA",  # 12 chars: 9 bytes
    "AAAAAQAAACo=",  # padding is not part of the format
    "AAAAAQAAACr",  # non-canonical: unused low bits set (aliases AAAAAQAAACo)
    "AAAAAQAAAC+",  # standard base64 alphabet, not base64url
    "AAAAAQAAAC/",
    "AAAAAQAAAC o",
    "AAAAAQAAACö",
    "AAAAAAAAAAA",  # UID 0
    "AAAAAQAAACo\n",
    b64(HEAD + b"1"),  # an attachment id is not a message id
    "A" * 10_000,
    "\x00" * 11,
]


@pytest.mark.parametrize("value", BAD_MESSAGE_IDS)
def test_unpack_message_id_rejects(value: str) -> None:
    with pytest.raises(NotFound) as info:
        unpack_message_id(value)
    assert info.value.code == "MessageNotFound"
    assert info.value.status_code == 404


BAD_ATTACHMENT_IDS = [
    "",
    "AAAAAQAAACo",  # no part at all
    b64(HEAD + b"0"),
    b64(HEAD + b"1."),
    b64(HEAD + b"1,2"),
    b64(HEAD + b"TEXT"),
    b64(HEAD + b"1.\xff"),
    b64(HEAD + b"\x001"),
    b64(b"\x00\x00\x00\x01\x00\x00\x00\x00" + b"1"),  # UID 0
    b64(HEAD + b"1" * (MAX_PART_LENGTH + 1)),
    "A" * (MAX_ATTACHMENT_ID_LENGTH + 1),
    b64(HEAD + b"1.2") + "=",
    b64(HEAD + b"1.2")[:-1] + "!",
]


@pytest.mark.parametrize("value", BAD_ATTACHMENT_IDS)
def test_unpack_attachment_id_rejects(value: str) -> None:
    with pytest.raises(NotFound) as info:
        unpack_attachment_id(value)
    assert info.value.code == "AttachmentNotFound"


BAD_TEXT_IDS = [
    "",
    "AAAAAQAAACo",
    b64(HEAD + b","),
    b64(HEAD + b"1,"),
    b64(HEAD + b",1"),
    b64(HEAD + b"1,,2"),
    b64(HEAD + b"1;2"),
    b64(HEAD + b"1, 2"),
    b64(HEAD + b",".join([b"1"] * (MAX_TEXT_PARTS + 1))),
    "A" * (MAX_TEXT_ID_LENGTH + 1),
]


@pytest.mark.parametrize("value", BAD_TEXT_IDS)
def test_unpack_text_id_rejects(value: str) -> None:
    with pytest.raises(NotFound) as info:
        unpack_text_id(value)
    assert info.value.code == "MessageNotFound"


def test_limits_admit_the_largest_valid_ids() -> None:
    longest_part = "1" + ".1" * ((MAX_PART_LENGTH - 1) // 2)
    assert len(longest_part) <= MAX_PART_LENGTH
    att = pack_attachment_id(U32, U32, longest_part)
    assert len(att) <= MAX_ATTACHMENT_ID_LENGTH
    assert unpack_attachment_id(att) == (U32, U32, longest_part)
    text = pack_text_id(U32, U32, [longest_part] * MAX_TEXT_PARTS)
    assert len(text) <= MAX_TEXT_ID_LENGTH
    assert unpack_text_id(text) == (U32, U32, [longest_part] * MAX_TEXT_PARTS)


# -- properties ------------------------------------------------------------------------------

mailboxes = st.integers(min_value=0, max_value=U32)
uids = st.integers(min_value=1, max_value=U32)
nz = st.integers(min_value=1, max_value=U32).map(str)
parts = st.builds(
    lambda nums, suffix: ".".join(nums) + suffix,
    st.lists(nz, min_size=1, max_size=6),
    st.sampled_from(["", "", "", ".TEXT", ".HEADER"]),
)


@given(mailboxes, uids)
def test_message_id_round_trip(mailbox: int, uid: int) -> None:
    packed = pack_message_id(mailbox, uid)
    assert len(packed) == MESSAGE_ID_LENGTH
    assert unpack_message_id(packed) == (mailbox, uid)


@given(mailboxes, uids, parts)
def test_attachment_id_round_trip(mailbox: int, uid: int, part: str) -> None:
    packed = pack_attachment_id(mailbox, uid, part)
    assert set(packed) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert unpack_attachment_id(packed) == (mailbox, uid, part)


@given(mailboxes, uids, st.lists(parts, min_size=1, max_size=MAX_TEXT_PARTS))
def test_text_id_round_trip(mailbox: int, uid: int, text_parts: list[str]) -> None:
    assert unpack_text_id(pack_text_id(mailbox, uid, text_parts)) == (mailbox, uid, text_parts)


id_like = st.one_of(
    st.text(max_size=64),
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/", max_size=80
    ),
    st.binary(max_size=60).map(b64),
    st.binary(min_size=8, max_size=8).map(b64),
    st.builds(
        lambda raw, tail: b64(raw + tail), st.binary(min_size=8, max_size=8), st.binary(max_size=40)
    ),
)


@settings(max_examples=500)
@given(id_like)
def test_arbitrary_strings_only_raise_not_found(value: str) -> None:
    for unpack in (unpack_message_id, unpack_attachment_id, unpack_text_id):
        try:
            result = unpack(value)
        except NotFound:
            continue
        # anything accepted is canonical: packing it again gives the same string back
        if unpack is unpack_message_id:
            assert pack_message_id(*result) == value
        elif unpack is unpack_attachment_id:
            assert pack_attachment_id(*result) == value
        else:
            assert pack_text_id(*result) == value
