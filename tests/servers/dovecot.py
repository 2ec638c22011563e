"""A private Dovecot 2.3 (IMAP, LMTP, submission) for the tests, run as root from its own config.

Everything lives under one base directory: config, passwd-file, sockets, state, log and the
maildirs (owned by the ``vmail`` system user). Listeners are on 127.0.0.1 and free ports only.

    dc = start_dovecot(base, {"alice": "alice-pw"}, smtp_relay=("127.0.0.1", 2525))
    dc.deliver("alice", b"Subject: hi\\r\\n\\r\\nbody\\r\\n")
    dc.stop()

The base directory and all its parents must be traversable by other users (the ``dovecot`` and
``vmail`` users read below it): use :func:`make_base_dir` for one under /tmp.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from tests.servers.ports import HOST, free_ports

DOVECOT_BIN = "/usr/sbin/dovecot"
DOVEADM_BIN = "/usr/bin/doveadm"
DOVECOT_PACKAGES = ("dovecot-core", "dovecot-imapd", "dovecot-lmtpd", "dovecot-submissiond")
_REQUIRED_FILES = (
    DOVECOT_BIN,
    DOVEADM_BIN,
    "/usr/lib/dovecot/imap",
    "/usr/lib/dovecot/lmtp",
    "/usr/lib/dovecot/submission",
)
VMAIL_USER = "vmail"
SPECIAL_USE_FOLDERS = ("Drafts", "Sent", "Trash", "Junk", "Archive")
#: created for every user (non-ASCII, nested) so the tests meet modified UTF-7 names for real
DEFAULT_EXTRA_FOLDERS = ("Archivé", "Archivé/Überweisungen")
START_TIMEOUT = 20.0

_POLICY_RC_D = Path("/usr/sbin/policy-rc.d")


# --------------------------------------------------------------------------------------------
# installation and system user
# --------------------------------------------------------------------------------------------


def dovecot_installed() -> bool:
    return all(os.path.exists(p) for p in _REQUIRED_FILES)


def ensure_dovecot_installed() -> None:
    """Install the Dovecot packages with apt-get when they are missing.

    A ``policy-rc.d`` that exits 101 is in place during the install so the packages do not start a
    system-wide Dovecot on 143/993. Raises RuntimeError with apt's output when it fails.
    """
    if dovecot_installed():
        return
    if os.geteuid() != 0:
        raise RuntimeError(
            "Dovecot is not installed and installing it needs root: run as root or "
            f"`apt-get install {' '.join(DOVECOT_PACKAGES)}`"
        )
    if shutil.which("apt-get") is None:
        raise RuntimeError("Dovecot is not installed and apt-get is not available")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    backup: bytes | None = _POLICY_RC_D.read_bytes() if _POLICY_RC_D.exists() else None
    _POLICY_RC_D.write_text("#!/bin/sh\nexit 101\n")
    _POLICY_RC_D.chmod(0o755)
    try:
        steps = [
            ["apt-get", "update", "-qq"],
            [
                "apt-get",
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "-o",
                "Dpkg::Options::=--force-confdef",
                "-o",
                "Dpkg::Options::=--force-confold",
                *DOVECOT_PACKAGES,
            ],
        ]
        for cmd in steps:
            proc = subprocess.run(
                cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False
            )
            if proc.returncode != 0:
                out = (proc.stdout + proc.stderr).decode(errors="replace")
                raise RuntimeError(
                    f"`{' '.join(cmd)}` failed with exit code {proc.returncode}:\n{out[-4000:]}"
                )
    finally:
        if backup is None:
            _POLICY_RC_D.unlink(missing_ok=True)
        else:
            _POLICY_RC_D.write_bytes(backup)
    if not dovecot_installed():
        missing = [p for p in _REQUIRED_FILES if not os.path.exists(p)]
        raise RuntimeError(f"Dovecot packages installed but files are missing: {missing}")


def ensure_vmail_user() -> pwd.struct_passwd:
    """Return the ``vmail`` system user, creating it when missing."""
    try:
        return pwd.getpwnam(VMAIL_USER)
    except KeyError:
        pass
    proc = subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            VMAIL_USER,
        ],
        capture_output=True,
        check=False,
    )
    if proc.returncode not in (0, 9):  # 9: already exists (race)
        raise RuntimeError(f"useradd {VMAIL_USER} failed: {proc.stderr.decode(errors='replace')}")
    return pwd.getpwnam(VMAIL_USER)


def make_base_dir(prefix: str = "mg-dovecot-") -> Path:
    """A fresh directory under /tmp that the dovecot and vmail users can traverse."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    base.chmod(0o755)
    return base


