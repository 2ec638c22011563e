"""The Microsoft Graph backend: API operations on one Outlook / Microsoft 365 mailbox.

Which mailbox a request names (:func:`mailbox_root`): ``/me`` for a user's own delegated grant;
``/users/{mailbox}`` for a shared mailbox reached with the signed-in user's grant
(``oauth2.auth.delegatedUser``) and for app-only (client credentials) access, where the mailbox is
``oauth2.auth.user``. The API host is the app's ``apiUrl`` (default by cloud, see
:mod:`mailgate.services.oauth2.providers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from mailgate.backends.base import (
    BackendCapabilities,
    MailboxChange,
    PushKind,
)
from mailgate.backends.graph.client import GraphClient, GraphHttp
from mailgate.backends.graph.folders import Folders
from mailgate.backends.graph.messages import GraphMessages
from mailgate.backends.message_methods import MessageMethods, MessageOps
from mailgate.backends.oauth import TokenProvider
from mailgate.domain.mailbox import Mailbox
from mailgate.errors import ConfigError

CAPABILITIES = BackendCapabilities(
    labels=False,
    push=PushKind.SUBSCRIPTION,
    server_side_sent_copy=True,
    thread_ids=True,
    stable_ids_across_moves=True,
)


#: Graph hosts by Azure cloud (the app's ``cloud``); an app's ``apiUrl`` wins.
GRAPH_HOSTS: dict[str, str] = {
    "global": "https://graph.microsoft.com",
    "gcc-high": "https://graph.microsoft.us",
    "dod": "https://dod-graph.microsoft.us",
    "china": "https://microsoftgraph.chinacloudapi.cn",
}


def graph_api_url(app: Mapping[str, Any]) -> str:
    """The API URL of an app: ``apiUrl``, else the Graph host of its cloud."""
    url = app.get("apiUrl")
    if isinstance(url, str) and url:
        return url
    cloud = str(app.get("cloud") or "global")
    if cloud not in GRAPH_HOSTS:
        raise ConfigError(f"Unknown Azure cloud {cloud!r}")
    return GRAPH_HOSTS[cloud]


def mailbox_root(oauth2: Mapping[str, Any], *, app_only: bool) -> str:
    """``/me`` or ``/users/{mailbox}`` for an account's ``oauth2`` settings."""
    auth = oauth2.get("auth")
    auth = auth if isinstance(auth, Mapping) else {}
    delegated = auth.get("delegatedUser")
    user = auth.get("user")
    if isinstance(delegated, str) and delegated:
        return "/users/" + quote(delegated, safe="@.")
    if app_only:
        if not isinstance(user, str) or not user:
            raise ConfigError("An outlookService account needs oauth2.auth.user (the mailbox)")
        return "/users/" + quote(user, safe="@.")
    return "/me"


def make_client(
    http: GraphHttp, tokens: TokenProvider, account: str, api_url: str, root: str
) -> GraphClient:
    return GraphClient(http, api_url=api_url, root=root, account=account, tokens=tokens)


class GraphBackend(MessageMethods):
    """Implements :class:`mailgate.backends.base.MailBackend` over Microsoft Graph."""

    def __init__(self, client: GraphClient) -> None:
        self.client = client
        self.folders = Folders(client)
        self.messages = GraphMessages(client, self.folders)

    @property
    def capabilities(self) -> BackendCapabilities:
        return CAPABILITIES

    async def verify(self) -> None:
        await self.client.get("/mailFolders/inbox", params={"$select": "id"})

    async def list_mailboxes(self, *, counters: bool = False) -> list[Mailbox]:
        return (await self.folders.tree(fresh=True)).mailboxes(counters=counters)

    async def resolve_path(self, path: str) -> str:
        return (await self.folders.resolve(path)).path

    async def create_mailbox(self, path: str | list[str]) -> MailboxChange:
        full, created = await self.folders.create(path)
        return MailboxChange(path=full, created=created)

    async def rename_mailbox(self, path: str, new_path: str | list[str]) -> MailboxChange:
        old = (await self.folders.resolve(path)).path
        new = await self.folders.rename(path, new_path)
        return MailboxChange(path=old, new_path=new, renamed=True)

    async def delete_mailbox(self, path: str) -> MailboxChange:
        return MailboxChange(path=await self.folders.delete(path), deleted=True)

    async def set_subscribed(self, path: str, subscribed: bool) -> MailboxChange:
        # Graph folders have no subscription state: every folder is listed
        folder = await self.folders.resolve(path)
        return MailboxChange(path=folder.path, subscribed=subscribed)

    def message_ops(self) -> MessageOps:
        return self.messages

    async def close(self) -> None:
        """Nothing to release: the HTTP pool belongs to the process (:class:`GraphHttp`)."""
