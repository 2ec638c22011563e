"""``\\Answered`` on Graph accounts: PidTagLastVerbExecuted (``Integer 0x1081``) read from the
expanded ``singleValueExtendedProperties`` and written by PATCH (pure parts, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from mailgate.backends.base import FlagChanges, MessageChanges
from mailgate.backends.graph.messages import GraphMessages, _needs_current, _touches_answered
from mailgate.backends.graph.summary import (
    EXPAND_LAST_VERB,
    EXPAND_SUMMARY,
    LAST_VERB_ID,
    answered_patch,
    decode_state,
    flags_of,
    last_verb,
    query_value,
    state_of,
    summarize,
)
from mailgate.domain.sync import change_set


def verb(value: str, prop_id: str = LAST_VERB_ID) -> dict[str, Any]:
    return {"singleValueExtendedProperties": [{"id": prop_id, "value": value}]}


def written(value: int) -> dict[str, Any]:
    return {"singleValueExtendedProperties": [{"id": "Integer 0x1081", "value": str(value)}]}


def test_expand_asks_for_the_one_property() -> None:
    assert EXPAND_LAST_VERB == "singleValueExtendedProperties($filter=id eq 'Integer 0x1081')"
    assert EXPAND_SUMMARY.startswith("attachments($select=") and EXPAND_SUMMARY.endswith(
        EXPAND_LAST_VERB
    )
    assert query_value(EXPAND_LAST_VERB) == (
        "singleValueExtendedProperties($filter=id%20eq%20%27Integer%200x1081%27)"
    )


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({}, None),  # not expanded, or Graph left the collection out: no such property
        (verb("102"), 102),
        (verb("103", "integer 0x01081"), 103),  # any spelling of the same proptag
        (verb("104", "Integer 0x1081"), 104),
        (verb("102", "Integer 0x1082"), None),  # another property
        (verb("102", "String 0x1081"), None),
        (verb("not a number"), None),
        ({"singleValueExtendedProperties": [None, "x"]}, None),
    ],
)
def test_last_verb(row: dict[str, Any], expected: int | None) -> None:
    assert last_verb(row) == expected


def test_reply_and_reply_all_are_answered_forward_is_not() -> None:
    assert flags_of({"isRead": True, **verb("102")}) == ["\\Seen", "\\Answered"]
    assert flags_of({"flag": {"flagStatus": "flagged"}, **verb("103")}) == [
        "\\Answered",
        "\\Flagged",
    ]
    assert flags_of(verb("104")) == [] and flags_of(verb("0")) == []
    out = summarize({"id": "m", **verb("102")}, path="INBOX", special_use=None)
    assert out["flags"] == ["\\Answered"] and out["answered"] is True
    assert "answered" not in summarize({"id": "m"}, path="INBOX", special_use=None)


def test_sync_state_carries_answered() -> None:
    before = state_of({"isRead": True})
    after = state_of({"isRead": True, **verb("103")})
    assert decode_state(after) == (["\\Seen", "\\Answered"], [])
    assert before != after
    flags_before, flags_after = decode_state(before)[0], decode_state(after)[0]
    assert change_set(flags_before, flags_after) == {
        "added": ["\\Answered"],
        "value": ["\\Answered", "\\Seen"],
    }


def test_answered_patch() -> None:
    # unknown current state: adding writes a reply, removing writes nothing (could be a forward)
    assert answered_patch(True, None) == written(102)
    assert answered_patch(False, None) == {}
    # known current state: only what changes is written
    assert answered_patch(True, verb("103")) == {}
    assert answered_patch(True, verb("104")) == written(102)
    assert answered_patch(True, {}) == written(102)
    assert answered_patch(False, verb("102")) == written(0)
    assert answered_patch(False, verb("104")) == {}
    assert answered_patch(False, {}) == {}


def test_patch_for_answered() -> None:
    add = MessageChanges(flags=FlagChanges(add=("\\Answered", "\\Seen")))
    assert GraphMessages.patch_for(add, None) == {"isRead": True, **written(102)}
    delete = MessageChanges(flags=FlagChanges(delete=("\\answered",)))
    assert GraphMessages.patch_for(delete, verb("102")) == written(0)
    assert GraphMessages.patch_for(delete, verb("104")) == {}
    set_none = MessageChanges(flags=FlagChanges(set=("\\Seen",)))
    assert GraphMessages.patch_for(set_none, verb("103")) == {
        "isRead": True,
        "flag": {"flagStatus": "notFlagged"},
        **written(0),
    }
    set_answered = MessageChanges(flags=FlagChanges(set=("\\Answered",)))
    assert GraphMessages.patch_for(set_answered, {}) == {
        "isRead": False,
        "flag": {"flagStatus": "notFlagged"},
        **written(102),
    }


@pytest.mark.parametrize(
    ("changes_", "needs", "touches"),
    [
        (MessageChanges(flags=FlagChanges(add=("\\Answered",))), False, True),
        (MessageChanges(flags=FlagChanges(add=("\\Seen",))), False, False),
        (MessageChanges(flags=FlagChanges(delete=("\\Answered",))), True, True),
        (MessageChanges(flags=FlagChanges(delete=("\\Flagged",))), False, False),
        (MessageChanges(flags=FlagChanges(set=())), True, True),
        (MessageChanges(labels=FlagChanges(add=("Red",))), True, False),
        (MessageChanges(labels=FlagChanges(set=("Red",))), False, False),
    ],
)
def test_when_the_current_state_is_read(
    changes_: MessageChanges, needs: bool, touches: bool
) -> None:
    """A GET before the PATCH only for label add/delete, flag set and removing \\Answered;
    a bulk scan expands the last verb only when the change concerns \\Answered."""
    assert _needs_current(changes_) is needs
    assert _touches_answered(changes_) is touches
