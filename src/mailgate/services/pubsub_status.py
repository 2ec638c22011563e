"""``GET /v1/pubsub/status``: the Pub/Sub-enabled OAuth2 apps and their subscription errors.

A Pub/Sub app is an OAuth2 app with ``baseScopes: "pubsub"`` (the Google Cloud service app Gmail
accounts' push notifications come through). Its setup error (``lastError``) and subscription
error (``pubSubError``) are whatever the Gmail backend recorded on the app; null when none.
"""

from __future__ import annotations

from typing import Any

from mailgate.services.oauth2.apps import MAX_PAGE_SIZE, AppService

PUBSUB_SCOPES = "pubsub"
MAX_APPS_SCANNED = 100_000  # apps read to find the Pub/Sub ones (every app, in practice)


async def pubsub_status(apps: AppService, page: int, page_size: int) -> dict[str, Any]:
    found: list[dict[str, Any]] = []
    scan_page = 0
    while scan_page * MAX_PAGE_SIZE < MAX_APPS_SCANNED:
        chunk = await apps.list_apps(page=scan_page, page_size=MAX_PAGE_SIZE)
        found += [a for a in chunk["apps"] if a.get("baseScopes") == PUBSUB_SCOPES]
        scan_page += 1
        if scan_page >= int(chunk["pages"]):
            break
    total = len(found)
    rows = found[page * page_size : (page + 1) * page_size]
    return {
        "total": total,
        "page": page,
        "pages": max(1, -(-total // page_size)),
        "apps": [
            {
                "id": a.get("id"),
                "name": a.get("name"),
                "lastError": a.get("lastError") or None,
                "pubSubError": a.get("pubSubError") or None,
            }
            for a in rows
        ],
    }
