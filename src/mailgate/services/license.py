"""Licence answers for EmailEngine's ``/v1/license`` routes.

mailgate is MIT-licensed open source: nothing needs registering. ``GET`` reports an active MIT
licence that never expires and never suspends anything; ``POST`` accepts a key and ignores it
(the reply is the same report, so a client that registers a key on start-up sees success);
``DELETE`` answers like EmailEngine does after a removal, and changes nothing either.
"""

from __future__ import annotations

from typing import Any

from mailgate import __version__

LICENSE_TYPE = "MIT"
APPLICATION = "mailgate"
LICENSED_TO = "Everyone (MIT License, open source)"
LICENSE_NOTE = "mailgate is open source under the MIT License; no license key is needed"


def license_info(hostname: str | None = None) -> dict[str, Any]:
    """The licence report of ``GET /v1/license`` (and of ``POST``: a key changes nothing)."""
    return {
        "active": True,
        "type": LICENSE_TYPE,
        "details": {
            "application": APPLICATION,
            "key": "MIT",
            "licensedTo": LICENSED_TO,
            "hostname": hostname or "*",
            "created": "2024-01-01T00:00:00.000Z",
            "trial": False,
            "lt": True,  # a lifetime licence: it never expires
            "version": __version__,
            "note": LICENSE_NOTE,
        },
        "suspended": False,
    }


def license_removed() -> dict[str, Any]:
    """The reply of ``DELETE /v1/license``: EmailEngine's removal shape; nothing is disabled."""
    return {"active": False, "details": False, "type": LICENSE_TYPE, "note": LICENSE_NOTE}
