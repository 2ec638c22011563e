"""Sending: submit (build or take a message), the durable outbox, delivery over SMTP,
gateways and templates.

Modules, one concept each::

    inputs      request bodies and their named limits
    builder     RFC 5322 messages with the stdlib email package (pure)
    references  replies and forwards: threading, subjects, recipients, quoting (pure)
    retry       what a failed attempt means, backoff (pure)
    templates   stored templates, Jinja2 sandboxed rendering
    gateways    SMTP gateways (passwords encrypted at rest)
    mailstore   IMAP side: read references and drafts, flag, copy to Sent
    outbox      the Redis queue: jobs, schedule, leases, idempotency (Lua)
    submit      the submit use cases and the outbox API
    delivery    one job: send, classify, report, post-send steps
    worker      OutboxWorker: claims and delivers, one connection per sender
"""

from __future__ import annotations

from .worker import OutboxWorker

__all__ = ["OutboxWorker"]
