"""Delivery tests (``POST /v1/delivery-test/account/{account}``, ``GET .../check/{id}``).

EmailEngine sends a test message to its vendor's external test service and reports the SPF,
DKIM and DMARC verdicts it saw. mailgate reaches no outside service, so the test is local: a
message goes from the account to the account's own address through the normal sending path
(submit → outbox → SMTP), and the check looks for its Message-ID in the account's INBOX. Once it
arrived, the verdicts are read from the ``Authentication-Results`` header the receiving server
added (``{"status": {"result": "none"}}`` when it added none). A test is kept for
``DELIVERY_TEST_TTL``.
"""

from __future__ import annotations

import re
import uuid
from email.utils import parseaddr
from typing import Any

from redis.asyncio import Redis

from mailgate.backends.base import PageRequest, ReadOptions
from mailgate.errors import ApiError, BadRequest, NotFound, Unavailable
from mailgate.services.accounts import AccountService
from mailgate.services.messages import MessageService
from mailgate.services.sending.inputs import SubmitIn
from mailgate.services.sending.wiring import Sending
from mailgate.store import keys
from mailgate.store.events import iso_now
from mailgate.store.redis import text

DELIVERY_TEST_TTL = 24 * 3600  # seconds a test and its result are kept
TEST_DOMAIN = "delivery-test.mailgate.invalid"
INBOX = "INBOX"
CHECKED_METHODS = ("spf", "dkim", "dmarc", "arc", "bimi")
# "spf=pass (comment) smtp.mailfrom=..." -> method, result
_RESULT_RE = re.compile(r"(?:^|;)\s*([a-z]+)\s*=\s*([a-z]+)", re.I)


def auth_results(headers: list[str]) -> dict[str, dict[str, Any]]:
    """Verdicts per method from ``Authentication-Results`` header values (first one wins)."""
    out: dict[str, dict[str, Any]] = {}
    for value in headers:
        for method, result in _RESULT_RE.findall(value):
            name = method.lower()
            if name in CHECKED_METHODS and name not in out:
                out[name] = {"status": {"result": result.lower()}}
    return out


class DeliveryTests:
    def __init__(
        self,
        redis: Redis,
        accounts: AccountService,
        messages: MessageService,
        sending: Sending | None,
    ) -> None:
        self.redis = redis
        self.accounts = accounts
        self.messages = messages
        self.sending = sending

    async def start(self, account: str, gateway: str | None) -> dict[str, Any]:
        """Queue the test message; ``{success, deliveryTest}``."""
        record = await self.accounts.record(account)  # NotFound AccountNotFound
        if self.sending is None:
            raise Unavailable(
                "Sending is not available in this process: delivery tests cannot be queued",
                "SendingNotAvailable",
            )
        address = parseaddr(record.email or "")[1]
        if "@" not in address:
            raise BadRequest(
                "The account has no email address to send the test message to", "NoEmailAddress"
            )
        test_id = str(uuid.uuid4())
        message_id = f"<{test_id}@{TEST_DOMAIN}>"
        body = SubmitIn.model_validate(
            {
                "to": [{"address": address}],
                "subject": f"mailgate delivery test {test_id}",
                "text": (
                    "This message was sent by mailgate to check that mail from this account "
                    f"reaches its own inbox.\n\nTest id: {test_id}\n"
                ),
                "messageId": message_id,
                "gateway": gateway,
            }
        )
        try:
            queued = await self.sending.submit.submit(account, body, None)
        except ApiError as exc:
            # the contract's failure shape: neither success nor deliveryTest
            return {"error": exc.message}
        await self.redis.hset(
            keys.delivery_test(test_id),
            mapping={
                "account": account,
                "messageId": message_id,
                "queueId": str(queued.get("queueId") or ""),
                "created": iso_now(),
            },
        )
        await self.redis.expire(keys.delivery_test(test_id), DELIVERY_TEST_TTL)
        return {"success": True, "deliveryTest": test_id}

    async def account_of(self, test_id: str) -> str | None:
        """The account a test belongs to (None for an unknown test)."""
        account = await self.redis.hget(keys.delivery_test(test_id), "account")
        return text(account) if account is not None else None

    async def check(self, test_id: str) -> dict[str, Any]:
        """``{success: true, spf, dkim, dmarc, ...}`` once arrived, else ``{success: false,
        status: "pending"}``."""
        raw = await self.redis.hgetall(keys.delivery_test(test_id))
        if not raw:
            raise NotFound("Delivery test was not found", "DeliveryTestNotFound")
        test = {text(k): text(v) for k, v in raw.items()}
        account, message_id = test["account"], test["messageId"]
        found = await self.messages.search(
            account, INBOX, {"header": {"Message-ID": message_id}}, PageRequest(page_size=1)
        )
        hits = found.get("messages") or []
        if not hits:
            out: dict[str, Any] = {"success": False, "status": "pending", "messageId": message_id}
            queue = await self._queue_state(test.get("queueId") or "")
            if queue is not None:
                out["queue"] = queue
            return out
        message = await self.messages.get_message(account, str(hits[0]["id"]), ReadOptions())
        headers = message.get("headers") or {}
        values = headers.get("authentication-results") or []
        verdicts = auth_results([str(v) for v in values])
        result: dict[str, Any] = {"success": True}
        for method in CHECKED_METHODS:
            result[method] = verdicts.get(method, {"status": {"result": "none"}})
        result["mainSig"] = verdicts.get("dkim", {"status": {"result": "none"}})
        result["messageId"] = message_id
        result["message"] = {"id": hits[0].get("id"), "path": INBOX, "date": hits[0].get("date")}
        return result

    async def _queue_state(self, queue_id: str) -> dict[str, Any] | None:
        if not queue_id or self.sending is None:
            return None
        try:
            job = await self.sending.submit.get_queued(queue_id)
        except NotFound:
            return None  # sent (or failed) and gone from the outbox
        out = {"queueId": queue_id, "state": job.get("state"), "progress": job.get("progress")}
        if job.get("lastError"):
            out["lastError"] = job["lastError"]
        return out
