"""The Gmail API backend: API operations on one account over Gmail REST v1.

Mailboxes are labels (:mod:`.labels`): create, rename and delete are ``labels.create``,
``labels.patch`` and ``labels.delete``; counters come from the labels' own counters (one batch
of ``labels.get``). Message operations live in :mod:`.messages`. Nothing here is cached across
processes; the label list is cached for a few seconds per backend.
"""

from __future__ import annotations

from typing import Any

import structlog

from mailgate.backends.base import (
    BackendCapabilities,
    MailboxChange,
    PushKind,
)
from mailgate.backends.gmail.client import Call, GmailClient, GmailError, GmailNotFound
from mailgate.backends.gmail.labels import (
    ALL_MAIL_PATH,
    DELIMITER,
    LabelCache,
    all_mail_mailbox,
    join_path,
    to_mailbox,
)
from mailgate.backends.gmail.messages import GmailMessages
from mailgate.backends.message_methods import MessageMethods, MessageOps
from mailgate.domain.mailbox import Mailbox
from mailgate.errors import BadRequest, Conflict, NotFound


class GmailBackend(MessageMethods):
    """Implements :class:`mailgate.backends.base.MailBackend` for Gmail API accounts."""

    def __init__(self, account: str, client: GmailClient, *, push: bool = False) -> None:
        self.account = account
        self.client = client
        self.labels = LabelCache(self._fetch_labels)
        self.messages = GmailMessages(client, self.labels)
        self._caps = BackendCapabilities(
            labels=True,
            push=PushKind.PUBSUB if push else PushKind.POLL,
            server_side_sent_copy=True,
            thread_ids=True,
            stable_ids_across_moves=True,
        )
        self.log = structlog.get_logger("mailgate.gmail").bind(account=account)

    @property
    def capabilities(self) -> BackendCapabilities:
        return self._caps

    async def _fetch_labels(self) -> list[dict[str, Any]]:
        found = await self.client.request("labels.list", "GET", "labels")
        return list(found.get("labels") or [])

    async def verify(self) -> None:
        await self.client.request("getProfile", "GET", "profile")

    async def list_mailboxes(self, *, counters: bool = False) -> list[Mailbox]:
        labels = (await self.labels.get(fresh=True)).mailboxes()
        labels.sort(key=lambda lab: (lab.type != "system", lab.path != "INBOX", lab.path.lower()))
        if not counters:
            return [to_mailbox(label) for label in labels] + [all_mail_mailbox()]
        calls = [Call("labels.get", "GET", f"labels/{label.id}") for label in labels]
        calls.append(Call("getProfile", "GET", "profile"))
        answers = await self.client.batch(calls)
        boxes = [
            to_mailbox(label, answer or {}) for label, answer in zip(labels, answers, strict=False)
        ]
        counts = {label.id: answer or {} for label, answer in zip(labels, answers, strict=False)}
        profile = answers[-1] or {}
        hidden = sum(int(counts.get(x, {}).get("messagesTotal") or 0) for x in ("SPAM", "TRASH"))
        total = max(0, int(profile.get("messagesTotal") or 0) - hidden)
        return [*boxes, all_mail_mailbox(total)]

    async def resolve_path(self, path: str) -> str:
        label = await self.labels.resolve(path)
        return label.path if label is not None else ALL_MAIL_PATH

    async def create_mailbox(self, path: str | list[str]) -> MailboxChange:
        name = join_path(path)
        if not name or name == ALL_MAIL_PATH:
            raise BadRequest("Invalid mailbox name")
        existing = (await self.labels.get(fresh=True)).find(name)
        if existing is not None:
            return MailboxChange(path=existing.path, mailbox_id=existing.id, created=False)
        try:
            made = await self.client.request(
                "labels.create",
                "POST",
                "labels",
                json_body={
                    "name": name,
                    "labelListVisibility": "labelShow",
                    "messageListVisibility": "show",
                },
            )
        except GmailError as exc:
            if exc.http_status == 409:
                return MailboxChange(path=name, created=False)
            raise
        self.labels.invalidate()
        return MailboxChange(path=name, mailbox_id=str(made.get("id")), created=True)

    async def rename_mailbox(self, path: str, new_path: str | list[str]) -> MailboxChange:
        label = await self.labels.resolve(path)
        if label is None or label.type == "system":
            raise BadRequest("System mailboxes can not be renamed", "CannotRenameSystemMailbox")
        new_name = join_path(new_path)
        labels = await self.labels.get(fresh=True)
        if labels.find(new_name) is not None:
            raise Conflict("Target mailbox already exists", "MailboxExists")
        # nested labels are separate labels in Gmail: rename the children with their parent
        prefix = label.name + DELIMITER
        children = [lab for lab in labels.by_id.values() if lab.name.startswith(prefix)]
        renames = [(label.id, new_name)]
        renames += [(c.id, new_name + DELIMITER + c.name[len(prefix) :]) for c in children]
        for label_id, name in renames:
            try:
                await self.client.request(
                    "labels.patch", "PATCH", f"labels/{label_id}", json_body={"name": name}
                )
            except GmailNotFound:
                raise NotFound("Mailbox does not exist", "MailboxNotFound") from None
            except GmailError as exc:
                if exc.http_status == 409:
                    raise Conflict("Target mailbox already exists", "MailboxExists") from exc
                raise
        self.labels.invalidate()
        return MailboxChange(path=label.path, new_path=new_name, mailbox_id=label.id, renamed=True)

    async def delete_mailbox(self, path: str) -> MailboxChange:
        label = await self.labels.resolve(path)
        if label is None or label.type == "system":
            raise Conflict("System mailboxes can not be deleted", "CannotDeleteSystemMailbox")
        try:
            await self.client.request("labels.delete", "DELETE", f"labels/{label.id}")
        except GmailNotFound:
            raise NotFound("Mailbox does not exist", "MailboxNotFound") from None
        self.labels.invalidate()
        return MailboxChange(path=label.path, mailbox_id=label.id, deleted=True)

    async def set_subscribed(self, path: str, subscribed: bool) -> MailboxChange:
        label = await self.labels.resolve(path)
        if label is not None and label.type != "system":
            await self.client.request(
                "labels.patch",
                "PATCH",
                f"labels/{label.id}",
                json_body={"labelListVisibility": "labelShow" if subscribed else "labelHide"},
            )
            self.labels.invalidate()
        return MailboxChange(path=label.path if label else ALL_MAIL_PATH, subscribed=subscribed)

    # -- messages (see backends/gmail/messages.py) ----------------------------------------------
    def message_ops(self) -> MessageOps:
        return self.messages

    async def close(self) -> None:
        """Nothing to release: the HTTP pool is the process's (see ``client.shared_http``)."""
