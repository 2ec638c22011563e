"""Builds the sync options of an account from its record and the service settings."""

from __future__ import annotations

from mailgate.domain.account import AccountRecord
from mailgate.domain.sync import SyncOptions, parse_iso
from mailgate.services.settings import SettingsService


async def load_sync_options(record: AccountRecord, settings: SettingsService) -> SyncOptions:
    indexer = record.imap_indexer.value if record.imap_indexer else None
    resync = (record.imap.resync_delay if record.imap else None) or await settings.get(
        "resyncDelay"
    )
    return SyncOptions(
        indexer=indexer or str(await settings.get("imapIndexer") or "full"),
        notify_from=parse_iso(record.notify_from),
        paths=tuple(record.path) if record.path else None,
        notify_text=bool(await settings.get("notifyText")),
        notify_text_size=int(await settings.get("notifyTextSize") or 0),
        notify_headers=tuple(await settings.get("notifyHeaders") or ()),
        resync_delay=float(resync or 60),
    )