def _check_traversable(path: Path) -> None:
    for p in [path, *path.parents]:
        if not os.stat(p).st_mode & 0o001:
            raise RuntimeError(
                f"{p} is not traversable by other users (mode {oct(os.stat(p).st_mode)}); "
                "Dovecot's unprivileged processes must reach the base directory: "
                "use tests.servers.dovecot.make_base_dir()"
            )


# --------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def process_alive(pid: int) -> bool:
    """True when ``pid`` runs and is not a zombie (PID 1 here does not reap orphans)."""
    st = _proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _proc_stat(int(entry))
        if st is not None:
            children.setdefault(st[1], []).append(int(entry))
    out: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _is_dovecot_process(pid: int) -> bool:
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    return exe.startswith("/usr/lib/dovecot/") or exe.startswith("/usr/sbin/dovecot")


def _become_subreaper() -> None:
    """Adopt orphaned descendants, so the Dovecot children we kill can be reaped by us.

    PID 1 in these containers does not reap orphans; without this every stop() would leave
    zombies behind.
    """
    global _SUBREAPER
    if _SUBREAPER:
        return
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        _SUBREAPER = libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER


_SUBREAPER = False


def _reap(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def _kill_all(pids: Iterable[int], timeout: float = 5.0) -> None:
    pids = list(pids)
    pending = [p for p in pids if process_alive(p) and _is_dovecot_process(p)]
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while True:
        _reap(pids)
        if time.monotonic() > deadline or not any(process_alive(p) for p in pending):
            break
        time.sleep(0.02)


# --------------------------------------------------------------------------------------------
# self-signed certificate for imaps
# --------------------------------------------------------------------------------------------


def _self_signed_cert(cert_path: Path, key_path: Path) -> bool:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return False
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return True


# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------

_CONFIG = """\
# generated by tests/servers/dovecot.py -- private test instance
protocols = imap lmtp submission
listen = {host}
base_dir = {base}/run
state_dir = {base}/state
instance_name = mailgate-test-{imap_port}
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
debug_log_path = {base}/dovecot.log
auth_verbose = yes
hostname = localhost
postmaster_address = postmaster@localhost

{ssl_block}

disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0 secs
auth_cache_size = 0
first_valid_uid = {vmail_uid}
first_valid_gid = {vmail_gid}

mail_location = maildir:~/Maildir:LAYOUT=fs
mail_fsync = never
mail_plugins = $mail_plugins zlib

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/users/%u
  mechanisms = plain login
}}
{oauth2_passdb}
userdb {{
  driver = passwd-file
  args = username_format=%u {base}/users/%u
  default_fields = uid={vmail_uid} gid={vmail_gid} home={base}/mail/%u
}}

namespace inbox {{
  inbox = yes
  separator = /
  prefix =
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
  mailbox Archive {{
    special_use = \\Archive
    auto = subscribe
  }}
}}

protocol imap {{
  mail_plugins = $mail_plugins imap_zlib
  mail_max_userip_connections = 1000
}}

protocol lmtp {{
  postmaster_address = postmaster@localhost
}}
lmtp_save_to_detail_mailbox = yes
recipient_delimiter = +

submission_relay_host = {relay_host}
submission_relay_port = {relay_port}
submission_relay_trusted = yes
submission_relay_ssl = no
submission_max_mail_size = 50M

service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {imap_port}
  }}
{imaps_listener}  # "performance mode": one login process serves many connections
  service_count = 0
  process_min_avail = 2
}}

service submission-login {{
  inet_listener submission {{
    address = {host}
    port = {submission_port}
  }}
}}

service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}

service imap {{
  process_limit = 1024
}}

# auth penalty off: the auth process looks for "anvil-auth-penalty" which is not there
service anvil {{
  unix_listener anvil-auth-penalty {{
    path = anvil-auth-penalty-disabled
    mode = 0600
  }}
}}
"""

_IMAPS_LISTENER = """\
  inet_listener imaps {{
    address = {host}
    port = {port}
    ssl = yes
  }}
"""

_SSL_ON = """\
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}"""

_OAUTH2_PASSDB = """
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {path}
}}
"""

_OAUTH2_CONF = """\
introspection_mode = post
introspection_url = {url}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 5000
"""


# --------------------------------------------------------------------------------------------
# the instance
# --------------------------------------------------------------------------------------------


class Dovecot:
    """One private Dovecot instance. Use :func:`start_dovecot` to make and start one."""

    def __init__(
        self,
        base: Path,
        users: dict[str, str],
        *,
        oauth2_introspection_url: str | None = None,
        smtp_relay: tuple[str, int] | None = None,
        extra_folders: Iterable[str] = DEFAULT_EXTRA_FOLDERS,
    ) -> None:
        self.host: str = HOST
        self.base: Path = Path(base)
        self.users: dict[str, str] = {}
        self.oauth2_introspection_url = oauth2_introspection_url
        self.smtp_relay = smtp_relay
        self.extra_folders: tuple[str, ...] = tuple(extra_folders)
        self.config_path: Path = self.base / "dovecot.conf"
        self.log_path: Path = self.base / "dovecot.log"
        self.stdout_path: Path = self.base / "dovecot.stdout"
        # one passwd-file per user (``users/<name>``): a new user is a new file, which Dovecot
        # reads at the first lookup (a changed file is re-read at most once a second)
        self.users_dir: Path = self.base / "users"
        self.mail_root: Path = self.base / "mail"
        self.lmtp_socket: Path = self.base / "run" / "lmtp"
        self.imap_port: int = 0
        self.imaps_port: int | None = None
        self.submission_port: int = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        self._pending_users = dict(users)
        vmail = ensure_vmail_user()
        self.vmail_uid: int = vmail.pw_uid
        self.vmail_gid: int = vmail.pw_gid

    # ---- lifecycle ------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _prepare(self) -> None:
        _check_traversable(self.base)
        for sub in ("run", "state"):
            (self.base / sub).mkdir(exist_ok=True)
        self.mail_root.mkdir(exist_ok=True)
        os.chown(self.mail_root, self.vmail_uid, self.vmail_gid)
        self.mail_root.chmod(0o755)
        self.users_dir.mkdir(exist_ok=True)
        self.users_dir.chmod(0o755)
        cert, key = self.base / "tls-cert.pem", self.base / "tls-key.pem"
        have_tls = cert.exists() or _self_signed_cert(cert, key)
        if self.imap_port == 0:
            ports = free_ports(3)
            self.imap_port, self.submission_port = ports[0], ports[1]
            self.imaps_port = ports[2] if have_tls else None
        oauth2 = ""
        if self.oauth2_introspection_url:
            conf = self.base / "dovecot-oauth2.conf.ext"
            conf.write_text(_OAUTH2_CONF.format(url=self.oauth2_introspection_url))
            oauth2 = _OAUTH2_PASSDB.format(path=conf)
        relay_host, relay_port = self.smtp_relay or (HOST, 9)  # discard port: nothing there
        config = _CONFIG.format(
            host=self.host,
            base=self.base,
            imap_port=self.imap_port,
            imaps_listener=(
                _IMAPS_LISTENER.format(host=self.host, port=self.imaps_port)
                if self.imaps_port
                else ""
            ),
            submission_port=self.submission_port,
            vmail_uid=self.vmail_uid,
            vmail_gid=self.vmail_gid,
            ssl_block=_SSL_ON.format(cert=cert, key=key) if have_tls else "ssl = no",
            oauth2_passdb=oauth2,
            relay_host=relay_host,
            relay_port=relay_port,
        )
        self.config_path.write_text(config)

    def start(self) -> None:
        """Start the master in the foreground (as our child) and wait for the IMAP greeting."""
        with self._lock:
            if self.running:
                return
            _become_subreaper()
            last_error: RuntimeError | None = None
            for _attempt in range(3):
                self._prepare()
                try:
                    self._spawn_and_wait()
                except RuntimeError as exc:
                    last_error = exc
                    if "Address already in use" in str(exc):  # a port was taken meanwhile
                        self.imap_port = 0
                        continue
                    raise
                break
            else:
                assert last_error is not None
                raise last_error
            if self._pending_users:
                pending, self._pending_users = self._pending_users, {}
                for name, password in pending.items():
                    self.add_user(name, password)

    def _spawn_and_wait(self) -> None:
        _RUNNING.add(self)
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.stdout_path.open("ab") as out:
            self._proc = subprocess.Popen(
                [DOVECOT_BIN, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise RuntimeError(
                    f"Dovecot exited with code {code} during start.\n"
                    + self._failure_details(log_offset)
                )
            if self._imap_greets():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"Dovecot did not greet on {self.host}:{self.imap_port} within "
                    f"{START_TIMEOUT:.0f} s.\n" + self._failure_details(log_offset)
                )
            time.sleep(0.05)

    def _imap_greets(self) -> bool:
        try:
            with socket.create_connection((self.host, self.imap_port), timeout=2) as s:
                return s.recv(1024).startswith(b"* OK")
        except OSError:
            return False

    def _failure_details(self, log_offset: int = 0) -> str:
        out = ""
        if self.stdout_path.exists():
            out = self.stdout_path.read_text(errors="replace")[-3000:]
        log = ""
        if self.log_path.exists():
            with self.log_path.open("rb") as f:
                f.seek(log_offset)
                log = f.read().decode(errors="replace")[-4000:]
        return f"--- dovecot stdout/stderr ---\n{out}\n--- {self.log_path} ---\n{log}"

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the master, then SIGKILL every Dovecot child that is still alive.

        On 2.3 SIGTERM to the master does not end busy ``imap`` processes, so their connections
        would stay open; after stop() every client connection is really closed.
        """
        with self._lock:
            proc, self._proc = self._proc, None
            _RUNNING.discard(self)
            if proc is None:
                return
            children = set(_descendants(proc.pid))
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                children |= set(_descendants(proc.pid))
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    children |= set(_descendants(proc.pid))
                    proc.kill()
                    proc.wait(timeout=5)
            _kill_all(children)

    def restart(self) -> None:
        """Stop and start again with the same ports, config, users and mail."""
        with self._lock:
            self.stop()
            self.start()

    def __enter__(self) -> Dovecot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- doveadm --------------------------------------------------------------------------

    def doveadm(
        self, *args: str, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``doveadm -c <conf> ARGS``; raise RuntimeError when it fails and ``check``."""
        cmd = [DOVEADM_BIN, "-c", str(self.config_path), *args]
        proc = subprocess.run(
            cmd,
            input=input if input is not None else b"",
            capture_output=True,
            check=False,
            timeout=600,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"`doveadm {' '.join(args)}` failed ({proc.returncode}): "
                f"{proc.stderr.decode(errors='replace').strip()}"
            )
        return proc

    def kill_connections(self, user: str | None = None) -> None:
        """Drop IMAP/submission connections of ``user`` (all users when None) via doveadm kick."""
        proc = self.doveadm("kick", user or "*", check=False)
        # exit code 68 (EX_NOUSER): nobody was connected
        if proc.returncode not in (0, 68):
            raise RuntimeError(
                f"doveadm kick failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
            )

    # ---- users and folders ----------------------------------------------------------------

    def add_user(self, name: str, password: str, *, folders: Iterable[str] | None = None) -> None:
        """Add (or change the password of) a user; Dovecot re-reads the passwd-file itself.

        Also creates the default extra folders (non-ASCII ``Archivé/Überweisungen``).
        """
        for value in (name, password):
            if not value or any(c in value for c in ":\n\r\0"):
                raise ValueError(f"invalid user name or password: {value!r}")
        if name.startswith(".") or "/" in name or "%" in name:
            raise ValueError(f"invalid user name: {name!r}")
        with self._lock:
            if not self.running:
                self._pending_users[name] = password
                return
            self.users[name] = password
            tmp = self.users_dir / f".{name}.tmp"
            tmp.write_text(f"{name}:{{PLAIN}}{password}::::::\n")
            tmp.chmod(0o644)
            os.replace(tmp, self.users_dir / name)
            self._wait_auth(name, password)
            for folder in self.extra_folders if folders is None else folders:
                self.create_folder(name, folder)

    def _wait_auth(self, name: str, password: str, timeout: float = 5.0) -> None:
        # passwd-file is re-read when its mtime/size changes; confirm the new entry is live
        deadline = time.monotonic() + timeout
        while True:
            proc = self.doveadm("auth", "test", "-x", "service=imap", name, password, check=False)
            if proc.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"user {name!r} cannot log in after adding it: "
                    f"{(proc.stdout + proc.stderr).decode(errors='replace')}"
                )
            time.sleep(0.1)

    def create_folder(self, user: str, name: str, *, subscribe: bool = True) -> None:
        """Create a folder (UTF-8 name, ``/`` separator, parents too); no error if it exists."""
        args = ["mailbox", "create", "-u", user]
        if subscribe:
            args.append("-s")
        proc = self.doveadm(*args, name, check=False)
        err = proc.stderr.decode(errors="replace")
        if proc.returncode != 0 and "already exists" not in err.lower():
            raise RuntimeError(f"doveadm mailbox create {name!r} for {user} failed: {err}")

    def folder_path(self, user: str, folder: str) -> Path:
        """The maildir directory of a folder (it must exist)."""
        proc = self.doveadm("mailbox", "path", "-u", user, folder)
        return Path(proc.stdout.decode().strip())

    # ---- mail -----------------------------------------------------------------------------

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        """Deliver one message: LMTP over the unix socket for INBOX, ``doveadm save`` else.

        The folder is created when missing. Bare LF line endings are turned into CRLF.
        """
        data = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if folder.upper() != "INBOX":
            self.create_folder(user, folder)
            self.doveadm("save", "-u", user, "-m", folder, input=data)
            return
        self._lmtp_send(user, data)

    def _lmtp_send(self, user: str, data: bytes) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(str(self.lmtp_socket))
            f = s.makefile("rwb")

            def reply() -> tuple[int, str]:
                text: list[str] = []
                while True:
                    line = f.readline()
                    if not line:
                        raise RuntimeError("LMTP connection closed: " + " | ".join(text))
                    text.append(line.decode(errors="replace").rstrip())
                    if line[3:4] != b"-":
                        return int(line[:3]), " | ".join(text)

            def command(cmd: bytes, expect: int) -> None:
                f.write(cmd + b"\r\n")
                f.flush()
                code, text = reply()
                if code != expect:
                    raise RuntimeError(f"LMTP {cmd[:40]!r} -> {text}")

            code, text = reply()
            if code != 220:
                raise RuntimeError(f"LMTP greeting: {text}")
            command(b"LHLO localhost", 250)
            command(b"MAIL FROM:<>", 250)
            command(f"RCPT TO:<{user}>".encode(), 250)
            command(b"DATA", 354)
            body = data if data.endswith(b"\r\n") else data + b"\r\n"
            # dot-stuffing
            body = body.replace(b"\r\n.", b"\r\n..")
            if body.startswith(b"."):
                body = b"." + body
            f.write(body + b".\r\n")
            f.flush()
            code, text = reply()  # one reply per recipient
            if code != 250:
                raise RuntimeError(f"LMTP delivery to {user} failed: {text}")
            f.write(b"QUIT\r\n")
            f.flush()

    def fill(
        self,
        user: str,
        folder: str,
        count: int,
        make: Callable[[int], bytes] | None = None,
    ) -> None:
        """Add ``count`` messages fast: maildir files written directly, then force-resync.

        UIDs follow ``i`` (message ``i`` gets the i-th new UID) because the uidlist is appended
        in order. ``make(i)`` returns the raw message; the default is a small text message with
        ``Subject: Message {i}`` and increasing dates.
        """
        if count <= 0:
            return
        make = make or default_message
        self.create_folder(user, folder)
        # let Dovecot create the maildir (cur/new/tmp and dovecot-uidlist) first
        self.doveadm("mailbox", "status", "-u", user, "messages", folder)
        path = self.folder_path(user, folder)
        cur = path / "cur"
        cur.mkdir(parents=True, exist_ok=True)
        stamp = int(time.time())
        nonce = uuid.uuid4().hex[:8]
        names: list[str] = []
        for i in range(count):
            data = make(i).replace(b"\r\n", b"\n")  # maildir stores LF
            base_name = f"{stamp}.M{i}P{os.getpid()}Q{nonce}.mailgate-test,S={len(data)}"
            name = base_name + ":2,"
            fd = os.open(cur / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data)
                os.fchown(fd, self.vmail_uid, self.vmail_gid)
            finally:
                os.close(fd)
            names.append(base_name)
        self._append_uidlist(path, names)
        self.doveadm("force-resync", "-u", user, folder)

    def _append_uidlist(self, path: Path, names: list[str]) -> None:
        """Give the new files UIDs in order (Dovecot would use readdir order otherwise)."""
        uidlist = path / "dovecot-uidlist"
        lock = path / "dovecot-uidlist.lock"
        if not uidlist.exists():
            return  # Dovecot assigns UIDs at force-resync
        deadline = time.monotonic() + 10
        while True:
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                break
            except FileExistsError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)
        try:
            lines = uidlist.read_text(errors="surrogateescape").splitlines()
            header = lines[0].split()
            if not lines or header[0] != "3":
                return
            next_uid = next((int(h[1:]) for h in header[1:] if h.startswith("N")), None)
            if next_uid is None:
                return
            body = [f"{next_uid + k} :{n}" for k, n in enumerate(names)]
            new_header = " ".join(
                f"N{next_uid + len(names)}" if h.startswith("N") else h for h in header
            )
            os.write(fd, ("\n".join([new_header, *lines[1:], *body]) + "\n").encode())
            os.fchown(fd, self.vmail_uid, self.vmail_gid)
            os.close(fd)
            fd = -1
            os.replace(lock, uidlist)
        finally:
            if fd != -1:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()


