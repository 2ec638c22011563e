"""The fake Graph (tests/fakes/graph) driven by Microsoft's own Python SDK (msgraph-sdk).

The fake is trusted only as far as this test shows that ``GraphServiceClient`` — typed request
builders, query parameters, the retry handler, the URL-replace middleware — works against it
unchanged: the adapter only gets ``base_url`` pointed at the fake. Token-endpoint flows and a
few raw details (MIME upload, concurrency) use plain httpx.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from kiota_abstractions.authentication import AccessTokenProvider, AllowedHostsValidator
from kiota_abstractions.authentication.base_bearer_token_authentication_provider import (
    BaseBearerTokenAuthenticationProvider,
)
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.file_attachment import FileAttachment
from msgraph.generated.models.followup_flag import FollowupFlag
from msgraph.generated.models.followup_flag_status import FollowupFlagStatus
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.mail_folder import MailFolder
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.recipient import Recipient
from msgraph.generated.models.single_value_legacy_extended_property import (
    SingleValueLegacyExtendedProperty,
)
from msgraph.generated.models.subscription import Subscription
from msgraph.generated.users.item.mail_folders.item.child_folders.child_folders_request_builder import (
    ChildFoldersRequestBuilder,
)
from msgraph.generated.users.item.mail_folders.item.messages.delta.delta_request_builder import (
    DeltaRequestBuilder,
)
from msgraph.generated.users.item.mail_folders.mail_folders_request_builder import (
    MailFoldersRequestBuilder,
)
from msgraph.generated.users.item.messages.item.create_forward.create_forward_post_request_body import (
    CreateForwardPostRequestBody,
)
from msgraph.generated.users.item.messages.item.create_reply.create_reply_post_request_body import (
    CreateReplyPostRequestBody,
)
from msgraph.generated.users.item.messages.item.message_item_request_builder import (
    MessageItemRequestBuilder,
)
from msgraph.generated.users.item.messages.item.move.move_post_request_body import (
    MovePostRequestBody,
)
from msgraph.generated.users.item.messages.item.reply_all.reply_all_post_request_body import (
    ReplyAllPostRequestBody,
)
from msgraph.generated.users.item.messages.messages_request_builder import MessagesRequestBuilder
from msgraph.generated.users.item.send_mail.send_mail_post_request_body import (
    SendMailPostRequestBody,
)
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_item import BatchRequestItem

from tests.fakes.graph import FakeGraph, start_fake_graph

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

IMMUTABLE = 'IdType="ImmutableId"'
#: PidTagLastVerbExecuted, and the $expand that reads it.
LAST_VERB = "Integer 0x1081"
EXPAND_VERB = f"singleValueExtendedProperties($filter=id eq '{LAST_VERB}')"


# ---- plumbing ----------------------------------------------------------------------------


class StaticToken(AccessTokenProvider):
    """An access-token provider that hands the SDK one token for the fake's host only."""

    def __init__(self, token: str, host: str) -> None:
        self.token = token
        self.validator = AllowedHostsValidator([host])

    async def get_authorization_token(
        self, uri: str, additional_authentication_context: dict[str, Any] | None = None
    ) -> str:
        return self.token if self.validator.is_url_host_valid(uri) else ""

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self.validator


def sdk(fake: FakeGraph, token: str) -> GraphServiceClient:
    """A GraphServiceClient whose adapter's base_url is the fake (no patching)."""
    adapter = GraphRequestAdapter(
        BaseBearerTokenAuthenticationProvider(StaticToken(token, "127.0.0.1"))
    )
    adapter.base_url = f"{fake.url}/v1.0"
    return GraphServiceClient(request_adapter=adapter)


def mime(
    subject: str,
    *,
    sender: str = "Bob Sender <bob@example.test>",
    to: str = "user@contoso.test",
    body: str = "hello there",
    when: datetime | None = None,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    attachment: tuple[str, bytes] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when or datetime.now(UTC))
    msg["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@example.test>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg.set_content(body)
    if attachment:
        msg.add_attachment(
            attachment[1], maintype="application", subtype="pdf", filename=attachment[0]
        )
    return msg.as_bytes()


def config(headers: dict[str, str] | None = None, **query: Any) -> RequestConfiguration[Any]:
    """A request configuration with query parameters of the right generated class."""
    qp_cls = query.pop("qp_cls", MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters)
    cfg: RequestConfiguration[Any] = RequestConfiguration(
        query_parameters=qp_cls(**query) if query else None
    )
    for k, v in (headers or {}).items():
        cfg.headers.add(k, v)
    return cfg


class Receiver:
    """A notification endpoint on 127.0.0.1: echoes validation tokens (``mode="echo"``), or
    answers them wrongly (``"wrong"``) or with 500 (``"fail"``); records notifications."""

    def __init__(self, mode: str = "echo") -> None:
        self.mode = mode
        self.notifications: list[dict[str, Any]] = []
        self.validations = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                if "validationToken" in query:
                    outer.validations += 1
                    token = query["validationToken"][0]
                    if outer.mode == "fail":
                        self.send_response(500)
                        self.end_headers()
                        return
                    reply = (token if outer.mode == "echo" else "not-the-token").encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                    return
                outer.notifications.append(json.loads(data))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGraph]:
    with start_fake_graph() as f:
        yield f
        assert not f.errors, "\n".join(f.errors)


@pytest.fixture
def user(fake: FakeGraph) -> tuple[str, str]:
    upn = f"user-{uuid.uuid4().hex[:8]}@contoso.test"
    return upn, fake.add_user(upn)


@pytest.fixture
async def client(fake: FakeGraph, user: tuple[str, str]) -> AsyncIterator[GraphServiceClient]:
    yield sdk(fake, user[1])


async def odata_error(coro: Any) -> ODataError:
    with pytest.raises(ODataError) as info:
        await coro
    return info.value


# ---- folders -----------------------------------------------------------------------------


