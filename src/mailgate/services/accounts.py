"""Account use cases: register, read, update, delete, reconnect, verify."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, Protocol

import msgspec
from redis.asyncio import Redis

from mailgate.backends.imap.backend import list_mailboxes_on
from mailgate.backends.imap.session import open_session, password_source
from mailgate.backends.registry import BackendCache
from mailgate.backends.smtp.verify import verify_smtp
from mailgate.domain.account import AccountRecord, AccountState, ImapConfig, Indexer, SmtpConfig
from mailgate.domain.sync import parse_iso
from mailgate.errors import (
    AuthenticationError,
    BackendError,
    BadRequest,
    ConfigError,
    Forbidden,
    NotFound,
)
from mailgate.services.inputs import (
    AccountCreate,
    AccountFields,
    AccountUpdate,
    FlushIn,
    ImapIn,
    SmtpIn,
    VerifyAccountIn,
)
from mailgate.services.settings import SettingsService
from mailgate.store.accounts import AccountStore, map_secrets
from mailgate.store.control import publish_control
from mailgate.store.events import EventLog, iso_now

MASK = "******"
VERIFY_TIMEOUT = 30.0
MAX_PAGE_SIZE = 1000


def _mask(value: str) -> str:
    return MASK


def _dump_section(section: ImapIn | SmtpIn) -> dict[str, Any]:
    data = section.model_dump(by_alias=True, exclude_none=True)
    data.pop("partial", None)
    auth = data.get("auth")
    if isinstance(auth, dict) and auth.get("accessToken") is False:
        auth.pop("accessToken")
    return data


def _merge_section(
    old: ImapConfig | SmtpConfig | None, new: ImapIn | SmtpIn | bool | None
) -> dict[str, Any] | None:
    """Replace a section, or with ``partial: true`` merge it into the stored one."""
    if new is False:
        return None
    if new is None or new is True:
        return msgspec.to_builtins(old) if old is not None else None
    data = _dump_section(new)
    if new.partial and old is not None:
        merged: dict[str, Any] = msgspec.to_builtins(old)
        for key, value in data.items():
            if key == "auth" and isinstance(value, dict) and isinstance(merged.get("auth"), dict):
                merged["auth"] = {**merged["auth"], **value}
            else:
                merged[key] = value
        return merged
    return data


def build_record(
    account_id: str, body: AccountFields, existing: AccountRecord | None
) -> AccountRecord:
    base: dict[str, Any] = msgspec.to_builtins(existing) if existing is not None else {}
    fields = body.model_dump(by_alias=True, exclude_unset=True)
    for key in ("imap", "smtp", "oauth2"):
        fields.pop(key, None)
    if isinstance(fields.get("path"), str):
        fields["path"] = [fields["path"]]
    base.update({k: v for k, v in fields.items()})
    base["account"] = account_id
    if "imap" in body.model_fields_set:
        base["imap"] = _merge_section(existing.imap if existing else None, body.imap)
    if "smtp" in body.model_fields_set:
        base["smtp"] = _merge_section(existing.smtp if existing else None, body.smtp)
    if "oauth2" in body.model_fields_set:
        if body.oauth2 is False or body.oauth2 is None:
            base["oauth2"] = None
        else:
            data = body.oauth2.model_dump(exclude_none=True)
            data.pop("partial", None)
            if body.oauth2.partial and existing is not None and existing.oauth2:
                data = {**existing.oauth2, **data}
            base["oauth2"] = data
    base = {k: v for k, v in base.items() if v is not None}
    try:
        return msgspec.convert(base, AccountRecord)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"Invalid account data: {exc}") from exc


def account_view(record: AccountRecord, state: Any, default_indexer: str) -> dict[str, Any]:
    """The account as ``GET /v1/account/{account}`` shows it, secrets masked."""
    out: dict[str, Any] = msgspec.to_builtins(map_secrets(record, _mask))
    out.setdefault("imapIndexer", default_indexer)
    out["type"] = record.account_type
    out["state"] = state.state.value if record.imap or record.oauth2 else AccountState.CONNECTED
    out["connections"] = state.connections
    if state.last_error is not None:
        out["lastError"] = msgspec.to_builtins(state.last_error)
    if state.sync_time:
        out["syncTime"] = state.sync_time
    if record.imap is None and record.oauth2 is None:
        out["sendOnly"] = True
    return out


class OAuth2Hooks(Protocol):
    """What the OAuth2 service does for accounts (``services/oauth2/consent.py``)."""

    async def prepare(self, record: AccountRecord) -> AccountRecord:
        """Check the record's OAuth2 app and fill in its mail servers."""
        ...

    async def authorize(self, body: AccountCreate) -> dict[str, Any]:
        """Start the consent flow: ``{redirect: <provider URL>}``."""
        ...


