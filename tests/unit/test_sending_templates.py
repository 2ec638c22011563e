"""Template rendering: sandboxed Jinja2, autoescaped HTML, markdown."""

from __future__ import annotations

import pytest

from mailgate.errors import BadRequest
from mailgate.services.sending.templates import render_content

CONTENT = {
    "subject": "Order {{ order }} for {{ name }}",
    "text": "Hi {{ name }}!\n{% for i in items %}- {{ i }}\n{% endfor %}",
    "html": "<p>Hi {{ name }}</p>",
    "previewText": "Your order {{ order }}",
}
PARAMS = {"name": "<Ann & Bob>", "order": 4815, "items": ["a", "b"]}


def test_render_text_raw_and_html_escaped() -> None:
    out = render_content(CONTENT, PARAMS)
    assert out.subject == "Order 4815 for <Ann & Bob>"
    assert out.text == "Hi <Ann & Bob>!\n- a\n- b\n"
    assert out.html == "<p>Hi &lt;Ann &amp; Bob&gt;</p>"
    assert out.preview_text == "Your order 4815"


def test_missing_params_render_empty() -> None:
    assert render_content({"text": "Hi {{ nobody }}."}, {}).text == "Hi ."


def test_render_false_keeps_the_source() -> None:
    out = render_content(CONTENT, PARAMS, render=False)
    assert out.subject == CONTENT["subject"] and out.html == CONTENT["html"]


def test_subject_is_one_line() -> None:
    assert render_content({"subject": "a\n{{ x }}"}, {"x": "b\r\nc"}).subject == "a b c"


def test_markdown_format() -> None:
    out = render_content(
        {"html": "# Hi {{ name }}\n\n*x* <script>1</script>"}, PARAMS, fmt="markdown"
    )
    assert out.html is not None
    assert "<h1>Hi &lt;Ann &amp; Bob&gt;</h1>" in out.html
    assert "<em>x</em>" in out.html
    assert "<script>" not in out.html


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",  # sandbox: no Python internals
        "{{ name.__init__.__globals__ }}",
        "{% for %}",  # syntax error
    ],
)
def test_hostile_or_broken_templates_are_a_400(source: str) -> None:
    with pytest.raises(BadRequest) as exc:
        render_content({"text": source}, {"name": "x"})
    assert exc.value.code == "TemplateError"