async def test_folders_list_paging_children_and_well_known(
    fake: FakeGraph, client: GraphServiceClient
) -> None:
    top = await client.me.mail_folders.get()
    names = {f.display_name for f in top.value or []}
    assert {
        "Inbox",
        "Drafts",
        "Sent Items",
        "Deleted Items",
        "Junk Email",
        "Archive",
        "Outbox",
    } <= names
    assert top.odata_next_link is None

    inbox = await client.me.mail_folders.by_mail_folder_id("inbox").get()
    assert inbox.display_name == "Inbox" and inbox.child_folder_count == 0
    for i in range(7):
        await client.me.mail_folders.by_mail_folder_id("inbox").child_folders.post(
            MailFolder(display_name=f"Project {i}")
        )
    hidden = await client.me.mail_folders.by_mail_folder_id("inbox").child_folders.post(
        MailFolder(display_name="Hidden", is_hidden=True)
    )
    assert hidden.is_hidden is True

    qp = ChildFoldersRequestBuilder.ChildFoldersRequestBuilderGetQueryParameters
    page = await client.me.mail_folders.by_mail_folder_id("inbox").child_folders.get(
        config(qp_cls=qp, top=3)
    )
    seen = [f.display_name for f in page.value or []]
    while page.odata_next_link:
        page = (
            await client.me.mail_folders.by_mail_folder_id("inbox")
            .child_folders.with_url(page.odata_next_link)
            .get()
        )
        seen += [f.display_name for f in page.value or []]
    assert sorted(seen) == [f"Project {i}" for i in range(7)]
    with_hidden = await client.me.mail_folders.by_mail_folder_id("inbox").child_folders.get(
        config(qp_cls=qp, include_hidden_folders="true", top=50)
    )
    assert "Hidden" in {f.display_name for f in with_hidden.value or []}
    inbox = await client.me.mail_folders.by_mail_folder_id("inbox").get()
    assert inbox.child_folder_count == 8

    # childFolders at depth 3, then messages down there
    parent = (page.value or [])[-1]
    assert parent.id
    level2 = await client.me.mail_folders.by_mail_folder_id(parent.id).child_folders.post(
        MailFolder(display_name="L2")
    )
    assert level2.id and level2.parent_folder_id == parent.id
    # the SDK's builders stop at two levels; any folder is addressable by id at the top
    level3 = await client.me.mail_folders.by_mail_folder_id(level2.id).child_folders.post(
        MailFolder(display_name="L3")
    )
    assert level3.id
    fake.deliver(fake_upn(fake, client), mime("deep"), folder=level3.id)
    deep = await (
        client.me.mail_folders.by_mail_folder_id(parent.id)
        .child_folders.by_mail_folder_id1(level2.id)
        .messages.get()
    )
    assert deep.value == []
    got = await client.me.mail_folders.by_mail_folder_id(level3.id).messages.get()
    assert [m.subject for m in got.value or []] == ["deep"]

    qp_top = MailFoldersRequestBuilder.MailFoldersRequestBuilderGetQueryParameters
    first = await client.me.mail_folders.get(config(qp_cls=qp_top, top=2, count=True))
    assert len(first.value or []) == 2 and first.odata_next_link and first.odata_count == len(names)


def fake_upn(fake: FakeGraph, client: GraphServiceClient) -> str:
    """The user a client's token belongs to."""
    provider = client.request_adapter._authentication_provider.access_token_provider  # type: ignore[attr-defined]
    tok = fake.identity.tokens[provider.token]
    return fake.mailboxes[tok.user_id or ""].upn


async def test_folder_create_rename_move_delete(client: GraphServiceClient) -> None:
    made = await client.me.mail_folders.post(MailFolder(display_name="Receipts"))
    assert made.id and made.total_item_count == 0
    err = await odata_error(client.me.mail_folders.post(MailFolder(display_name="receipts")))
    assert err.response_status_code == 409 and err.error and err.error.code == "ErrorFolderExists"

    renamed = await client.me.mail_folders.by_mail_folder_id(made.id).patch(
        MailFolder(display_name="Bills")
    )
    assert renamed.display_name == "Bills"
    err = await odata_error(
        client.me.mail_folders.by_mail_folder_id("inbox").patch(MailFolder(display_name="X"))
    )
    assert err.response_status_code == 403

    from msgraph.generated.users.item.mail_folders.item.move.move_post_request_body import (
        MovePostRequestBody as FolderMove,
    )

    moved = await client.me.mail_folders.by_mail_folder_id(made.id).move.post(
        FolderMove(destination_id="archive")
    )
    archive = await client.me.mail_folders.by_mail_folder_id("archive").get()
    assert moved.parent_folder_id == archive.id

    await client.me.mail_folders.by_mail_folder_id(made.id).delete()  # goes to Deleted Items
    trash_kids = await client.me.mail_folders.by_mail_folder_id("deleteditems").child_folders.get()
    assert [f.display_name for f in trash_kids.value or []] == ["Bills"]
    await client.me.mail_folders.by_mail_folder_id(made.id).delete()  # now gone
    err = await odata_error(client.me.mail_folders.by_mail_folder_id(made.id).get())
    assert err.response_status_code == 404 and err.error and err.error.code == "ErrorItemNotFound"
    err = await odata_error(client.me.mail_folders.by_mail_folder_id("inbox").delete())
    assert err.response_status_code == 403


# ---- listing and querying ----------------------------------------------------------------


async def _seed(fake: FakeGraph, upn: str) -> datetime:
    base = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    people = ["alice@example.test", "bob@example.test", "carol@example.test"]
    for i in range(6):
        when = base + timedelta(days=i)
        raw = mime(
            f"Report {i} {'invoice' if i % 2 else 'status'}",
            sender=people[i % 3],
            body=f"quarterly numbers {i}" if i == 4 else f"body {i}",
            when=when,
            attachment=("report.pdf", b"%PDF-1.4") if i == 5 else None,
        )
        fake.deliver(upn, raw, received=when.strftime("%Y-%m-%dT%H:%M:%SZ"), is_read=i < 2)
    return base


