"""Route helper: a service of the container, or 503 when this process has not wired it."""

from __future__ import annotations

from typing import TypeVar

from mailgate.errors import Unavailable

T = TypeVar("T")


def need(service: T | None, what: str) -> T:
    if service is None:
        raise Unavailable(f"{what} is not available in this process", "NotAvailable")
    return service