class AccountService:
    oauth2: OAuth2Hooks | None = None  # set by the container

    def __init__(
        self,
        redis: Redis,
        store: AccountStore,
        events: EventLog,
        settings: SettingsService,
        backends: BackendCache,
    ) -> None:
        self.redis = redis
        self.store = store
        self.events = events
        self.settings = settings
        self.backends = backends

    async def record(self, account: str) -> AccountRecord:
        record = await self.store.get(account)
        if record is None:
            raise NotFound("Account record was not found for requested ID", "AccountNotFound")
        return record

    async def create(self, body: AccountCreate) -> dict[str, Any]:
        if body.oauth2 and body.oauth2.authorize:
            if self.oauth2 is None:
                raise BadRequest("OAuth2 is not available in this process")
            return await self.oauth2.authorize(body)
        account_id = body.account or secrets.token_hex(8)
        existing = await self.store.get(account_id)
        record = build_record(account_id, body, existing)
        if record.imap is None and record.smtp is None and record.oauth2 is None:
            raise BadRequest("Either imap, smtp or oauth2 settings are required")
        if record.oauth2 and self.oauth2 is not None:
            record = await self.oauth2.prepare(record)
        indexer = body.imapIndexer or (existing.imap_indexer if existing else None)
        if indexer is None:
            indexer = await self.settings.get("imapIndexer") or "full"
        if (
            existing is not None
            and existing.imap_indexer
            and body.imapIndexer
            and (body.imapIndexer != existing.imap_indexer.value)
        ):
            raise BadRequest(
                "The indexer of an existing account can only be changed with the flush API",
                "IndexerLocked",
            )
        created = iso_now()
        record = msgspec.structs.replace(
            record,
            imap_indexer=Indexer(str(indexer)),
            created=existing.created if existing and existing.created else created,
            notify_from=record.notify_from or created,
        )
        is_new = await self.store.save(record)
        if is_new:
            await self.events.append(account_id, "accountAdded", {"account": account_id})
        await publish_control(self.redis, "added" if is_new else "updated", account_id)
        return {"account": account_id, "state": "new" if is_new else "existing"}

    async def update(self, account: str, body: AccountUpdate) -> dict[str, Any]:
        existing = await self.record(account)
        record = build_record(account, body, existing)
        if record.oauth2 and self.oauth2 is not None:
            record = await self.oauth2.prepare(record)
        await self.store.save(record)
        await self.backends.drop(account)
        await publish_control(self.redis, "updated", account)
        return {"account": account}

    async def delete(self, account: str) -> dict[str, Any]:
        await self.record(account)
        await self.events.append(account, "accountDeleted", {"account": account})
        await self.store.delete(account)
        await self.backends.drop(account)
        await publish_control(self.redis, "deleted", account)
        return {"account": account, "deleted": True}

    async def info(self, account: str) -> dict[str, Any]:
        record = await self.record(account)
        state = await self.store.get_state(account)
        view = account_view(record, state, await self.settings.get("imapIndexer") or "full")
        meta = await self.store.sync_meta(account)
        if meta:
            view["indexing"] = {
                "indexer": meta.get("indexer", view["imapIndexer"]),
                "initialized": meta.get("initialized") == "1",
                "folders": {
                    "done": int(meta.get("foldersDone", 0)),
                    "total": int(meta.get("foldersTotal", 0)),
                },
                "messages": {
                    "done": int(meta.get("messagesDone", 0)),
                    "total": int(meta.get("messagesTotal", 0)),
                },
            }
        return view

    async def list_accounts(
        self, *, page: int, page_size: int, state: str | None, query: str | None
    ) -> dict[str, Any]:
        page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        default_indexer = await self.settings.get("imapIndexer") or "full"
        if state is None and not query:
            total = await self.store.count()
            ids = await self.store.ids(page * page_size, (page + 1) * page_size - 1)
            records = await self.store.get_many(ids)
            states = await self.store.get_states(ids)
            rows = [
                account_view(r, s, default_indexer)
                for r, s in zip(records, states, strict=True)
                if r is not None
            ]
        else:
            ids = await self.store.ids()
            records = await self.store.get_many(ids)
            states = await self.store.get_states(ids)
            needle = (query or "").lower()
            all_rows = []
            for r, s in zip(records, states, strict=True):
                if r is None:
                    continue
                view = account_view(r, s, default_indexer)
                if state and view["state"] != state:
                    continue
                if needle and not any(
                    needle in str(view.get(f) or "").lower() for f in ("account", "name", "email")
                ):
                    continue
                all_rows.append(view)
            total = len(all_rows)
            rows = all_rows[page * page_size : (page + 1) * page_size]
        summary_fields = (
            "account", "name", "email", "type", "app", "state", "webhooks", "proxy",
            "smtpEhloName", "counters", "syncTime", "lastError", "imapIndexer",
        )  # fmt: skip
        return {
            "total": total,
            "page": page,
            "pages": max(1, -(-total // page_size)),
            "query": query or False,
            "state": state or "*",
            "accounts": [{k: row[k] for k in summary_fields if k in row} for row in rows],
        }

    async def flush(self, account: str, body: FlushIn) -> dict[str, Any]:
        """Drop the index and index again (switching the indexer if asked); ids stay valid."""
        record = await self.record(account)
        if not body.flush:
            return {"flush": False}
        notify_from = body.notifyFrom
        if notify_from is None or notify_from == "now":
            notify_from = iso_now()
        elif parse_iso(notify_from) is None:
            raise BadRequest("notifyFrom must be an ISO 8601 date", "InputValidationError")
        indexer = Indexer(body.imapIndexer) if body.imapIndexer else record.imap_indexer
        record = msgspec.structs.replace(record, imap_indexer=indexer, notify_from=notify_from)
        await self.store.save(record)
        await self.store.drop_index(account)
        await publish_control(self.redis, "updated", account)
        return {"flush": True}

    async def sync(self, account: str, sync: bool) -> dict[str, Any]:
        await self.record(account)
        if sync:
            await publish_control(self.redis, "sync", account)
        return {"sync": sync}

    async def reconnect(self, account: str, reconnect: bool) -> dict[str, Any]:
        await self.record(account)
        if reconnect:
            await self.backends.drop(account)
            await publish_control(self.redis, "reconnect", account)
        return {"reconnect": reconnect}

    async def verify(self, body: VerifyAccountIn) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if isinstance(body.imap, ImapIn):
            out["imap"], mailboxes = await self._verify_imap(body.imap, body.mailboxes)
            if mailboxes is not None:
                out["mailboxes"] = mailboxes
        if isinstance(body.smtp, SmtpIn):
            cfg = msgspec.convert(_dump_section(body.smtp), SmtpConfig)
            out["smtp"] = await verify_smtp(cfg, ehlo_name=body.smtpEhloName)
        return out

    async def _verify_imap(
        self, section: ImapIn, with_mailboxes: bool
    ) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
        try:
            cfg = msgspec.convert(_dump_section(section), ImapConfig)
            ignore = bool(await self.settings.get("ignoreMailCertErrors"))
            client = await asyncio.wait_for(
                open_session(cfg, password_source(cfg), ignore_cert_errors=ignore),
                VERIFY_TIMEOUT,
            )
        except AuthenticationError as exc:
            return _failure("Authentication failed", "AUTHENTICATIONFAILED", exc), None
        except (BackendError, ConfigError, msgspec.ValidationError, TimeoutError, OSError) as exc:
            return _failure(str(exc) or "Connection failed", "ConnectError", exc), None
        try:
            mailboxes = None
            if with_mailboxes:
                boxes = await list_mailboxes_on(client, cfg, counters=False)
                mailboxes = [msgspec.to_builtins(b) for b in boxes]
            return {"success": True}, mailboxes
        finally:
            await client.logout()

    def check_account_scope(self, token_account: str | None, account: str) -> None:
        if token_account is not None and token_account != account:
            raise Forbidden("This token is bound to another account")


def _failure(message: str, code: str, exc: BaseException) -> dict[str, Any]:
    out: dict[str, Any] = {"success": False, "error": message, "code": code}
    response = getattr(exc, "server_response", None)
    if response:
        out["responseText"] = response
    return out