async def test_list_messages_select_filter_top_orderby_count(
    fake: FakeGraph, client: GraphServiceClient, user: tuple[str, str]
) -> None:
    base = await _seed(fake, user[0])
    inbox = client.me.mail_folders.by_mail_folder_id("inbox").messages

    page = await inbox.get(
        config(
            select=["subject", "from", "isRead"],
            top=4,
            orderby=["receivedDateTime desc"],
            count=True,
        )
    )
    assert page.odata_count == 6
    assert [m.subject for m in page.value or []] == [
        f"Report {i} {'invoice' if i % 2 else 'status'}" for i in (5, 4, 3, 2)
    ]
    first = (page.value or [])[0]
    assert (
        first.body is None
        and first.received_date_time is None
        and first.from_
        and first.from_.email_address
    )
    assert page.odata_next_link
    rest = await inbox.with_url(page.odata_next_link).get()
    assert len(rest.value or []) == 2 and rest.odata_next_link is None

    since = (base + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    flt = await inbox.get(
        config(
            filter=f"receivedDateTime ge {since} and isRead eq false",
            orderby=["receivedDateTime desc"],
            top=10,
        )
    )
    assert [m.subject for m in flt.value or []] == [
        "Report 5 invoice",
        "Report 4 status",
        "Report 3 invoice",
    ]

    by_sender = await client.me.messages.get(
        config(filter="from/emailAddress/address eq 'bob@example.test'")
    )
    assert {m.subject for m in by_sender.value or []} == {"Report 1 invoice", "Report 4 status"}
    with_att = await client.me.messages.get(config(filter="hasAttachments eq true"))
    assert [m.subject for m in with_att.value or []] == ["Report 5 invoice"]

    # Graph: the $orderby property must lead the $filter, else InefficientFilter
    err = await odata_error(
        inbox.get(config(filter="isRead eq false", orderby=["receivedDateTime desc"]))
    )
    assert err.response_status_code == 400 and err.error and err.error.code == "InefficientFilter"
    # message has no "size" property in v1.0
    err = await odata_error(inbox.get(config(filter="size gt 100")))
    assert err.response_status_code == 400 and "size" in (err.error.message or "")  # type: ignore[union-attr]
    err = await odata_error(inbox.get(config(top=1001)))
    assert err.response_status_code == 400


async def test_search_kql_and_search_with_filter_rejected(
    fake: FakeGraph, client: GraphServiceClient, user: tuple[str, str]
) -> None:
    await _seed(fake, user[0])
    eventual = {"ConsistencyLevel": "eventual"}
    found = await client.me.messages.get(config(eventual, search='"from:carol"'))
    assert {m.subject for m in found.value or []} == {"Report 2 status", "Report 5 invoice"}
    found = await client.me.messages.get(config(eventual, search='"subject:invoice from:bob"'))
    assert [m.subject for m in found.value or []] == ["Report 1 invoice"]
    found = await client.me.messages.get(config(eventual, search='"quarterly"', count=True))
    assert [m.subject for m in found.value or []] == ["Report 4 status"] and found.odata_count == 1
    found = await client.me.messages.get(config(eventual, search='"body:quarterly OR from:alice"'))
    assert {m.subject for m in found.value or []} == {
        "Report 0 status",
        "Report 3 invoice",
        "Report 4 status",
    }
    found = await client.me.messages.get(config(eventual, search='"attachment:report.pdf"'))
    assert [m.subject for m in found.value or []] == ["Report 5 invoice"]
    found = await client.me.messages.get(config(eventual, search='"to:user@contoso.test"'))
    assert len(found.value or []) == 6

    err = await odata_error(
        client.me.messages.get(config(eventual, search='"invoice"', filter="isRead eq false"))
    )
    assert (
        err.response_status_code == 400 and err.error and err.error.code == "ErrorInvalidUrlQuery"
    )
    err = await odata_error(
        client.me.messages.get(
            config(eventual, search='"invoice"', orderby=["receivedDateTime desc"])
        )
    )
    assert err.response_status_code == 400


# ---- one message -------------------------------------------------------------------------


async def test_get_message_attachments_and_mime_value(
    fake: FakeGraph, client: GraphServiceClient, user: tuple[str, str]
) -> None:
    raw = mime("With file", attachment=("q1.pdf", b"%PDF-1.4 quarterly"))
    imm = fake.deliver(user[0], raw)
    mid = fake.rest_id(user[0], imm)

    cfg = config(
        qp_cls=MessageItemRequestBuilder.MessageItemRequestBuilderGetQueryParameters,
        select=["subject", "hasAttachments"],
        expand=["attachments"],
    )
    msg = await client.me.messages.by_message_id(mid).get(cfg)
    assert msg.subject == "With file" and msg.has_attachments is True and msg.id == mid
    atts = msg.attachments or []
    assert len(atts) == 1 and isinstance(atts[0], FileAttachment)
    assert atts[0].name == "q1.pdf" and atts[0].content_bytes == b"%PDF-1.4 quarterly"

    listed = await client.me.messages.by_message_id(mid).attachments.get()
    (att,) = listed.value or []
    assert att.id and att.size == len(b"%PDF-1.4 quarterly")
    one = await client.me.messages.by_message_id(mid).attachments.by_attachment_id(att.id).get()
    assert isinstance(one, FileAttachment) and one.content_type == "application/pdf"

    value = await client.me.messages.by_message_id(mid).content.get()
    assert value == raw
    async with httpx.AsyncClient() as h:
        r = await h.get(
            f"{fake.url}/v1.0/me/messages/{mid}/attachments/{att.id}/$value",
            headers={"Authorization": f"Bearer {user[1]}"},
        )
    assert r.content == b"%PDF-1.4 quarterly"

    # created from MIME (base64, text/plain) -> a draft whose $value is the same bytes
    draft_raw = mime("From MIME", to="someone@example.test")
    async with httpx.AsyncClient() as h:
        r = await h.post(
            f"{fake.url}/v1.0/me/messages",
            content=base64.b64encode(draft_raw),
            headers={"Authorization": f"Bearer {user[1]}", "Content-Type": "text/plain"},
        )
        assert r.status_code == 201 and r.json()["isDraft"] is True
        bad = await h.post(
            f"{fake.url}/v1.0/me/messages",
            content=b"!!not base64!!",
            headers={"Authorization": f"Bearer {user[1]}", "Content-Type": "text/plain"},
        )
    assert (
        bad.status_code == 400
        and bad.json()["error"]["code"] == "ErrorMimeContentInvalidBase64String"
    )
    assert await client.me.messages.by_message_id(r.json()["id"]).content.get() == draft_raw


async def test_patch_read_flag_categories(
    fake: FakeGraph, client: GraphServiceClient, user: tuple[str, str]
) -> None:
    mid = fake.rest_id(user[0], fake.deliver(user[0], mime("Patch me")))
    before = await client.me.messages.by_message_id(mid).get()
    updated = await client.me.messages.by_message_id(mid).patch(
        Message(
            is_read=True,
            flag=FollowupFlag(flag_status=FollowupFlagStatus.Flagged),
            categories=["Red category", "Blue category"],
        )
    )
    assert (
        updated.is_read is True
        and updated.flag
        and updated.flag.flag_status == FollowupFlagStatus.Flagged
    )
    assert updated.categories == ["Red category", "Blue category"]
    assert updated.change_key != before.change_key
    flagged = await client.me.messages.get(config(filter="flag/flagStatus eq 'flagged'"))
    assert [m.id for m in flagged.value or []] == [mid]
    red = await client.me.messages.get(config(filter="categories/any(c:c eq 'Red category')"))
    assert [m.id for m in red.value or []] == [mid]
    # subject of a received (non-draft) message cannot change
    err = await odata_error(client.me.messages.by_message_id(mid).patch(Message(subject="nope")))
    assert err.response_status_code == 400


def one_message(**query: Any) -> RequestConfiguration[Any]:
    return config(
        qp_cls=MessageItemRequestBuilder.MessageItemRequestBuilderGetQueryParameters, **query
    )


def verbs(msg: Message | None) -> list[tuple[str | None, str | None]]:
    return [(p.id, p.value) for p in (msg.single_value_extended_properties or [])] if msg else []


async def test_extended_property_patch_and_expand(
    fake: FakeGraph, client: GraphServiceClient, user: tuple[str, str]
) -> None:
    """singleValueExtendedProperties: PATCH on a received message, $expand with a $filter on
    the id (one message, a collection, together with attachments); no collection when the
    message lacks the property; ids in any spelling of the same proptag; bad ids, values and
    unfiltered expands are 400."""
    mid = fake.rest_id(user[0], fake.deliver(user[0], mime("Verbs", attachment=("a.pdf", b"%P"))))
    item = client.me.messages.by_message_id(mid)
    assert (
        await item.get(one_message(expand=[EXPAND_VERB]))
    ).single_value_extended_properties is None

    await item.patch(
        Message(
            single_value_extended_properties=[
                SingleValueLegacyExtendedProperty(id=LAST_VERB, value="102")
            ]
        )
    )
    assert verbs(await item.get(one_message(expand=[EXPAND_VERB]))) == [(LAST_VERB, "102")]
    spelled = "singleValueExtendedProperties($filter=id eq 'integer 0x01081')"
    assert verbs(await item.get(one_message(expand=[spelled]))) == [(LAST_VERB, "102")]
    other = "singleValueExtendedProperties($filter=id eq 'Integer 0x1082')"
    assert verbs(await item.get(one_message(expand=[other]))) == []

    listed = await client.me.mail_folders.by_mail_folder_id("inbox").messages.get(
        config(select=["subject"], expand=["attachments($select=id,name)", EXPAND_VERB])
    )
    (row,) = listed.value or []
    assert row.subject == "Verbs" and verbs(row) == [(LAST_VERB, "102")]
    assert [a.name for a in row.attachments or []] == ["a.pdf"]

    for bad in ("singleValueExtendedProperties", "multiValueExtendedProperties", "nothing"):
        err = await odata_error(item.get(one_message(expand=[bad])))
        assert err.response_status_code == 400, bad
    for prop_id, value in ((LAST_VERB, "not a number"), ("Integer 0x9999", "1"), ("Nope 0x1", "1")):
        err = await odata_error(
            item.patch(
                Message(
                    single_value_extended_properties=[
                        SingleValueLegacyExtendedProperty(id=prop_id, value=value)
                    ]
                )
            )
        )
        assert err.response_status_code == 400, prop_id
    assert verbs(await item.get(one_message(expand=[EXPAND_VERB]))) == [(LAST_VERB, "102")]


def verb_is(value: int) -> str:
    """Messages whose PidTagLastVerbExecuted is ``value``: the documented lambda, the Integer
    value cast to Edm.Int32 (singlevaluelegacyextendedproperty-get, request 4)."""
    return (
        f"singleValueExtendedProperties/any(ep:ep/id eq '{LAST_VERB}' "
        f"and cast(ep/value, Edm.Int32) eq {value})"
    )


async def test_filter_by_extended_property_value(
    fake: FakeGraph, client: GraphServiceClient, user: tuple[str, str]
) -> None:
    """$filter on a collection by an extended property's value: the documented lambda (cast and
    uncast forms, or-ed, negated with not, after the $orderby property); a message without the
    property never matches the any; other forms inside the lambda are 400."""
    upn = user[0]
    ids = {k: fake.rest_id(upn, fake.deliver(upn, mime(k))) for k in ("r", "ra", "f", "none")}
    for key, verb in (("r", "102"), ("ra", "103"), ("f", "104")):
        await client.me.messages.by_message_id(ids[key]).patch(
            Message(
                single_value_extended_properties=[
                    SingleValueLegacyExtendedProperty(id=LAST_VERB, value=verb)
                ]
            )
        )
    inbox = client.me.mail_folders.by_mail_folder_id("inbox").messages

    async def found(flt: str, **query: Any) -> set[str]:
        page = await inbox.get(config(filter=flt, select=["subject"], **query))
        return {m.subject or "" for m in page.value or []}

    answered = f"({verb_is(102)} or {verb_is(103)})"
    assert await found(answered) == {"r", "ra"}
    assert await found(f"not({verb_is(102)}) and not({verb_is(103)})") == {"f", "none"}
    assert await found(
        f"receivedDateTime ge 1900-01-01T00:00:00Z and {answered}",
        orderby=["receivedDateTime desc"],
    ) == {"r", "ra"}
    # the uncast form the same doc page shows for numeric properties, spelled as there
    uncast = (
        "singleValueExtendedProperties/Any(ep: ep/id eq 'Integer 0x1081' and ep/value ge '103')"
    )
    assert await found(uncast) == {"ra", "f"}
    assert await found(verb_is(0)) == set()

    for bad in (
        f"singleValueExtendedProperties/any(ep:ep/id eq '{LAST_VERB}')",  # no value test
        f"singleValueExtendedProperties/all(ep:ep/id eq '{LAST_VERB}' and ep/value eq '102')",
        f"singleValueExtendedProperties/any(ep:ep/id eq '{LAST_VERB}' "
        "and cast(ep/value, Edm.Guid) eq 102)",  # not the property's type
        f"singleValueExtendedProperties/any(ep:ep/id eq '{LAST_VERB}' "
        "and contains(ep/value, '10'))",  # a string function on a number
        "singleValueExtendedProperties/any(ep:ep/id eq 'Nope 0x1081' and ep/value eq '1')",
    ):
        err = await odata_error(inbox.get(config(filter=bad)))
        assert err.response_status_code == 400, bad


async def test_sending_a_reply_or_forward_records_the_last_verb(
    fake: FakeGraph, client: GraphServiceClient, user: tuple[str, str]
) -> None:
    """Sending a createReply / replyAll / createForward answer sets PidTagLastVerbExecuted on the
    original (102, 103, 104); a MIME sendMail with In-Reply-To does not."""
    upn = user[0]
    ids = {k: fake.rest_id(upn, fake.deliver(upn, mime(k))) for k in ("r", "ra", "f", "mime")}

    draft = await client.me.messages.by_message_id(ids["r"]).create_reply.post(
        CreateReplyPostRequestBody(comment="Yes")
    )
    assert draft and draft.id
    get_verb = one_message(expand=[EXPAND_VERB])
    assert verbs(await client.me.messages.by_message_id(ids["r"]).get(get_verb)) == []
    await client.me.messages.by_message_id(draft.id).send.post()
    await client.me.messages.by_message_id(ids["ra"]).reply_all.post(
        ReplyAllPostRequestBody(comment="All of you")
    )
    fwd = await client.me.messages.by_message_id(ids["f"]).create_forward.post(
        CreateForwardPostRequestBody(
            to_recipients=[Recipient(email_address=EmailAddress(address="carol@example.test"))]
        )
    )
    assert fwd and fwd.id
    await client.me.messages.by_message_id(fwd.id).send.post()
    original = fake.message(upn, ids["mime"])
    async with httpx.AsyncClient() as h:
        r = await h.post(
            f"{fake.url}/v1.0/me/sendMail",
            content=base64.b64encode(
                mime("Re: mime", sender=upn, in_reply_to=original.internet_message_id)
            ),
            headers={"Authorization": f"Bearer {user[1]}", "Content-Type": "text/plain"},
        )
    assert r.status_code == 202
    found = {
        k: verbs(await client.me.messages.by_message_id(mid).get(get_verb))
        for k, mid in ids.items()
    }
    assert found == {
        "r": [(LAST_VERB, "102")],
        "ra": [(LAST_VERB, "103")],
        "f": [(LAST_VERB, "104")],
        "mime": [],
    }


async def test_move_ids_change_unless_immutable_and_delete(
    fake: FakeGraph, client: GraphServiceClient, user: tuple[str, str]
) -> None:
    imm = fake.deliver(user[0], mime("Mover"))
    rest = fake.rest_id(user[0], imm)

    moved = await client.me.messages.by_message_id(rest).move.post(
        MovePostRequestBody(destination_id="archive")
    )
    assert moved.id and moved.id != rest
    err = await odata_error(client.me.messages.by_message_id(rest).get())
    assert err.response_status_code == 404

    pinned = config({"Prefer": IMMUTABLE}, qp_cls=None)
    got = await client.me.messages.by_message_id(imm).get(pinned)
    assert got.id == imm
    again = await client.me.messages.by_message_id(imm).move.post(
        MovePostRequestBody(destination_id="inbox"), pinned
    )
    assert again.id == imm
    copy = await client.me.messages.by_message_id(imm).copy.post(
        MovePostRequestBody(destination_id="drafts"), pinned
    )  # type: ignore[arg-type]
    assert copy.id != imm and copy.conversation_id == again.conversation_id

    # DELETE is a soft delete into Recoverable Items; permanentDelete removes it
    await client.me.messages.by_message_id(imm).delete()
    inbox = await client.me.mail_folders.by_mail_folder_id("inbox").messages.get()
    assert inbox.value == []
    soft = await client.me.mail_folders.by_mail_folder_id("recoverableitemsdeletions").messages.get(
        pinned
    )
    assert [m.id for m in soft.value or []] == [imm]
    await client.me.messages.by_message_id(imm).permanent_delete.post()
    err = await odata_error(client.me.messages.by_message_id(imm).get())
    assert err.response_status_code == 404


# ---- sending -----------------------------------------------------------------------------


async def test_send_mail_json_and_mime(
    fake: FakeGraph, client: GraphServiceClient, user: tuple[str, str]
) -> None:
    bob = f"bob-{uuid.uuid4().hex[:6]}@contoso.test"
    fake.add_user(bob)
    body = SendMailPostRequestBody(
        message=Message(
            subject="Lunch?",
            body=ItemBody(content_type=BodyType.Text, content="At noon"),
            to_recipients=[Recipient(email_address=EmailAddress(address=bob))],
        ),
        save_to_sent_items=True,
    )
    await client.me.send_mail.post(body)
    sent = await client.me.mail_folders.by_mail_folder_id("sentitems").messages.get()
    (copy,) = sent.value or []
    assert copy.subject == "Lunch?" and copy.is_draft is False and copy.sent_date_time is not None
    assert fake.message(bob, fake_ids(fake, bob)[0]).subject == "Lunch?"
    drafts = await client.me.mail_folders.by_mail_folder_id("drafts").messages.get()
    assert drafts.value == []

    raw = mime("MIME send", sender=user[0], to=bob)
    async with httpx.AsyncClient() as h:
        r = await h.post(
            f"{fake.url}/v1.0/me/sendMail",
            content=base64.b64encode(raw),
            headers={"Authorization": f"Bearer {user[1]}", "Content-Type": "text/plain"},
        )
    assert r.status_code == 202
    sent = await client.me.mail_folders.by_mail_folder_id("sentitems").messages.get(
        config(filter="subject eq 'MIME send'")
    )
    (mime_copy,) = sent.value or []
    assert (
        mime_copy.id and await client.me.messages.by_message_id(mime_copy.id).content.get() == raw
    )
    assert fake.outbound[-1].raw == raw

    err = await odata_error(
        client.me.send_mail.post(SendMailPostRequestBody(message=Message(subject="nobody")))
    )
    assert (
        err.response_status_code == 400 and err.error and err.error.code == "ErrorInvalidRecipients"
    )


def fake_ids(fake: FakeGraph, upn: str) -> list[str]:
    with fake.lock:
        return list(fake.resolve_user(upn).messages)


async def test_create_reply_and_send_keeps_conversation(
    fake: FakeGraph, client: GraphServiceClient, user: tuple[str, str]
) -> None:
    original_id = "<thread-start@example.test>"
    mid = fake.rest_id(user[0], fake.deliver(user[0], mime("Plans", message_id=original_id)))
    original = await client.me.messages.by_message_id(mid).get()
    draft = await client.me.messages.by_message_id(mid).create_reply.post(
        CreateReplyPostRequestBody(comment="Sounds good")
    )
    assert draft.id and draft.is_draft is True and draft.subject == "RE: Plans"
    assert draft.conversation_id == original.conversation_id
    assert [r.email_address.address for r in draft.to_recipients or [] if r.email_address] == [
        "bob@example.test"
    ]

    await client.me.messages.by_message_id(draft.id).send.post()
    sent = await client.me.mail_folders.by_mail_folder_id("sentitems").messages.get()
    (reply,) = sent.value or []
    assert reply.conversation_id == original.conversation_id and reply.subject == "RE: Plans"
    assert reply.id and b"In-Reply-To: <thread-start@example.test>" in (
        await client.me.messages.by_message_id(reply.id).content.get() or b""
    )

    # mail arriving with In-Reply-To joins the same conversation
    later = fake.rest_id(user[0], fake.deliver(user[0], mime("RE: Plans", in_reply_to=original_id)))
    joined = await client.me.messages.by_message_id(later).get()
    assert joined.conversation_id == original.conversation_id


# ---- delta -------------------------------------------------------------------------------


async def test_delta_round_trip_removed_and_410(
    fake: FakeGraph, client: GraphServiceClient, user: tuple[str, str]
) -> None:
    upn = user[0]
    ids = [fake.deliver(upn, mime(f"d{i}")) for i in range(5)]
    delta = client.me.mail_folders.by_mail_folder_id("inbox").messages.delta
    cfg = config(
        {"Prefer": "odata.maxpagesize=2"},
        qp_cls=DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters,
        select=["subject", "isRead"],
    )
    page = await delta.get(cfg)
    seen = {m.id: m.subject for m in page.value or []}
    pages = 1
    while page.odata_next_link:
        page = await delta.with_url(page.odata_next_link).get(
            config({"Prefer": "odata.maxpagesize=2"}, qp_cls=None)
        )
        seen.update({m.id: m.subject for m in page.value or []})
        pages += 1
    assert pages == 3 and sorted(seen.values()) == [f"d{i}" for i in range(5)]
    delta_link = page.odata_delta_link
    assert delta_link and "$deltatoken=" in delta_link

    # changes: one new, one read elsewhere, one moved out, one deleted
    new = fake.deliver(upn, mime("d5"))
    fake.modify_as_other_client(upn, ids[0], is_read=True)
    old_rest = fake.rest_id(upn, ids[1])
    fake.modify_as_other_client(upn, ids[1], move_to="archive")
    deleted_rest = fake.rest_id(upn, ids[2])
    fake.modify_as_other_client(upn, ids[2], delete=True)

    changes = await delta.with_url(delta_link).get()
    removed = {m.id for m in changes.value or [] if m.additional_data.get("@removed")}
    changed = {m.subject: m for m in changes.value or [] if not m.additional_data.get("@removed")}
    assert removed == {old_rest, deleted_rest}
    assert set(changed) == {"d0", "d5"} and changed["d0"].is_read is True
    assert changed["d5"].id == fake.rest_id(upn, new)
    assert changes.odata_delta_link

    quiet = await delta.with_url(changes.odata_delta_link).get()
    assert quiet.value == [] and quiet.odata_delta_link

    fake.expire_delta_tokens(upn)
    err = await odata_error(delta.with_url(quiet.odata_delta_link).get())
    assert err.response_status_code == 410 and err.error and err.error.code == "SyncStateNotFound"


async def test_delta_expands_extended_properties(
    fake: FakeGraph, client: GraphServiceClient, user: tuple[str, str]
) -> None:
    """$expand is kept in the delta links; a PATCH of an extended property is an update the
    next round returns, expanded."""
    upn = user[0]
    mid = fake.deliver(upn, mime("Delta verb"))
    delta = client.me.mail_folders.by_mail_folder_id("inbox").messages.delta
    first = await delta.get(
        config(
            {"Prefer": IMMUTABLE},
            qp_cls=DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters,
            select=["subject"],
            expand=[EXPAND_VERB],
        )
    )
    assert [(m.id, verbs(m)) for m in first.value or []] == [(mid, [])]
    assert first.odata_delta_link
    fake.modify_as_other_client(upn, mid, last_verb=103)
    changes = await delta.with_url(first.odata_delta_link).get(
        config({"Prefer": IMMUTABLE}, qp_cls=None)
    )
    assert [(m.id, m.subject, verbs(m)) for m in changes.value or []] == [
        (mid, "Delta verb", [(LAST_VERB, "103")])
    ]


# ---- subscriptions -----------------------------------------------------------------------


async def test_subscriptions_handshake_notifications_lifecycle(
    fake: FakeGraph, client: GraphServiceClient, user: tuple[str, str]
) -> None:
    good, bad, wrong = Receiver("echo"), Receiver("fail"), Receiver("wrong")
    try:
        expires = datetime.now(UTC) + timedelta(hours=1)
        sub = await client.subscriptions.post(
            Subscription(
                change_type="created,updated,deleted",
                notification_url=good.url,
                lifecycle_notification_url=good.url,
                resource="me/mailFolders('inbox')/messages",
                expiration_date_time=expires,
                client_state="s3cret",
            )
        )
        assert sub.id and good.validations == 2  # notificationUrl and lifecycleNotificationUrl

        for receiver in (bad, wrong):
            err = await odata_error(
                client.subscriptions.post(
                    Subscription(
                        change_type="created",
                        notification_url=receiver.url,
                        resource="me/messages",
                        expiration_date_time=expires,
                    )
                )
            )
            assert (
                err.response_status_code == 400
                and "validation" in (err.error.message or "").lower()
            )  # type: ignore[union-attr]
        err = await odata_error(
            client.subscriptions.post(
                Subscription(
                    change_type="created",
                    notification_url=good.url,
                    resource="me/messages",
                    expiration_date_time=datetime.now(UTC) + timedelta(days=8),
                )
            )
        )
        assert err.response_status_code == 400

        before = len(fake.notifications_sent)
        imm = fake.deliver(user[0], mime("Ping"))
        fake.modify_as_other_client(user[0], imm, is_read=True)
        fake.deliver(user[0], mime("Elsewhere"), folder="archive")  # not in the subscribed folder
        sent = await asyncio.to_thread(fake.wait_notifications, before + 2)
        await asyncio.sleep(0.2)
        assert len(fake.notifications_sent) == before + 2 and all(
            n["status"] == 202 for n in sent[before:]
        )
        items = [n["value"][0] for n in good.notifications[-2:]]
        assert [i["changeType"] for i in items] == ["created", "updated"]
        assert items[0]["clientState"] == "s3cret" and items[0]["subscriptionId"] == sub.id
        assert items[0]["resourceData"]["id"] == fake.rest_id(user[0], imm)
        assert items[0]["resourceData"]["@odata.type"] == "#Microsoft.Graph.Message"
        assert items[0]["tenantId"] == fake.identity.tenant_id

        listed = await client.subscriptions.get()
        assert [s.id for s in listed.value or []] == [sub.id]
        renewed = await client.subscriptions.by_subscription_id(sub.id).patch(
            Subscription(expiration_date_time=datetime.now(UTC) + timedelta(days=2))
        )
        assert renewed.expiration_date_time and renewed.expiration_date_time > expires

        fake.trigger_lifecycle(sub.id, "reauthorizationRequired")
        await asyncio.to_thread(fake.wait_notifications, before + 3)
        assert good.notifications[-1]["value"][0]["lifecycleEvent"] == "reauthorizationRequired"
        await client.subscriptions.by_subscription_id(sub.id).delete()
        assert (await client.subscriptions.get()).value == []
    finally:
        for r in (good, bad, wrong):
            r.close()


# ---- $batch ------------------------------------------------------------------------------


async def test_batch_with_depends_on(
    fake: FakeGraph, client: GraphServiceClient, user: tuple[str, str]
) -> None:
    mid = fake.rest_id(user[0], fake.deliver(user[0], mime("Batched")))
    get_inbox = BatchRequestItem(
        client.me.mail_folders.by_mail_folder_id("inbox").to_get_request_information(), id="1"
    )
    patch = BatchRequestItem(
        client.me.messages.by_message_id(mid).to_patch_request_information(Message(is_read=True)),
        id="2",
        depends_on=["1"],
    )
    get_msg = BatchRequestItem(
        client.me.messages.by_message_id(mid).to_get_request_information(), id="3", depends_on=["2"]
    )
    missing = BatchRequestItem(
        client.me.messages.by_message_id("AAMkAGnope").to_get_request_information(), id="4"
    )
    after_missing = BatchRequestItem(
        client.me.messages.by_message_id(mid).to_get_request_information(), id="5", depends_on=["4"]
    )
    content = BatchRequestContent(
        {i.id: i for i in (get_inbox, patch, get_msg, missing, after_missing)}
    )

    # msgraph-core cannot turn $batch bodies back into models: send it, parse with the JSON parse node
    info = await client.batch.to_post_request_information(content)
    # msgraph-core also writes "depends_on" where Graph's JSON batching wants "dependsOn"; the
    # fake (like Graph) ignores the unknown key, so the dependency must be spelled right here
    payload = json.loads(info.content or b"{}")
    assert "depends_on" in payload["requests"][1]
    for part in payload["requests"]:
        deps = part.pop("depends_on", None)
        if deps:
            part["dependsOn"] = deps
    info.content = json.dumps(payload).encode()
    raw = await client.request_adapter.send_primitive_async(info, "bytes", {})
    root = JsonParseNodeFactory().get_root_parse_node("application/json", raw)
    responses = {r["id"]: r for r in json.loads(raw)["responses"]}
    assert {k: v["status"] for k, v in responses.items()} == {
        "1": 200,
        "2": 200,
        "3": 200,
        "4": 404,
        "5": 424,
    }
    bodies = root.get_child_node("responses")
    parsed = {}
    for i, _ in enumerate(json.loads(raw)["responses"]):
        node = JsonParseNodeFactory().get_root_parse_node(
            "application/json", json.dumps(json.loads(raw)["responses"][i]).encode()
        )
        rid = node.get_child_node("id").get_str_value()
        if rid in {"1"}:
            parsed[rid] = node.get_child_node("body").get_object_value(MailFolder)
        elif rid == "3":
            parsed[rid] = node.get_child_node("body").get_object_value(Message)
    assert bodies is not None
    assert isinstance(parsed["1"], MailFolder) and parsed["1"].display_name == "Inbox"
    assert (
        isinstance(parsed["3"], Message)
        and parsed["3"].is_read is True
        and parsed["3"].subject == "Batched"
    )
    assert responses["4"]["body"]["error"]["code"] == "ErrorItemNotFound"

    # the SDK's own BatchResponseContent still reads the status codes
    result = await client.batch.post(
        BatchRequestContent(
            {"me": BatchRequestItem(client.me.to_get_request_information(), id="me")}
        )
    )
    assert result.get_response_status_codes() == {"me": 200}  # type: ignore[union-attr]

    over = BatchRequestContent(
        {
            str(i): BatchRequestItem(client.me.to_get_request_information(), id=str(i))
            for i in range(20)
        }
    )
    info = await client.batch.to_post_request_information(over)
    over_raw = json.loads(info.content or b"{}")
    over_raw["requests"].append({"id": "21", "method": "GET", "url": "/me"})
    async with httpx.AsyncClient() as h:
        r = await h.post(
            f"{fake.url}/v1.0/$batch", json=over_raw, headers={"Authorization": f"Bearer {user[1]}"}
        )
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"


# ---- throttling --------------------------------------------------------------------------


async def test_throttling_retry_after_and_mailbox_concurrency(
    fake: FakeGraph, client: GraphServiceClient, user: tuple[str, str]
) -> None:
    upn = user[0]
    fake.fail_next(2, status=429, retry_after=1, upn=upn)
    before = fake.stats(upn)
    folders = (
        await client.me.mail_folders.get()
    )  # the SDK's retry handler waits Retry-After and retries
    assert folders.value
    after = fake.stats(upn)
    assert after["throttled"] - before["throttled"] == 2
    assert after["routes"]["GET /mailFolders"] - before["routes"].get("GET /mailFolders", 0) == 3

    # raw: more than 4 concurrent requests on one mailbox get 429 ApplicationThrottled
    fake.set_latency(0.3)
    try:
        async with httpx.AsyncClient() as h:
            replies = await asyncio.gather(
                *[
                    h.get(
                        f"{fake.url}/v1.0/users/{upn}/mailFolders",
                        headers={"Authorization": f"Bearer {user[1]}"},
                    )
                    for _ in range(8)
                ]
            )
    finally:
        fake.set_latency(0)
    codes = sorted(r.status_code for r in replies)
    assert codes.count(200) == 4 and codes.count(429) == 4
    throttled = next(r for r in replies if r.status_code == 429)
    assert throttled.headers["Retry-After"] == "1"
    err = throttled.json()["error"]
    assert (
        err["code"] == "ApplicationThrottled"
        and "MailboxConcurrency" in err["message"]
        and "request-id" in err["innerError"]
    )
    assert fake.stats(upn)["max_concurrency"] == 4


# ---- identity ----------------------------------------------------------------------------


async def test_client_credentials_for_users_route(fake: FakeGraph, user: tuple[str, str]) -> None:
    fake.add_app("daemon-app", "daemon-secret", roles={"Mail.ReadWrite"})
    fake.deliver(user[0], mime("For the daemon"))
    async with httpx.AsyncClient() as h:
        r = await h.post(
            f"{fake.url}/tenant-x/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "daemon-app",
                "client_secret": "daemon-secret",
                "scope": "https://graph.microsoft.com/.default",
            },
        )
        assert r.status_code == 200 and r.json()["token_type"] == "Bearer"
        bad = await h.post(
            f"{fake.url}/tenant-x/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "daemon-app",
                "client_secret": "wrong",
                "scope": "https://graph.microsoft.com/.default",
            },
        )
        assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    app_client = sdk(fake, r.json()["access_token"])
    uid = fake.user_id(user[0])
    for ref in (uid, user[0]):
        msgs = await app_client.users.by_user_id(ref).messages.get()
        assert [m.subject for m in msgs.value or []] == ["For the daemon"]
    err = await odata_error(app_client.me.messages.get())
    assert err.response_status_code == 400
    # the app has no Mail.Send role
    err = await odata_error(
        app_client.users.by_user_id(uid).send_mail.post(
            SendMailPostRequestBody(
                message=Message(
                    subject="x",
                    to_recipients=[Recipient(email_address=EmailAddress(address="a@b.test"))],
                )
            )
        )
    )
    assert err.response_status_code == 403 and err.error and err.error.code == "ErrorAccessDenied"
    err = await odata_error(app_client.users.by_user_id("nobody@contoso.test").messages.get())
    assert err.response_status_code == 404 and err.error and err.error.code == "ErrorInvalidUser"


