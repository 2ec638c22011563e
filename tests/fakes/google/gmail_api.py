"""Gmail REST v1 routes (``/gmail/v1/users/{userId}/…`` and the ``/upload/…`` media endpoints).

Every method, parameter and scope comes from ``gmail.v1.json`` (shipped with
google-api-python-client): a request needs a live bearer token (401 otherwise) holding one of
the method's documented scopes (403 ``ACCESS_TOKEN_SCOPE_INSUFFICIENT`` otherwise — so
``messages.delete``/``batchDelete`` need ``https://mail.google.com/``), then it is charged to the
user's quota (``quota.py``). ``userId`` is ``me`` or the token's own address ("Delegation denied"
otherwise). Media uploads accept ``uploadType=media``, ``multipart`` (``multipart/related``:
JSON metadata then the message) and ``resumable`` ("Uploading attachments" guide).
"""

from __future__ import annotations

import email.utils
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import mime
from .auth import AccessToken, TokenStore
from .errors import (
    GoogleError,
    bad_request,
    failed_precondition,
    forbidden,
    insufficient_scope,
    not_found,
)
from .mailbox import Mailbox, StoredMessage, Watch
from .pubsub import GMAIL_PUSH_ACCOUNT, PubSub
from .quota import Quota
from .rendering import (
    brief,
    decode_page_token,
    encode_page_token,
    estimate,
    max_results,
    paginate,
    parse_attachment_id,
    render_message,
    select_fields,
)
from .uploads import media, resumable_step
from .util import Clock, b64url

WATCH_LIFETIME_MS = 7 * 24 * 3600 * 1000
JSON_TYPE = "application/json; charset=UTF-8"


@cache
def discovery_scopes() -> dict[str, list[str]]:
    """Method id (``gmail.users.messages.get``) → accepted scopes, from ``gmail.v1.json``."""
    import googleapiclient

    path = Path(googleapiclient.__file__).parent / "discovery_cache/documents/gmail.v1.json"
    document = json.loads(path.read_text())
    out: dict[str, list[str]] = {}

    def walk(resources: dict[str, Any]) -> None:
        for resource in resources.values():
            for method in resource.get("methods", {}).values():
                out[method["id"]] = method.get("scopes", [])
            walk(resource.get("resources", {}))

    walk(document["resources"])
    return out


class GmailHost(Protocol):
    """What the routes need from ``FakeGoogle``."""

    tokens: TokenStore
    quota: Quota
    pubsub: PubSub
    clock: Clock
    require_push_grant: bool

    def mailbox_for(self, email_address: str) -> Mailbox | None: ...
    def flush_pushes(self) -> None: ...
    def after_send(self, mailbox: Mailbox, message: StoredMessage) -> None: ...
    def after_call(self, email_address: str, method: str) -> None: ...
    def locked(self) -> Any: ...


