"""Account exports (``/v1/account/{account}/export...``): messages as gzip-compressed NDJSON.

An export is a background job of the process that accepted it::

    queued ──> processing (phase indexing ──> exporting) ──> completed (phase complete)
       │                 │
       └─────────────────┴──> failed (error)  /  cancelled (DELETE before it finished)

*Indexing* resolves the folders (paths or special-use flags; by default every selectable folder
but Junk and Trash) and lists, per folder, the messages in the date range; *exporting* reads each
message through the message service (details, text per ``textType``/``maxBytes``, attachment
content as base64 with ``includeAttachments``) and writes one JSON object a line to
``<data>/exports/<exportId>.ndjson.gz`` (``.part`` until complete). State and progress live in a
Redis hash per export (``keys.account_export``), listed per account in ``keys.account_exports``;
both expire ``EXPORT_TTL`` after creation, and old files are swept when a new export starts.

Bounds: ``MAX_EXPORT_MESSAGES`` messages and ``MAX_EXPORT_BYTES`` written (then the export
completes with ``truncated: true``), ``MAX_ATTACHMENT_BYTES`` of content per attachment,
``MAX_RUNNING`` exports at once per process, ``MAX_ACTIVE_PER_ACCOUNT`` unfinished per account.
Cancellation is checked every ``PROGRESS_EVERY`` messages (DELETE from any process sets the
status; the owning process also cancels its task at once). An unfinished export whose progress
is older than ``STALE_AFTER`` (its process died) is reported failed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mailgate.backends.base import PageRequest, ReadOptions
from mailgate.errors import ApiError, BackendError, BadRequest, MailgateError, NotFound
from mailgate.services.messages import MessageService
from mailgate.store import keys
from mailgate.store.redis import text

EXPORT_TTL = 24 * 3600  # seconds an export (record and file) is kept
MAX_EXPORT_MESSAGES = 100_000
MAX_EXPORT_BYTES = 2 * 1024**3  # uncompressed NDJSON bytes
MAX_ATTACHMENT_BYTES = 25 * 1024**2  # content of one attachment; larger ones are left out
MAX_RUNNING = 2  # exports running at once in one process (others wait, status queued)
MAX_ACTIVE_PER_ACCOUNT = 3  # unfinished exports of one account
MAX_FOLDERS = 1000
LIST_PAGE_SIZE = 250  # messages listed per search page while indexing
PROGRESS_EVERY = 25  # messages between progress writes / cancellation checks
WRITE_CHUNK = 256 * 1024  # bytes buffered before a write to the gzip file
STALE_AFTER = 180.0  # seconds without progress before an unfinished export counts as failed
DEFAULT_MAX_BYTES = 5 * 1024**2
SKIPPED_FOLDERS = frozenset({"\\Junk", "\\Trash"})
FILE_SUFFIX = ".ndjson.gz"


class ExportStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({ExportStatus.COMPLETED, ExportStatus.FAILED, ExportStatus.CANCELLED})
COUNTERS = (
    "foldersScanned",
    "foldersTotal",
    "messagesQueued",
    "messagesExported",
    "messagesSkipped",
    "bytesWritten",
)


class ExportIn(BaseModel):
    """The body of ``POST /v1/account/{account}/export``."""

    model_config = ConfigDict(extra="ignore")

    folders: list[str] | None = Field(default=None, max_length=MAX_FOLDERS)
    startDate: datetime
    endDate: datetime
    textType: Literal["plain", "html", "*"] = "*"
    maxBytes: int = Field(default=DEFAULT_MAX_BYTES, ge=0)
    includeAttachments: bool = False


class Cancelled(Exception):
    """The export was cancelled through the API while it ran."""


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{int(ts * 1000) % 1000:03d}Z"
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def in_range(date: object, start: datetime, end: datetime) -> bool:
    """Whether a message's ``date`` (ISO text) is within [start, end]; unknown dates are in."""
    if not isinstance(date, str) or not date:
        return True
    try:
        when = _utc(datetime.fromisoformat(date.replace("Z", "+00:00")))
    except ValueError:
        return True
    return start <= when <= end


def search_criteria(start: datetime, end: datetime) -> dict[str, Any]:
    """An IMAP-style date search wide enough for [start, end] (SINCE/BEFORE are whole days)."""
    return {
        "since": (start - timedelta(days=1)).date().isoformat(),
        "before": (end + timedelta(days=2)).date().isoformat(),
    }


