"""Babel catalogs (en, ko, ja) compiled in memory from the .po files under app/translations."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES = ("en", "ko", "ja")
ROOT = Path(__file__).parent / "translations"


def best_locale(locale: str | None) -> str:
    base = (locale or "en").replace("_", "-").split("-")[0].lower()
    return base if base in LOCALES else "en"


@cache
def translations(locale: str, domain: str = "messages") -> NullTranslations:
    """The catalog of one Babel domain: "messages" (the admin) or "public" (the customer-facing pages)."""
    path = ROOT / best_locale(locale) / "LC_MESSAGES" / f"{domain}.po"
    if not path.exists():
        return NullTranslations()
    with path.open("rb") as f:
        catalog = read_po(f, locale=best_locale(locale))
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)
