"""What a sync pass needs to know about the account and the service settings (a plain record)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SyncOptions:
    indexer: str = "full"
    notify_from: datetime | None = None
    paths: tuple[str, ...] | None = None  # None or ("*",): every mailbox
    notify_text: bool = False
    notify_text_size: int = 0
    notify_headers: tuple[str, ...] = field(default_factory=tuple)
    resync_delay: float = 60.0

    def watches(self, path: str, special_use: str | None) -> bool:
        if not self.paths or "*" in self.paths:
            return True
        return path in self.paths or (special_use is not None and special_use in self.paths)