async def test_auth_code_flow_refresh_401_and_shared_mailbox(
    fake: FakeGraph, user: tuple[str, str]
) -> None:
    fake.add_app("web-app", "web-secret")
    redirect = "http://127.0.0.1:9/callback"
    async with httpx.AsyncClient() as h:
        r = await h.get(
            f"{fake.url}/common/oauth2/v2.0/authorize",
            params={
                "client_id": "web-app",
                "response_type": "code",
                "redirect_uri": redirect,
                "scope": "https://graph.microsoft.com/Mail.ReadWrite offline_access",
                "state": "xyz",
                "login_hint": user[0],
            },
        )
        assert r.status_code == 302
        q = parse_qs(urlsplit(r.headers["location"]).query)
        assert q["state"] == ["xyz"]
        form = {"client_id": "web-app", "client_secret": "web-secret", "redirect_uri": redirect}
        tok = (
            await h.post(
                f"{fake.url}/common/oauth2/v2.0/token",
                data={**form, "grant_type": "authorization_code", "code": q["code"][0]},
            )
        ).json()
        assert tok["refresh_token"] and set(tok["scope"].split()) == {
            "Mail.ReadWrite",
            "offline_access",
        }
        again = await h.post(
            f"{fake.url}/common/oauth2/v2.0/token",
            data={**form, "grant_type": "authorization_code", "code": q["code"][0]},
        )
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        refreshed = (
            await h.post(
                f"{fake.url}/common/oauth2/v2.0/token",
                data={**form, "grant_type": "refresh_token", "refresh_token": tok["refresh_token"]},
            )
        ).json()
        assert refreshed["access_token"] != tok["access_token"] and refreshed["refresh_token"]

    c = sdk(fake, refreshed["access_token"])
    me = await c.me.get()
    assert me.user_principal_name == user[0] and me.mail == user[0]

    err = await odata_error(sdk(fake, "not-a-token").me.messages.get())
    assert (
        err.response_status_code == 401
        and err.error
        and err.error.code == "InvalidAuthenticationToken"
    )
    fake.expire_token(refreshed["access_token"])
    err = await odata_error(c.me.get())
    assert err.response_status_code == 401

    shared = f"shared-{uuid.uuid4().hex[:6]}@contoso.test"
    fake.add_user(shared)
    fake.deliver(shared, mime("Team mail"))
    mine = sdk(fake, user[1])
    err = await odata_error(mine.users.by_user_id(shared).messages.get())
    assert err.response_status_code == 403 and err.error and err.error.code == "ErrorAccessDenied"
    fake.grant_access(user[0], shared)
    got = await mine.users.by_user_id(shared).mail_folders.by_mail_folder_id("inbox").messages.get()
    assert [m.subject for m in got.value or []] == ["Team mail"]
