"""message routes: list/query, get, ``$value``, create (JSON or MIME), PATCH, DELETE,
permanentDelete, move, copy, attachments, createReply/createReplyAll/createForward, reply,
replyAll, forward, send, and ``/sendMail``.

References (Graph v1.0):
- list: https://learn.microsoft.com/en-us/graph/api/user-list-messages?view=graph-rest-1.0
  (default page 10, ``$top`` 1..1000, nextLink with ``$skip``, ``$search`` not with
  ``$filter``/``$orderby``, ``Prefer: outlook.body-content-type``)
- get / MIME: https://learn.microsoft.com/en-us/graph/api/message-get?view=graph-rest-1.0,
  https://learn.microsoft.com/en-us/graph/outlook-get-mime-message
- create: https://learn.microsoft.com/en-us/graph/api/user-post-messages?view=graph-rest-1.0
  (MIME: ``Content-Type: text/plain`` and base64 body; a bad one is
  ``ErrorMimeContentInvalidBase64String``)
- update: https://learn.microsoft.com/en-us/graph/api/message-update?view=graph-rest-1.0
  (and ``singleValueExtendedProperties`` on any message, see ``extended``)
- ``$expand``: ``attachments`` and ``singleValueExtendedProperties($filter=id eq '…')``, see
  ``extended``; sending a createReply/createReplyAll/createForward draft (or reply, replyAll,
  forward) sets PidTagLastVerbExecuted 102/103/104 on the original, as Exchange does; a MIME
  ``sendMail`` does not (Exchange does not act on In-Reply-To)
- delete: https://learn.microsoft.com/en-us/graph/api/message-delete?view=graph-rest-1.0 (a soft
  delete into Recoverable Items, well-known ``recoverableitemsdeletions``; Deleted Items is
  reached with ``/move``), permanentDelete:
  https://learn.microsoft.com/en-us/graph/api/message-permanentdelete?view=graph-rest-1.0
- move / copy: https://learn.microsoft.com/en-us/graph/api/message-move?view=graph-rest-1.0
- attachments: https://learn.microsoft.com/en-us/graph/api/message-list-attachments?view=graph-rest-1.0,
  https://learn.microsoft.com/en-us/graph/api/attachment-get?view=graph-rest-1.0 (``/$value``)
- createReply / send / sendMail:
  https://learn.microsoft.com/en-us/graph/api/message-createreply?view=graph-rest-1.0,
  https://learn.microsoft.com/en-us/graph/api/message-send?view=graph-rest-1.0,
  https://learn.microsoft.com/en-us/graph/api/user-sendmail?view=graph-rest-1.0
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from tests.fakes.graph.context import Ctx, Resp
from tests.fakes.graph.errors import GraphError, bad_request, not_found
from tests.fakes.graph.extended import (
    FILTER_KEY,
    LAST_VERB,
    LAST_VERB_TIME,
    VERBS,
    Expand,
    apply_patch,
    parse_expand,
)
from tests.fakes.graph.model import (
    EXTRA_MESSAGE_PROPS,
    MESSAGE_PROPS,
    Attachment,
    Folder,
    Message,
    addr,
    new_id,
    new_message_id,
    now_iso,
)
from tests.fakes.graph.odata import (
    check_filter_orderby,
    parse_filter,
    parse_orderby,
    parse_search,
    parse_select,
    sort_rows,
)

SELECTABLE = (*MESSAGE_PROPS, *EXTRA_MESSAGE_PROPS)
FILTERABLE = (*MESSAGE_PROPS, "id")
DRAFT_ONLY = {
    "subject",
    "body",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "from",
    "sender",
}


def render(
    ctx: Ctx, m: Message, select: list[str] | None = None, expand: Expand | None = None
) -> dict[str, Any]:
    """``m`` as JSON under this request's id and body-type preferences."""
    expand = expand or Expand()
    row = m.to_json(
        msg_id=ctx.mid(m),
        select=select,
        folder_id=m.folder_id,
        expand_attachments=expand.attachments,
        extended=expand.properties,
    )
    if ctx.text_body and "body" in row and m.body_type == "html":
        row["body"] = {"contentType": "text", "content": m.body_text()}
    return row


def _expand(ctx: Ctx) -> Expand:
    return parse_expand(ctx.query.get("$expand"))


