"""Gmail label changes as ``messageUpdated`` data, shaped as EmailEngine's Gmail backend sends it."""

from __future__ import annotations

from mailgate.backends.gmail.labels import Label, LabelSet
from mailgate.backends.gmail.sync import update_payload
from mailgate.domain.sync import change_set

LABELS = LabelSet(
    [
        Label("INBOX", "INBOX", "system"),
        Label("TRASH", "TRASH", "system"),
        Label("STARRED", "STARRED", "system"),
        Label("UNREAD", "UNREAD", "system"),
        Label("CATEGORY_UPDATES", "CATEGORY_UPDATES", "system"),
        Label("Label_1", "Work"),
        Label("Label_2", "Work/Projects"),
    ]
)


def test_change_sets_leave_an_empty_side_out() -> None:
    assert change_set(["a"], ["a", "b"]) == {"added": ["b"], "value": ["a", "b"]}
    assert change_set(["a", "b"], ["a"]) == {"deleted": ["b"], "value": ["a"]}
    assert change_set(["a"], ["b"]) == {"added": ["b"], "deleted": ["a"], "value": ["b"]}
    assert change_set(["a"], [], value=["x"]) == {"deleted": ["a"], "value": ["x"]}


def test_a_move_between_labels_is_one_labels_change() -> None:
    data = update_payload("m1", ["INBOX", "UNREAD"], ["Label_1", "UNREAD"], LABELS, thread_id="t1")
    assert data == {
        "id": "m1",
        "emailId": "m1",
        "threadId": "t1",
        "changes": {"labels": {"added": ["Work"], "deleted": ["\\Inbox"], "value": ["Work"]}},
    }


def test_flag_labels_are_flags_and_the_labels_value_is_the_whole_field() -> None:
    before = ["INBOX", "UNREAD", "STARRED"]
    after = ["Label_2", "STARRED"]
    data = update_payload("m2", before, after, LABELS)
    assert data is not None and "threadId" not in data
    assert data["changes"] == {
        "flags": {"added": ["\\Seen"], "value": ["\\Flagged", "\\Seen"]},
        "labels": {
            "added": ["Work/Projects"],
            "deleted": ["\\Inbox"],
            "value": ["Work/Projects", "\\Starred"],
        },
    }
    starred_only = update_payload("m2", ["INBOX"], ["INBOX", "STARRED"], LABELS)
    assert starred_only is not None
    assert starred_only["changes"] == {
        "flags": {"added": ["\\Flagged"], "value": ["\\Flagged", "\\Seen"]}
    }


def test_invisible_changes_are_no_event() -> None:
    assert update_payload("m3", ["INBOX"], ["INBOX", "CATEGORY_UPDATES"], LABELS) is None
    assert update_payload("m3", ["INBOX"], ["INBOX"], LABELS) is None
