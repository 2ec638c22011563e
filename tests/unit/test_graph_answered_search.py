"""``answered`` in the search of a Graph account: compiled to a ``$filter`` on PidTagLastVerbExecuted
(``Integer 0x1081``, 102 reply / 103 reply all), or to a residual test when the search has text
terms (pure: no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from mailgate.backends.graph import summary
from mailgate.errors import BadRequest
from mailgate.protocols.graph_query import EPOCH_FLOOR, compile_query, last_verb

FLOOR = f"receivedDateTime ge {EPOCH_FLOOR}"


def verb_is(value: int) -> str:
    return (
        "singleValueExtendedProperties/any(ep:ep/id eq 'Integer 0x1081' "
        f"and cast(ep/value, Edm.Int32) eq {value})"
    )


ANSWERED = f"({verb_is(102)} or {verb_is(103)})"
NOT_ANSWERED = f"not({verb_is(102)}) and not({verb_is(103)})"


def row(verb: str | None, **fields: Any) -> dict[str, Any]:
    """A message row as Graph lists it with the last verb expanded (no collection: none)."""
    out = dict(fields)
    if verb is not None:
        out["singleValueExtendedProperties"] = [{"id": "Integer 0x1081", "value": verb}]
    return out


def test_answered_true_is_a_filter_on_reply_or_reply_all() -> None:
    q = compile_query({"answered": True})
    assert q.search is None and not q.residual and not q.everywhere
    assert q.filter == f"{FLOOR} and {ANSWERED}"
    # $orderby needs its property first in $filter: the floor keeps receivedDateTime there
    assert q.params() == {"$orderby": "receivedDateTime desc", "$filter": q.filter}


def test_answered_false_negates_each_verb() -> None:
    q = compile_query({"answered": False})
    assert q.filter == f"{FLOOR} and {NOT_ANSWERED}"


def test_answered_joins_the_other_filter_clauses() -> None:
    q = compile_query(
        {"since": "2024-01-02", "unseen": True, "answered": True, "labels": {"not": ["Red"]}}
    )
    assert q.filter == (
        "receivedDateTime ge 2024-01-02T00:00:00Z and isRead eq false "
        f"and {ANSWERED} and not(categories/any(c:c eq 'Red'))"
    )
    q = compile_query({"threadId": "AAQkAGI=", "answered": False})
    assert q.everywhere
    assert q.filter == f"{FLOOR} and conversationId eq 'AAQkAGI=' and {NOT_ANSWERED}"


@pytest.mark.parametrize(
    ("want", "verb", "matches"),
    [
        (True, "102", True),
        (True, "103", True),
        (True, "104", False),  # a forward is not answered
        (True, "0", False),  # \\Answered removed
        (True, None, False),  # never answered: no property at all
        (False, "102", False),
        (False, "104", True),
        (False, None, True),
    ],
)
def test_with_text_terms_answered_is_checked_on_the_results(
    want: bool, verb: str | None, matches: bool
) -> None:
    q = compile_query({"subject": "Quarterly", "answered": want})
    assert q.filter is None and q.search == '"subject:Quarterly"'
    assert "$filter" not in q.params()
    assert "singleValueExtendedProperties" in q.residual_fields  # the caller expands it
    assert q.matches(row(verb)) is matches


def test_residual_reads_any_spelling_of_the_property() -> None:
    q = compile_query({"from": "bob", "answered": True, "seen": False})
    spelled = {"isRead": False, "singleValueExtendedProperties": [
        {"id": "integer 0x01081", "value": "103"}]}  # fmt: skip
    assert q.matches(spelled)
    assert not q.matches({**spelled, "isRead": True})
    other = {"isRead": False, "singleValueExtendedProperties": [
        {"id": "Integer 0x1082", "value": "102"}]}  # fmt: skip
    assert not q.matches(other)


@pytest.mark.parametrize(
    ("search", "field"),
    [
        ({"answered": "yes"}, "answered"),
        ({"answered": 1}, "answered"),
        ({"unAnswered": True}, "unAnswered"),  # not in EmailEngine's SearchQuery
    ],
)
def test_invalid_answered_is_400(search: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest) as info:
        compile_query(search)
    assert field in str(info.value)


def test_one_reader_of_the_last_verb() -> None:
    assert summary.last_verb is last_verb
    assert summary.LAST_VERB_ID == "Integer 0x1081"
    assert summary.is_answered(row("103")) and not summary.is_answered(row("104"))
