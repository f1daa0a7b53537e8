"""Rendering a message: four parts (subject, HTML, plain text, SMS), each from its own template, in the sandbox."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Literal

from jinja2 import TemplateNotFound, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError

from app.rendering import sandbox
from app.rendering.context import Category, RenderContext
from app.rendering.data import default_currency, template_data
from app.rendering.formatting import Formatter
from app.rendering.sample import sample_context

Part = Literal["subject", "html", "text", "sms"]
PARTS: tuple[Part, ...] = ("subject", "html", "text", "sms")
KINDS: dict[Part, sandbox.Kind] = {"subject": "text", "html": "html", "text": "text", "sms": "text"}
MAX_SOURCE = 64 * 1024  # bytes of UTF-8 per part

_NO_FILTER = re.compile(r"No filter named '([^']+)'")
_BLANK_LINE = re.compile(r"\n[ \t]*(?=\n)")
_BLANK_RUN = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class TemplateSource:
    """A journey's message as the merchant edits it: four Jinja templates and what kind of message it is."""

    subject: str
    html: str
    text: str
    sms: str = ""
    category: Category = "transactional"
    journey: str = ""

    def part(self, name: Part) -> str:
        source: str = getattr(self, name)
        return source


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    html: str
    text: str
    sms: str


@dataclass(frozen=True)
class TemplateProblem:
    """Why a template cannot be saved (or sent): which part, which line of it (None: the part as a whole)."""

    part: Part
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.part if self.line is None else f"{self.part}, line {self.line}"
        return f"{where}: {self.message}"


class RenderError(Exception):
    """A template failed to render (or escaped its sandbox); `problem` says where and why."""

    def __init__(self, problem: TemplateProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def problem_from(part: Part, exc: BaseException) -> TemplateProblem:
    """An exception raised while compiling or rendering one part, as a problem with the part's own line."""
    own = sandbox.filename(part)
    line, elsewhere = _template_lines(exc.__traceback__, own)
    if isinstance(exc, TemplateSyntaxError):
        message = exc.message or "syntax error"
        missing = _NO_FILTER.fullmatch(message.rstrip("."))
        if missing and missing.group(1) in sandbox.REMOVED_FILTERS:
            message = f"the filter '{missing.group(1)}' is not available in message templates"
        elif missing:
            message = f"unknown filter '{missing.group(1)}'"
        if exc.name in (None, own):
            line, elsewhere = exc.lineno, None
        else:
            elsewhere = (exc.name, exc.lineno)
    elif isinstance(exc, SecurityError):
        message = f"not allowed in a message template: {exc}"
    elif isinstance(exc, UndefinedError):
        message = f"undefined: {exc.message}"
    elif isinstance(exc, TemplateNotFound):
        message = f"no template named '{exc.name}' (available: {', '.join(sandbox.LayoutLoader.NAMES)})"
    elif isinstance(exc, RecursionError):
        message = "too deeply nested (a macro or block calling itself?)"
    elif isinstance(exc, TypeError | ValueError | ArithmeticError | LookupError):
        message = str(exc) or type(exc).__name__
    else:
        message = f"{type(exc).__name__}: {exc}"
    if elsewhere is not None:
        message += f" (in {elsewhere[0]}, line {elsewhere[1]})"
    return TemplateProblem(part, line, message)


def _template_lines(tb: TracebackType | None, own: str) -> tuple[int | None, tuple[str, int] | None]:
    """The last line of the part's own template in a traceback, and a deeper layout's line if the error is there."""
    line: int | None = None
    deepest: tuple[str, int] | None = None
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name == own:
            line, deepest = tb.tb_lineno, None
        elif name in sandbox.LayoutLoader.NAMES:
            deepest = (name, tb.tb_lineno)
        tb = tb.tb_next
    return line, deepest


def render_part(part: Part, source: str, data: dict[str, Any], language: str) -> str:
    """One part, raw (not yet tidied); raises RenderError."""
    if len(source.encode("utf-8")) > MAX_SOURCE:
        raise RenderError(TemplateProblem(part, None, f"the template is larger than {MAX_SOURCE // 1024} KB"))
    try:
        template = sandbox.compiled(language, KINDS[part], part, source)
        return sandbox.generate(template, data)
    except RenderError:
        raise
    except Exception as exc:  # anything a template can raise becomes a problem with its line
        raise RenderError(problem_from(part, exc)) from exc


def tidy(part: Part, rendered: str) -> str:
    """Subjects: one trimmed line (anything else is refused). Text and SMS: trailing spaces and runs of blank
    lines removed. HTML: trimmed, empty lines removed (unless it has <pre> or <textarea>)."""
    if part == "subject":
        subject = rendered.strip()
        if "\n" in subject or "\r" in subject:
            raise RenderError(TemplateProblem("subject", None, "the subject renders to more than one line"))
        return subject
    if part == "html":
        html = rendered.strip()
        if "<pre" not in html and "<textarea" not in html:  # blank lines mean nothing elsewhere in HTML
            html = _BLANK_LINE.sub("", html)
        return html + "\n" if html else ""
    lines = [line.rstrip() for line in rendered.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    text = _BLANK_RUN.sub("\n\n", "\n".join(lines)).strip()
    return text + "\n" if text and part == "text" else text


def formatter(context: RenderContext) -> Formatter:
    return Formatter.for_customer(context.customer.locale, context.customer.timezone, default_currency(context))


def preview(template: TemplateSource, locale: str = "en", now: datetime | None = None) -> RenderedMessage:
    """The template rendered with the realistic sample data (`sample_context`) in a locale; raises RenderError."""
    return render(template, sample_context(locale, now))


def render(template: TemplateSource, context: RenderContext, parts: tuple[Part, ...] = PARTS) -> RenderedMessage:
    """The message for one customer: subject, HTML (autoescaped), plain text and SMS, in the customer's language,
    with money, numbers and dates in their locale and times in their timezone. Raises RenderError. `parts`
    limits the work to what a channel sends (an email needs no SMS text); the others are left empty."""
    fmt = formatter(context)
    token = sandbox.CURRENT.set(fmt)
    try:
        data = template_data(context, fmt, category=template.category, journey=template.journey)
        done: dict[Part, str] = dict.fromkeys(PARTS, "")
        for part in PARTS:
            if part not in parts and not (part == "subject" and "sms" in parts):  # an SMS may quote the subject
                continue
            done[part] = tidy(part, render_part(part, template.part(part), data, fmt.language))
            if part == "subject":
                data["message"]["subject"] = done["subject"]
        return RenderedMessage(done["subject"], done["html"], done["text"], done["sms"])
    finally:
        sandbox.CURRENT.reset(token)
