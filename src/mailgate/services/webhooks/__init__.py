"""Durable webhook delivery of the per-account event logs (EmailEngine's ``notify`` queue).

Modules, one concept each::

    retry.py     pure retry rules: delay(attempt), decide(...)
    signing.py   X-EE-Wh-Signature: base64url HMAC-SHA256 of the raw body
    egress.py    SSRF policy: schemes, metadata hosts, address ranges, resolve-and-check
    payload.py   pure: target URL, envelope bytes, headers, event filter
    delivery.py  one HTTP attempt with a pooled httpx client; AttemptResult
    queue.py     Redis state: schedule, cursor, lock, counters (Lua, owner-checked)
    worker.py    WebhookWorker: the long-running delivery loops

Errors: delivery failures are values (AttemptResult), never exceptions; Redis errors
(``redis.exceptions.RedisError``) are caught by the worker's loops and retried; ``LockLost``
(queue.py) stops one account's run when another worker took its lock.
"""

from __future__ import annotations

from mailgate.services.webhooks.queue import NOTIFY_QUEUE, WebhookQueue
from mailgate.services.webhooks.worker import WebhookWorker

__all__ = ["NOTIFY_QUEUE", "WebhookQueue", "WebhookWorker"]
