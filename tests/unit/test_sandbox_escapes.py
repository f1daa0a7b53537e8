"""The known Jinja sandbox escapes beyond those in test_rendering_sandbox.py: each is refused by `validate` (what
the admin API runs when a journey is saved or previewed) and raises RenderError when rendered, so a template
saved before a rule tightened still cannot reach Python objects, the app's settings or its secrets."""

from __future__ import annotations

from dataclasses import replace

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from app.rendering import RenderError, TemplateSource, render, sample_context, validate

BASE = TemplateSource(subject="Hello", html="<p>Hi</p>", text="Hi", sms="Hi")

ESCAPES = [
    # (expression, a word the refusal names, what rendering raises underneath)
    ("{{ ''.format }}", "format", SecurityError),
    ("{{ ''.format_map }}", "format_map", SecurityError),
    ("{{ 'a{0.__class__}'.format(shop) }}", "format", SecurityError),
    ("{{ '{0.__globals__}'.format_map({}) }}", "format_map", SecurityError),
    ("{{ lipsum.__globals__ }}", "lipsum", UndefinedError),
    ("{{ lipsum.__globals__['os'] }}", "lipsum", UndefinedError),
    ("{{ joiner.__init__.__globals__ }}", "__init__", SecurityError),
    ("{{ namespace.__init__.__globals__ }}", "__init__", SecurityError),
    ("{% set x = namespace(a=cycler) %}{{ x.a.__init__ }}", "__init__", SecurityError),
    ("{% set x = namespace() %}{{ x._Namespace__attrs }}", "_Namespace__attrs", SecurityError),
    ("{% set x = namespace(s=shop.name) %}{{ x.s.__class__.__base__.__subclasses__() }}", "__class__", SecurityError),
    ("{{ shop.items().__class__ }}", "__class__", SecurityError),
    ("{{ ''.replace.__self__ }}", "__self__", SecurityError),
    ("{{ self.__dict__ }}", "__dict__", SecurityError),
    ("{{ self._TemplateReference__context.parent }}", "_TemplateReference__context", SecurityError),
    ("{{ shop.settings }}", "settings", UndefinedError),
    ("{{ shop.secret_key }}", "secret_key", UndefinedError),
    ("{{ settings.secret_key }}", "settings", UndefinedError),
    ("{{ config.SECRET_KEY }}", "config", UndefinedError),
    ("{{ g }}", "'g'", UndefinedError),
    ("{{ url_for('admin.index') }}", "url_for", UndefinedError),
]


@pytest.mark.parametrize("part", ["html", "text", "sms"])
@pytest.mark.parametrize(("expression", "named", "raised"), ESCAPES)
def test_escape_is_refused_when_saved_and_when_rendered(part: str, expression: str, named: str,
                                                        raised: type[Exception]) -> None:
    source = replace(BASE, **{part: f"Hi\n{expression}"})
    problems = validate(source, "en")
    assert problems and all(p.part == part and p.line == 2 for p in problems), problems
    assert any(named in p.message for p in problems), problems
    with pytest.raises(RenderError) as caught:
        render(source, sample_context("en"))
    assert caught.value.problem.part == part and caught.value.problem.line == 2
    assert isinstance(caught.value.__cause__, raised)


def test_a_namespace_cannot_write_into_the_data_a_template_is_given() -> None:
    """`namespace` is the one object a template may assign attributes on; it copies what it is given, so the
    render data stays as it was and the sandbox still refuses a method that would mutate it."""
    source = replace(BASE, text="{% set ns = namespace(name=shop.name) %}{% set ns.name = 'X' %}{{ ns.name }}"
                                "|{{ shop.name }}")
    assert validate(source, "en") == []
    context = sample_context("en")
    rendered = render(source, context)
    assert rendered.text.strip() == f"X|{context.shop.name}"
    mutating = replace(BASE, text="{% set ns = namespace(d=shop) %}{{ ns.d.update({'name': 'X'}) }}")
    assert any("unsafe" in p.message or "not allowed" in p.message for p in validate(mutating, "en"))
