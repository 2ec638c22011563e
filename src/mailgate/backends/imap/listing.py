"""Turning IMAP LIST entries into API mailboxes: names, parents, special use (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mailgate.domain.mailbox import (
    INBOX_SPECIAL_USE,
    SPECIAL_USE_FLAGS,
    Mailbox,
    MailboxStatus,
    SpecialUseSource,
)

# Common folder names per special use, matched case-insensitively on the last path segment,
# used only when the server does not announce SPECIAL-USE flags.
NAME_GUESSES: dict[str, tuple[str, ...]] = {
    "\\Sent": ("sent", "sent items", "sent mail", "sent messages", "gesendet", "envoyés"),
    "\\Trash": ("trash", "deleted items", "deleted messages", "bin", "papierkorb", "corbeille"),
    "\\Drafts": ("drafts", "draft", "entwürfe", "brouillons"),
    "\\Junk": ("junk", "spam", "junk e-mail", "junk email", "bulk mail"),
    "\\Archive": ("archive", "archives", "archiv"),
}


@dataclass(frozen=True)
class ListItem:
    """What the IMAP layer tells about one mailbox (independent of the client's record type)."""

    path: str
    delimiter: str | None
    flags: frozenset[str]
    status: Mapping[str, int] | None = None


def _lower(flags: Iterable[str]) -> set[str]:
    return {f.lower() for f in flags}


def special_use_of(
    item: ListItem, user_paths: Mapping[str, str]
) -> tuple[str | None, SpecialUseSource | None]:
    for use, path in user_paths.items():
        if path == item.path:
            return use, SpecialUseSource.USER
    if item.path.upper() == "INBOX":
        return INBOX_SPECIAL_USE, SpecialUseSource.NAME
    lowered = _lower(item.flags)
    for use in SPECIAL_USE_FLAGS:
        if use.lower() in lowered:
            return use, SpecialUseSource.EXTENSION
    return None, None


def guess_by_name(items: list[ListItem], taken: set[str]) -> dict[str, str]:
    """path -> special use for folders whose name is a well-known one (first match wins)."""
    guesses: dict[str, str] = {}
    for use, names in NAME_GUESSES.items():
        if use in taken:
            continue
        for item in items:
            last = item.path.rsplit(item.delimiter, 1)[-1] if item.delimiter else item.path
            if last.lower() in names and item.path not in guesses:
                guesses[item.path] = use
                break
    return guesses


def to_mailboxes(
    items: list[ListItem],
    *,
    subscribed: set[str] | None = None,
    user_paths: Mapping[str, str] | None = None,
    counters: bool = False,
) -> list[Mailbox]:
    user_paths = user_paths or {}
    resolved = {item.path: special_use_of(item, user_paths) for item in items}
    taken = {use for use, _ in resolved.values() if use}
    for path, guessed in guess_by_name(items, taken).items():
        if resolved[path][0] is None:
            resolved[path] = (guessed, SpecialUseSource.NAME)
    out: list[Mailbox] = []
    for item in items:
        lowered = _lower(item.flags)
        delim = item.delimiter
        parent: str | None = None
        name = item.path
        if delim and delim in item.path:
            parent, name = item.path.rsplit(delim, 1)
        use, use_source = resolved[item.path]
        is_subscribed = "\\subscribed" in lowered or (
            subscribed is not None and item.path in subscribed
        )
        status = None
        if counters:
            if item.status is not None:
                status = MailboxStatus(
                    messages=item.status.get("MESSAGES"), unseen=item.status.get("UNSEEN")
                )
            else:
                status = MailboxStatus(error="STATUS not available")
        out.append(
            Mailbox(
                path=item.path,
                name=name,
                delimiter=delim,
                parent_path=parent,
                listed=True,
                subscribed=is_subscribed,
                no_select=True if ("\\noselect" in lowered or "\\nonexistent" in lowered) else None,
                no_inferiors=True if "\\noinferiors" in lowered else None,
                special_use=use,
                special_use_source=use_source,
                messages=item.status.get("MESSAGES") if item.status else None,
                uid_next=item.status.get("UIDNEXT") if item.status else None,
                status=status,
            )
        )
    out.sort(key=lambda m: (m.path.upper() != "INBOX", m.path))
    return out


def join_path(path: str | list[str], delimiter: str | None, prefix: str = "") -> str:
    """A mailbox path from an API value that may be a list of segments."""
    if isinstance(path, list):
        joined = (delimiter or "/").join(path)
        if prefix and not joined.startswith(prefix) and joined.upper() != "INBOX":
            joined = prefix + joined
        return joined
    return path
