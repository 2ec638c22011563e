"""The hosted sign-up form: signed links (``POST /v1/authentication/form``) and what the form does.

A link is ``{serviceUrl}/accounts/new?data=<base64url JSON>&sig=<base64url HMAC-SHA256>``. The
JSON holds the account fields the application chose and an expiry (``exp``); the HMAC key is
derived (HKDF-SHA256) from the ``serviceSecret`` setting, or from the instance secret while that
is unset, so links cannot be forged or altered and stop working after :data:`LINK_TTL`.

On the page the user picks a provider (an enabled OAuth2 app: the consent flow starts) or enters
IMAP/SMTP settings, which are tested live (:meth:`AccountService.verify`) before the account is
saved.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mailgate.errors import BadRequest
from mailgate.services.accounts import AccountService
from mailgate.services.inputs import AccountCreate, VerifyAccountIn
from mailgate.services.oauth2.consent import OAuth2Accounts, with_query
from mailgate.services.oauth2.inputs import AuthFormIn
from mailgate.services.oauth2.providers import check_redirect
from mailgate.services.settings import SettingsService

LINK_TTL = 24 * 3600  # seconds a sign-up link stays valid
HKDF_INFO = b"mailgate hosted form links v1"
FORM_PATH = "/accounts/new"
MAX_DATA = 8192  # characters of the signed data parameter we accept


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def derive_key(secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(
        secret.encode()
    )


def sign(payload: dict[str, Any], key: bytes) -> tuple[str, str]:
    """``(data, sig)`` for a link."""
    data = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    sig = _b64(hmac.new(key, data.encode(), hashlib.sha256).digest())
    return data, sig


def verify(data: str, sig: str, key: bytes, now: float) -> dict[str, Any]:
    """The payload of a link; BadRequest when forged, altered or expired."""
    if not data or not sig or len(data) > MAX_DATA:
        raise BadRequest("This sign-up link is not valid", "InvalidLink")
    expected = _b64(hmac.new(key, data.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, sig):
        raise BadRequest("This sign-up link is not valid", "InvalidLink")
    try:
        payload = json.loads(_unb64(data))
    except ValueError as exc:
        raise BadRequest("This sign-up link is not valid", "InvalidLink") from exc
    if not isinstance(payload, dict) or float(payload.get("exp", 0)) < now:
        raise BadRequest("This sign-up link has expired", "LinkExpired")
    return payload


@dataclass(frozen=True)
class ImapSignup:
    """What the user typed into the IMAP/SMTP part of the form."""

    email: str
    name: str
    imap_host: str
    imap_port: int
    imap_secure: bool
    imap_user: str
    imap_pass: str
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_secure: bool = False
    smtp_user: str | None = None
    smtp_pass: str | None = None
    allow_invalid_certs: bool = False


@dataclass(frozen=True)
class SignupResult:
    account: str
    state: str
    redirect: str | None


ACCOUNT_FIELDS = (
    "account",
    "name",
    "email",
    "expectedEmail",
    "notifyFrom",
    "subconnections",
    "path",
)


class HostedForm:
    def __init__(
        self,
        settings: SettingsService,
        instance_secret: str,
        accounts: AccountService,
        consent: OAuth2Accounts,
    ) -> None:
        self.settings = settings
        self._instance_key = derive_key(instance_secret)
        self.accounts = accounts
        self.consent = consent

    async def _key(self) -> bytes:
        secret = await self.settings.get("serviceSecret")
        return derive_key(secret) if isinstance(secret, str) and secret else self._instance_key

    async def link(self, body: AuthFormIn) -> dict[str, Any]:
        if body.redirectUrl:
            check_redirect(body.redirectUrl, "redirectUrl")
        payload = body.model_dump(exclude_none=True)
        if payload.get("type") is False:
            payload.pop("type")
        payload["exp"] = int(time.time()) + LINK_TTL
        data, sig = sign(payload, await self._key())
        base = str(await self.settings.get("serviceUrl") or "").rstrip("/")
        return {"url": with_query(base + FORM_PATH, data=data, sig=sig)}

    async def open(self, data: str, sig: str) -> dict[str, Any]:
        return verify(data, sig, await self._key(), time.time())

    @staticmethod
    def account_fields(payload: dict[str, Any]) -> dict[str, Any]:
        return {k: payload[k] for k in ACCOUNT_FIELDS if payload.get(k) is not None}

    async def start_oauth(self, payload: dict[str, Any], app_id: str) -> str:
        """The provider URL for the app the user picked."""
        return await self.consent.start(
            app_id, self.account_fields(payload), redirect_url=payload.get("redirectUrl")
        )

    async def imap_signup(self, payload: dict[str, Any], form: ImapSignup) -> SignupResult:
        """Test the settings live, then register the account. BadRequest tells what failed."""
        expected = payload.get("expectedEmail")
        if expected and str(expected).lower() != form.email.lower():
            raise BadRequest(
                f"This sign-up expects {expected}, not {form.email}", "UnexpectedEmail"
            )
        tls = {"rejectUnauthorized": False} if form.allow_invalid_certs else None
        imap: dict[str, Any] = {
            "host": form.imap_host,
            "port": form.imap_port,
            "secure": form.imap_secure,
            "auth": {"user": form.imap_user, "pass": form.imap_pass},
        }
        if tls:
            imap["tls"] = tls
        smtp: dict[str, Any] | None = None
        if form.smtp_host:
            smtp = {
                "host": form.smtp_host,
                "port": form.smtp_port or 587,
                "secure": form.smtp_secure,
                "auth": {
                    "user": form.smtp_user or form.imap_user,
                    "pass": form.smtp_pass or form.imap_pass,
                },
            }
            if tls:
                smtp["tls"] = tls
        try:
            check = VerifyAccountIn.model_validate({"imap": imap, "smtp": smtp or False})
        except ValueError as exc:
            raise BadRequest(f"The settings are not valid: {exc}") from exc
        result = await self.accounts.verify(check)
        for section in ("imap", "smtp"):
            outcome = result.get(section)
            if isinstance(outcome, dict) and not outcome.get("success"):
                detail = outcome.get("responseText") or outcome.get("error") or "failed"
                raise BadRequest(f"{section.upper()} check failed: {detail}", "VerificationFailed")
        fields = self.account_fields(payload)
        fields.setdefault("email", form.email)
        fields.setdefault("name", form.name or form.email)
        try:
            body = AccountCreate.model_validate({**fields, "imap": imap, "smtp": smtp})
        except ValueError as exc:
            raise BadRequest(f"The settings are not valid: {exc}") from exc
        created = await self.accounts.create(body)
        target = payload.get("redirectUrl")
        redirect = (
            with_query(target, account=created["account"], state=created["state"])
            if isinstance(target, str) and target
            else None
        )
        return SignupResult(created["account"], created["state"], redirect)
