"""The storefront widget loads on every page of a store, so its script and stylesheet together stay under 30 KB
gzipped. Its words live in the Babel domain "widget" only: every label the script reads exists, every label
has its msgid in en, ko and ja, translated in ko and ja with the same placeholders, and the script carries no
English sentence of its own."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from app import storefront
from app.i18n import LOCALES, ROOT

WIDGET = Path(__file__).resolve().parents[2] / "static" / "widget"
SCRIPT = (WIDGET / "encore-widget.js").read_text(encoding="utf-8")
LIMIT = 30 * 1024


def test_script_and_stylesheet_together_are_under_30_kb_gzipped() -> None:
    raw = b"".join((WIDGET / name).read_bytes() for name in ("encore-widget.js", "encore-widget.css"))
    size = len(gzip.compress(raw, compresslevel=9))
    print(f"widget: {len(raw):,} bytes, {size:,} bytes gzipped (limit {LIMIT:,})")
    assert 0 < size < LIMIT


def _catalog(language: str) -> Catalog:
    with (ROOT / language / "LC_MESSAGES" / f"{storefront.DOMAIN}.po").open("rb") as f:
        return read_po(f, locale=language, domain=storefront.DOMAIN)


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"%\((\w+)\)s", text))


@pytest.mark.parametrize("language", LOCALES)
def test_each_catalog_has_exactly_the_widgets_msgids_translated_with_their_placeholders(language: str) -> None:
    cat = _catalog(language)
    messages = {str(m.id): str(m.string) for m in cat if m.id}
    assert set(messages) == set(storefront.LABELS.values())
    assert [m for m, errors in cat.check() if errors] == []
    for msgid, text in messages.items():
        assert text, f"{language}: {msgid!r} is untranslated"
        assert _placeholders(text) == _placeholders(msgid), (language, msgid, text)
        assert language == "en" or text != msgid, f"{language}: {msgid!r} is still English"


def test_the_labels_are_the_catalogs_words_in_the_shoppers_language() -> None:
    ko, ja, fallback = storefront.labels("ko-KR"), storefront.labels("ja_JP"), storefront.labels("fr")
    assert set(ko) == set(ja) == set(fallback) == set(storefront.LABELS)
    assert (ko["redeem"], ja["redeem"], fallback["redeem"]) == ("교환하기", "交換する", "Redeem")
    assert ko["value_percent"] == "%(percent)s%% 할인"  # the script fills the placeholders, not Python


def test_every_label_the_script_reads_exists() -> None:
    read = set(re.findall(r"\bt\(\"(\w+)\"\s*[,)]", SCRIPT))
    assert len(read) > 40
    assert read - set(storefront.LABELS) == set()
    # Keys read by prefix (ledger reasons, code statuses) cover what the data can name.
    assert {f"reason_{r}" for r in ("earned", "action", "bonus", "redeemed", "restored", "reversed", "expired",
                                    "adjusted")} <= set(storefront.LABELS)
    assert '"reason_" + e.reason' in SCRIPT and '"status_" + c.status' in SCRIPT


def test_the_script_has_no_english_words_of_its_own() -> None:
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", SCRIPT, flags=re.S)  # comments may be English
    literals = re.findall(r"\"((?:[^\"\\\n]|\\.)*)\"", code)
    assert "launcher" in literals and "use strict" in literals  # the literals are found
    sentences = [s for s in literals if re.search(r"[A-Za-z]{2,} [A-Za-z]{2,}", s)
                 and not s.startswith("enc-") and s != "use strict"]
    assert sentences == []
