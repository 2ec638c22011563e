"""Delta query on a folder's messages: ``GET /mailFolders/{id}/messages/delta``.

Follows https://learn.microsoft.com/en-us/graph/delta-query-messages and
https://learn.microsoft.com/en-us/graph/api/message-delta?view=graph-rest-1.0:

- the first round returns every message of the folder, paged by ``Prefer: odata.maxpagesize=N``
  (default 10; the answer carries ``Preference-Applied``), each page but the last with
  ``@odata.nextLink`` (``$skiptoken``), the last with ``@odata.deltaLink`` (``$deltatoken``);
- a round started from a deltaLink returns messages created or updated since, and
  ``{"id", "@removed": {"reason": "deleted"}}`` for messages deleted or moved out (a message that
  moved without ``Prefer: IdType="ImmutableId"`` leaves under its old id and comes back as new);
- ``$select`` and ``$expand`` are kept in the links; ``$filter`` accepts only
  ``receivedDateTime ge|gt value``; ``$orderby`` and ``$search`` are not supported;
- an expired or unknown token answers 410 Gone (``SyncStateNotFound``): the client must restart
  (https://learn.microsoft.com/en-us/graph/delta-query-overview#synchronization-reset).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.graph.context import Ctx, Resp
from tests.fakes.graph.errors import GraphError, bad_request
from tests.fakes.graph.extended import Expand, parse_expand
from tests.fakes.graph.model import Folder, parse_iso
from tests.fakes.graph.odata import parse_select

_FILTER = re.compile(r"^\s*receivedDateTime\s+(ge|gt)\s+(\S+)\s*$", re.IGNORECASE)


@dataclass
class DeltaState:
    """What a ``$skiptoken``/``$deltatoken`` stands for (kept server-side, like Exchange)."""

    upn: str
    folder_id: str
    since: int  # change number the round starts after (-1: initial round)
    until: int  # change number the round ends at (the next deltaLink's start)
    generation: int
    immutable: bool
    select: list[str] | None
    received_after: str | None = None
    strict: bool = False
    pending: list[tuple[str, str]] = field(
        default_factory=list
    )  # ("msg", imm_id) | ("removed", id)
    changed_only: str | None = None
    expand: Expand = field(default_factory=Expand)


def _gone() -> GraphError:
    return GraphError(
        410,
        "SyncStateNotFound",
        "The sync state is invalid or has expired. Resync required: start again without a delta token.",
        inner={"code": "resyncRequired"},
    )


def _page_size(ctx: Ctx) -> int:
    m = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", ctx.headers.get("prefer", ""), re.IGNORECASE)
    if m:
        return max(1, min(int(m.group(1)), 1000))
    return ctx.int_param("$top", 10, 1000) or 10


def delta(ctx: Ctx, folder: Folder) -> Resp:
    ctx.need("read")
    mb = ctx.mailbox
    tokens: dict[str, DeltaState] = ctx.fake.delta_states
    q = ctx.query
    token = q.get("$skiptoken") or q.get("$deltatoken")
    if token is not None:
        state = tokens.get(token)
        if (
            state is None
            or state.generation != mb.delta_generation
            or state.upn != mb.upn
            or state.folder_id != folder.id
        ):
            raise _gone()
        if "$deltatoken" in q:
            tokens.pop(token, None)
            state = _next_round(ctx, state)
        else:
            tokens.pop(token, None)
    else:
        if "$orderby" in q or "$search" in q:
            raise bad_request(
                "The query parameter is not supported for delta queries on messages.",
                "ErrorInvalidUrlQuery",
            )
        after, strict = None, False
        if "$filter" in q:
            fm = _FILTER.match(q["$filter"])
            if not fm:
                raise bad_request(
                    "The '$filter' parameter value is not supported for 'Messages' resource; only a value of 'receivedDateTime ge value' is supported.",
                    "ErrorInvalidUrlQuery",
                )
            after, strict = fm.group(2), fm.group(1).lower() == "gt"
        select = parse_select(q.get("$select"), tuple(_selectable()), "microsoft.graph.message")
        state = DeltaState(
            mb.upn, folder.id, -1, mb.seq, mb.delta_generation, ctx.immutable, select, after, strict
        )
        state.changed_only = q.get("changeType")
        state.expand = parse_expand(q.get("$expand"))
        msgs = sorted(mb.in_folder(folder.id), key=lambda m: m.received, reverse=True)
        state.pending = [("msg", m.imm_id) for m in msgs if _in_range(state, m.received)]
    return _page(ctx, state, folder)


def _selectable() -> list[str]:
    from tests.fakes.graph.messages import SELECTABLE

    return list(SELECTABLE)


def _in_range(state: DeltaState, received: str) -> bool:
    if state.received_after is None:
        return True
    bound = parse_iso(state.received_after)
    value = parse_iso(received)
    return value > bound if state.strict else value >= bound


def _next_round(ctx: Ctx, prev: DeltaState) -> DeltaState:
    """Changes after ``prev.until``: updated/created messages and removals from this folder."""
    mb = ctx.mailbox
    state = DeltaState(
        prev.upn,
        prev.folder_id,
        prev.until,
        mb.seq,
        prev.generation,
        prev.immutable,
        prev.select,
        prev.received_after,
        prev.strict,
        changed_only=prev.changed_only,
        expand=prev.expand,
    )
    seen: set[str] = set()
    for r in mb.removals:
        if r.seq <= prev.until or r.folder_id != prev.folder_id:
            continue
        now = mb.messages.get(r.imm_id)
        if prev.immutable and now is not None and now.folder_id == prev.folder_id:
            continue  # left and came back: same immutable id, reported as a change below
        rid = r.imm_id if prev.immutable else r.rest_id
        if rid not in seen:
            seen.add(rid)
            state.pending.append(("removed", rid))
    for m in sorted(mb.in_folder(prev.folder_id), key=lambda m: m.change_seq):
        if m.change_seq > prev.until and _in_range(state, m.received):
            state.pending.append(("msg", m.imm_id))
    return state


def _page(ctx: Ctx, state: DeltaState, folder: Folder) -> Resp:
    mb = ctx.mailbox
    size = _page_size(ctx)
    items: list[dict[str, Any]] = []
    while state.pending and len(items) < size:
        kind, ref = state.pending.pop(0)
        if kind == "removed":
            if state.changed_only in (None, "deleted"):
                items.append(
                    {
                        "@odata.type": "#microsoft.graph.message",
                        "id": ref,
                        "@removed": {"reason": "deleted"},
                    }
                )
            continue
        m = mb.messages.get(ref)
        if m is None or m.folder_id != folder.id:
            continue
        if state.changed_only == "deleted":
            continue
        row = m.to_json(
            msg_id=m.imm_id if state.immutable else m.rest_id,
            select=state.select,
            folder_id=m.folder_id,
            expand_attachments=state.expand.attachments,
            extended=state.expand.properties,
        )
        items.append({"@odata.type": "#microsoft.graph.message", **row})
    token = secrets.token_urlsafe(24)
    ctx.fake.delta_states[token] = state
    base = f"{ctx.base_url}/{ctx.path}"
    body: dict[str, Any] = {
        "@odata.context": f"{ctx.base_url}/$metadata#Collection(message)",
        "value": items,
    }
    if state.pending:
        body["@odata.nextLink"] = f"{base}?$skiptoken={token}"
    else:
        body["@odata.deltaLink"] = f"{base}?$deltatoken={token}"
    headers = {}
    if "odata.maxpagesize" in ctx.headers.get("prefer", "").lower():
        headers["Preference-Applied"] = f"odata.maxpagesize={size}"
    return Resp(body=body, headers=headers)
