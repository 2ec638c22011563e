"""What a sync pass needs to know about the account and the service settings (a plain record)."""

from __future__ import annotations

from collections.abc import Iterable
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


def change_set(
    before: Iterable[str], after: Iterable[str], value: Iterable[str] | None = None
) -> dict[str, list[str]]:
    """``{added, deleted, value}`` as EmailEngine sends it: an empty side is left out.

    ``value`` is what the message has afterwards (default: ``after``)."""
    old, new = set(before), set(after)
    out: dict[str, list[str]] = {}
    if new - old:
        out["added"] = sorted(new - old)
    if old - new:
        out["deleted"] = sorted(old - new)
    out["value"] = sorted(new if value is None else set(value))
    return out