@dataclass
class Call:
    """One Gmail request, authenticated and resolved to a mailbox."""

    request: Request
    mailbox: Mailbox
    token: AccessToken
    body: bytes
    host: GmailHost

    def q(self, name: str, default: str | None = None) -> str | None:
        """A query parameter."""
        return self.request.query_params.get(name, default)

    def qlist(self, name: str) -> list[str]:
        """A repeated query parameter (also accepts comma-separated values)."""
        return [v for item in self.request.query_params.getlist(name) for v in item.split(",") if v]

    def flag(self, name: str) -> bool:
        """A boolean query parameter."""
        return (self.q(name) or "").lower() == "true"

    def json(self) -> dict[str, Any]:
        """The JSON body ({} when empty)."""
        if not self.body.strip():
            return {}
        try:
            value = json.loads(self.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise bad_request("Invalid JSON payload received.") from None
        if not isinstance(value, dict):
            raise bad_request("Invalid JSON payload received.")
        return value

    def path(self, name: str) -> str:
        """A path parameter."""
        return str(self.request.path_params[name])


Handler = Callable[[Call], Any]


# -- message helpers ---------------------------------------------------------------------------
def _prepare_outgoing(mailbox: Mailbox, raw: bytes) -> bytes:
    """What Gmail adds to a message it sends: From, Date and Message-ID when missing."""
    parsed = mime.parse(raw)
    extra: list[str] = []
    if not parsed.get("From"):
        extra.append(f"From: {mailbox.email}")
    if not parsed.get("Date"):
        extra.append(f"Date: {email.utils.formatdate(localtime=False)}")
    if not parsed.get("Message-ID"):
        extra.append(f"Message-ID: <{secrets.token_hex(12)}@mail.gmail.com>")
    if not mime.addresses(parsed, "To", "Cc", "Bcc"):
        raise bad_request("Recipient address required")
    newline = b"\r\n" if b"\r\n" in raw else b"\n"
    prefix = b"".join(line.encode() + newline for line in extra)
    return prefix + raw


def _send(call: Call, raw: bytes, thread_id: str | None) -> StoredMessage:
    mailbox = call.mailbox
    prepared = _prepare_outgoing(mailbox, raw)
    recipients = mime.addresses(mime.parse(prepared), "To", "Cc", "Bcc")
    labels = ["SENT"] + (["INBOX"] if mailbox.email.lower() in recipients else [])
    stored = mailbox.add(prepared, labels, thread_id=thread_id)
    call.host.after_send(mailbox, stored)
    return stored


def _message_list_body(
    items: list[StoredMessage], page: list[StoredMessage], token: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if page:
        body["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
    if token:
        body["nextPageToken"] = token
    body["resultSizeEstimate"] = estimate(len(items))
    return body


def _thread_list(call: Call) -> dict[str, Any]:
    matches = call.mailbox.search(
        call.q("q"), call.qlist("labelIds"), call.flag("includeSpamTrash")
    )
    latest: dict[str, StoredMessage] = {}
    for message in matches:
        latest.setdefault(message.thread_id, message)
    threads = list(latest.values())
    page, token = paginate(threads, call.q("pageToken"), max_results(call.q("maxResults")))
    body: dict[str, Any] = {}
    if page:
        body["threads"] = []
        for message in page:
            members = call.mailbox.thread_messages(message.thread_id)
            body["threads"].append(
                {
                    "id": message.thread_id,
                    "snippet": mime.snippet(members[-1].parsed),
                    "historyId": str(max(m.history_id for m in members)),
                }
            )
    if token:
        body["nextPageToken"] = token
    body["resultSizeEstimate"] = estimate(len(threads))
    return body


def _thread_get(call: Call) -> dict[str, Any]:
    members = call.mailbox.thread_messages(call.path("id"))
    fmt = call.q("format", "full") or "full"
    rendered = [render_message(m, fmt, call.qlist("metadataHeaders")) for m in members]
    return {
        "id": call.path("id"),
        "historyId": str(max(m.history_id for m in members)),
        "messages": rendered,
    }


def _draft(call: Call, draft_id: str) -> StoredMessage:
    message_id = call.mailbox.drafts.get(draft_id)
    if message_id is None:
        raise not_found()
    return call.mailbox.messages[message_id]


def _draft_body(draft_id: str, message: StoredMessage, fmt: str | None = None) -> dict[str, Any]:
    rendered = render_message(message, fmt) if fmt else brief(message)
    return {"id": draft_id, "message": rendered}


# -- handlers ----------------------------------------------------------------------------------
def get_profile(call: Call) -> dict[str, Any]:
    mailbox = call.mailbox
    return {
        "emailAddress": mailbox.email,
        "messagesTotal": len(mailbox.messages),
        "threadsTotal": mailbox.threads_total(),
        "historyId": str(mailbox.history_id),
    }


def watch(call: Call) -> dict[str, Any]:
    body = call.json()
    topic_name = str(body.get("topicName", ""))
    parts = topic_name.split("/")
    if len(parts) != 4 or parts[0] != "projects" or parts[2] != "topics":
        raise bad_request("Invalid topicName does not match projects/SOME-PROJECT/topics/*")
    pubsub = call.host.pubsub
    if topic_name not in pubsub.topics:
        raise not_found(f"Resource not found (resource={parts[3]}).")
    if call.host.require_push_grant and not pubsub.topics[topic_name].grants_publish_to(
        GMAIL_PUSH_ACCOUNT
    ):
        raise forbidden(
            f"Error sending test message to Cloud PubSub {topic_name} : User not authorized "
            "to perform this action."
        )
    label_ids = call.mailbox.check_label_ids(body.get("labelIds") or [])
    behavior = str(body.get("labelFilterBehavior") or body.get("labelFilterAction") or "include")
    expiration = call.host.clock.now_ms() + WATCH_LIFETIME_MS
    call.mailbox.watch = Watch(topic_name, label_ids, behavior.lower(), expiration)
    return {"historyId": str(call.mailbox.history_id), "expiration": str(expiration)}


def stop(call: Call) -> None:
    call.mailbox.watch = None


def labels_list(call: Call) -> dict[str, Any]:
    return {"labels": [label.brief() for label in call.mailbox.labels.values()]}


def labels_get(call: Call) -> dict[str, Any]:
    return call.mailbox.label_full(call.path("id"))


def labels_create(call: Call) -> dict[str, Any]:
    return call.mailbox.create_label(call.json()).brief()


def labels_update(call: Call) -> dict[str, Any]:
    return call.mailbox.update_label(call.path("id"), call.json(), patch=False).brief()


def labels_patch(call: Call) -> dict[str, Any]:
    return call.mailbox.update_label(call.path("id"), call.json(), patch=True).brief()


def labels_delete(call: Call) -> None:
    call.mailbox.delete_label(call.path("id"))


def messages_list(call: Call) -> dict[str, Any]:
    items = call.mailbox.search(call.q("q"), call.qlist("labelIds"), call.flag("includeSpamTrash"))
    page, token = paginate(items, call.q("pageToken"), max_results(call.q("maxResults")))
    return _message_list_body(items, page, token)


def messages_get(call: Call) -> dict[str, Any]:
    message = call.mailbox.message(call.path("id"))
    return render_message(
        message, call.q("format", "full") or "full", call.qlist("metadataHeaders")
    )


def _store(call: Call, *, default_date_header: bool) -> dict[str, Any]:
    metadata, raw = media(call)
    if raw is None:
        raise bad_request(
            "'raw' RFC822 payload message string or uploading message via /upload/* URL required"
        )
    source = call.q("internalDateSource") or (
        "dateHeader" if default_date_header else "receivedTime"
    )
    stored = call.mailbox.add(
        raw,
        metadata.get("labelIds") or [],
        thread_id=metadata.get("threadId"),
        date_from_header=source == "dateHeader",
    )
    return brief(stored)


def messages_insert(call: Call) -> dict[str, Any]:
    return _store(call, default_date_header=False)


def messages_import(call: Call) -> dict[str, Any]:
    return _store(call, default_date_header=True)


def messages_send(call: Call) -> dict[str, Any]:
    metadata, raw = media(call)
    if raw is None:
        raise bad_request(
            "'raw' RFC822 payload message string or uploading message via /upload/* URL required"
        )
    return brief(_send(call, raw, metadata.get("threadId")))


def messages_modify(call: Call) -> dict[str, Any]:
    body = call.json()
    message = call.mailbox.message(call.path("id"))
    call.mailbox.modify(
        [message.id], body.get("addLabelIds") or [], body.get("removeLabelIds") or []
    )
    return brief(message)


def messages_batch_modify(call: Call) -> None:
    body = call.json()
    ids = list(body.get("ids") or [])
    if len(ids) > 1000:
        raise bad_request("Too many ids: at most 1000 per request")
    existing = [i for i in ids if i in call.mailbox.messages]
    call.mailbox.modify(existing, body.get("addLabelIds") or [], body.get("removeLabelIds") or [])


def messages_batch_delete(call: Call) -> None:
    ids = list(call.json().get("ids") or [])
    if len(ids) > 1000:
        raise bad_request("Too many ids: at most 1000 per request")
    call.mailbox.delete(ids, strict=False)


def messages_delete(call: Call) -> None:
    call.mailbox.delete([call.mailbox.message(call.path("id")).id])


def messages_trash(call: Call) -> dict[str, Any]:
    message = call.mailbox.message(call.path("id"))
    call.mailbox.modify([message.id], ["TRASH"], [])
    return brief(message)


def messages_untrash(call: Call) -> dict[str, Any]:
    message = call.mailbox.message(call.path("id"))
    call.mailbox.modify([message.id], [], ["TRASH"])
    return brief(message)


def attachments_get(call: Call) -> dict[str, Any]:
    message = call.mailbox.message(call.path("messageId"))
    owner, part_id = parse_attachment_id(call.path("id"))
    if owner != message.id:
        raise bad_request("Invalid attachment token")
    part = mime.find_part(message.parsed, part_id)
    if part is None:
        raise not_found()
    data = mime.leaf_bytes(part)
    return {"size": len(data), "data": b64url(data)}


def threads_modify(call: Call) -> dict[str, Any]:
    body = call.json()
    members = call.mailbox.thread_messages(call.path("id"))
    call.mailbox.modify(
        [m.id for m in members], body.get("addLabelIds") or [], body.get("removeLabelIds") or []
    )
    return {"id": call.path("id"), "messages": [brief(m) for m in members]}


def threads_trash(call: Call) -> dict[str, Any]:
    members = call.mailbox.thread_messages(call.path("id"))
    call.mailbox.modify([m.id for m in members], ["TRASH"], [])
    return {"id": call.path("id"), "messages": [brief(m) for m in members]}


def threads_untrash(call: Call) -> dict[str, Any]:
    members = call.mailbox.thread_messages(call.path("id"))
    call.mailbox.modify([m.id for m in members], [], ["TRASH"])
    return {"id": call.path("id"), "messages": [brief(m) for m in members]}


def threads_delete(call: Call) -> None:
    call.mailbox.delete([m.id for m in call.mailbox.thread_messages(call.path("id"))])


def drafts_create(call: Call) -> dict[str, Any]:
    metadata, raw = media(call, nested="message")
    if raw is None:
        raise bad_request("Missing draft message")
    thread_id = (metadata.get("message") or {}).get("threadId")
    stored = call.mailbox.add(raw, ["DRAFT"], thread_id=thread_id)
    draft_id = call.host.new_draft_id()
    call.mailbox.drafts[draft_id] = stored.id
    return _draft_body(draft_id, stored)


def drafts_list(call: Call) -> dict[str, Any]:
    ids = set(call.mailbox.drafts.values())
    by_message = {v: k for k, v in call.mailbox.drafts.items()}
    items = [
        m
        for m in call.mailbox.search(call.q("q"), [], call.flag("includeSpamTrash"))
        if m.id in ids
    ]
    page, token = paginate(items, call.q("pageToken"), max_results(call.q("maxResults")))
    body: dict[str, Any] = {}
    if page:
        body["drafts"] = [
            {"id": by_message[m.id], "message": {"id": m.id, "threadId": m.thread_id}} for m in page
        ]
    if token:
        body["nextPageToken"] = token
    body["resultSizeEstimate"] = estimate(len(items))
    return body


def drafts_get(call: Call) -> dict[str, Any]:
    draft_id = call.path("id")
    return _draft_body(draft_id, _draft(call, draft_id), call.q("format", "full") or "full")


def drafts_update(call: Call) -> dict[str, Any]:
    draft_id = call.path("id")
    old = _draft(call, draft_id)
    metadata, raw = media(call, nested="message")
    if raw is None:
        raise bad_request("Missing draft message")
    thread_id = (metadata.get("message") or {}).get("threadId") or old.thread_id
    stored = call.mailbox.add(raw, ["DRAFT"], thread_id=thread_id)
    call.mailbox.delete([old.id])
    call.mailbox.drafts[draft_id] = stored.id
    return _draft_body(draft_id, stored)


def drafts_send(call: Call) -> dict[str, Any]:
    metadata, raw = media(call, nested="message")
    draft_id = str(metadata.get("id") or "")
    old = _draft(call, draft_id)
    raw = raw if raw is not None else old.raw
    sent = _send(call, raw, old.thread_id)
    call.mailbox.delete([old.id])
    call.mailbox.drafts.pop(draft_id, None)
    return brief(sent)


def drafts_delete(call: Call) -> None:
    message = _draft(call, call.path("id"))
    call.mailbox.delete([message.id])


def history_list(call: Call) -> dict[str, Any]:
    start_text = call.q("startHistoryId")
    if not start_text:
        raise bad_request("Missing startHistoryId", reason="required")
    try:
        start = int(start_text)
    except ValueError:
        raise bad_request("Invalid startHistoryId") from None
    records = call.mailbox.list_history(start, call.qlist("historyTypes"), call.q("labelId"))
    size = max_results(call.q("maxResults"))
    if call.q("pageToken"):
        after = int(decode_page_token(call.q("pageToken") or ""))
        records = [r for r in records if int(r["id"]) > after]
    page = records[:size]
    body: dict[str, Any] = {}
    if page:
        body["history"] = page
    if len(records) > size:
        body["nextPageToken"] = encode_page_token(int(page[-1]["id"]))
    body["historyId"] = str(call.mailbox.history_id)
    return body


# -- routing -----------------------------------------------------------------------------------
def _error_response(exc: GoogleError) -> Response:
    return Response(exc.to_bytes(), exc.code, exc.headers, JSON_TYPE)


def endpoint(
    host: GmailHost, method_id: str, handler: Handler, upload_path: str | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler with authentication, scope check, quota, and error rendering."""
    scopes = discovery_scopes()[method_id]
    quota_name = method_id.removeprefix("gmail.users.")

    async def run(request: Request) -> Response:
        try:
            token = host.tokens.check_bearer(request.headers.get("authorization"))
            user_id = str(request.path_params["userId"])
            if user_id != "me" and user_id.lower() != token.subject.lower():
                raise forbidden(f"Delegation denied for {token.subject}")
            mailbox = host.mailbox_for(token.subject)
            if mailbox is None:
                raise failed_precondition("Precondition check failed.")
            if not token.has_any(scopes):
                raise insufficient_scope("gmail.googleapis.com", method_id, scopes)
            if upload_path is not None:
                path = upload_path.replace("{userId}", user_id)
                for key, value in request.path_params.items():
                    path = path.replace("{" + key + "}", str(value))
                early = await resumable_step(request, path)
                if early is not None:
                    return early
            host.quota.charge(mailbox.email, quota_name)
            body = await request.body()
            host.flush_pushes()
            with host.locked():
                result = handler(Call(request, mailbox, token, body, host))
                host.after_call(mailbox.email, quota_name)
            if result is None:
                return Response(b"", 204)
            result = select_fields(result, request.query_params.get("fields"))
            return Response(json.dumps(result, indent=1).encode(), 200, media_type=JSON_TYPE)
        except GoogleError as exc:
            return _error_response(exc)

    return run


def routes(host: GmailHost) -> list[Route]:
    """All Gmail routes."""
    base = "/gmail/v1/users/{userId}"
    upload = "/upload/gmail/v1/users/{userId}"
    table: list[tuple[str, str, str, Handler, bool]] = [
        ("GET", "/profile", "gmail.users.getProfile", get_profile, False),
        ("POST", "/watch", "gmail.users.watch", watch, False),
        ("POST", "/stop", "gmail.users.stop", stop, False),
        ("GET", "/labels", "gmail.users.labels.list", labels_list, False),
        ("POST", "/labels", "gmail.users.labels.create", labels_create, False),
        ("GET", "/labels/{id}", "gmail.users.labels.get", labels_get, False),
        ("PUT", "/labels/{id}", "gmail.users.labels.update", labels_update, False),
        ("PATCH", "/labels/{id}", "gmail.users.labels.patch", labels_patch, False),
        ("DELETE", "/labels/{id}", "gmail.users.labels.delete", labels_delete, False),
        ("GET", "/messages", "gmail.users.messages.list", messages_list, False),
        ("POST", "/messages", "gmail.users.messages.insert", messages_insert, True),
        ("POST", "/messages/import", "gmail.users.messages.import", messages_import, True),
        ("POST", "/messages/send", "gmail.users.messages.send", messages_send, True),
        (
            "POST",
            "/messages/batchModify",
            "gmail.users.messages.batchModify",
            messages_batch_modify,
            False,
        ),
        (
            "POST",
            "/messages/batchDelete",
            "gmail.users.messages.batchDelete",
            messages_batch_delete,
            False,
        ),
        ("GET", "/messages/{id}", "gmail.users.messages.get", messages_get, False),
        ("DELETE", "/messages/{id}", "gmail.users.messages.delete", messages_delete, False),
        ("POST", "/messages/{id}/modify", "gmail.users.messages.modify", messages_modify, False),
        ("POST", "/messages/{id}/trash", "gmail.users.messages.trash", messages_trash, False),
        ("POST", "/messages/{id}/untrash", "gmail.users.messages.untrash", messages_untrash, False),
        (
            "GET",
            "/messages/{messageId}/attachments/{id}",
            "gmail.users.messages.attachments.get",
            attachments_get,
            False,
        ),
        ("GET", "/threads", "gmail.users.threads.list", _thread_list, False),
        ("GET", "/threads/{id}", "gmail.users.threads.get", _thread_get, False),
        ("POST", "/threads/{id}/modify", "gmail.users.threads.modify", threads_modify, False),
        ("POST", "/threads/{id}/trash", "gmail.users.threads.trash", threads_trash, False),
        ("POST", "/threads/{id}/untrash", "gmail.users.threads.untrash", threads_untrash, False),
        ("DELETE", "/threads/{id}", "gmail.users.threads.delete", threads_delete, False),
        ("GET", "/drafts", "gmail.users.drafts.list", drafts_list, False),
        ("POST", "/drafts", "gmail.users.drafts.create", drafts_create, True),
        ("POST", "/drafts/send", "gmail.users.drafts.send", drafts_send, True),
        ("GET", "/drafts/{id}", "gmail.users.drafts.get", drafts_get, False),
        ("PUT", "/drafts/{id}", "gmail.users.drafts.update", drafts_update, True),
        ("DELETE", "/drafts/{id}", "gmail.users.drafts.delete", drafts_delete, False),
        ("GET", "/history", "gmail.users.history.list", history_list, False),
    ]
    out: list[Route] = []
    for verb, suffix, method_id, handler, uploadable in table:
        out.append(Route(base + suffix, endpoint(host, method_id, handler), methods=[verb]))
        if uploadable:
            wrapped = endpoint(host, method_id, handler, upload_path=upload + suffix)
            out.append(
                Route(upload + suffix, wrapped, methods=[verb, "PUT"] if verb != "PUT" else [verb])
            )
    return out
