"""mailFolder routes: list (paged), get by id or well-known name, childFolders at any depth,
create, rename (PATCH), DELETE, move.

References (Graph v1.0):
- list: https://learn.microsoft.com/en-us/graph/api/user-list-mailfolders?view=graph-rest-1.0
  (default page 10, ``$top``, ``@odata.nextLink`` with ``$skip``, ``includeHiddenFolders=true``)
- get: https://learn.microsoft.com/en-us/graph/api/mailfolder-get?view=graph-rest-1.0
  (well-known names: https://learn.microsoft.com/en-us/graph/api/resources/mailfolder#well-known-folder-names)
- create: https://learn.microsoft.com/en-us/graph/api/mailfolder-post-childfolders?view=graph-rest-1.0
  (``ErrorFolderExists`` for a sibling of the same name)
- update / delete / move: https://learn.microsoft.com/en-us/graph/api/mailfolder-update?view=graph-rest-1.0,
  https://learn.microsoft.com/en-us/graph/api/mailfolder-delete?view=graph-rest-1.0,
  https://learn.microsoft.com/en-us/graph/api/mailfolder-move?view=graph-rest-1.0
"""

from __future__ import annotations

from typing import Any

from tests.fakes.graph.context import Ctx, Resp
from tests.fakes.graph.errors import GraphError, bad_request
from tests.fakes.graph.model import FOLDER_PROPS, ROOT, Folder, new_id
from tests.fakes.graph.odata import parse_select


def _project(ctx: Ctx, f: Folder) -> dict[str, Any]:
    row = ctx.mailbox.folder_json(f)
    select = parse_select(
        ctx.query.get("$select"), (*FOLDER_PROPS, "id"), "microsoft.graph.mailFolder"
    )
    if select is not None:
        row = {k: v for k, v in row.items() if k == "id" or k in select}
    return row


def list_folders(ctx: Ctx, parent: Folder) -> Resp:
    ctx.need("read")
    include_hidden = ctx.query.get("includeHiddenFolders", "").lower() == "true"
    folders = sorted(
        ctx.mailbox.children(parent.id, include_hidden), key=lambda f: f.display_name.lower()
    )
    if "$filter" in ctx.query:
        raw = ctx.query["$filter"].strip()
        if not raw.startswith("displayName eq '"):
            raise bad_request(
                "The filter is not supported for mailFolders in this fake.",
                "ErrorInvalidUrlQueryFilter",
            )
        name = raw[len("displayName eq '") : -1].replace("''", "'")
        folders = [f for f in folders if f.display_name.lower() == name.lower()]
    top = ctx.int_param("$top", 10, None) or 10
    skip = ctx.int_param("$skip", 0)
    page = folders[skip : skip + top]
    body: dict[str, Any] = {
        "@odata.context": f"{ctx.base_url}/$metadata#users('{ctx.mailbox.user_id}')/mailFolders",
        "value": [_project(ctx, f) for f in page],
    }
    if ctx.query.get("$count", "").lower() == "true":
        body["@odata.count"] = len(folders)
    if skip + top < len(folders):
        body["@odata.nextLink"] = ctx.link(**{"$skip": skip + top, "$top": top})
    return Resp(body=body)


def _check_name(ctx: Ctx, parent_id: str, name: str, exclude: str | None = None) -> None:
    if not name.strip():
        raise bad_request("The display name of the folder can't be empty.", "ErrorInvalidRequest")
    for f in ctx.mailbox.children(parent_id, True):
        if f.display_name.lower() == name.lower() and f.id != exclude:
            raise GraphError(
                409, "ErrorFolderExists", "A folder with the specified name already exists."
            )


def create_folder(ctx: Ctx, parent: Folder) -> Resp:
    ctx.need("write")
    body = ctx.json()
    name = str(body.get("displayName") or "")
    _check_name(ctx, parent.id, name)
    f = Folder(new_id("AAMkAGFld"), name, parent.id, None, bool(body.get("isHidden", False)))
    ctx.mailbox.folders[f.id] = f
    return Resp(201, _project(ctx, f))


