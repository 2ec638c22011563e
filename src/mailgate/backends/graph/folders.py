"""Mail folders as mailboxes: the folder tree, paths, special use, create/rename/delete.

A path is the chain of display names joined by ``/`` (:data:`DELIMITER`); Inbox is ``INBOX`` as
on IMAP, so ``INBOX/Receipts`` is a child of Inbox. Graph v1.0 folders do not carry their
well-known name, so the ids of the well-known folders are asked for once (one ``$batch``) and
kept: they never change. Special use follows the well-known name (:data:`WELL_KNOWN`).

Loading the tree costs one ``$batch`` (the top-level listing and the well-known ids together) plus
one ``$batch`` per level of nesting for the folders that have children (20 folders a batch).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from mailgate.backends.graph.client import BatchPart, GraphClient
from mailgate.domain.mailbox import Mailbox, MailboxStatus, SpecialUseSource
from mailgate.errors import BadRequest, Conflict, NotFound

DELIMITER = "/"
INBOX_PATH = "INBOX"
#: Well-known folder name → special use (``\\Inbox`` only for the API's listing).
WELL_KNOWN: dict[str, str] = {
    "inbox": "\\Inbox",
    "sentitems": "\\Sent",
    "drafts": "\\Drafts",
    "deleteditems": "\\Trash",
    "junkemail": "\\Junk",
    "archive": "\\Archive",
}
FOLDER_FIELDS = "id,displayName,parentFolderId,childFolderCount,totalItemCount,unreadItemCount"
#: Folders per listing page.
FOLDER_PAGE = 250
#: Seconds a loaded tree answers path lookups before it is loaded again.
TREE_TTL = 30.0
#: Deepest folder nesting followed.
MAX_DEPTH = 32


def _missing() -> NotFound:
    return NotFound("Mailbox does not exist", "MailboxNotFound")


@dataclass
class GraphFolder:
    id: str
    name: str
    path: str
    parent_id: str | None
    parent_path: str | None
    special_use: str | None
    total: int = 0
    unread: int = 0
    child_count: int = 0

    def to_mailbox(self, *, counters: bool) -> Mailbox:
        return Mailbox(
            path=self.path,
            name=self.name,
            delimiter=DELIMITER,
            parent_path=self.parent_path,
            listed=True,
            subscribed=True,
            special_use=self.special_use,
            special_use_source=SpecialUseSource.EXTENSION if self.special_use else None,
            id=self.id,
            messages=self.total,
            status=MailboxStatus(messages=self.total, unseen=self.unread) if counters else None,
        )


@dataclass
class FolderTree:
    folders: list[GraphFolder] = field(default_factory=list)
    loaded: float = 0.0

    def __post_init__(self) -> None:
        self._by_path = {f.path.lower(): f for f in self.folders}
        self._by_id = {f.id: f for f in self.folders}

    def by_path(self, path: str) -> GraphFolder | None:
        return self._by_path.get(path.lower())

    def by_id(self, folder_id: str) -> GraphFolder | None:
        return self._by_id.get(folder_id)

    def special(self, use: str) -> GraphFolder | None:
        wanted = use.lower()
        return next((f for f in self.folders if (f.special_use or "").lower() == wanted), None)

    def mailboxes(self, *, counters: bool) -> list[Mailbox]:
        boxes = [f.to_mailbox(counters=counters) for f in self.folders]
        boxes.sort(key=lambda m: (m.path != INBOX_PATH, m.path))
        return boxes


def split_path(path: str | list[str]) -> list[str]:
    parts = path if isinstance(path, list) else path.split(DELIMITER)
    parts = [p for p in parts if p]
    if not parts:
        raise BadRequest("Mailbox path is required")
    if parts[0].upper() == INBOX_PATH:
        parts[0] = INBOX_PATH
    return parts


class Folders:
    """The folder tree of one mailbox, cached for :data:`TREE_TTL` seconds."""

    def __init__(self, client: GraphClient) -> None:
        self.client = client
        self.well_known: dict[str, str] | None = None  # folder id -> special use
        self._tree: FolderTree | None = None
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._tree = None

    async def tree(self, *, fresh: bool = False) -> FolderTree:
        async with self._lock:
            tree = self._tree
            if fresh or tree is None or time.monotonic() - tree.loaded > TREE_TTL:
                tree = self._tree = await self._load()
            return tree

    async def _load(self) -> FolderTree:
        params = f"?$top={FOLDER_PAGE}&$select={FOLDER_FIELDS}"
        parts = [BatchPart("GET", f"/mailFolders{params}")]
        if self.well_known is None:
            parts += [BatchPart("GET", f"/mailFolders/{n}?$select=id") for n in WELL_KNOWN]
        results = await self.client.batch(parts)
        if not results[0].ok:
            raise results[0].error()
        if self.well_known is None:
            known: dict[str, str] = {}
            for name, res in zip(WELL_KNOWN, results[1:], strict=True):
                if res.ok and isinstance(res.body, dict) and res.body.get("id"):
                    known[str(res.body["id"])] = WELL_KNOWN[name]
            self.well_known = known
        folders: list[GraphFolder] = []
        level = await self._rest_of(results[0].body, None)
        depth = 0
        while level and depth < MAX_DEPTH:
            folders.extend(level)
            parents = [f for f in level if f.child_count > 0]
            level = []
            if not parents:
                break
            children = await self.client.batch(
                [BatchPart("GET", f"/mailFolders/{p.id}/childFolders{params}") for p in parents]
            )
            for parent, res in zip(parents, children, strict=True):
                if res.ok:
                    level.extend(await self._rest_of(res.body, parent))
            depth += 1
        return FolderTree(folders, time.monotonic())

    async def _rest_of(self, body: Any, parent: GraphFolder | None) -> list[GraphFolder]:
        """The folders of a listing page and of its further pages."""
        rows = [r for r in (body or {}).get("value") or [] if isinstance(r, dict)]
        link = (body or {}).get("@odata.nextLink")
        if link:
            rows += await self.client.all_pages(str(link))
        known = self.well_known or {}
        out = []
        for row in rows:
            fid = str(row.get("id") or "")
            use = known.get(fid)
            name = str(row.get("displayName") or "")
            if parent is None and use == "\\Inbox":
                name = INBOX_PATH
            path = f"{parent.path}{DELIMITER}{name}" if parent is not None else name
            out.append(
                GraphFolder(
                    id=fid,
                    name=name,
                    path=path,
                    parent_id=parent.id if parent else None,
                    parent_path=parent.path if parent else None,
                    special_use=use,
                    total=int(row.get("totalItemCount") or 0),
                    unread=int(row.get("unreadItemCount") or 0),
                    child_count=int(row.get("childFolderCount") or 0),
                )
            )
        return out

    # -- lookups -------------------------------------------------------------------------------

    async def resolve(self, path: str) -> GraphFolder:
        """The folder of a path or a special-use alias (``\\Sent``); NotFound MailboxNotFound."""
        for fresh in (False, True):
            tree = await self.tree(fresh=fresh)
            found = tree.special(path) if path.startswith("\\") else tree.by_path(path)
            if found is not None:
                return found
        raise _missing()

    async def special(self, use: str) -> GraphFolder | None:
        return (await self.tree()).special(use)

    async def folder_of(self, folder_id: str) -> GraphFolder | None:
        tree = await self.tree()
        found = tree.by_id(folder_id)
        if found is None:
            found = (await self.tree(fresh=True)).by_id(folder_id)
        return found

    # -- changes -------------------------------------------------------------------------------

    async def create(self, path: str | list[str]) -> tuple[str, bool]:
        """Create the folder (and missing parents); ``(path, created)``."""
        parts = split_path(path)
        tree = await self.tree(fresh=True)
        parent: GraphFolder | None = None
        created = False
        for depth in range(1, len(parts) + 1):
            sub = DELIMITER.join(parts[:depth])
            existing = tree.by_path(sub)
            if existing is not None:
                parent = existing
                continue
            where = f"/mailFolders/{parent.id}/childFolders" if parent else "/mailFolders"
            try:
                row = await self.client.post(where, {"displayName": parts[depth - 1]})
            except Conflict:
                self.invalidate()
                tree = await self.tree(fresh=True)
                parent = tree.by_path(sub)
                if parent is None:
                    raise
                continue
            parent = GraphFolder(
                id=str(row.get("id") or ""),
                name=parts[depth - 1],
                path=sub,
                parent_id=parent.id if parent else None,
                parent_path=parent.path if parent else None,
                special_use=None,
            )
            created = True
        self.invalidate()
        return DELIMITER.join(parts), created

    async def rename(self, path: str, new_path: str | list[str]) -> str:
        folder = await self.resolve(path)
        if folder.special_use:
            raise Conflict("Special folders can not be renamed", "CannotRenameSpecialFolder")
        parts = split_path(new_path)
        tree = await self.tree(fresh=True)
        target = DELIMITER.join(parts)
        if tree.by_path(target) is not None:
            raise Conflict("Target mailbox already exists", "MailboxExists")
        parent_path = DELIMITER.join(parts[:-1]) or None
        if parent_path != folder.parent_path:
            if parent_path is None:
                root = await self.client.get("/mailFolders/msgfolderroot", params={"$select": "id"})
                dest = str(root.get("id") or "")
            else:
                parent = tree.by_path(parent_path)
                if parent is None:
                    await self.create(parent_path)
                    parent = await self.resolve(parent_path)
                dest = parent.id
            await self.client.post(
                f"/mailFolders/{folder.id}/move",
                {"destinationId": dest},
                not_found="MailboxNotFound",
            )
        if parts[-1] != folder.name:
            await self.client.patch(
                f"/mailFolders/{folder.id}", {"displayName": parts[-1]}, not_found="MailboxNotFound"
            )
        self.invalidate()
        return target

    async def delete(self, path: str) -> str:
        folder = await self.resolve(path)
        if folder.special_use == "\\Inbox":
            raise Conflict("INBOX can not be deleted", "CannotDeleteInbox")
        if folder.special_use:
            raise Conflict("Special folders can not be deleted", "CannotDeleteSpecialFolder")
        await self.client.delete(f"/mailFolders/{folder.id}", not_found="MailboxNotFound")
        self.invalidate()
        return folder.path