_RUNNING: set[Dovecot] = set()


@atexit.register
def _stop_all() -> None:  # a test run that ends without teardown leaves no Dovecot behind
    for dc in list(_RUNNING):
        with contextlib.suppress(Exception):
            dc.stop()


def default_message(i: int) -> bytes:
    date = dt.datetime(2020, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i)
    return (
        f"From: Sender {i % 17} <sender{i % 17}@example.test>\r\n"
        f"To: recipient@example.test\r\n"
        f"Subject: Message {i}\r\n"
        f"Date: {format_datetime(date)}\r\n"
        f"Message-ID: <fill-{i}-{uuid.uuid4().hex[:12]}@example.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"Body of message {i}.\r\n"
    ).encode()


def start_dovecot(
    base: Path,
    users: dict[str, str],
    *,
    oauth2_introspection_url: str | None = None,
    smtp_relay: tuple[str, int] | None = None,
) -> Dovecot:
    """Install Dovecot if needed, then start a private instance under ``base``."""
    if os.geteuid() != 0:
        raise RuntimeError("the test Dovecot runs as root (it switches to the vmail user)")
    ensure_dovecot_installed()
    dc = Dovecot(
        base, users, oauth2_introspection_url=oauth2_introspection_url, smtp_relay=smtp_relay
    )
    dc.start()
    return dc


