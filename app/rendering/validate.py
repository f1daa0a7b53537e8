"""Checking a merchant's template when it is saved: every problem, with its part and line, before any customer
could receive it.

Per part: the size limit; syntax (with Jinja's line); then, on the parsed tree (so that branches the sample
data never takes are checked too), names starting with `_` and variables that are not in the render context;
unknown filters and tests (at compile time); and last a render against the realistic sample context with
StrictUndefined, in the sandbox, which finds misspelt attributes (`order.totl`), sandbox violations and filter
errors. The subject must render to one non-empty line; HTML and text must not be empty; SMS may be (no SMS).
"""

from __future__ import annotations

from collections.abc import Mapping

from jinja2 import TemplateSyntaxError, meta, nodes

from app.rendering import sandbox
from app.rendering.catalog import language_of
from app.rendering.data import VARIABLES, template_data
from app.rendering.render import (
    KINDS,
    MAX_SOURCE,
    PARTS,
    Part,
    RenderError,
    TemplateProblem,
    TemplateSource,
    formatter,
    problem_from,
    render_part,
    tidy,
)
from app.rendering.sample import sample_context

# Names Jinja itself provides inside blocks, loops and macros.
_JINJA_NAMES = frozenset({"self", "super", "loop", "caller", "varargs", "kwargs"})


def static_problems(part: Part, source: str, language: str) -> list[TemplateProblem]:
    """What can be found without rendering: size, syntax, private names, unknown variables, filters and tests."""
    if len(source.encode("utf-8")) > MAX_SOURCE:
        return [TemplateProblem(part, None, f"the template is larger than {MAX_SOURCE // 1024} KB")]
    env = sandbox.environment(language, KINDS[part])
    try:
        tree = env.parse(source, name=sandbox.filename(part), filename=sandbox.filename(part))
    except (TemplateSyntaxError, RecursionError) as exc:
        return [problem_from(part, exc)]
    problems: list[TemplateProblem] = []
    names: list[tuple[int, str | None]] = [(n.lineno, n.attr) for n in tree.find_all(nodes.Getattr)]
    names += [(n.lineno, _constant(n.arg)) for n in tree.find_all(nodes.Getitem)]
    for line, name in names:
        if name is not None and name.startswith("_"):
            problems.append(TemplateProblem(
                part, line, f"not allowed in a message template: '{name}' (names starting with _ are private)"
            ))
    try:
        sandbox.compiled(language, KINDS[part], part, source)
        undeclared = meta.find_undeclared_variables(tree)
    except (TemplateSyntaxError, RecursionError) as exc:  # TemplateAssertionError: an unknown filter or test
        return sorted([*problems, problem_from(part, exc)], key=lambda p: (p.line or 0, p.message))
    for name in sorted(undeclared - _known(env.globals, tree), key=lambda n: (_first_use(tree, n), n)):
        problems.append(TemplateProblem(part, _first_use(tree, name), f"unknown variable '{name}'"))
    return sorted(problems, key=lambda p: (p.line or 0, p.message))


def _known(globals_: Mapping[str, object], tree: nodes.Template) -> set[str]:
    """The context's variables, the sandbox's globals, Jinja's own names, and whatever the template itself
    names anywhere (`{% set %}`, `{% import ... as b %}`, macros): those at the top of a child template are
    visible in its blocks at run time, though Jinja's static analysis does not count them."""
    own = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    own |= {n.target for n in tree.find_all(nodes.Import)}
    own |= {alias if isinstance(alias, str) else alias[1] for n in tree.find_all(nodes.FromImport) for alias in n.names}
    own |= {n.name for n in tree.find_all(nodes.Macro)}
    return set(VARIABLES) | set(globals_) | _JINJA_NAMES | own


def _constant(node: nodes.Node) -> str | None:
    return node.value if isinstance(node, nodes.Const) and isinstance(node.value, str) else None


def _first_use(tree: nodes.Template, name: str) -> int:
    lines = [n.lineno for n in tree.find_all(nodes.Name) if n.name == name and n.ctx == "load"]
    return min(lines, default=1)


def validate(source: TemplateSource, locale: str) -> list[TemplateProblem]:
    """Every problem in a template, or [] when it can be saved. Nothing runs outside the sandbox."""
    context = sample_context(locale)
    fmt = formatter(context)
    language = language_of(locale)
    problems: list[TemplateProblem] = []
    token = sandbox.CURRENT.set(fmt)
    try:
        data = template_data(context, fmt, category=source.category, journey=source.journey)
        for part in PARTS:
            found = static_problems(part, source.part(part), language)
            if found:
                problems.extend(found)
                continue
            try:
                rendered = tidy(part, render_part(part, source.part(part), data, language))
            except RenderError as exc:
                problems.append(exc.problem)
                continue
            if part == "subject":
                data["message"]["subject"] = rendered
            if not rendered and part != "sms":
                problems.append(TemplateProblem(part, None, f"the {part} is empty"))
    finally:
        sandbox.CURRENT.reset(token)
    return problems
