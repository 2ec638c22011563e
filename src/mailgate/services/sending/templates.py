"""Stored message templates and their rendering.

Templates are JSON strings in Redis (``mg:{mg}:tpl:t:<id>``), indexed per account
(``mg:{<account>}:tpl``) or, for public templates (``account: null``), instance-wide. Rendering
uses Jinja2's :class:`~jinja2.sandbox.SandboxedEnvironment` (templates come from API callers and
must not reach Python internals): ``{{ name }}`` works like EmailEngine's Handlebars variables.
HTML is rendered with autoescaping; subject, text and preview text without. ``format: markdown``
turns the rendered markdown into HTML (raw HTML in the markdown is escaped).
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from markdown_it import MarkdownIt
from redis.asyncio import Redis

from mailgate.errors import BadRequest, NotFound
from mailgate.store import keys
from mailgate.store.events import iso_now
from mailgate.store.redis import text

from .inputs import TemplateCreateIn, TemplateUpdateIn
from .outbox import now_ms

MAX_RENDERED_CHARS = 10 * 1024 * 1024  # characters of one rendered field
MAX_PAGE_SIZE = 1000
CONTENT_FIELDS = ("subject", "text", "html", "previewText")

_text_env = SandboxedEnvironment(autoescape=False, keep_trailing_newline=True)
_html_env = SandboxedEnvironment(autoescape=True, keep_trailing_newline=True)
_markdown = MarkdownIt("commonmark", {"html": False})


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    text: str | None
    html: str | None
    preview_text: str | None


def _render_one(
    env: SandboxedEnvironment, source: str | None, params: dict[str, Any]
) -> str | None:
    if source is None:
        return None
    try:
        out = env.from_string(source).render(**params)
    except jinja2.TemplateSyntaxError as exc:
        raise BadRequest(f"Template syntax error: {exc.message}", "TemplateError") from exc
    except jinja2.TemplateError as exc:
        raise BadRequest(f"Template rendering failed: {exc}", "TemplateError") from exc
    if len(out) > MAX_RENDERED_CHARS:
        raise BadRequest("Rendered template is too large", "TemplateError")
    return out


def render_content(
    content: Mapping[str, str | None],
    params: dict[str, Any] | None,
    *,
    fmt: str = "html",
    render: bool = True,
) -> Rendered:
    """Render a template's content with ``params`` (or take it as is with ``render=False``)."""
    values = params or {}
    if not render:
        html = content.get("html")
        if html is not None and fmt == "markdown":
            html = _markdown.render(html)
        return Rendered(
            content.get("subject"), content.get("text"), html, content.get("previewText")
        )
    html_source = content.get("html")
    if fmt == "markdown":
        rendered_md = _render_one(_text_env, html_source, values)
        html = _markdown.render(rendered_md) if rendered_md is not None else None
    else:
        html = _render_one(_html_env, html_source, values)
    subject = _render_one(_text_env, content.get("subject"), values)
    if subject is not None:
        subject = " ".join(subject.split())  # a subject is one line
    return Rendered(
        subject=subject,
        text=_render_one(_text_env, content.get("text"), values),
        html=html,
        preview_text=_render_one(_text_env, content.get("previewText"), values),
    )


def _index_key(account: str | None) -> str:
    return keys.account_templates(account) if account else keys.TEMPLATES_PUBLIC


def _content(body: Any) -> dict[str, str | None]:
    return {f: getattr(body, f) for f in CONTENT_FIELDS if getattr(body, f) is not None}


class TemplateService:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def _load(self, template_id: str) -> dict[str, Any]:
        raw = await self.redis.get(keys.template(template_id))
        if raw is None:
            raise NotFound("Requested template was not found", "TemplateNotFound")
        data: dict[str, Any] = json.loads(raw)
        return data

    async def create(self, body: TemplateCreateIn, account_exists: bool) -> dict[str, Any]:
        if body.account and not account_exists:
            raise NotFound("Account record was not found for requested ID", "AccountNotFound")
        template_id = secrets.token_urlsafe(12)
        stamp = iso_now()
        data = {
            "id": template_id,
            "account": body.account or None,
            "name": body.name,
            "description": body.description,
            "format": body.format,
            "content": _content(body.content),
            "created": stamp,
            "updated": stamp,
        }
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.template(template_id), json.dumps(data))
            pipe.zadd(_index_key(body.account), {template_id: now_ms()})
            await pipe.execute()
        return {"created": True, "account": body.account or None, "id": template_id}

    async def get(self, template_id: str) -> dict[str, Any]:
        return await self._load(template_id)

    async def update(self, template_id: str, body: TemplateUpdateIn) -> dict[str, Any]:
        data = await self._load(template_id)
        for name in ("name", "description", "format"):
            value = getattr(body, name)
            if value is not None:
                data[name] = value
        if body.content is not None:
            data["content"] = {**data.get("content", {}), **_content(body.content)}
        data["updated"] = iso_now()
        await self.redis.set(keys.template(template_id), json.dumps(data))
        return {"updated": True, "account": data.get("account"), "id": template_id}

    async def delete(self, template_id: str) -> dict[str, Any]:
        data = await self._load(template_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(keys.template(template_id))
            pipe.zrem(_index_key(data.get("account")), template_id)
            await pipe.execute()
        return {"deleted": True, "account": data.get("account"), "id": template_id}

    async def list(self, account: str | None, page: int, page_size: int) -> dict[str, Any]:
        index = _index_key(account)
        total = int(await self.redis.zcard(index))
        start = page * page_size
        ids = [text(i) for i in await self.redis.zrange(index, start, start + page_size - 1)]
        rows: list[dict[str, Any]] = []
        if ids:
            found = await self.redis.mget([keys.template(i) for i in ids])
            for raw in found:
                if raw is None:
                    continue
                data = json.loads(raw)
                rows.append(
                    {
                        "id": data["id"],
                        "name": data.get("name"),
                        "description": data.get("description"),
                        "format": data.get("format", "html"),
                        "created": data.get("created"),
                        "updated": data.get("updated"),
                    }
                )
        return {
            "account": account,
            "total": total,
            "page": page,
            "pages": max(1, math.ceil(total / page_size)),
            "templates": rows,
        }

    async def flush(self, account: str) -> dict[str, Any]:
        index = keys.account_templates(account)
        ids = [text(i) for i in await self.redis.zrange(index, 0, -1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for template_id in ids:
                pipe.delete(keys.template(template_id))
            pipe.delete(index)
            await pipe.execute()
        return {"flushed": True, "account": account}

    async def for_account(self, template_id: str, account: str) -> dict[str, Any]:
        """A template the account may use: its own or a public one."""
        data = await self._load(template_id)
        owner = data.get("account")
        if owner and owner != account:
            raise NotFound("Requested template was not found", "TemplateNotFound")
        return data
