"""One request as the fake's handlers see it, and their reply.

A request reaches a handler after the server has authenticated the bearer token and resolved
the mailbox (``me`` or ``users/{id | userPrincipalName}``); permission checks follow
https://learn.microsoft.com/en-us/graph/permissions-reference (Mail.Read / Mail.ReadWrite /
Mail.Send, their ``.Shared`` forms for another user's mailbox with delegated tokens, application
roles for app-only tokens).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from tests.fakes.graph.errors import GraphError, access_denied, bad_request
from tests.fakes.graph.identity import Token
from tests.fakes.graph.model import Mailbox, Message

if TYPE_CHECKING:
    from tests.fakes.graph.server import FakeGraph

_NEEDS: dict[str, tuple[set[str], set[str], set[str]]] = {
    # kind: (own mailbox delegated scopes, other mailbox delegated scopes, application roles)
    "read": (
        {"Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic"},
        {"Mail.Read.Shared", "Mail.ReadWrite.Shared"},
        {"Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic.All"},
    ),
    "write": ({"Mail.ReadWrite"}, {"Mail.ReadWrite.Shared"}, {"Mail.ReadWrite"}),
    "send": ({"Mail.Send"}, {"Mail.Send.Shared"}, {"Mail.Send"}),
}


@dataclass
class Resp:
    """A handler's answer: JSON-able ``body`` or raw bytes."""

    status: int = 200
    body: Any = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


@dataclass
class Ctx:
    """A Graph request under a mailbox."""

    fake: FakeGraph
    method: str
    path: str  # after /v1.0/, without query
    segs: list[str]  # after the mailbox prefix
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    mailbox: Mailbox
    token: Token

    @property
    def own(self) -> bool:
        return self.token.user_id == self.mailbox.user_id

    @property
    def immutable(self) -> bool:
        """``Prefer: IdType="ImmutableId"`` (https://learn.microsoft.com/en-us/graph/outlook-immutable-id)."""
        return 'idtype="immutableid"' in self.headers.get("prefer", "").lower().replace(" ", "")

    @property
    def text_body(self) -> bool:
        """``Prefer: outlook.body-content-type="text"``."""
        return 'outlook.body-content-type="text"' in self.headers.get("prefer", "").lower().replace(
            " ", ""
        )

    def need(self, kind: str) -> None:
        """403 unless the token carries a permission for ``kind`` on this mailbox."""
        own, other, roles = _NEEDS[kind]
        if self.token.app_only:
            wanted = roles
        elif self.own:
            wanted = own
        else:
            wanted = other
        if not (self.token.scopes & wanted):
            raise access_denied()

    def mid(self, m: Message) -> str:
        """The id to show for ``m`` under this request's id preference."""
        return m.imm_id if self.immutable else m.rest_id

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            value = json.loads(self.body)
        except ValueError as exc:
            raise bad_request(
                "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format."
            ) from exc
        if not isinstance(value, dict):
            raise bad_request("Unable to read JSON request payload.")
        return value

    def action_json(self) -> dict[str, Any]:
        """An action's parameters: Graph's metadata names them in PascalCase
        (``DestinationId``, ``Message``, ``SaveToSentItems``, ``Comment``) and the SDK sends them
        so; Graph matches them regardless of the first letter's case."""
        return {k[:1].lower() + k[1:]: v for k, v in self.json().items()}

    @property
    def base_url(self) -> str:
        return f"{self.fake.url}/v1.0"

    def link(self, **params: str | int) -> str:
        """This request's URL with some query options replaced (for ``@odata.nextLink``)."""
        q = {k: v for k, v in self.query.items() if k not in params}
        q.update({k: str(v) for k, v in params.items()})
        return f"{self.base_url}/{self.path}?{urlencode(q)}"

    def int_param(self, name: str, default: int, maximum: int | None = None) -> int:
        raw = self.query.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError as exc:
            raise bad_request(
                f"Invalid value '{raw}' for query parameter '{name}'.", "ErrorInvalidUrlQuery"
            ) from exc
        if value < 0 or (maximum is not None and value > maximum):
            raise GraphError(
                400,
                "ErrorInvalidUrlQuery",
                f"The value of '{name}' must be between 0 and {maximum}.",
            )
        return value