class _Writer:
    """Buffered NDJSON lines into a gzip file; file calls run in a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.buffer: list[bytes] = []
        self.buffered = 0
        self.written = 0
        self.file: gzip.GzipFile | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = await asyncio.to_thread(gzip.GzipFile, self.path, "wb")

    async def line(self, record: dict[str, Any]) -> int:
        data = json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)
        raw = data.encode("utf-8") + b"\n"
        self.buffer.append(raw)
        self.buffered += len(raw)
        self.written += len(raw)
        if self.buffered >= WRITE_CHUNK:
            await self.flush()
        return len(raw)

    async def flush(self) -> None:
        if self.buffer and self.file is not None:
            chunk = b"".join(self.buffer)
            self.buffer, self.buffered = [], 0
            await asyncio.to_thread(self.file.write, chunk)

    async def close(self) -> None:
        if self.file is not None:
            await self.flush()
            await asyncio.to_thread(self.file.close)
            self.file = None


class ExportService:
    def __init__(self, redis: Redis, messages: MessageService, directory: Path, node: str) -> None:
        self.redis = redis
        self.messages = messages
        self.directory = directory
        self.node = node
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(MAX_RUNNING)

    # -- API ------------------------------------------------------------------------------------

    async def create(self, account: str, body: ExportIn) -> dict[str, Any]:
        await self.messages.accounts.record(account)  # NotFound AccountNotFound
        start, end = _utc(body.startDate), _utc(body.endDate)
        if end < start:
            raise BadRequest('"endDate" must be later than "startDate"', key="endDate")
        if await self._active(account) >= MAX_ACTIVE_PER_ACCOUNT:
            raise BadRequest(
                f"At most {MAX_ACTIVE_PER_ACCOUNT} exports of one account can run at once",
                "TooManyExports",
            )
        await asyncio.to_thread(self._sweep_files)
        export_id = "exp_" + secrets.token_hex(12)
        now = time.time()
        record: dict[str, str] = {
            "exportId": export_id,
            "account": account,
            "status": ExportStatus.QUEUED.value,
            "phase": "indexing",
            "folders": json.dumps(body.folders or []),
            "startDate": iso(start.timestamp()),
            "endDate": iso(end.timestamp()),
            "textType": body.textType,
            "maxBytes": str(body.maxBytes),
            "includeAttachments": "1" if body.includeAttachments else "0",
            "created": iso(now),
            "expiresAt": iso(now + EXPORT_TTL),
            "node": self.node,
            "updated": str(int(now * 1000)),
            **{name: "0" for name in COUNTERS},
        }
        key = keys.account_export(account, export_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=record)  # type: ignore[arg-type]
            pipe.expire(key, EXPORT_TTL)
            pipe.zadd(keys.account_exports(account), {export_id: int(now * 1000)})
            pipe.expire(keys.account_exports(account), EXPORT_TTL)
            await pipe.execute()
        task = asyncio.create_task(
            self._run(account, export_id, body, start, end), name=f"export:{export_id}"
        )
        self._tasks[export_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(export_id, None))
        return {"exportId": export_id, "status": record["status"], "created": record["created"]}

    async def list_exports(self, account: str, page: int, page_size: int) -> dict[str, Any]:
        await self.messages.accounts.record(account)
        index = keys.account_exports(account)
        ids = [text(i) for i in await self.redis.zrevrange(index, 0, -1)]
        records = await self._records(account, ids)
        gone = [i for i, r in zip(ids, records, strict=True) if r is None]
        if gone:
            await self.redis.zrem(index, *gone)
        present = [r for r in records if r is not None]
        total = len(present)
        rows = present[page * page_size : (page + 1) * page_size]
        return {
            "total": total,
            "page": page,
            "pages": max(1, -(-total // page_size)),
            "exports": [
                {k: r.get(k) for k in ("exportId", "status", "created", "expiresAt")} for r in rows
            ],
        }

    async def get(self, account: str, export_id: str) -> dict[str, Any]:
        record = await self._record(account, export_id)
        out: dict[str, Any] = {
            "exportId": export_id,
            "status": record["status"],
            "phase": record.get("phase", "indexing"),
            "folders": json.loads(record.get("folders") or "[]"),
            "startDate": record.get("startDate"),
            "endDate": record.get("endDate"),
            "isEncrypted": False,
            "progress": {name: int(record.get(name) or 0) for name in COUNTERS},
            "created": record.get("created"),
            "expiresAt": record.get("expiresAt"),
        }
        if record.get("truncated") == "1":
            out["truncated"] = True
        if record.get("error"):
            out["error"] = record["error"]
        return out

    async def delete(self, account: str, export_id: str) -> dict[str, Any]:
        """Cancel an unfinished export (kept as ``cancelled``) or remove a finished one."""
        record = await self._record(account, export_id)
        key = keys.account_export(account, export_id)
        if record["status"] in FINISHED:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.zrem(keys.account_exports(account), export_id)
                await pipe.execute()
        else:
            await self.redis.hset(
                key, mapping={"status": ExportStatus.CANCELLED.value, "error": "Cancelled"}
            )
            task = self._tasks.get(export_id)
            if task is not None:
                task.cancel()
        await asyncio.to_thread(self._remove_files, export_id)
        return {"deleted": True}

    async def download(self, account: str, export_id: str) -> Path:
        """The completed export's file; BadRequest while it is not complete."""
        record = await self._record(account, export_id)
        if record["status"] != ExportStatus.COMPLETED:
            raise BadRequest(f"Export is {record['status']}, not completed", "ExportNotCompleted")
        path = self._file(export_id)
        if not path.is_file():
            raise NotFound(
                "Export file is not on this server (exports are stored by the node that made "
                f"them: {record.get('node')})",
                "ExportFileNotFound",
            )
        return path

    async def close(self) -> None:
        """Cancel running exports (they are reported failed once stale) and wait for them."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)

    # -- the job --------------------------------------------------------------------------------

    async def _run(
        self, account: str, export_id: str, body: ExportIn, start: datetime, end: datetime
    ) -> None:
        key = keys.account_export(account, export_id)
        part = self._file(export_id).with_suffix(".part")
        writer = _Writer(part)
        try:
            async with self._slots:
                await self._check(key)
                await self._set(key, status=ExportStatus.PROCESSING.value, phase="indexing")
                await writer.open()
                await self._export(key, account, body, start, end, writer)
                await writer.close()
                await asyncio.to_thread(part.rename, self._file(export_id))
                await self._set(key, status=ExportStatus.COMPLETED.value, phase="complete")
        except (Cancelled, asyncio.CancelledError) as exc:
            await self._abandon(writer, part)
            if isinstance(exc, asyncio.CancelledError):
                raise
        except (MailgateError, RedisError, OSError) as exc:
            await self._abandon(writer, part)
            with contextlib.suppress(RedisError, OSError):
                await self._set(key, status=ExportStatus.FAILED.value, error=str(exc)[:1000])

    async def _abandon(self, writer: _Writer, part: Path) -> None:
        with contextlib.suppress(OSError):
            await asyncio.shield(writer.close())
        with contextlib.suppress(OSError):
            await asyncio.to_thread(part.unlink, missing_ok=True)

    async def _export(
        self,
        key: str,
        account: str,
        body: ExportIn,
        start: datetime,
        end: datetime,
        writer: _Writer,
    ) -> None:
        folders = await self._folders(account, body.folders)
        await self._set(key, foldersTotal=len(folders), folders=json.dumps(folders))
        criteria = search_criteria(start, end)
        queued: list[tuple[str, str]] = []  # (path, message id)
        truncated = False
        for done, path in enumerate(folders, 1):
            page = 0
            while True:
                listing = await self.messages.search(
                    account, path, criteria, PageRequest(page=page, page_size=LIST_PAGE_SIZE)
                )
                for summary in listing.get("messages") or []:
                    if in_range(summary.get("date"), start, end) and summary.get("id"):
                        queued.append((path, str(summary["id"])))
                page += 1
                if page >= int(listing.get("pages") or 1) or len(queued) >= MAX_EXPORT_MESSAGES:
                    break
            if len(queued) >= MAX_EXPORT_MESSAGES:
                truncated = truncated or len(queued) > MAX_EXPORT_MESSAGES or done < len(folders)
                queued = queued[:MAX_EXPORT_MESSAGES]
            await self._set(key, foldersScanned=done, messagesQueued=len(queued))
            await self._check(key)
            if len(queued) >= MAX_EXPORT_MESSAGES:
                break
        await self._set(key, phase="exporting")
        options = ReadOptions(
            text_type=body.textType, max_bytes=body.maxBytes or None, web_safe_html=False
        )
        exported = skipped = 0
        for i, (path, message_id) in enumerate(queued, 1):
            if writer.written >= MAX_EXPORT_BYTES:
                truncated = True
                break
            try:
                message = await self.messages.get_message(account, message_id, options)
                message.setdefault("path", path)
                if body.includeAttachments:
                    await self._attachments(account, message)
                await writer.line(message)
                exported += 1
            except (ApiError, BackendError):  # deleted meanwhile, or unreadable
                skipped += 1
            if i % PROGRESS_EVERY == 0:
                await self._progress(key, exported, skipped, writer.written)
                await self._check(key)
        await self._progress(key, exported, skipped, writer.written)
        if truncated:
            await self._set(key, truncated="1")

    async def _attachments(self, account: str, message: dict[str, Any]) -> None:
        for attachment in message.get("attachments") or []:
            attachment_id = attachment.get("id")
            if not attachment_id:
                continue
            download = await self.messages.attachment(account, str(attachment_id))
            content = await _read_capped(download.chunks, MAX_ATTACHMENT_BYTES)
            if content is None:
                attachment["contentSkipped"] = f"larger than {MAX_ATTACHMENT_BYTES} bytes"
            else:
                attachment["content"] = base64.b64encode(content).decode("ascii")

    async def _folders(self, account: str, wanted: list[str] | None) -> list[str]:
        backend = await self.messages.backend(account)
        if wanted:
            out: list[str] = []
            for name in wanted:
                path = await backend.resolve_path(name)
                if path not in out:
                    out.append(path)
            return out
        boxes = await backend.list_mailboxes()
        return [b.path for b in boxes if not b.no_select and b.special_use not in SKIPPED_FOLDERS]

    # -- records ---------------------------------------------------------------------------------

    async def _set(self, key: str, **fields: str | int) -> None:
        values = {k: str(v) for k, v in fields.items()}
        values["updated"] = str(int(time.time() * 1000))
        await self.redis.hset(key, mapping=values)  # type: ignore[arg-type]

    async def _progress(self, key: str, exported: int, skipped: int, written: int) -> None:
        await self._set(
            key, messagesExported=exported, messagesSkipped=skipped, bytesWritten=written
        )

    async def _check(self, key: str) -> None:
        """Raise Cancelled when the export was cancelled (or removed) through the API."""
        status = await self.redis.hget(key, "status")
        if status is None or text(status) == ExportStatus.CANCELLED:
            raise Cancelled()

    async def _records(self, account: str, ids: list[str]) -> list[dict[str, str] | None]:
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for export_id in ids:
                pipe.hgetall(keys.account_export(account, export_id))
            raws = await pipe.execute()
        return [self._view(raw) if raw else None for raw in raws]

    async def _record(self, account: str, export_id: str) -> dict[str, str]:
        await self.messages.accounts.record(account)  # NotFound AccountNotFound
        raw = await self.redis.hgetall(keys.account_export(account, export_id))
        if not raw:
            raise NotFound("Export was not found", "ExportNotFound")
        return self._view(raw)

    def _view(self, raw: dict[Any, Any]) -> dict[str, str]:
        """The stored hash as text; an unfinished export with stale progress reads as failed."""
        record = {text(k): text(v) for k, v in raw.items()}
        if record.get("status") in (ExportStatus.QUEUED, ExportStatus.PROCESSING):
            updated = int(record.get("updated") or 0) / 1000
            running_here = record.get("exportId") in self._tasks
            if not running_here and time.time() - updated > STALE_AFTER:
                record["status"] = ExportStatus.FAILED.value
                record["error"] = "The export stopped: the process running it went away"
        return record

    async def _active(self, account: str) -> int:
        ids = [text(i) for i in await self.redis.zrange(keys.account_exports(account), 0, -1)]
        records = await self._records(account, ids)
        return len([r for r in records if r is not None and r.get("status") not in FINISHED])

    # -- files ------------------------------------------------------------------------------------

    def _file(self, export_id: str) -> Path:
        return self.directory / f"{export_id}{FILE_SUFFIX}"

    def _remove_files(self, export_id: str) -> None:
        path = self._file(export_id)
        for candidate in (path, path.with_suffix(".part")):
            with contextlib.suppress(OSError):
                candidate.unlink(missing_ok=True)

    def _sweep_files(self) -> None:
        """Remove export files older than ``EXPORT_TTL`` (their records have expired)."""
        if not self.directory.is_dir():
            return
        cutoff = time.time() - EXPORT_TTL
        for path in self.directory.iterdir():
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()


async def _read_capped(chunks: AsyncIterator[bytes], cap: int) -> bytes | None:
    """All of ``chunks`` joined, or None (the rest discarded) once more than ``cap`` bytes."""
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > cap:
                return None
            parts.append(chunk)
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    return b"".join(parts)
