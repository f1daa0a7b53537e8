"""Message templates for the journeys engine: a typed render context, Jinja's immutable sandbox, Babel formatting
in the customer's locale and timezone, validation for merchants' edits, and the default journey library in
English, Korean and Japanese. Pure: no Flask, no SQLAlchemy.

    from app.rendering import journeys, default_template, render, validate

    for journey in journeys():              # the library: key, title, category, trigger, needs
        ...
    message = render(default_template("thank_you"), context)   # RenderedMessage(subject, html, text, sms)
    problems = validate(merchant_source, "ko")                  # [] or [TemplateProblem(part, line, message)]
"""

from app.rendering.catalog import LANGUAGES, language_of
from app.rendering.context import (
    Category,
    Checkout,
    CodeKind,
    Customer,
    DiscountCode,
    LineItem,
    Links,
    Order,
    Points,
    Recommendation,
    RenderContext,
    Shop,
    Tier,
    Tracking,
)
from app.rendering.library import Journey, default_template, journey, journeys
from app.rendering.render import (
    MAX_SOURCE,
    PARTS,
    Part,
    RenderedMessage,
    RenderError,
    TemplateProblem,
    TemplateSource,
    preview,
    render,
)
from app.rendering.sample import sample_context
from app.rendering.validate import validate

__all__ = [
    "LANGUAGES", "MAX_SOURCE", "PARTS", "Category", "Checkout", "CodeKind", "Customer", "DiscountCode", "Journey",
    "LineItem", "Links", "Order", "Part", "Points", "Recommendation", "RenderContext", "RenderError",
    "RenderedMessage", "Shop", "TemplateProblem", "TemplateSource", "Tier", "Tracking", "default_template",
    "journey", "journeys", "language_of", "preview", "render", "sample_context", "validate",
]
