"""Pure parts of the smaller EmailEngine operations: licence, token audit permissions,
blocklist ids, delivery-test verdicts, export date ranges and SSE framing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailgate.errors import BadRequest
from mailgate.services.blocklists import check_list_id, check_recipient
from mailgate.services.changes import sse_message
from mailgate.services.delivery_test import auth_results
from mailgate.services.exports import in_range, search_criteria
from mailgate.services.license import license_info, license_removed
from mailgate.services.token_audit import permission_of


def test_license_reports_mit_and_active() -> None:
    info = license_info("mg.example")
    assert info["active"] is True and info["type"] == "MIT" and info["suspended"] is False
    assert info["details"]["hostname"] == "mg.example" and info["details"]["trial"] is False
    removed = license_removed()
    assert removed["active"] is False and removed["details"] is False


@pytest.mark.parametrize(
    ("method", "route", "action", "group"),
    [
        ("GET", "/v1/account/{account}/messages", "read", "message"),
        ("PUT", "/v1/account/{account}/message/{message}", "write", "message"),
        ("DELETE", "/v1/account/{account}", "delete", "account"),
        ("POST", "/v1/account/{account}/submit", "write", "submit"),
        ("GET", "/v1/settings", "read", "settings"),
        ("GET", "/v1/blocklist/{listId}", "read", "blocklists"),
        ("GET", "/v1/something-new", "read", "admin"),
    ],
)
def test_token_audit_permissions(method: str, route: str, action: str, group: str) -> None:
    assert permission_of(method, route) == (action, group)


def test_blocklist_ids_and_recipients() -> None:
    assert check_list_id("Unsub-List.example") == "unsub-list.example"
    for bad in ("-x", "x-", "a..b", "with space", "a_b", "x" * 64):
        with pytest.raises(BadRequest):
            check_list_id(bad)
    assert check_recipient(" User@Example.COM ") == "user@example.com"
    with pytest.raises(BadRequest):
        check_recipient("not-an-address")


def test_authentication_results_verdicts() -> None:
    values = [
        "mx.example; spf=pass (sender ok) smtp.mailfrom=a@b.test; dkim=fail header.d=b.test; "
        "dmarc=none",
        "other.example; spf=fail",
    ]
    out = auth_results(values)
    assert out["spf"] == {"status": {"result": "pass"}}  # the first header wins
    assert out["dkim"] == {"status": {"result": "fail"}}
    assert out["dmarc"] == {"status": {"result": "none"}}
    assert "arc" not in out
    assert auth_results([]) == {}


def test_export_date_range() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    end = datetime(2024, 1, 31, 23, 59, tzinfo=UTC)
    assert in_range("2024-01-15T10:00:00.000Z", start, end)
    assert in_range("2024-01-01T00:00:00+00:00", start, end)
    assert not in_range("2023-12-31T23:59:59.000Z", start, end)
    assert not in_range("2024-02-01T00:00:00Z", start, end)
    assert in_range(None, start, end) and in_range("garbage", start, end)  # unknown: kept
    # IMAP SINCE/BEFORE are whole days: the search is wider, the date check exact
    assert search_criteria(start, end) == {"since": "2023-12-31", "before": "2024-02-02"}


def test_sse_framing() -> None:
    assert sse_message("abc", '{"a":1}') == 'id: abc\ndata: {"a":1}\n\n'
