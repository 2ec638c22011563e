"""The autoconfig table and guess (services/autoconfig.py): pure, no network."""

from __future__ import annotations

import pytest

from mailgate.errors import BadRequest
from mailgate.services.autoconfig import discover, find_provider, split_address


@pytest.mark.parametrize(
    ("email", "imap_host", "smtp_host", "smtp_port"),
    [
        ("someone@gmail.com", "imap.gmail.com", "smtp.gmail.com", 465),
        ("Someone@GoogleMail.com", "imap.gmail.com", "smtp.gmail.com", 465),
        ("a@outlook.com", "outlook.office365.com", "smtp-mail.outlook.com", 587),
        ("a@hotmail.com", "outlook.office365.com", "smtp-mail.outlook.com", 587),
        ("a@live.com", "outlook.office365.com", "smtp-mail.outlook.com", 587),
        ("a@contoso.onmicrosoft.com", "outlook.office365.com", "smtp.office365.com", 587),
        ("a@yahoo.com", "imap.mail.yahoo.com", "smtp.mail.yahoo.com", 465),
        ("a@icloud.com", "imap.mail.me.com", "smtp.mail.me.com", 587),
        ("a@me.com", "imap.mail.me.com", "smtp.mail.me.com", 587),
        ("a@aol.com", "imap.aol.com", "smtp.aol.com", 465),
        ("a@gmx.de", "imap.gmx.net", "mail.gmx.net", 465),
        ("a@web.de", "imap.web.de", "smtp.web.de", 587),
        ("a@yandex.ru", "imap.yandex.com", "smtp.yandex.com", 465),
        ("a@zoho.com", "imap.zoho.com", "smtp.zoho.com", 465),
        ("a@fastmail.com", "imap.fastmail.com", "smtp.fastmail.com", 465),
        ("a@mail.ru", "imap.mail.ru", "smtp.mail.ru", 465),
    ],
)
def test_well_known_providers(email: str, imap_host: str, smtp_host: str, smtp_port: int) -> None:
    out = discover(email)
    assert out["_source"] == "table"
    assert out["imap"]["host"] == imap_host
    assert out["imap"]["port"] == 993 and out["imap"]["secure"] is True
    assert out["smtp"]["host"] == smtp_host
    assert out["smtp"]["port"] == smtp_port
    assert out["smtp"]["secure"] is (smtp_port == 465)
    local, domain = split_address(email)
    assert out["imap"]["auth"] == {"user": f"{local}@{domain}"}


def test_gmail_says_an_app_password_is_needed() -> None:
    info = discover("x@gmail.com")["appPassword"]
    assert info["required"] is True and info["provider"] == "Gmail"
    assert "apppasswords" in info["instructions"]


def test_other_domains_get_a_marked_guess() -> None:
    out = discover("user@Example.ORG")
    assert out == {
        "imap": {"auth": {"user": "user@example.org"}, "host": "imap.example.org", "port": 993,
                 "secure": True},
        "smtp": {"auth": {"user": "user@example.org"}, "host": "smtp.example.org", "port": 465,
                 "secure": True},
        "_source": "guess",
    }  # fmt: skip
    assert "appPassword" not in out


def test_subdomains_of_listed_domains_match_their_parent() -> None:
    provider = find_provider("mail.yahoo.co.uk")
    assert provider is not None and provider.name == "Yahoo"
    assert find_provider("example.com") is None


@pytest.mark.parametrize(
    "bad", ["", "nobody", "@example.com", "a@", "a@localhost", "a@ex ample.com"]
)
def test_invalid_addresses_are_refused(bad: str) -> None:
    with pytest.raises(BadRequest) as info:
        discover(bad)
    assert info.value.code == "InputValidationError"
