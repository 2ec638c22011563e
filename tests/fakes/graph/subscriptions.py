"""Change-notification subscriptions on messages: create (with the validation handshake), get,
list, renew (PATCH), delete, reauthorize; change and lifecycle notifications.

References (Graph v1.0):
- https://learn.microsoft.com/en-us/graph/api/subscription-post-subscriptions?view=graph-rest-1.0
  (resources ``me/messages``, ``users/{id}/messages``, ``me/mailFolders('{id}')/messages``;
  changeType ``created,updated,deleted``; message subscriptions live at most 10,080 minutes)
- https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks (the handshake:
  ``POST notificationUrl?validationToken=…``, answered within 10 seconds with 200, ``text/plain``
  and the decoded token as the body; the same for ``lifecycleNotificationUrl``; the notification
  body ``{"value": [{"subscriptionId", "clientState", "changeType", "resource", "resourceData",
  "subscriptionExpirationDateTime", "tenantId"}]}``)
- https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events
  (``reauthorizationRequired``, ``subscriptionRemoved``, ``missed``)

Deviation: real Graph requires an ``https`` notificationUrl; the fake also accepts ``http`` to a
loopback host, because test receivers run on 127.0.0.1 without certificates.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import httpx

from tests.fakes.graph.errors import GraphError, bad_request, not_found
from tests.fakes.graph.identity import Token
from tests.fakes.graph.model import Mailbox, Message, iso, parse_iso

if TYPE_CHECKING:
    from tests.fakes.graph.server import FakeGraph

MAX_MINUTES = 10080
HANDSHAKE_TIMEOUT = 10.0
_RESOURCE = re.compile(
    r"^/?(?:(?P<me>me)|users(?:/|\(')(?P<user>[^/')]+)'?\)?)"
    r"(?:/mailFolders(?:/|\(')(?P<folder>[^/')]+)'?\)?)?/messages$",
    re.IGNORECASE,
)
_CHANGE_TYPES = {"created", "updated", "deleted"}


@dataclass
class Subscription:
    """One subscription; ``immutable`` follows the Prefer header of the create request."""

    id: str
    resource: str
    change_types: set[str]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expiration: datetime
    client_id: str
    creator_id: str | None
    mailbox_id: str
    folder_id: str | None
    immutable: bool

    def to_json(self, tenant_id: str) -> dict[str, Any]:
        return {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.client_id,
            "changeType": ",".join(
                t for t in ("created", "updated", "deleted") if t in self.change_types
            ),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": iso(self.expiration),
            "creatorId": self.creator_id or self.client_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "notificationUrlAppId": None,
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationQueryOptions": None,
        }


def _check_url(url: str, field: str) -> None:
    parts = urlsplit(url)
    loopback = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise bad_request(f"The {field} must be an https URL.", "InvalidRequest")


async def handshake(url: str) -> None:
    """The validation request: 400 unless the endpoint echoes the token in time."""
    token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
    try:
        async with httpx.AsyncClient(timeout=HANDSHAKE_TIMEOUT) as client:
            resp = await client.post(
                url,
                params={"validationToken": token},
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
    except httpx.TimeoutException as exc:
        raise bad_request("Subscription validation request timed out.", "InvalidRequest") from exc
    except httpx.HTTPError as exc:
        raise bad_request(
            f"Subscription validation request failed. {type(exc).__name__}.", "InvalidRequest"
        ) from exc
    if resp.status_code != 200:
        raise bad_request(
            "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
            "InvalidRequest",
        )
    if (
        not resp.headers.get("content-type", "").startswith("text/plain")
        or unquote(resp.text) != token
    ):
        raise bad_request(
            "Subscription validation request failed. Response must exactly match validationToken query parameter.",
            "InvalidRequest",
        )


def parse_expiration(value: Any) -> datetime:
    if not value:
        raise bad_request(
            "expirationDateTime is a required property for subscription creation.", "InvalidRequest"
        )
    exp = parse_iso(str(value))
    now = datetime.now(UTC)
    if exp <= now:
        raise bad_request("Subscription expiration can only be in the future.", "InvalidRequest")
    if exp > now + timedelta(minutes=MAX_MINUTES):
        raise bad_request(
            f"Subscription expiration can only be {MAX_MINUTES} minutes in the future.",
            "InvalidRequest",
        )
    return exp


async def create(
    fake: FakeGraph, token: Token, body: dict[str, Any], immutable: bool
) -> dict[str, Any]:
    """``POST /subscriptions``: check, then the handshake(s), then store."""
    with fake.lock:
        resource = str(body.get("resource") or "")
        m = _RESOURCE.match(resource)
        if not m:
            raise bad_request(
                f"Resource '{resource}' is not supported by this fake (messages only).",
                "InvalidRequest",
            )
        change_types = {
            t.strip() for t in str(body.get("changeType") or "").split(",") if t.strip()
        }
        if not change_types or not change_types <= _CHANGE_TYPES:
            raise bad_request(f"Invalid changeType '{body.get('changeType')}'.", "InvalidRequest")
        url = str(body.get("notificationUrl") or "")
        _check_url(url, "notificationUrl")
        lifecycle = body.get("lifecycleNotificationUrl")
        if lifecycle:
            _check_url(str(lifecycle), "lifecycleNotificationUrl")
        exp = parse_expiration(body.get("expirationDateTime"))
        if m.group("me"):
            if token.app_only:
                raise bad_request("/me request is only valid with delegated authentication flow.")
            mb = fake.mailboxes[token.user_id or ""]
        else:
            mb = fake.resolve_user(m.group("user"))
        fake.check_mailbox_access(token, mb, "read")
        folder_id = mb.folder(m.group("folder")).id if m.group("folder") else None
    await handshake(url)
    if lifecycle:
        await handshake(str(lifecycle))
    sub = Subscription(
        id=str(uuid.uuid4()),
        resource=resource,
        change_types=change_types,
        notification_url=url,
        lifecycle_url=str(lifecycle) if lifecycle else None,
        client_state=body.get("clientState"),
        expiration=exp,
        client_id=token.client_id,
        creator_id=token.user_id,
        mailbox_id=mb.user_id,
        folder_id=folder_id,
        immutable=immutable,
    )
    with fake.lock:
        fake.subscriptions[sub.id] = sub
    return sub.to_json(fake.identity.tenant_id)


def route(
    fake: FakeGraph, token: Token, method: str, segs: list[str], body: dict[str, Any]
) -> tuple[int, Any]:
    """GET list / GET one / PATCH (renew) / DELETE / POST reauthorize (the sync routes)."""
    mine = [
        s
        for s in fake.subscriptions.values()
        if s.client_id == token.client_id and (token.app_only or s.creator_id == token.user_id)
    ]
    if not segs:
        if method != "GET":
            raise GraphError(
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            )
        return 200, {"value": [s.to_json(fake.identity.tenant_id) for s in mine]}
    sub = next((s for s in mine if s.id == segs[0]), None)
    if sub is None:
        raise not_found(f"The object '{segs[0]}' doesn't exist.")
    if (
        len(segs) == 2
        and segs[1].removeprefix("microsoft.graph.") == "reauthorize"
        and method == "POST"
    ):
        return 204, None
    if len(segs) > 1:
        raise bad_request(f"Resource not found for the segment '{segs[1]}'.")
    if method == "GET":
        return 200, sub.to_json(fake.identity.tenant_id)
    if method == "PATCH":
        if "expirationDateTime" in body:
            sub.expiration = parse_expiration(body["expirationDateTime"])
        if body.get("notificationUrl"):
            _check_url(str(body["notificationUrl"]), "notificationUrl")
            sub.notification_url = str(body["notificationUrl"])
        return 200, sub.to_json(fake.identity.tenant_id)
    if method == "DELETE":
        del fake.subscriptions[sub.id]
        return 204, None
    raise GraphError(
        405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target."
    )


def notifications_for(
    fake: FakeGraph, mb: Mailbox, change: str, m: Message
) -> list[tuple[str, dict[str, Any]]]:
    """(url, body) for every live subscription this change concerns."""
    out = []
    now = datetime.now(UTC)
    for sub in list(fake.subscriptions.values()):
        if sub.mailbox_id != mb.user_id or change not in sub.change_types or sub.expiration <= now:
            continue
        if sub.folder_id is not None and sub.folder_id != m.folder_id:
            continue
        mid = m.imm_id if sub.immutable else m.rest_id
        res = f"Users/{mb.user_id}/Messages/{mid}"
        item = {
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": iso(sub.expiration),
            "changeType": change,
            "resource": res,
            "resourceData": {
                "@odata.type": "#Microsoft.Graph.Message",
                "@odata.id": res,
                "@odata.etag": f'W/"{m.change_key}"',
                "id": mid,
            },
            "clientState": sub.client_state,
            "tenantId": fake.identity.tenant_id,
        }
        out.append((sub.notification_url, {"value": [item]}))
    return out


def lifecycle_body(fake: FakeGraph, sub: Subscription, event: str) -> dict[str, Any]:
    return {
        "value": [
            {
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": iso(sub.expiration),
                "tenantId": fake.identity.tenant_id,
                "clientState": sub.client_state,
                "lifecycleEvent": event,
                "resource": sub.resource,
            }
        ]
    }
