"""HTML bodies: sanitizing (nh3), HTML -> text (inscriptis), text -> HTML, cid: images.

Sanitizing choices (``sanitize_html``), for showing a message inside an application's page:

- Kept: the formatting and layout tags email uses (tables, fonts, lists, headings, images...),
  presentational attributes (``align``, ``bgcolor``, ``width``, ``cellpadding``...), and inline
  ``style`` attributes restricted to an allowlist of CSS properties (colours, fonts, text,
  box model, borders, tables; not ``position``, ``z-index``, ``behavior`` or anything that could
  lift content out of its box or run code).
- Removed: scripts, ``<style>`` and ``<title>`` elements with their content (a stylesheet would
  restyle the embedding page), forms, frames, objects, event handlers, comments, ``class``/``id``.
- URLs: ``http``, ``https``, ``mailto``, ``tel`` and ``cid`` only; ``cid:`` images are replaced by
  ``data:`` URIs when ``embed_images`` has them (done after sanitizing, on ``img`` ``src`` only,
  so ``data:`` can never come from the message itself). Remote images are kept: blocking them
  is a display decision left to the application.
- Every link gets ``rel="noopener noreferrer"`` and ``target="_blank"``.
"""

from __future__ import annotations

import base64
import html as html_lib
import re
from urllib.parse import unquote

import nh3

from .limits import MAX_HTML_DEPTH, MAX_HTML_TO_TEXT_CELLS, MAX_HTML_TO_TEXT_CHARS

_TAGS = {
    "a", "abbr", "acronym", "address", "area", "article", "aside", "b", "bdi", "bdo", "big",
    "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup", "dd", "del",
    "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "font", "footer", "h1",
    "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "i", "img", "ins", "kbd", "li", "map",
    "mark", "nav", "ol", "p", "pre", "q", "rp", "rt", "rtc", "ruby", "s", "samp", "section",
    "small", "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot",
    "th", "thead", "time", "tr", "tt", "u", "ul", "var", "wbr",
}  # fmt: skip

_GENERIC_ATTRIBUTES = {
    "align", "bgcolor", "border", "color", "dir", "height", "lang", "style", "title", "valign",
    "width",
}  # fmt: skip

_ATTRIBUTES: dict[str, set[str]] = {
    "*": _GENERIC_ATTRIBUTES,
    "a": {"href", "name"},
    "img": {"src", "alt", "hspace", "vspace"},
    "font": {"face", "size"},
    "table": {"cellpadding", "cellspacing", "summary", "frame", "rules", "background"},
    "td": {"colspan", "rowspan", "nowrap", "abbr", "headers", "scope", "background"},
    "th": {"colspan", "rowspan", "nowrap", "abbr", "headers", "scope"},
    "col": {"span"},
    "colgroup": {"span"},
    "ol": {"start", "type", "reversed"},
    "ul": {"type"},
    "li": {"value", "type"},
    "blockquote": {"cite", "type"},
    "q": {"cite"},
    "del": {"cite", "datetime"},
    "ins": {"cite", "datetime"},
    "time": {"datetime"},
    "area": {"alt", "coords", "href", "shape"},
    "map": {"name"},
    "details": {"open"},
    "hr": {"noshade", "size"},
    "pre": {"wrap"},
}

_STYLE_PROPERTIES = {
    "background", "background-color", "border", "border-bottom", "border-bottom-color",
    "border-bottom-style", "border-bottom-width", "border-collapse", "border-color",
    "border-left", "border-left-color", "border-left-style", "border-left-width",
    "border-radius", "border-right", "border-right-color", "border-right-style",
    "border-right-width", "border-spacing", "border-style", "border-top", "border-top-color",
    "border-top-style", "border-top-width", "border-width", "caption-side", "clear", "color",
    "direction", "display", "empty-cells", "float", "font", "font-family", "font-size",
    "font-style", "font-variant", "font-weight", "height", "letter-spacing", "line-height",
    "list-style", "list-style-position", "list-style-type", "margin", "margin-bottom",
    "margin-left", "margin-right", "margin-top", "max-height", "max-width", "min-height",
    "min-width", "overflow", "padding", "padding-bottom", "padding-left", "padding-right",
    "padding-top", "table-layout", "text-align", "text-decoration", "text-indent",
    "text-transform", "vertical-align", "white-space", "width", "word-break", "word-spacing",
    "word-wrap", "overflow-wrap",
}  # fmt: skip

_URL_SCHEMES = {"http", "https", "mailto", "tel", "cid"}

_CID_REF = re.compile(r"""cid:([^"'\s<>()]+)""", re.IGNORECASE)
_IMG_CID_SRC = re.compile(r'(<img\b[^>]*?\ssrc=")cid:([^"]*)(")', re.IGNORECASE)
_URL = re.compile(r"""\b((?:https?://|www\.)[^\s<>"']+[^\s<>"'.,;:!?)\]}])""", re.IGNORECASE)
_BLANK_LINES = re.compile(r"\n{3,}")
_TAG_TOKEN = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:-]*)[^<>]*?(/?)>")
_ANY_TAG = re.compile(r"<[^<>]*>")
_RAW_TEXT = re.compile(r"<(script|style|title|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
# Elements that close themselves (void) or are closed implicitly by a sibling: they do not add
# to the nesting an HTML5 parser builds.
_NO_DEPTH = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
    "source", "track", "wbr", "p", "li", "dt", "dd", "td", "th", "tr", "tbody", "thead",
    "tfoot", "option", "optgroup", "rp", "rt", "colgroup", "html", "head", "body",
}  # fmt: skip


