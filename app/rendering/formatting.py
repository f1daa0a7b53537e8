"""Money, numbers, dates and names in the customer's locale and timezone, through Babel."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_skeleton, format_time, get_datetime_format
from babel.numbers import format_currency, format_decimal, format_percent

from app.rendering.catalog import language_of, translations

Width = Literal["short", "medium", "long", "full"]
WIDTHS: tuple[Width, ...] = ("short", "medium", "long", "full")
_SKELETON = re.compile(r"[GyYuUrQqMLlwWdDFgEecabBhHkKjJCmsSAzZOvVXx]{1,12}")
_CJK = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


class Amount(Decimal):
    """A Decimal that knows its currency, so `{{ order.total|money }}` needs no argument."""

    __slots__ = ("currency",)
    currency: str

    def __new__(cls, value: Decimal, currency: str) -> Amount:
        self = super().__new__(cls, value)
        self.currency = currency
        return self


@lru_cache(maxsize=512)
def babel_locale(locale: str | None) -> Locale:
    """The customer's locale as Babel knows it ("ko-KR", "ja_JP", "en"); English when Babel does not know it.
    One object per locale string, so the formatting caches below find theirs by identity."""
    try:
        return Locale.parse((locale or "en").replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse("en")


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def display_name(first: str | None, last: str | None, language: str) -> str | None:
    """How a message addresses the customer: the first name in English ("Jane"); the full name, family name
    first, in Korean ("김민지", followed by 고객님 in the copy) and Japanese ("山田 花子", followed by 様) when
    the name is written in Hangul or kanji/kana; given name first otherwise."""
    first, last = (first or "").strip(), (last or "").strip()
    if language in ("ko", "ja") and (first or last):
        if _CJK.search(first + last):
            return (last + first) if language == "ko" else " ".join(p for p in (last, first) if p)
        return " ".join(p for p in (first, last) if p) if language == "ja" else (first or last)
    return first or None


@lru_cache(maxsize=8192)
def _currency(amount: Decimal, code: str, locale: Locale) -> str:
    """Babel's currency formatting, remembered: a shop's prices repeat from message to message, and formatting
    one costs a pattern application each time (a fifth of rendering a message, measured)."""
    return str(format_currency(amount, code, locale=locale))


@lru_cache(maxsize=8192)
def _number(text: str, locale: Locale) -> str:
    """A number as the locale writes it, remembered by its exact text ("2", "2.50"): quantities repeat, and
    Babel's pattern application costs more than the rest of a line item."""
    return str(format_decimal(Decimal(text), locale=locale))


@lru_cache(maxsize=8192)
def _date(day: date, width: Width, locale: Locale) -> str:
    """A calendar day in one of the CLDR widths, remembered: an order's date appears in several parts."""
    return str(format_date(day, width, locale=locale))


@dataclass(frozen=True)
class Formatter:
    """Formats values for one message: Babel locale, timezone, the default currency, the catalog language."""

    locale: Locale
    tz: ZoneInfo
    currency: str
    language: str

    @classmethod
    def for_customer(cls, locale: str | None, timezone: str | None, currency: str) -> Formatter:
        return cls(babel_locale(locale), zone(timezone), currency, language_of(locale))

    def money(self, value: object, currency: str | None = None) -> str:
        amount = _decimal(value, "money")
        code = currency or (value.currency if isinstance(value, Amount) else None) or self.currency
        return _currency(amount, code, self.locale)

    def number(self, value: object) -> str:
        return _number(str(_decimal(value, "number")), self.locale)

    def percent(self, value: Decimal) -> str:
        return str(format_percent(value / 100, locale=self.locale))

    def local(self, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"cannot show a time without a timezone: {value.isoformat()}")
        return value.astimezone(self.tz)

    def date(self, value: object, format: str = "long") -> str:
        day = self.local(value) if isinstance(value, datetime) else value
        if not isinstance(day, date):
            raise TypeError(f"date: expected a date or time, got {_kind(value)}")
        if format in WIDTHS:
            return _date(day.date() if isinstance(day, datetime) else day, format, self.locale)
        if not _SKELETON.fullmatch(format):
            raise ValueError(f"date: unknown format {format!r} (use short, medium, long, full or a CLDR skeleton)")
        try:
            return str(format_skeleton(format, day, fuzzy=True, locale=self.locale))
        except KeyError:
            raise ValueError(f"date: unknown format {format!r}") from None

    def datetime(self, value: object, format: str = "long") -> str:
        if not isinstance(value, datetime):
            raise TypeError(f"datetime: expected a time, got {_kind(value)}")
        if format not in WIDTHS:
            raise ValueError(f"datetime: unknown format {format!r} (use short, medium, long or full)")
        moment = self.local(value)
        pattern = str(get_datetime_format(format, locale=self.locale)).replace("'", "")
        time = str(format_time(moment, "short", locale=self.locale))
        return pattern.replace("{0}", time).replace("{1}", self.date(moment, format))

    def offer(self, kind: str, value: Decimal | None, currency: str | None) -> str:
        """What a code gives, in words: "10% off", "₩5,000 할인", "送料無料"."""
        t = translations(self.language)
        if kind == "free_shipping":
            return t.gettext("free shipping")
        if kind == "percent" and value is not None:
            return t.gettext("%(percent)s off") % {"percent": self.percent(value)}
        if kind == "amount" and value is not None:
            return t.gettext("%(amount)s off") % {"amount": self.money(value, currency)}
        raise ValueError(f"unknown discount {kind!r}")


def _decimal(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise TypeError(f"{what}: expected a number, got {_kind(value)}")
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what}: {value!r} is not a number") from None


def _kind(value: object) -> str:
    return "nothing (None)" if value is None else type(value).__name__
