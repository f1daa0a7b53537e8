"""The Jinja environment merchants' templates run in: an immutable sandbox that sees only the given data.

- `ImmutableSandboxedEnvironment`: no attribute starting with `_`, no mutating methods, no unsafe callables.
  On top of that, plain values expose only a few harmless attributes (`str.upper`, `dict.items`...): a template
  formats data, it does not call methods that could build huge strings (`str.format`, `center`, `zfill`...).
- StrictUndefined: an unknown variable or attribute is an error, never a silent blank.
- Autoescape for HTML; plain text, subjects and SMS are not escaped (but sandboxed all the same).
- Filters: Jinja's own minus the ones that mark text safe, make links or pad text to any size (`safe`,
  `urlize`, `format`, `center`, `indent`, `wordwrap`, `batch`, `slice`, `attr`, `pprint`, `random`), plus
  `money`, `date`, `datetime` and `number` in the customer's locale and timezone.
- `*`, `**` and `%` are checked (no megabyte strings from `'x' * 10**9`), `range` stops at 1,000, and a part
  that renders to more than `MAX_OUTPUT` characters is cut off with an error.
- `{% trans %}` reads this package's `journeys` catalog for the customer's language (one environment per
  language); layouts and macros (`email.html`, `blocks.html`, `email.txt`, `blocks.txt`) come from
  `defaults/_layouts` and nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, MutableMapping
from contextvars import ContextVar
from datetime import date, datetime
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal

from jinja2 import BaseLoader, Environment, StrictUndefined, Template, TemplateNotFound, Undefined, nodes
from jinja2.environment import TemplateModule
from jinja2.exceptions import SecurityError
from jinja2.ext import InternationalizationExtension
from jinja2.runtime import Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.rendering.catalog import translations
from app.rendering.formatting import Amount, Formatter

Kind = Literal["html", "text"]

LAYOUTS = Path(__file__).parent / "defaults" / "_layouts"
MAX_RANGE = 1000
MAX_SEQUENCE = 100_000
MAX_OUTPUT = 1_000_000

REMOVED_FILTERS = frozenset(
    {"safe", "urlize", "format", "center", "indent", "wordwrap", "batch", "slice", "attr", "pprint", "random"}
)
REMOVED_GLOBALS = frozenset({"lipsum"})

_SAFE_ATTRIBUTES: dict[type, frozenset[str]] = {
    str: frozenset(
        {"upper", "lower", "title", "capitalize", "casefold", "strip", "lstrip", "rstrip", "split", "splitlines",
         "startswith", "endswith", "isdigit", "isalpha", "isspace", "join", "replace"}
    ),
    dict: frozenset({"items", "keys", "values", "get"}),
    list: frozenset({"index", "count"}),
    tuple: frozenset({"index", "count"}),
    Amount: frozenset({"currency"}),
    Decimal: frozenset(),
    bool: frozenset(),
    int: frozenset(),
    float: frozenset(),
    datetime: frozenset({"year", "month", "day", "hour", "minute", "isoformat", "weekday", "isoweekday"}),
    date: frozenset({"year", "month", "day", "isoformat", "weekday", "isoweekday"}),
}

# A printf width or precision of three digits or more ("%999999999s") in a gettext string: refused.
_WIDE_FORMAT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\d{3,}|\*|\d*\.(?:\d{3,}|\*))")

CURRENT: ContextVar[Formatter] = ContextVar("encore_rendering_formatter")


class LayoutLoader(BaseLoader):
    """Only the shared layouts and macros, by their short names; nothing else on disk is reachable."""

    NAMES = {"email.html": "email.html.j2", "blocks.html": "blocks.html.j2", "email.txt": "email.txt.j2",
             "blocks.txt": "blocks.txt.j2"}

    def get_source(self, environment: Environment, template: str) -> tuple[str, str | None, Callable[[], bool] | None]:
        file = self.NAMES.get(template)
        if file is None:
            raise TemplateNotFound(template)
        path = LAYOUTS / file
        source = path.read_text(encoding="utf-8")
        mtime = path.stat().st_mtime
        return source, template, lambda: path.stat().st_mtime == mtime

    def list_templates(self) -> list[str]:
        return sorted(self.NAMES)


class MessageSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})
    language = "en"  # the catalog `{% trans %}` reads (set by `environment`)

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals as one plain dict, not Jinja's ChainMap over the environment's: every render
        copies them into its context, and a ChainMap is walked key by key in Python to do it. The environment's
        globals are complete before its first template compiles (`environment`), so nothing is missed."""
        return dict(super().make_globals(d))

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`order.name` on the plain dicts of the render data reads the item at once (Jinja would first look
        for an attribute and catch the AttributeError, on every dot), and `b.lines` on an imported layout
        module its macro; anything else goes the sandbox's way. No key of the render data is the name of a
        dict method, and a module's public names are what it exports, so what a template sees is the same."""
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        if type(obj) is TemplateModule and not attribute.startswith("_"):
            macro = obj.__dict__.get(attribute)
            if type(macro) is Macro:  # `b.lines`: a macro the layouts export, nothing else
                return macro
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        for kind in type(obj).__mro__:
            allowed = _SAFE_ATTRIBUTES.get(kind)
            if allowed is not None:
                return attr in allowed
        return bool(super().is_safe_attribute(obj, attr, value))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805  (Jinja's own names)
        """A template's own macro (`b.lines(...)`) is called as it is: it is template code, with nothing unsafe
        to check and no context to pass; everything else goes through the sandbox's checks."""
        if type(__obj) is Macro:
            kwargs.pop("_block_vars", None)  # what Jinja adds for context functions (Context.call drops them too)
            kwargs.pop("_loop_vars", None)
            return __obj(*args, **kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja would hand out a sandboxed `str.format`; here it is refused like any other method (padding
        such as "{:999999999}" would build any size of string)."""
        return None

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%":
            if isinstance(left, str):
                raise SecurityError("the % operator on text is not allowed in message templates; use filters")
            return left % right
        if operator == "*":
            pairs: tuple[tuple[Any, Any], ...] = ((left, right), (right, left))
            for seq, times in pairs:
                if isinstance(seq, str | list | tuple) and isinstance(times, int) and len(seq) * times > MAX_SEQUENCE:
                    raise SecurityError(f"the result of * would be longer than {MAX_SEQUENCE:,} items")
            return left * right
        if operator == "**":
            numbers = int | float | Decimal
            if isinstance(right, numbers) and isinstance(left, numbers):
                if abs(Decimal(right)) > 64 or abs(Decimal(left)) > 10**6:
                    raise SecurityError("** is limited to exponents up to 64 and bases up to 1,000,000")
            return left**right
        return super().call_binop(context, operator, left, right)


def _range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise SecurityError(f"range() is limited to {MAX_RANGE:,} items in message templates")
    return rng


def _checked(text: str) -> str:
    if _WIDE_FORMAT.search(text):
        raise SecurityError("a width or precision of 100 or more in a translated string is not allowed")
    return text


def _finalize(value: Any) -> Any:
    """`{{ x }}` of None prints nothing (not "None"): an optional field left empty stays empty."""
    return "" if value is None else value


def _current() -> Formatter:
    try:
        return CURRENT.get()
    except LookupError:
        raise RuntimeError("message templates format values only inside render()") from None


def _defined(value: Any) -> Any:
    """An undefined value given to a filter fails as undefined ("no attribute 'totl'"), not as a wrong type."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


def money_filter(value: Any, currency: str | None = None) -> str:
    return _current().money(_defined(value), _defined(currency))


def date_filter(value: Any, format: str = "long") -> str:
    return _current().date(_defined(value), _defined(format))


def datetime_filter(value: Any, format: str = "long") -> str:
    return _current().datetime(_defined(value), _defined(format))


def number_filter(value: Any) -> str:
    return _current().number(_defined(value))


@lru_cache(maxsize=4096)
def _gettext(language: str, message: str) -> str:
    """The checked translation of one message: the same few dozen strings come up in every message rendered."""
    return _checked(str(translations(language).gettext(message)))


# What a translated `{% trans %}` text may hold to be laid out when the template compiles: %(name)s and %%.
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")
_ANY_PERCENT = re.compile(r"%")


class TranslatedAtCompile(InternationalizationExtension):
    """`{% trans %}` translated once, when the template compiles, instead of at every render.

    The environment is per language and its catalog never changes while the process runs, so a `{% trans %}`
    without a plural or a context is the translated text laid out as template data, with its `%(name)s`
    placeholders replaced by the block's own expressions (escaped in HTML like any other value), exactly what
    Jinja's newstyle gettext would produce, minus a call, a catalog lookup and a `%` per block per message.
    Anything else (plurals, pgettext, a translation with other `%` formats, an unknown placeholder, a text
    refused by the width check) keeps Jinja's own node and is checked when it renders."""

    def _make_node(self, singular: str, plural: str | None, context: str | None, variables: dict[str, nodes.Expr],
                   plural_expr: nodes.Expr | None, vars_referenced: bool, num_called_num: bool) -> nodes.Output:
        jinja = super()._make_node(singular, plural, context, variables, plural_expr, vars_referenced, num_called_num)
        if plural is not None or context is not None or plural_expr is not None:
            return jinja
        try:
            text = _gettext(getattr(self.environment, "language", "en"), singular)
        except SecurityError:
            return jinja
        pieces: list[nodes.Expr] = []
        at = 0
        for m in _PLACEHOLDER.finditer(text):
            literal = text[at:m.start()]
            if _ANY_PERCENT.search(literal) or (m.group(1) is not None and m.group(1) not in variables):
                return jinja
            pieces.append(nodes.TemplateData(literal + ("%" if m.group(1) is None else "")))
            if m.group(1) is not None:
                pieces.append(variables[m.group(1)])
            at = m.end()
        if _ANY_PERCENT.search(text[at:]):
            return jinja
        pieces.append(nodes.TemplateData(text[at:]))
        return nodes.Output([p for p in pieces if not (isinstance(p, nodes.TemplateData) and not p.data)],
                            lineno=jinja.lineno)


@cache
def environment(language: str, kind: Kind) -> MessageSandbox:
    """The sandbox for one catalog language and one kind of output (HTML is autoescaped, text is not)."""
    env = MessageSandbox(
        undefined=StrictUndefined,
        autoescape=kind == "html",
        extensions=[TranslatedAtCompile],
        loader=LayoutLoader(),
        trim_blocks=False,  # a line ending in {% endtrans %} keeps its line break in plain text
        lstrip_blocks=True,
        auto_reload=False,
        finalize=_finalize,
    )
    env.policies["ext.i18n.trimmed"] = True
    env.language = language
    t = translations(language)
    env.install_gettext_callables(  # type: ignore[attr-defined]  # added by jinja2.ext.i18n
        gettext=lambda s: _gettext(language, s),
        ngettext=lambda s, p, n: _checked(str(t.ngettext(s, p, n))),
        pgettext=lambda c, s: _checked(str(t.pgettext(c, s))),
        npgettext=lambda c, s, p, n: _checked(str(t.npgettext(c, s, p, n))),
        newstyle=True,
    )
    for name in REMOVED_FILTERS:
        env.filters.pop(name, None)
    for name in REMOVED_GLOBALS:
        env.globals.pop(name, None)
    env.globals["range"] = _range
    env.filters.update(money=money_filter, date=date_filter, datetime=datetime_filter, number=number_filter)
    return env


def filename(part: str) -> str:
    """The name a merchant's part compiles under; tracebacks and errors point at it."""
    return f"<{part}>"


@lru_cache(maxsize=256)
def _compiled(language: str, kind: Kind, part: str, source: str) -> Template:
    env = environment(language, kind)
    code = env.compile(source, name=filename(part), filename=filename(part))
    return env.template_class.from_code(env, code, env.make_globals(None), None)


def compiled(language: str, kind: Kind, part: str, source: str) -> Template:
    return _compiled(language, kind, part, source)


def generate(template: Template, data: dict[str, Any]) -> str:
    """Render, refusing output beyond MAX_OUTPUT characters as it grows (not after the fact)."""
    size, chunks = 0, []
    stream: Iterator[str] = template.generate(data)
    for chunk in stream:
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise SecurityError(f"the message would be longer than {MAX_OUTPUT:,} characters")
        chunks.append(chunk)
    return "".join(chunks)