def estimate_depth(html: str) -> int:
    """Upper estimate of the element nesting an HTML5 parser builds from ``html``."""
    if html.count("<") < MAX_HTML_DEPTH:
        return 0
    depth = deepest = 0
    for closing, name, self_closing in _TAG_TOKEN.findall(html):
        if self_closing or name.lower() in _NO_DEPTH:
            continue
        if closing:
            depth = max(0, depth - 1)
        else:
            depth += 1
            deepest = max(deepest, depth)
    return deepest


def strip_tags(html: str) -> str:
    """Text of HTML without parsing it (linear): tags removed, entities decoded."""
    text = _ANY_TAG.sub(" ", _RAW_TEXT.sub(" ", html))
    return html_lib.unescape(re.sub(r"[ \t\r\f\v]+", " ", text))


def find_cid_references(html: str) -> set[str]:
    """Content-IDs referenced as ``cid:`` anywhere in the HTML (img src, CSS url(), ...),
    URL-decoded and lower-cased."""
    return {unquote(m).strip().lower() for m in _CID_REF.findall(html)}


def sanitize_html(html: str, *, embed_images: dict[str, tuple[str, bytes]] | None = None) -> str:
    """Safe HTML fragment for display (see the module docstring for what is kept). HTML nested
    deeper than ``MAX_HTML_DEPTH`` is shown as its text."""
    if estimate_depth(html) > MAX_HTML_DEPTH:
        return text_to_html(_tidy(strip_tags(html)))
    cleaned = nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags={"script", "style", "title", "noscript", "template", "textarea"},
        attributes=_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        filter_style_properties=_STYLE_PROPERTIES,
        strip_comments=True,
    )
    if embed_images and "cid:" in cleaned.lower():
        cleaned = embed_cid_images(cleaned, embed_images)
    return cleaned


def embed_cid_images(html: str, images: dict[str, tuple[str, bytes]]) -> str:
    """Replace ``<img src="cid:X">`` with ``data:`` URIs for the Content-IDs in ``images``
    (keys without angle brackets, matched case-insensitively). The HTML must be nh3 output
    (normalized, double-quoted attributes); unknown cids are left alone."""
    by_id = {key.strip().strip("<>").lower(): value for key, value in images.items()}

    def replace(match: re.Match[str]) -> str:
        cid = unquote(html_lib.unescape(match.group(2))).strip().strip("<>").lower()
        found = by_id.get(cid)
        if found is None:
            return match.group(0)
        content_type, data = found
        content_type = re.sub(r"[^\w.+/-]", "", content_type) or "application/octet-stream"
        encoded = base64.b64encode(data).decode("ascii")
        return f"{match.group(1)}data:{content_type};base64,{encoded}{match.group(3)}"

    return _IMG_CID_SRC.sub(replace, html)


def html_to_text(html: str) -> str:
    """Readable plain text from HTML. The HTML goes through nh3 first, so inscriptis (lxml)
    always gets well-formed, shallow-enough markup; scripts and styles never become text.
    Bounded: very deep HTML is stripped of its tags, very large HTML or HTML with very many
    table cells is converted by lexbor instead of inscriptis."""
    if not html:
        return ""
    if estimate_depth(html) > MAX_HTML_DEPTH:
        return _tidy(strip_tags(html))
    try:
        cleaned = nh3.clean(
            html,
            tags=_TAGS,
            clean_content_tags={"script", "style", "title", "head", "noscript", "template"},
            attributes={"a": {"href"}, "img": {"alt"}, "td": {"colspan"}, "th": {"colspan"}},
            strip_comments=True,
            link_rel=None,
        )
    except Exception:
        cleaned = html
    text = ""
    if len(cleaned) <= MAX_HTML_TO_TEXT_CHARS and (
        cleaned.count("<td") + cleaned.count("<th") <= MAX_HTML_TO_TEXT_CELLS
    ):
        try:
            from inscriptis import get_text

            text = str(get_text(cleaned))
        except Exception:
            text = ""
    if not text.strip() and cleaned.strip():
        text = _text_fallback(cleaned)
    return _tidy(text)


def _tidy(text: str) -> str:
    text = "\n".join(line.rstrip() for line in text.splitlines())
    return _BLANK_LINES.sub("\n\n", text).strip()


def _text_fallback(html: str) -> str:
    try:
        from selectolax.lexbor import LexborHTMLParser

        tree = LexborHTMLParser(html)
        node = tree.body or tree.root
        return str(node.text(separator="\n")) if node is not None else ""
    except Exception:
        return html_lib.unescape(re.sub(r"<[^>]*>", " ", html))


def _linkify(escaped: str) -> str:
    def replace(match: re.Match[str]) -> str:
        url = match.group(1)
        href = url if "://" in url else "http://" + url
        return f'<a href="{href}" rel="noopener noreferrer" target="_blank">{url}</a>'

    return _URL.sub(replace, escaped)


def text_to_html(text: str) -> str:
    """Plain text as HTML: escaped, paragraphs on blank lines, ``<br>`` for line breaks, URLs as
    links."""
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = re.split(r"\n\s*\n", text.strip("\n"))
    out = []
    for paragraph in paragraphs:
        escaped = html_lib.escape(paragraph, quote=False)
        escaped = _linkify(escaped).replace("\n", "<br>\n")
        out.append(f"<p>{escaped}</p>")
    return "\n".join(out)