def folder_route(ctx: Ctx, f: Folder, rest: list[str]) -> Resp:
    """Everything under ``/mailFolders/{id}``: itself, childFolders, messages, actions."""
    from tests.fakes.graph import delta, messages

    if not rest:
        if ctx.method == "GET":
            ctx.need("read")
            return Resp(body=_project(ctx, f))
        if ctx.method == "PATCH":
            ctx.need("write")
            body = ctx.json()
            if "displayName" in body:
                if f.well_known:
                    raise GraphError(
                        403,
                        "ErrorAccessDenied",
                        "Access is denied. Check credentials and try again.",
                    )
                _check_name(ctx, f.parent_id or "", str(body["displayName"]), exclude=f.id)
                f.display_name = str(body["displayName"])
            return Resp(body=_project(ctx, f))
        if ctx.method == "DELETE":
            ctx.need("write")
            if f.well_known:
                raise GraphError(
                    403,
                    "ErrorDeleteDistinguishedFolder",
                    "Distinguished folders cannot be deleted.",
                )
            trash = ctx.mailbox.folder("deleteditems")
            if ctx.mailbox.is_descendant(f.id, trash.id):
                _delete_tree(ctx, f)
            else:
                f.parent_id = trash.id
            return Resp(204)
        raise method_not_allowed()
    head, tail = rest[0], rest[1:]
    if head == "childFolders":
        if not tail:
            if ctx.method == "GET":
                return list_folders(ctx, f)
            if ctx.method == "POST":
                return create_folder(ctx, f)
            raise method_not_allowed()
        child = ctx.mailbox.folder(tail[0])
        if child.parent_id != f.id:
            raise GraphError(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        return folder_route(ctx, child, tail[1:])
    if head == "messages":
        if tail and tail[0] in {
            "delta",
            "delta()",
            "microsoft.graph.delta()",
            "microsoft.graph.delta",
        }:
            return delta.delta(ctx, f)
        return messages.collection(ctx, tail, f)
    if head in {"move", "microsoft.graph.move"} and ctx.method == "POST" and not tail:
        ctx.need("write")
        dest = ctx.mailbox.folder(str(ctx.action_json().get("destinationId", "")))
        if f.well_known or ctx.mailbox.is_descendant(dest.id, f.id):
            raise bad_request(
                "The folder can't be moved to that destination.", "ErrorMoveCopyFailed"
            )
        _check_name(ctx, dest.id, f.display_name, exclude=f.id)
        f.parent_id = dest.id
        return Resp(201, _project(ctx, f))
    raise GraphError(400, "BadRequest", f"Resource not found for the segment '{head}'.")


def _delete_tree(ctx: Ctx, f: Folder) -> None:
    """Remove a folder below Deleted Items for good, with its subfolders and messages
    (a folder elsewhere moves to Deleted Items, as in Exchange)."""
    for child in ctx.mailbox.children(f.id, True):
        _delete_tree(ctx, child)
    for m in ctx.mailbox.in_folder(f.id):
        ctx.fake.emit(ctx.mailbox, "deleted", m)
        ctx.mailbox.remove(m)
    del ctx.mailbox.folders[f.id]


def method_not_allowed() -> GraphError:
    return GraphError(
        405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target."
    )


def root_folders(ctx: Ctx, rest: list[str]) -> Resp:
    """``/mailFolders`` and ``/mailFolders/{id}/...``."""
    root = ctx.mailbox.folder(ROOT)
    if not rest:
        if ctx.method == "GET":
            return list_folders(ctx, root)
        if ctx.method == "POST":
            return create_folder(ctx, root)
        raise method_not_allowed()
    if rest[0] in {"delta", "delta()", "microsoft.graph.delta()"}:
        raise GraphError(501, "NotImplemented", "mailFolders/delta is not modelled by this fake.")
    return folder_route(ctx, ctx.mailbox.folder(rest[0]), rest[1:])
