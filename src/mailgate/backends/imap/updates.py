"""Flag changes, permanent deletion and the id map of a move, on a selected mailbox."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mailgate.backends.base import FlagChanges, MessageChanges
from mailgate.backends.imap.client import CopyUid, ImapClient
from mailgate.backends.imap.mailbox_access import MailboxNumbers
from mailgate.domain.ids import pack_message_id

#: Most flags one operation may name.
MAX_FLAGS = 64


def _flag_ops(changes: FlagChanges) -> list[tuple[str, str, tuple[str, ...]]]:
    """(result key, STORE operation, flags) in EmailEngine's order: set, then add, delete."""
    ops: list[tuple[str, str, tuple[str, ...]]] = []
    if changes.set is not None:
        ops.append(("set", "FLAGS", changes.set[:MAX_FLAGS]))
    if changes.add:
        ops.append(("add", "+FLAGS", changes.add[:MAX_FLAGS]))
    if changes.delete:
        ops.append(("delete", "-FLAGS", changes.delete[:MAX_FLAGS]))
    return ops


async def apply_flag_changes(
    client: ImapClient, uids: Sequence[int], changes: MessageChanges
) -> dict[str, Any]:
    """UID STORE each flag operation on ``uids`` (of the selected mailbox).

    The reply tells per operation whether it ran (IMAP accounts answer booleans). Labels are a
    Gmail extension this client does not send: they are left out of the reply.
    """
    out: dict[str, Any] = {}
    if changes.flags is not None:
        result: dict[str, Any] = {}
        for key, op, flags in _flag_ops(changes.flags):
            if uids:
                await client.uid_store(uids, op, flags)
            result[key] = bool(uids)
        out["flags"] = result
    return out


async def delete_uids(client: ImapClient, uids: Sequence[int]) -> None:
    """Mark ``uids`` \\Deleted and expunge them (only them where UIDPLUS allows)."""
    await client.uid_store(uids, "+FLAGS", ["\\Deleted"])
    if client.has_capability("UIDPLUS"):
        await client.uid_expunge(uids)
    else:
        await client.expunge()


async def moved_entry(
    numbers: MailboxNumbers,
    target: str,
    copied: CopyUid | None,
    source_no: int,
    uids: Sequence[int],
) -> list[tuple[str, str]]:
    """``[(old id, new id), ...]`` for the moved ``uids`` the server reported (COPYUID)."""
    if copied is None:
        return []
    mapping = copied.mapping()
    target_no = await numbers.number(target, copied.uidvalidity)
    return [
        (pack_message_id(source_no, uid), pack_message_id(target_no, mapping[uid]))
        for uid in uids
        if uid in mapping
    ]