# --------------------------------------------------------------------------------------------
# a tiny RFC 7662 token introspection endpoint for passdb oauth2
# --------------------------------------------------------------------------------------------


class TokenIntrospection:
    """OAuth2 token introspection endpoint (RFC 7662) on a free loopback port, in a thread.

    ``issue(user)`` returns an access token Dovecot accepts for XOAUTH2/OAUTHBEARER logins of
    ``user`` until it expires or is revoked. Requests are recorded in ``requests``.
    """

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, float | None]] = {}
        self._lock = threading.Lock()
        self.requests: list[dict[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {
                    k: v[0]
                    for k, v in parse_qs(self.rfile.read(length).decode(errors="replace")).items()
                }
                token = form.get("token", "")
                if not token and self.headers.get("Authorization", "").startswith("Bearer "):
                    token = self.headers["Authorization"][7:]
                body = json.dumps(owner._introspect(token, form)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self.url: str = f"http://{HOST}:{self.port}/introspect"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _introspect(self, token: str, form: dict[str, str]) -> dict[str, object]:
        with self._lock:
            self.requests.append(form)
            entry = self._tokens.get(token)
        if entry is None:
            return {"active": False}
        user, expires = entry
        if expires is not None and time.time() >= expires:
            return {"active": False}
        out: dict[str, object] = {"active": True, "username": user, "scope": "mail"}
        if expires is not None:
            out["exp"] = int(expires)
        return out

    def start(self) -> TokenIntrospection:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def issue(self, user: str, ttl: float | None = 3600.0) -> str:
        token = "tok-" + uuid.uuid4().hex
        with self._lock:
            self._tokens[token] = (user, time.time() + ttl if ttl is not None else None)
        return token

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def lookup(self, token: str) -> str | None:
        """The user of an active token (None when unknown, expired or revoked)."""
        with self._lock:
            entry = self._tokens.get(token)
        if entry is None or (entry[1] is not None and time.time() >= entry[1]):
            return None
        return entry[0]

    def expire(self, token: str) -> None:
        with self._lock:
            if token in self._tokens:
                self._tokens[token] = (self._tokens[token][0], time.time() - 1)


__all__ = [
    "Dovecot",
    "TokenIntrospection",
    "default_message",
    "ensure_dovecot_installed",
    "make_base_dir",
    "process_alive",
    "start_dovecot",
]
