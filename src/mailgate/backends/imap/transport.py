"""Opening the byte stream under an IMAP client: TCP, implicit TLS, STARTTLS upgrade.

Foreign errors (``OSError``, ``ssl.SSLError``, ``TimeoutError``) become
:class:`mailgate.errors.ConnectError` here, at the boundary.
"""

from __future__ import annotations

import asyncio
import functools
import ssl

from mailgate.errors import ConnectError

__all__ = ["make_ssl_context", "open_stream", "upgrade_to_tls"]

#: Bytes asked from the socket per read.
READ_CHUNK = 256 * 1024


@functools.cache
def make_ssl_context(verify: bool = True) -> ssl.SSLContext:
    """One shared context per verify mode: a context holds the CA store (hundreds of KB), and
    thousands of connections must not each load their own."""
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def open_stream(
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None,
    server_name: str | None,
    seconds: float,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """TCP (and TLS handshake when ``tls`` is given) within ``seconds``."""
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                ssl=tls,
                server_hostname=(server_name or host) if tls is not None else None,
            ),
            seconds,
        )
    except TimeoutError as exc:
        raise ConnectError(f"timed out connecting to {host}:{port}") from exc
    except ssl.SSLError as exc:
        raise ConnectError(f"TLS handshake with {host}:{port} failed: {exc}") from exc
    except OSError as exc:
        raise ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc


async def upgrade_to_tls(
    writer: asyncio.StreamWriter,
    tls: ssl.SSLContext,
    *,
    server_name: str,
    seconds: float,
) -> None:
    """STARTTLS: upgrade an open stream in place (Python 3.11+ ``StreamWriter.start_tls``)."""
    try:
        await asyncio.wait_for(writer.start_tls(tls, server_hostname=server_name), seconds)
    except TimeoutError as exc:
        raise ConnectError("timed out during the STARTTLS handshake") from exc
    except ssl.SSLError as exc:
        raise ConnectError(f"STARTTLS handshake failed: {exc}") from exc
    except OSError as exc:
        raise ConnectError(f"connection lost during STARTTLS: {exc}") from exc