# ---- collections -------------------------------------------------------------------------


def list_messages(ctx: Ctx, msgs: list[Message]) -> Resp:
    ctx.need("read")
    q = ctx.query
    search, flt, orderby = q.get("$search"), q.get("$filter"), q.get("$orderby")
    if search is not None and flt is not None:
        raise bad_request(
            "The query parameter '$filter' is not supported with '$search'.", "ErrorInvalidUrlQuery"
        )
    if search is not None and orderby is not None:
        raise bad_request(
            "The query parameter '$orderby' is not supported with '$search'.",
            "ErrorInvalidUrlQuery",
        )
    select = parse_select(q.get("$select"), SELECTABLE, "microsoft.graph.message")
    expand = _expand(ctx)
    top = ctx.int_param("$top", 10, 1000) or 10
    skip = ctx.int_param("$skip", 0)
    rows = [
        (
            m,
            m.to_json(
                msg_id=m.imm_id, select=None, folder_id=m.folder_id, expand_attachments=False
            ),
        )
        for m in msgs
    ]
    if search is not None:
        pred = parse_search(search)
        rows = [(m, r) for m, r in rows if pred(r, [a.name.lower() for a in m.attachments])]
        order = [("receivedDateTime", True)]
    else:
        order = parse_orderby(orderby, FILTERABLE) if orderby else [("receivedDateTime", True)]
        if flt is not None:
            fn, props = parse_filter(flt, FILTERABLE)
            if orderby:
                check_filter_orderby(props, order)
            rows = [(m, r) for m, r in rows if fn({**r, FILTER_KEY: m.ext})]
    by_row = {id(r): m for m, r in rows}
    ordered = [by_row[id(r)] for r in sort_rows([r for _, r in rows], order)]
    page = ordered[skip : skip + top]
    body: dict[str, Any] = {
        "@odata.context": f"{ctx.base_url}/$metadata#users('{ctx.mailbox.user_id}')/messages",
        "value": [render(ctx, m, select, expand) for m in page],
    }
    if q.get("$count", "").lower() == "true":
        body["@odata.count"] = len(ordered)
    if skip + top < len(ordered):
        body["@odata.nextLink"] = ctx.link(**{"$skip": skip + top, "$top": top})
    return Resp(body=body)


def collection(ctx: Ctx, rest: list[str], folder: Folder | None) -> Resp:
    """``/messages`` (all folders) or ``/mailFolders/{id}/messages`` and what lies below."""
    mb = ctx.mailbox
    if not rest:
        if ctx.method == "GET":
            hidden = {mb.well_known["recoverableitemsdeletions"]}
            msgs = (
                mb.in_folder(folder.id)
                if folder
                else [m for m in mb.messages.values() if m.folder_id not in hidden]
            )
            return list_messages(ctx, msgs)
        if ctx.method == "POST":
            return create(ctx, folder or mb.folder("drafts"))
        raise GraphError(
            405,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        )
    if rest == ["$count"]:
        ctx.need("read")
        n = len(mb.in_folder(folder.id)) if folder else len(mb.messages)
        return Resp(body=str(n).encode(), content_type="text/plain")
    return message_route(ctx, mb.message(rest[0]), rest[1:])


# ---- create ------------------------------------------------------------------------------


