"""Every Babel domain under app/translations (the admin, the customer-facing pages, the widget, loyalty,
referrals...) exists in English, Korean and Japanese with the same msgids, each translated, placeholders kept."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from app.i18n import LOCALES, ROOT

DOMAINS = sorted(p.stem for p in (ROOT / "en" / "LC_MESSAGES").glob("*.po"))
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w+\}")


def _catalog(language: str, domain: str) -> Catalog:
    path: Path = ROOT / language / "LC_MESSAGES" / f"{domain}.po"
    assert path.exists(), f"{domain}.po is missing for {language}"
    with path.open("rb") as f:
        return read_po(f, locale=language)


def _ids(catalog: Catalog) -> set[str]:
    return {str(m.id) for m in catalog if m.id}


def test_the_domains_include_the_customer_facing_ones() -> None:
    assert {"messages", "public", "loyalty"} <= set(DOMAINS)


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("language", [x for x in LOCALES if x != "en"])
def test_each_domain_is_translated_with_its_placeholders(domain: str, language: str) -> None:
    english, other = _catalog("en", domain), _catalog(language, domain)
    assert _ids(other) == _ids(english)
    for message in other:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings), f"{domain}/{language}: {ids[0]!r} has no translation"
        wanted = set(PLACEHOLDER.findall(ids[0]))
        for s in strings:
            assert set(PLACEHOLDER.findall(str(s))) == wanted, f"{domain}/{language}: {ids[0]!r} -> {s!r}"
