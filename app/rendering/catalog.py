"""The journeys' own Babel catalogs (domain `journeys`, en/ko/ja), compiled in memory from the .po files.

Kept apart from the admin's catalogs (app/translations, domain `messages`): customers' messages and merchants'
screens change at different paces and are translated by different people. `make journey-messages` extracts the
msgids from the default templates (and this package's Python) and updates the three catalogs.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

DOMAIN = "journeys"
LANGUAGES = ("en", "ko", "ja")
ROOT = Path(__file__).parent / "translations"


def language_of(locale: str | None) -> str:
    """The catalog language for a customer's locale: en, ko or ja (English for any other)."""
    base = (locale or "en").replace("_", "-").split("-")[0].lower()
    return base if base in LANGUAGES else "en"


def po_path(language: str) -> Path:
    return ROOT / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(language: str) -> NullTranslations:
    path = po_path(language_of(language))
    if not path.exists():
        return NullTranslations()
    with path.open("rb") as f:
        catalog = read_po(f, locale=language_of(language), domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)
