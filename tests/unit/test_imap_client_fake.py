"""ImapClient failure handling against a scripted fake server on loopback.

These are the cases a real Dovecot will not produce on demand: garbage, stalls, EOF in the
middle of a response, data injected after STARTTLS, a greeting BYE.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from mailgate.backends.imap.client import ImapClient, ImapTimeouts
from mailgate.errors import AuthenticationError, CommandError, ConnectError, ProtocolError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
FAST = ImapTimeouts(connect=2, greeting=1, command=0.5, idle=5, logout=0.5)
GREETING = b"* OK [CAPABILITY IMAP4rev1 IDLE SASL-IR AUTH=XOAUTH2 LITERAL+] fake ready\r\n"


async def tag_of(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    line = await reader.readline()
    tag, _, rest = line.partition(b" ")
    return tag.decode(), rest


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> int:
        async def wrapped(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                await handler(r, w)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                w.close()

        server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for s in servers:
        s.close()


async def connect(port: int, **kw: object) -> ImapClient:
    return await ImapClient.connect("127.0.0.1", port, secure=False, timeouts=FAST, **kw)  # type: ignore[arg-type]


async def test_garbage_closes_with_protocol_error(
    serve: Callable[[Handler], Awaitable[int]],
) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(GREETING)
        _tag, _ = await tag_of(r)
        w.write(b"* 1 FETCH (UID \x00garbage)\r\n")
        await r.read(100)

    client = await connect(await serve(handler))
    with pytest.raises(ProtocolError):
        await client.noop()
    assert client.closed
    with pytest.raises(ConnectError):
        await client.noop()


async def test_eof_mid_literal_fails_pending(serve: Callable[[Handler], Awaitable[int]]) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(GREETING)
        await tag_of(r)
        w.write(b"* 1 FETCH (UID 1 BODY[] {100}\r\nonly part")
        await w.drain()

    client = await connect(await serve(handler))
    with pytest.raises(ConnectError):
        await client.uid_fetch([1], ["BODY[]"])
    assert client.closed


async def test_stall_times_out_and_bye_fails_all(
    serve: Callable[[Handler], Awaitable[int]],
) -> None:
    async def stall(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(GREETING)
        await asyncio.sleep(10)

    client = await connect(await serve(stall))
    loop = asyncio.get_running_loop()
    start = loop.time()
    results = await asyncio.gather(client.noop(), client.noop(), return_exceptions=True)
    assert all(isinstance(r, ConnectError) for r in results)
    assert loop.time() - start < 3 and client.closed

    async def bye(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(GREETING)
        await tag_of(r)
        await tag_of(r)
        w.write(b"* BYE server shutting down\r\n")
        await w.drain()

    client = await connect(await serve(bye))
    results = await asyncio.gather(client.noop(), client.noop(), return_exceptions=True)
    assert all(isinstance(r, ConnectError) for r in results)
    assert "shutting down" in str(results[0])


async def test_slow_but_steady_stream_does_not_time_out(
    serve: Callable[[Handler], Awaitable[int]],
) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(GREETING)
        tag, _ = await tag_of(r)
        for uid in range(1, 6):  # 5 x 0.3 s > the 0.5 s command timeout, but never silent
            await asyncio.sleep(0.3)
            w.write(b"* %d FETCH (UID %d FLAGS ())\r\n" % (uid, uid))
            await w.drain()
        w.write(tag.encode() + b" OK done\r\n")
        await r.read(100)

    client = await connect(await serve(handler))
    result = await client.uid_fetch("1:*", ["FLAGS"])
    assert [m.uid for m in result] == [1, 2, 3, 4, 5]
    await client.close()


async def test_greeting_bye_and_no_greeting(serve: Callable[[Handler], Awaitable[int]]) -> None:
    async def bye(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"* BYE too many connections\r\n")
        await w.drain()

    with pytest.raises(ConnectError, match="too many"):
        await connect(await serve(bye))

    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    with pytest.raises(ConnectError):
        await connect(await serve(silent))

    async def garbage(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 400 Bad Request\r\n")
        await w.drain()

    with pytest.raises(ProtocolError):
        await connect(await serve(garbage))


async def test_starttls_injection_refused(serve: Callable[[Handler], Awaitable[int]]) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n")
        tag, _ = await tag_of(r)
        w.write(tag.encode() + b" OK begin TLS\r\n* 1 EXISTS\r\n")
        await w.drain()
        await r.read(100)

    with pytest.raises(ProtocolError):
        await connect(await serve(handler), starttls=True)


async def test_starttls_not_offered_goes_plain(serve: Callable[[Handler], Awaitable[int]]) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"* OK hi\r\n")
        tag, _ = await tag_of(r)
        w.write(b"* CAPABILITY IMAP4rev1\r\n" + tag.encode() + b" OK done\r\n")
        await r.read(100)

    client = await connect(await serve(handler), starttls=True)
    assert client.capabilities == {"IMAP4REV1"}
    await client.close()


async def test_xoauth2_failure_challenge(serve: Callable[[Handler], Awaitable[int]]) -> None:
    seen: list[bytes] = []
    challenge = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(GREETING)
        line = await r.readline()
        seen.append(line)
        tag = line.split(b" ")[0]
        w.write(b"+ " + base64.b64encode(json.dumps(challenge).encode()) + b"\r\n")
        await w.drain()
        seen.append(await r.readline())
        w.write(tag + b" NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n")
        await w.drain()
        await r.read(100)

    client = await connect(await serve(handler))
    with pytest.raises(AuthenticationError) as info:
        await client.authenticate_xoauth2("me@example.com", "tok")
    assert json.loads(info.value.server_response or "") == challenge
    assert seen[1] == b"\r\n"
    payload = base64.b64decode(seen[0].split()[-1])
    assert payload == b"user=me@example.com\x01auth=Bearer tok\x01\x01"
    await client.close()


async def test_sync_literal_refused_with_tagged_no(
    serve: Callable[[Handler], Awaitable[int]],
) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"* OK [CAPABILITY IMAP4rev1] hi\r\n")
        line = await r.readline()
        tag = line.split(b" ")[0]
        assert line.endswith(b"{5}\r\n")
        w.write(tag + b" NO [TRYCREATE] no such mailbox\r\n")
        line = await r.readline()  # the next command, not literal data
        w.write(line.split(b" ")[0] + b" OK noop\r\n")
        await r.read(100)

    client = await connect(await serve(handler))
    with pytest.raises(CommandError) as info:
        await client.append("Nope", b"hello")
    assert info.value.code == "TRYCREATE" and info.value.status == "NO"
    await client.noop()
    await client.close()


async def test_listener_errors_do_not_break_connection(
    serve: Callable[[Handler], Awaitable[int]],
) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(GREETING)
        for _ in range(2):
            tag, _ = await tag_of(r)
            w.write(b"* 3 EXISTS\r\n* 9 XUNKNOWN stuff (a b)\r\n" + tag.encode() + b" OK done\r\n")
        await r.read(100)

    client = await connect(await serve(handler))
    got: list[object] = []

    def bad(_: object) -> None:
        raise RuntimeError("listener bug")

    client.add_unsolicited_listener(bad)
    remove = client.add_unsolicited_listener(got.append)
    await client.noop()
    assert len(got) == 2
    remove()
    await client.noop()
    assert len(got) == 2 and not client.closed
    await client.close()


async def test_cancel_waiting_command_keeps_connection(
    serve: Callable[[Handler], Awaitable[int]],
) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(GREETING)
        first, _ = await tag_of(r)
        await asyncio.sleep(0.2)
        w.write(first.encode() + b" OK late\r\n")
        second, _ = await tag_of(r)
        w.write(second.encode() + b" OK fine\r\n")
        await r.read(100)

    client = await connect(await serve(handler))
    task = asyncio.create_task(client.noop())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await client.noop()
    assert not client.closed
    await client.close()


async def test_credentials_redacted_from_logs(serve: Callable[[Handler], Awaitable[int]]) -> None:
    from structlog.testing import capture_logs

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(GREETING)
        while line := await r.readline():
            tag = line.split(b" ")[0]
            if b"AUTHENTICATE" in line or b"LOGIN" in line:
                w.write(tag + b" OK [CAPABILITY IMAP4rev1 IDLE] done\r\n")
            else:
                w.write(tag + b" OK done\r\n")

    port = await serve(handler)
    with capture_logs() as logs:
        client = await connect(port)
        await client.login("joe", "hunter2-secret")
        await client.logout()
        client = await connect(port)
        await client.authenticate_xoauth2("joe", "ya29.token-secret")
        await client.logout()
    text = repr(logs)
    assert "hunter2" not in text and "token-secret" not in text
    assert (
        base64.b64encode(b"user=joe\x01auth=Bearer ya29.token-secret\x01\x01").decode() not in text
    )
    assert any("LOGIN" in str(entry.get("line")) for entry in logs)