def _decode_mime(ctx: Ctx) -> bytes:
    try:
        return base64.b64decode(ctx.body.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_request(
            "Invalid base64 string for MIME content.", "ErrorMimeContentInvalidBase64String"
        ) from exc


def _is_mime(ctx: Ctx) -> bool:
    return ctx.headers.get("content-type", "").lower().startswith("text/plain")


def _recips(value: Any) -> list[dict[str, Any]]:
    out = []
    for r in value or []:
        ea = (r or {}).get("emailAddress") or {}
        if ea.get("address"):
            out.append(addr(ea.get("name"), str(ea["address"])))
    return out


def _apply_fields(m: Message, body: dict[str, Any], *, draft: bool) -> None:
    """Set writable message properties from a JSON body."""
    for key in body:
        if key in DRAFT_ONLY and not draft:
            raise bad_request(
                "Update operation is not supported for this property of a sent message.",
                "ErrorInvalidPropertyUpdateSentMessage",
            )
    if "subject" in body:
        m.subject = str(body["subject"] or "")
    if "body" in body:
        b = body["body"] or {}
        m.body_type = "html" if str(b.get("contentType", "text")).lower() == "html" else "text"
        m.body = str(b.get("content") or "")
    for key, attr in (
        ("toRecipients", "to"),
        ("ccRecipients", "cc"),
        ("bccRecipients", "bcc"),
        ("replyTo", "reply_to"),
    ):
        if key in body:
            setattr(m, attr, _recips(body[key]))
    if body.get("from"):
        m.from_ = _recips([body["from"]])[0]
    if "isRead" in body:
        m.is_read = bool(body["isRead"])
    if "importance" in body:
        if body["importance"] not in {"low", "normal", "high"}:
            raise bad_request(f"Invalid importance '{body['importance']}'.")
        m.importance = body["importance"]
    if "categories" in body:
        m.categories = [str(c) for c in body["categories"] or []]
    if "flag" in body:
        flag = dict(body["flag"] or {})
        if flag.get("flagStatus", "notFlagged") not in {"notFlagged", "flagged", "complete"}:
            raise bad_request(f"Invalid flagStatus '{flag.get('flagStatus')}'.")
        m.flag = {"flagStatus": "notFlagged", **flag}
    if "inferenceClassification" in body:
        pass  # accepted, always "focused" here
    for h in body.get("internetMessageHeaders") or []:
        name = str(h.get("name", ""))
        if not name.lower().startswith("x-"):
            raise bad_request(
                "The internet message header name should start with 'x-' or 'X-'.",
                "InvalidInternetMessageHeader",
            )
        m.headers.append((name, str(h.get("value", ""))))
    for a in body.get("attachments") or []:
        m.attachments.append(_attachment(a))
    if "singleValueExtendedProperties" in body:
        apply_patch(m.ext, body["singleValueExtendedProperties"])
    if draft:
        m.raw = None  # rebuilt from the fields on the next $value


def _attachment(a: dict[str, Any]) -> Attachment:
    kind = str(a.get("@odata.type", "#microsoft.graph.fileAttachment"))
    if kind.lower() != "#microsoft.graph.fileattachment":
        raise bad_request("Only fileAttachment can be added by this fake.", "ErrorInvalidRequest")
    try:
        content = base64.b64decode(str(a.get("contentBytes") or ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_request("Invalid contentBytes.", "ErrorInvalidRequest") from exc
    return Attachment(
        id=new_id("AAMkAGAtt"),
        name=str(a.get("name") or "attachment"),
        content_type=str(a.get("contentType") or "application/octet-stream"),
        content=content,
        is_inline=bool(a.get("isInline", False)),
        content_id=a.get("contentId"),
    )


def new_draft(ctx: Ctx, folder: Folder, body: dict[str, Any]) -> Message:
    mb = ctx.mailbox
    m = Message(imm_id="", rest_id="", folder_id=folder.id, is_draft=True, is_read=True)
    m.from_ = m.sender = addr(mb.display_name, mb.mail)
    m.internet_message_id = new_message_id(mb.mail.split("@")[-1])
    _apply_fields(m, body, draft=True)
    m.imm_id, m.rest_id = new_id("AAkALgAAAAAAHYQDEapmEc2byACqAC"), new_id("AAMkAGMsg")
    return mb.add(m)


def create(ctx: Ctx, folder: Folder) -> Resp:
    ctx.need("write")
    if _is_mime(ctx):
        raw = _decode_mime(ctx)
        m = ctx.mailbox.from_mime(raw, folder.id, is_draft=True, is_read=True)
    else:
        m = new_draft(ctx, folder, ctx.json())
    ctx.fake.emit(ctx.mailbox, "created", m)
    return Resp(201, render(ctx, m))


# ---- one message -------------------------------------------------------------------------


def message_route(ctx: Ctx, m: Message, rest: list[str]) -> Resp:
    mb = ctx.mailbox
    if not rest:
        if ctx.method == "GET":
            ctx.need("read")
            select = parse_select(ctx.query.get("$select"), SELECTABLE, "microsoft.graph.message")
            return Resp(body=render(ctx, m, select, _expand(ctx)))
        if ctx.method == "PATCH":
            ctx.need("write")
            _apply_fields(m, ctx.json(), draft=m.is_draft)
            mb.touch(m)
            ctx.fake.emit(mb, "updated", m)
            return Resp(body=render(ctx, m))
        if ctx.method == "DELETE":
            ctx.need("write")
            ctx.fake.emit(mb, "deleted", m)
            if m.folder_id == mb.well_known["recoverableitemsdeletions"]:
                mb.remove(m)
            else:
                mb.move(m, mb.well_known["recoverableitemsdeletions"])
            return Resp(204)
        raise GraphError(
            405,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        )
    head = rest[0].removeprefix("microsoft.graph.")
    if head == "$value" and ctx.method == "GET":
        ctx.need("read")
        return Resp(body=m.mime(), content_type="text/plain")
    if head == "attachments":
        return attachments(ctx, m, rest[1:])
    if ctx.method != "POST" or len(rest) != 1:
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{rest[0]}'.")
    if head in {"move", "copy"}:
        ctx.need("write")
        dest = mb.folder(str(ctx.action_json().get("destinationId", "")))
        if head == "copy":
            out = mb.copy(m, dest.id)
            ctx.fake.emit(mb, "created", out)
        else:
            if dest.id != m.folder_id:
                ctx.fake.emit(mb, "deleted", m)
                out = mb.move(m, dest.id)
                ctx.fake.emit(mb, "created", out)
            else:
                out = m
        return Resp(201, render(ctx, out))
    if head == "permanentDelete":
        ctx.need("write")
        ctx.fake.emit(mb, "deleted", m)
        mb.remove(m)
        return Resp(204)
    if head in {"createReply", "createReplyAll", "createForward"}:
        ctx.need("write")
        draft = reply_draft(ctx, m, head, ctx.action_json())
        ctx.fake.emit(mb, "created", draft)
        return Resp(201, render(ctx, draft))
    if head in {"reply", "replyAll", "forward"}:
        ctx.need("send")
        draft = reply_draft(ctx, m, "create" + head[0].upper() + head[1:], ctx.action_json())
        send_draft(ctx, draft, save=True, announced=False)
        return Resp(202)
    if head == "send":
        ctx.need("send")
        if not m.is_draft:
            raise bad_request("The item has already been sent.", "ErrorInvalidRequest")
        send_draft(ctx, m, save=True)
        return Resp(202)
    raise GraphError(400, "BadRequest", f"Resource not found for the segment '{rest[0]}'.")


def attachments(ctx: Ctx, m: Message, rest: list[str]) -> Resp:
    if not rest:
        if ctx.method == "GET":
            ctx.need("read")
            return Resp(body={"value": [a.to_json() for a in m.attachments]})
        if ctx.method == "POST":
            ctx.need("write")
            if not m.is_draft:
                raise bad_request(
                    "Attachments can only be added to a draft.", "ErrorInvalidRequest"
                )
            att = _attachment(ctx.json())
            m.attachments.append(att)
            m.raw = None
            ctx.mailbox.touch(m)
            return Resp(201, att.to_json())
        raise GraphError(
            405,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        )
    att = next((a for a in m.attachments if a.id == rest[0]), None)
    if att is None:
        raise not_found()
    if len(rest) == 2 and rest[1] == "$value":
        ctx.need("read")
        return Resp(
            body=att.content, content_type="message/rfc822" if att.is_item else att.content_type
        )
    if len(rest) == 1 and ctx.method == "GET":
        ctx.need("read")
        return Resp(body=att.to_json())
    if len(rest) == 1 and ctx.method == "DELETE":
        ctx.need("write")
        m.attachments.remove(att)
        m.raw = None
        return Resp(204)
    raise GraphError(400, "BadRequest", "Unsupported attachment request.")


# ---- replies and sending -----------------------------------------------------------------


def reply_draft(ctx: Ctx, orig: Message, kind: str, body: dict[str, Any]) -> Message:
    """A draft in Drafts answering ``orig``: same conversationId, In-Reply-To/References set."""
    mb = ctx.mailbox
    me = mb.mail.lower()
    fields: dict[str, Any] = dict(body.get("message") or {})
    comment = str(body.get("comment") or "")
    prefix = "FW: " if kind == "createForward" else "RE: "
    fields.setdefault("subject", prefix + orig.subject)
    quoted = f"{comment}\n\n-----Original Message-----\n{orig.body_text()}"
    fields.setdefault("body", {"contentType": "text", "content": quoted})
    if kind == "createForward":
        if body.get("toRecipients"):
            fields.setdefault("toRecipients", body["toRecipients"])
    else:
        to = orig.reply_to or ([orig.from_] if orig.from_ else [])
        if kind == "createReplyAll":
            to = to + [r for r in orig.to if r["emailAddress"]["address"].lower() != me]
            fields.setdefault(
                "ccRecipients", [r for r in orig.cc if r["emailAddress"]["address"].lower() != me]
            )
        fields.setdefault("toRecipients", to)
    draft = Message(
        imm_id=new_id("AAkALgAAAAAAHYQDEapmEc2byACqAC"),
        rest_id=new_id("AAMkAGMsg"),
        folder_id=mb.well_known["drafts"],
    )
    draft.is_draft = draft.is_read = True
    draft.from_ = draft.sender = addr(mb.display_name, mb.mail)
    draft.internet_message_id = new_message_id(mb.mail.split("@")[-1])
    _apply_fields(draft, fields, draft=True)
    if kind == "createForward":
        draft.attachments += [
            Attachment(**{**a.__dict__, "id": new_id("AAMkAGAtt")}) for a in orig.attachments
        ]
    else:
        draft.in_reply_to = orig.internet_message_id or None
        draft.references = (
            [*orig.references, orig.internet_message_id]
            if orig.internet_message_id
            else list(orig.references)
        )
    draft.conversation_id = orig.conversation_id
    draft.reply_of = (orig.imm_id, VERBS[kind])
    return mb.add(draft)


def send_draft(ctx: Ctx, m: Message, *, save: bool, announced: bool = True) -> None:
    """Send a draft: it leaves Drafts for Sent Items (or is dropped) and reaches local users."""
    mb = ctx.mailbox
    if not (m.to or m.cc or m.bcc):
        raise bad_request(
            "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
            "ErrorInvalidRecipients",
        )
    m.is_draft = False
    m.sent = m.received = now_iso()
    raw = m.mime()
    if m.reply_of is not None:
        original = mb.messages.get(m.reply_of[0])
        if original is not None:  # Exchange records the verb on what was answered
            original.ext[LAST_VERB] = str(m.reply_of[1])
            original.ext[LAST_VERB_TIME] = now_iso()
            mb.touch(original)
            ctx.fake.emit(mb, "updated", original)
        m.reply_of = None
    if announced:
        ctx.fake.emit(mb, "deleted", m)
    if save:
        mb.move(m, mb.well_known["sentitems"])
        ctx.fake.emit(mb, "created", m)
    else:
        mb.remove(m)
    ctx.fake.dispatch_outbound(mb, raw, [r["emailAddress"]["address"] for r in m.to + m.cc + m.bcc])


def send_mail(ctx: Ctx) -> Resp:
    """``POST /sendMail``: JSON ``{"message", "saveToSentItems"}`` or base64 MIME."""
    ctx.need("send")
    mb = ctx.mailbox
    if _is_mime(ctx):
        raw = _decode_mime(ctx)
        m = mb.from_mime(raw, mb.well_known["sentitems"], is_read=True)
        recipients = [r["emailAddress"]["address"] for r in m.to + m.cc + m.bcc]
        if not recipients:
            mb.remove(m)
            raise bad_request(
                "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
                "ErrorInvalidRecipients",
            )
        m.sent = m.sent or now_iso()
        ctx.fake.emit(mb, "created", m)
        ctx.fake.dispatch_outbound(mb, raw, recipients)
        return Resp(202)
    body = ctx.action_json()
    if not isinstance(body.get("message"), dict):
        raise bad_request("Empty Payload. JSON content expected.", "ErrorInvalidRequest")
    save = bool(body.get("saveToSentItems", True))
    draft = new_draft(ctx, mb.folder("drafts"), body["message"])
    draft.conversation_id = draft.conversation_id or mb.conversation_for(None, [])
    try:
        send_draft(ctx, draft, save=save, announced=False)
    except GraphError:
        mb.remove(draft)
        raise
    return Resp(202)
