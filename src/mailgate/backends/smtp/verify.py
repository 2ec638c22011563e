"""Checking SMTP settings: connect, TLS, EHLO and AUTH, then QUIT."""

from __future__ import annotations

from typing import Any

import aiosmtplib

from mailgate.domain.account import SmtpConfig

SMTP_VERIFY_TIMEOUT = 20.0


def smtp_client(
    cfg: SmtpConfig, *, ehlo_name: str | None = None, timeout: float
) -> aiosmtplib.SMTP:
    verify = cfg.tls is None or cfg.tls.reject_unauthorized
    return aiosmtplib.SMTP(
        hostname=cfg.host,
        port=cfg.port,
        use_tls=cfg.secure,
        start_tls=None if not cfg.secure else False,
        validate_certs=verify,
        local_hostname=ehlo_name,
        timeout=timeout,
    )


async def verify_smtp(cfg: SmtpConfig, *, ehlo_name: str | None = None) -> dict[str, Any]:
    """``{success: true}`` or ``{success: false, error, code, responseText?}``; never raises."""
    client = smtp_client(cfg, ehlo_name=ehlo_name, timeout=SMTP_VERIFY_TIMEOUT)
    try:
        await client.connect()
        if cfg.auth is not None and cfg.auth.user and cfg.auth.pass_ is not None:
            await client.login(cfg.auth.user, cfg.auth.pass_)
        return {"success": True}
    except aiosmtplib.SMTPAuthenticationError as exc:
        return {
            "success": False,
            "error": "Authentication failed",
            "code": "EAUTH",
            "statusCode": exc.code,
            "responseText": exc.message,
        }
    except aiosmtplib.SMTPResponseException as exc:
        return {
            "success": False,
            "error": exc.message,
            "code": "EPROTOCOL",
            "statusCode": exc.code,
            "responseText": exc.message,
        }
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return {"success": False, "error": str(exc) or type(exc).__name__, "code": "ECONNECTION"}
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()
