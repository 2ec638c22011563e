"""Webhook signatures, as EmailEngine: ``X-EE-Wh-Signature`` is the base64url (no padding)
HMAC-SHA256 of the exact request body bytes, keyed with the ``serviceSecret`` setting."""

from __future__ import annotations

import base64
import hashlib
import hmac

SIGNATURE_HEADER = "X-EE-Wh-Signature"


def sign(body: bytes, secret: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify(body: bytes, secret: str, signature: str) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    return hmac.compare_digest(sign(body, secret), signature.strip())
