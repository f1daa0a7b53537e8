"""The journeys' catalogs cannot fall behind the default templates: every msgid the templates (and
app/rendering's Python) use is in en, ko and ja, translated in ko and ja, with the same placeholders."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from app.rendering import catalog

RENDERING = Path(catalog.__file__).parent


def _extracted() -> set[str]:
    """What `make journey-messages` extracts, with the same mapping (app/rendering/babel.cfg)."""
    with (RENDERING / "babel.cfg").open(encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)  # type: ignore[no-untyped-call]
    found = extract_from_dir(
        RENDERING, method_map, options_map,
        directory_filter=lambda path: not os.path.basename(path).startswith(".") and "__pycache__" not in path,
    )
    ids: set[str] = set()
    for _filename, _lineno, message, _comments, _context in found:
        ids.add(message[0] if isinstance(message, tuple) else message)
    return ids


EXTRACTED = _extracted()


def _catalog(language: str) -> Catalog:
    with catalog.po_path(language).open("rb") as f:
        return read_po(f, locale=language, domain=catalog.DOMAIN)


def _ids(cat: Catalog) -> set[str]:
    return {str(m.id[0] if isinstance(m.id, tuple) else m.id) for m in cat if m.id}


def test_extraction_finds_the_templates_and_python_strings() -> None:
    assert len(EXTRACTED) > 100
    assert {"Hi %(name)s,", "Thank you for your order %(number)s", "Unsubscribe", "%(percent)s off",
            "%(points)s point expires on %(date)s", "Reply STOP to opt out."} <= EXTRACTED


@pytest.mark.parametrize("language", catalog.LANGUAGES)
def test_each_catalog_has_exactly_the_extracted_msgids(language: str) -> None:
    ids = _ids(_catalog(language))
    assert EXTRACTED - ids == set(), "run `make journey-messages` and translate what is new"
    assert ids - EXTRACTED == set(), "stale msgids: run `make journey-messages`"


@pytest.mark.parametrize("language", ["ko", "ja"])
def test_every_msgid_has_a_translation_in_korean_and_japanese(language: str) -> None:
    cat = _catalog(language)
    untranslated = [
        m.id for m in cat
        if m.id and (m.fuzzy or not (all(m.string) if isinstance(m.string, tuple) else m.string))
    ]
    assert untranslated == []
    assert len([m for m in cat if m.id]) == len(EXTRACTED)


@pytest.mark.parametrize("language", catalog.LANGUAGES)
def test_translations_keep_their_placeholders(language: str) -> None:
    cat = _catalog(language)
    problems = [(m.id, [str(e) for e in errors]) for m, errors in cat.check()]
    assert problems == []
    for m in cat:
        if m.id and m.string and m.python_format:
            ids = m.id if isinstance(m.id, tuple) else (m.id,)
            strings = m.string if isinstance(m.string, tuple) else (m.string,)
            wanted = _placeholders(str(ids[0]))  # every translation shows every value (a lost %(url)s is a broken SMS)
            for text in filter(None, strings):  # an empty English msgstr falls back to the msgid
                assert _placeholders(str(text)) == wanted, (m.id, text)


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"%\((\w+)\)s", text))


def test_the_catalog_loader_compiles_in_memory() -> None:
    assert catalog.translations("ko-KR").gettext("Unsubscribe") == "수신 거부"
    assert catalog.translations("ja_JP").gettext("Unsubscribe") == "配信停止"
    assert catalog.translations("fr").gettext("Unsubscribe") == "Unsubscribe"
    assert catalog.language_of("KO") == "ko" and catalog.language_of(None) == "en"
