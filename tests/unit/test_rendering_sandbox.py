"""A merchant's template when it is saved: sandbox escapes, syntax errors, unknown names and oversized output are
rejected with their part and line, and the same templates raise RenderError when rendered."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from markupsafe import escape

from app.rendering import MAX_SOURCE, RenderError, TemplateProblem, TemplateSource, render, sample_context, validate
from app.rendering.render import Part

BASE = TemplateSource(subject="Hello {{ customer.first_name }}", html="<p>Hi</p>", text="Hi", sms="Hi")


def with_part(part: Part, source: str) -> TemplateSource:
    changes: dict[str, Any] = {part: source}
    return replace(BASE, **changes)


def only(problems: list[TemplateProblem]) -> TemplateProblem:
    assert len(problems) == 1, problems
    return problems[0]


ESCAPES = [
    # (template line 3, what the message names, the exception rendering raises)
    ("{{ ''.__class__.__mro__ }}", "__class__", SecurityError),
    ("{{ cycler.__init__.__globals__ }}", "__init__", SecurityError),
    ("{{ shop.name.__len__() }}", "__len__", SecurityError),
    ("{{ order._secret }}", "_secret", UndefinedError),
    ("{{ order['_secret'] }}", "_secret", UndefinedError),
    ("{{ config }}", "config", UndefinedError),
    ("{{ request.environ }}", "request", UndefinedError),
    ("{{ self._TemplateReference__context }}", "_TemplateReference__context", SecurityError),
]


@pytest.mark.parametrize("part", ["html", "text"])
@pytest.mark.parametrize(("expression", "named", "raised"), ESCAPES)
def test_sandbox_escapes_are_rejected_with_their_line_and_raise_at_render(
    part: Part, expression: str, named: str, raised: type[Exception]
) -> None:
    source = with_part(part, f"<p>\n  Hello\n  {expression}\n</p>")
    problems = validate(source, "en")
    assert problems and all((p.part, p.line) == (part, 3) for p in problems), problems
    assert any(named in p.message for p in problems)
    with pytest.raises(RenderError) as caught:
        render(source, sample_context("en"))
    assert (caught.value.problem.part, caught.value.problem.line) == (part, 3)
    assert isinstance(caught.value.__cause__, raised)


def test_an_escape_in_a_branch_the_sample_never_takes_is_still_found() -> None:
    source = with_part("html", "{% if false %}\n\n{{ ''.__class__.__mro__ }}\n{% endif %}")
    problems = validate(source, "en")
    assert {(p.line, p.message.split("'")[1]) for p in problems} == {(3, "__class__"), (3, "__mro__")}
    assert all("not allowed" in p.message for p in problems)


def test_a_syntax_error_reports_its_line() -> None:
    source = with_part("html", "<p>\n{% if order %}\n{{ order.name }\n{% endif %}")
    problem = only(validate(source, "ko"))
    assert (problem.part, problem.line) == ("html", 3)
    assert "unexpected '}'" in problem.message
    unclosed = only(validate(with_part("text", "a\nb\n{% for line in order.lines %}\n{{ line.title }}"), "en"))
    assert (unclosed.part, unclosed.line) == ("text", 4) and "endfor" in unclosed.message
    with pytest.raises(RenderError) as caught:
        render(source, sample_context("en"))
    assert caught.value.problem.line == 3 and isinstance(caught.value.__cause__, TemplateSyntaxError)


def test_unknown_variables_attributes_and_filters_are_reported() -> None:
    variable = only(validate(with_part("text", "Hi\n{{ custmer.first_name }}"), "en"))
    assert (variable.part, variable.line, variable.message) == ("text", 2, "unknown variable 'custmer'")
    attribute = only(validate(with_part("html", "<p>\n\n{{ order.totl|money }}</p>"), "en"))
    assert (attribute.line, attribute.message) == (3, "undefined: 'dict object' has no attribute 'totl'")
    flt = only(validate(with_part("sms", "{{ order.total|monee }}"), "ja"))
    assert (flt.part, flt.line, flt.message) == ("sms", 1, "unknown filter 'monee'")
    for removed in ("safe", "urlize", "format", "center", "attr"):
        problem = only(validate(with_part("html", f"<p>{{{{ shop.name|{removed} }}}}</p>"), "en"))
        assert problem.message == f"the filter '{removed}' is not available in message templates"


def test_names_the_template_defines_itself_are_known() -> None:
    source = with_part("text", """{% set total = order.total %}{% import "blocks.txt" as b %}
{% macro hello(name) %}Hi {{ name }}{% endmacro %}{% from "blocks.txt" import signoff as bye %}
{{ hello(customer.first_name) }} {{ total|money }} {{ b.greeting(customer) }} {{ bye(shop) }}
{% for line in order.lines %}{{ loop.index }}. {{ line.title }}{% endfor %}""")
    assert validate(source, "en") == []


def test_a_template_over_the_size_limit_is_refused() -> None:
    source = with_part("html", "<p>" + "x" * MAX_SOURCE + "</p>")
    problem = only(validate(source, "en"))
    assert (problem.part, problem.line, problem.message) == ("html", None, "the template is larger than 64 KB")
    with pytest.raises(RenderError, match="larger than 64 KB"):
        render(source, sample_context("en"))
    assert validate(with_part("html", "x" * (MAX_SOURCE - 10)), "en") == []


def test_a_subject_must_render_to_one_line() -> None:
    source = with_part("subject", "Hello\n{{ shop.name }}")
    problem = only(validate(source, "en"))
    assert (problem.part, problem.line, problem.message) == ("subject", None, "the subject renders to more than one line")
    with pytest.raises(RenderError, match="more than one line"):
        render(source, sample_context("en"))
    # A trailing newline (as files end) is not a second line; a name with a newline in it is.
    assert validate(with_part("subject", "Hello {{ shop.name }}\n"), "en") == []
    context = sample_context("en")
    with pytest.raises(RenderError):
        render(BASE, replace(context, customer=replace(context.customer, first_name="Jane\r\nBcc: x@example.org")))


def test_empty_parts() -> None:
    problems = validate(replace(BASE, subject="{% if false %}x{% endif %}", text="  "), "en")
    assert [(p.part, p.message) for p in problems] == [("subject", "the subject is empty"), ("text", "the text is empty")]
    assert validate(replace(BASE, sms=""), "en") == []  # no SMS version


@pytest.mark.parametrize(
    "expression",
    [
        "{{ 'x' * 1000000000 }}",
        "{{ [1] * 1000000000 }}",
        "{{ 10 ** 10 ** 10 }}",
        "{% for i in range(1000000) %}{% endfor %}",
        "{{ '%999999999s' % 1 }}",
        "{{ _('%(a)999999999s', a=1) }}",
        "{{ '{:999999999}'.format(1) }}",
        "{{ '{0:>999999999}'.format_map({}) }}",
        "{{ order.total.scaleb(999999) }}",
    ],
)
def test_runaway_output_and_padding_are_refused(expression: str) -> None:
    source = with_part("text", f"Hi\n{expression}")
    problem = only(validate(source, "en"))
    assert (problem.part, problem.line) == ("text", 2) and "not allowed" in problem.message
    with pytest.raises(RenderError) as caught:
        render(source, sample_context("en"))
    assert isinstance(caught.value.__cause__, SecurityError)


def test_a_part_rendering_to_more_than_a_megabyte_is_cut_off() -> None:
    source = with_part("html", "<p>\n{% for i in range(1000) %}{{ 'x' * 5000 }}{% endfor %}</p>")
    problem = only(validate(source, "en"))
    assert (problem.part, problem.line) == ("html", None)
    assert problem.message == "not allowed in a message template: the message would be longer than 1,000,000 characters"
    with pytest.raises(RenderError) as caught:
        render(source, sample_context("en"))
    assert isinstance(caught.value.__cause__, SecurityError)


def test_templates_cannot_change_the_data_they_are_given() -> None:
    source = with_part("text", "{{ order.lines.append(1) }}{{ order.update({}) }}")
    problem = validate(source, "en")[0]
    assert "unsafe" in problem.message and problem.line == 1


def test_layouts_are_the_only_templates_a_template_can_load() -> None:
    for name in ("../render.py", "/etc/passwd", "thank_you/html.j2"):
        problem = only(validate(with_part("html", f'<p>\n{{% include "{name}" %}}'), "en"))
        assert problem.line == 2 and problem.message.startswith(f"no template named '{name}'")
    assert validate(with_part("html", '{% extends "email.html" %}{% block content %}x{% endblock %}'), "en") == []


def test_filter_errors_name_the_filter_and_line() -> None:
    problem = only(validate(with_part("text", "a\n{{ 'soon'|date }}"), "en"))
    assert (problem.line, problem.message) == (2, "date: expected a date or time, got str")
    problem = only(validate(with_part("text", "{{ order.created_at|date('yyyy-MM-dd HH:mm:ss zzzz QQQ') }}"), "en"))
    assert "unknown format" in problem.message


def test_trans_blocks_translated_when_compiled_read_as_jinjas_own_gettext_would() -> None:
    """`{% trans %}` is laid out from the catalog when a template compiles (sandbox.TranslatedAtCompile); what it
    renders must be what Jinja's newstyle gettext gives: values escaped in HTML and raw in text, a literal %
    kept, the word order of the Korean catalog."""
    from jinja2 import Environment, StrictUndefined

    from app.rendering.catalog import translations

    def jinja_says(language: str, source: str, autoescape: bool, **values: Any) -> str:
        env = Environment(extensions=["jinja2.ext.i18n"], autoescape=autoescape, undefined=StrictUndefined)
        env.policies["ext.i18n.trimmed"] = True
        env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
        return env.from_string(source).render(**values)

    context = sample_context("en")
    context = replace(context, customer=replace(context.customer, first_name="<b>Ann</b> & co"))
    block = "{% trans name=customer.first_name, shop=shop.name %}Hi {{ name }}, 100% from {{ shop }}{% endtrans %}"
    rendered = render(replace(BASE, html=f"<p>{block}</p>", text=block), context)
    values = {"customer": {"first_name": "<b>Ann</b> & co"}, "shop": {"name": context.shop.name}}
    assert rendered.html == jinja_says("en", f"<p>{block}</p>", True, **values) + "\n"
    assert rendered.html.startswith("<p>Hi &lt;b&gt;Ann&lt;/b&gt; &amp; co, 100% from ")
    assert rendered.text == jinja_says("en", block, False, **values) + "\n" == (
        f"Hi <b>Ann</b> & co, 100% from {context.shop.name}\n")

    korean = sample_context("ko")  # a catalog string with a placeholder: the shop's name comes first in Korean
    line = "{% trans shop=shop.name %}The {{ shop }} team{% endtrans %}"
    ours = render(replace(BASE, html=line, text=line), korean)
    expected = jinja_says("ko", line, True, shop={"name": korean.shop.name})
    assert ours.html == expected + "\n" and expected.startswith(str(escape(korean.shop.name)))


def test_the_whole_library_renders_the_same_as_with_jinjas_own_trans(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every default journey, every part, in the three languages: laying `{% trans %}` out at compile time
    changes no byte of what a customer gets compared with Jinja's own i18n extension."""
    from jinja2.ext import InternationalizationExtension

    from app.rendering import default_template, journeys, sandbox

    def all_rendered() -> dict[tuple[str, str, str], Any]:
        sandbox.environment.cache_clear()
        sandbox._compiled.cache_clear()
        return {(j.key, locale, category): render(replace(default_template(j.key), category=category),
                                                  sample_context(locale))
                for j in journeys() for locale in ("en", "ko", "ja") for category in ("transactional", "marketing")}

    ours = all_rendered()
    monkeypatch.setattr(sandbox.TranslatedAtCompile, "_make_node", InternationalizationExtension._make_node)
    try:
        jinjas = all_rendered()
    finally:
        monkeypatch.undo()
        sandbox.environment.cache_clear()
        sandbox._compiled.cache_clear()
    assert len(ours) == 6 * len(journeys()) and ours == jinjas
