"""New message → event latency, INBOX and another folder, against a bare IDLE client.

Starts Dovecot, Redis and a mailgate service (subprocess) on loopback, registers one account
with webhooks pointed at a receiver in this script, then delivers messages one by one over LMTP
(INBOX) or ``doveadm save`` (another folder) and measures, per message:

- mailgate: delivery → webhook POST received by the receiver (the whole path: IMAP push, sync,
  event log, webhook delivery);
- floor: delivery → ``* n EXISTS`` seen by a bare imaplib client in IDLE on that same folder.

Run: ``python -m bench.bench_latency [messages per folder]`` (default 20).
"""

from __future__ import annotations

import http.server
import imaplib
import json
import queue
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from tests.integration.helpers import imap_account, wait_state
from tests.servers.mailgate import MailgateProcess

from bench.common import PASSWORD, USER, servers

FOLDER = "Archive"


class Receiver:
    def __init__(self) -> None:
        self.events: queue.Queue[tuple[float, dict[str, object]]] = queue.Queue()
        events = self.events

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                events.put((time.perf_counter(), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_subject(self, subject: str, timeout: float = 30.0) -> float:
        deadline = time.perf_counter() + timeout
        while True:
            at, ev = self.events.get(timeout=max(0.01, deadline - time.perf_counter()))
            data = ev.get("data")
            if (
                ev.get("event") == "messageNew"
                and isinstance(data, dict)
                and data.get("subject") == subject
            ):
                return at


def idle_floor(dc, folder: str, deliver) -> float:  # type: ignore[no-untyped-def]
    """Delivery → EXISTS for a bare IDLE client on ``folder``."""
    conn = imaplib.IMAP4(dc.host, dc.imap_port)
    conn.login(USER, PASSWORD)
    conn.select(folder)
    tag = conn._new_tag().decode()  # type: ignore[attr-defined]
    conn.send(f"{tag} IDLE\r\n".encode())
    conn.readline()  # + idling
    conn.sock.settimeout(30)
    start = time.perf_counter()
    deliver()
    while True:
        line = conn.readline()
        if b"EXISTS" in line:
            elapsed = time.perf_counter() - start
            break
    conn.send(b"DONE\r\n")
    conn.readline()
    conn.logout()
    return elapsed


def message(subject: str) -> bytes:
    return (
        f"From: a@example.test\r\nTo: {USER}@example.test\r\nSubject: {subject}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@example.test>\r\n\r\nhello\r\n"
    ).encode()


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    receiver = Receiver()
    with servers() as (dc, rs):
        dc.create_folder(USER, FOLDER)
        data = Path(tempfile.mkdtemp(prefix="mg-bench-svc-"))
        mg = MailgateProcess(data, redis_url=rs.url, env={"MAILGATE_LOG_LEVEL": "warning"})
        mg.start()
        try:
            with mg.client() as http_:
                http_.post("/v1/settings", json={"webhooksEnabled": True, "webhooks": receiver.url})
                body = imap_account("lat", USER, PASSWORD, dc.host, dc.imap_port)
                http_.post("/v1/account", json=body)
                wait_state(http_, "lat", "connected")
            time.sleep(1.0)
            results: dict[str, tuple[list[float], list[float]]] = {}
            for folder in ("INBOX", FOLDER):
                ours: list[float] = []
                floor: list[float] = []
                for i in range(n):
                    subject = f"{folder}-{i}-{uuid.uuid4().hex[:6]}"
                    start = time.perf_counter()
                    dc.deliver(USER, message(subject), folder=folder)
                    ours.append(receiver.wait_subject(subject) - start)
                    floor_subject = f"floor-{subject}"
                    floor.append(
                        idle_floor(
                            dc,
                            folder,
                            lambda s=floor_subject, f=folder: dc.deliver(
                                USER, message(s), folder=f
                            ),
                        )
                    )
                    receiver.wait_subject(floor_subject)  # drain its webhook too
                    time.sleep(0.2)
                results[folder] = (ours, floor)
        finally:
            mg.stop()
    print(f"\nNew message → webhook received, {n} messages per folder (seconds)\n")
    print("| folder | mailgate p50 | mailgate p99 | bare IDLE p50 | p50 difference |")
    print("|---|---|---|---|---|")
    for folder, (ours, floor) in results.items():
        p50, p99, f50 = statistics.median(ours), pct(ours, 0.99), statistics.median(floor)
        print(f"| {folder} | {p50:.3f} | {p99:.3f} | {f50:.3f} | {p50 - f50:+.3f} |")


if __name__ == "__main__":
    socket.setdefaulttimeout(60)
    main()
