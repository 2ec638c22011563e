"""A fake Google (Gmail v1, Gmail batch, Cloud Pub/Sub v1, OAuth 2.0) for mailgate's tests.

Follows the discovery documents shipped with google-api-python-client (``gmail.v1.json``,
``pubsub.v1.json``) and Google's guides; checked by driving it with Google's own Python client
in ``tests/integration/test_fake_google.py``. Modules, one concept each::

    server.py     FakeGoogle: state, test helpers, uvicorn thread; start_fake_google, fake_google
    gmail_api.py  Gmail routes: auth, scopes, quota charge, media uploads, every method
    mailbox.py    one mailbox: labels, messages, threads, drafts, history
    rendering.py  message formats, paging tokens, resultSizeEstimate, partial responses
    mime.py       RFC 5322 bytes -> MessagePart tree, snippet, threading keys
    search.py     the q search syntax
    batch.py      POST /batch/gmail/v1
    quota.py      per-user quota units, stats, injected failures
    pubsub.py     Pub/Sub topics, IAM, pull subscriptions
    auth.py       OAuth 2.0: authorize, token (code, refresh, JWT bearer), userinfo, revoke
    errors.py     Google's JSON error shape
    util.py       clock, base64url, ids

Usage::

    with fake_google() as fake:
        token = fake.add_user("alice@example.com")
        fake.deliver("alice@example.com", b"From: ...\\r\\n\\r\\nhi")
        ... point a client at fake.url (token endpoint: fake.token_uri) ...
"""

from .mailbox import Mailbox, StoredMessage
from .quota import UNITS, MethodStats, UserStats
from .server import (
    DEFAULT_SCOPES,
    MAIL_SCOPE,
    MODIFY_SCOPE,
    PUBSUB_SCOPE,
    FakeGoogle,
    fake_google,
    start_fake_google,
)

__all__ = [
    "DEFAULT_SCOPES",
    "MAIL_SCOPE",
    "MODIFY_SCOPE",
    "PUBSUB_SCOPE",
    "UNITS",
    "FakeGoogle",
    "Mailbox",
    "MethodStats",
    "StoredMessage",
    "UserStats",
    "fake_google",
    "start_fake_google",
]
