"""The default journey library rendered for real: every journey in English, Korean and Japanese with the sample
context, the fields each one promises, money and dates as Babel formats them in the customer's locale and
timezone, autoescaping, and the library's metadata."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel import Locale
from babel.dates import format_date, format_time
from babel.numbers import format_currency, format_decimal
from markupsafe import escape

from app.rendering import (
    Checkout,
    Customer,
    DiscountCode,
    Journey,
    LineItem,
    Links,
    RenderContext,
    RenderedMessage,
    Shop,
    TemplateSource,
    default_template,
    journey,
    journeys,
    preview,
    render,
    sample_context,
    validate,
)
from app.rendering.data import template_data
from app.rendering.formatting import Amount
from app.rendering.render import formatter

LOCALES = ("en", "ko", "ja")
KEYS = [j.key for j in journeys()]


def babel_locale(context: RenderContext) -> Locale:
    return Locale.parse(context.customer.locale.replace("-", "_"))


def money(context: RenderContext, amount: Decimal, currency: str) -> str:
    return str(format_currency(amount, currency, locale=babel_locale(context)))


def day(context: RenderContext, moment: datetime) -> str:
    return str(format_date(moment.astimezone(ZoneInfo(context.customer.timezone)), "long", locale=babel_locale(context)))


def number(context: RenderContext, value: int) -> str:
    return str(format_decimal(value, locale=babel_locale(context)))


def offer(context: RenderContext) -> str:
    assert context.code is not None
    data = template_data(context, formatter(context))
    description: str = data["code"]["description"]
    return description


# What each default journey promises to show, as the strings its HTML and text must contain.
def _thank_you(c: RenderContext) -> list[str]:
    assert c.order is not None and c.order.status_url
    return [c.order.name, *(line.title for line in c.order.lines), money(c, c.order.total, c.order.currency),
            money(c, c.order.lines[0].total, c.order.currency), day(c, c.order.created_at), c.order.status_url,
            c.recommendations[0].title]


def _shipped(c: RenderContext) -> list[str]:
    assert c.order is not None and c.order.tracking is not None
    tracking = c.order.tracking
    assert tracking.company and tracking.number and tracking.url
    return [c.order.name, tracking.company, tracking.number, tracking.url]


def _delivered(c: RenderContext) -> list[str]:
    assert c.order is not None
    return [c.order.name, c.shop.support_email, *(line.guide_url or "" for line in c.order.lines)]


def _survey(c: RenderContext) -> list[str]:
    assert c.order is not None and c.links.survey
    return [c.order.name, c.links.survey, c.shop.support_email, offer(c)]


def _review(c: RenderContext) -> list[str]:
    assert c.order is not None and c.links.review
    return [c.links.review, *(line.title for line in c.order.lines)]


def _abandoned(c: RenderContext) -> list[str]:
    assert c.checkout is not None and c.code is not None and c.links.unsubscribe
    return [*(line.title for line in c.checkout.lines), c.checkout.recovery_url, c.code.code, offer(c),
            money(c, c.checkout.lines[0].unit_price, c.shop.currency), c.links.unsubscribe]


def _replenishment(c: RenderContext) -> list[str]:
    assert c.order is not None and c.code is not None and c.links.unsubscribe
    return [c.order.lines[0].title, c.order.lines[0].product_url or "", c.code.code, c.links.unsubscribe]


def _birthday(c: RenderContext) -> list[str]:
    assert c.code is not None and c.code.expires_at is not None and c.links.unsubscribe
    return [c.code.code, offer(c), day(c, c.code.expires_at), c.links.unsubscribe]


def _anniversary(c: RenderContext) -> list[str]:
    assert c.order is not None and c.code is not None and c.links.referral and c.links.unsubscribe
    return [day(c, c.order.created_at), c.code.code, c.links.referral, c.links.unsubscribe]


def _win_back(c: RenderContext) -> list[str]:
    assert c.code is not None and c.links.unsubscribe
    return [*(r.title for r in c.recommendations), c.code.code, c.links.unsubscribe]


def _points(c: RenderContext) -> list[str]:
    assert c.points is not None and c.points.expires_at is not None
    return [number(c, c.points.balance), number(c, c.points.expiring), day(c, c.points.expires_at)]


def _tier(c: RenderContext) -> list[str]:
    assert c.tier is not None and c.tier.old is not None
    return [c.tier.old, c.tier.new, *c.tier.perks]


def _invite(c: RenderContext) -> list[str]:
    assert c.order is not None and c.links.review and c.links.referral
    return [c.order.name, c.links.review, c.links.referral, *(line.title for line in c.order.lines)]


PROMISES: dict[str, Callable[[RenderContext], list[str]]] = {
    "thank_you": _thank_you, "shipped": _shipped, "delivered": _delivered, "survey": _survey,
    "review_request": _review, "abandoned_cart": _abandoned, "replenishment": _replenishment,
    "birthday": _birthday, "anniversary": _anniversary, "win_back": _win_back, "points_expiry": _points,
    "vip_tier": _tier, "review_invite": _invite,
}


def test_the_library_is_the_twelve_journeys_of_the_issue_and_the_survey_invitation() -> None:
    assert KEYS == ["thank_you", "shipped", "delivered", "survey", "review_request", "abandoned_cart",
                    "replenishment", "birthday", "anniversary", "win_back", "points_expiry", "vip_tier",
                    "review_invite"]
    assert set(PROMISES) == set(KEYS)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("key", KEYS)
def test_every_default_renders_with_what_it_promises(key: str, locale: str) -> None:
    context = sample_context(locale)
    message = render(default_template(key), context)
    assert message.subject and "\n" not in message.subject
    assert message.html.startswith("<!DOCTYPE html>") and message.text and message.sms
    assert context.customer.first_name
    assert escape(context.customer.first_name) in message.html and context.customer.first_name in message.text
    for expected in PROMISES[key](context):
        assert expected, key
        assert escape(expected) in message.html, (key, locale, expected)
        assert expected in message.text, (key, locale, expected)
    assert "None" not in message.text and "None" not in message.sms


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("key", KEYS)
def test_every_default_passes_its_own_validation(key: str, locale: str) -> None:
    assert validate(default_template(key), locale) == []


def test_korean_and_japanese_copy_is_translated_not_english() -> None:
    en, ko, ja = (render(default_template("thank_you"), sample_context(loc)) for loc in LOCALES)
    assert en.subject == "Thank you for your order #1001"
    assert ko.subject == "주문해 주셔서 감사합니다 (주문 번호 #1001)"
    assert ja.subject == "ご注文ありがとうございます（ご注文番号 #1001）"
    assert "김민지 고객님, 안녕하세요." in ko.text  # family name first, with 고객님
    assert "山田 花子 様" in ja.text  # family name first, with 様
    assert "Thank you" not in ko.html and "Thank you" not in ja.html
    assert '<html lang="ko">' in ko.html and '<html lang="ja">' in ja.html


def test_money_is_formatted_by_babel_in_the_customers_locale() -> None:
    for locale, total in (("en", "$66.50"), ("ko", "₩63,000"), ("ja", "￥6,600")):
        context = sample_context(locale)
        assert context.order is not None
        expected = money(context, context.order.total, context.order.currency)
        assert expected == total  # what Babel produces (CLDR) for these sample orders
        assert expected in render(default_template("thank_you"), context).text
    # A Korean customer of a store that sells in US dollars: Babel's Korean format for USD.
    korean = sample_context("ko")
    assert korean.order is not None
    usd = replace(korean, order=replace(korean.order, currency="USD", total=Decimal("12.50")))
    text = render(default_template("thank_you"), usd).text
    assert money(usd, Decimal("12.50"), "USD") in text
    assert str(format_currency(Decimal("12.50"), "USD", locale="ko_KR")) in text


def test_a_utc_time_lands_on_the_local_date_of_the_customers_timezone() -> None:
    placed = datetime(2025, 3, 5, 20, 30, tzinfo=UTC)  # 05:30 on 6 March in Seoul, 12:30 on 5 March in LA
    source = TemplateSource(subject="x", html="x", text="{{ order.created_at|date }}|{{ order.created_at|datetime }}")
    results = {}
    for tz in ("Asia/Seoul", "America/Los_Angeles"):
        context = sample_context("en")
        assert context.order is not None
        context = replace(context, customer=replace(context.customer, timezone=tz),
                          order=replace(context.order, created_at=placed))
        results[tz] = render(source, context).text.strip()
        local = placed.astimezone(ZoneInfo(tz))
        date_part, time_part = results[tz].split("|")
        assert date_part == format_date(local, "long", locale="en_US")
        assert format_time(local, "short", locale="en_US") in time_part
    assert results["Asia/Seoul"].startswith("March 6, 2025|")
    assert results["America/Los_Angeles"].startswith("March 5, 2025|")
    # The same through a default journey, in Korean.
    korean = sample_context("ko")
    assert korean.order is not None
    for tz, shown in (("Asia/Seoul", "2025년 3월 6일"), ("America/Los_Angeles", "2025년 3월 5일")):
        context = replace(korean, customer=replace(korean.customer, timezone=tz),
                          order=replace(korean.order, created_at=placed))
        assert f"주문일: {shown}" in render(default_template("thank_you"), context).text


def test_filters_take_explicit_currencies_formats_and_plain_numbers() -> None:
    source = TemplateSource(
        subject="x", html="x",
        text="{{ 12.5|money('EUR') }}|{{ order.total|money }}|{{ 1234567|number }}|{{ order.created_at|date('short') }}"
             "|{{ order.created_at|date('MMMd') }}",
    )
    context = sample_context("ja")
    assert context.order is not None
    parts = render(source, context).text.strip().split("|")
    local = context.order.created_at.astimezone(ZoneInfo("Asia/Tokyo"))
    assert parts[0] == format_currency(Decimal("12.5"), "EUR", locale="ja_JP")
    assert parts[1] == format_currency(context.order.total, "JPY", locale="ja_JP")
    assert parts[2] == format_decimal(1234567, locale="ja_JP") == "1,234,567"
    assert parts[3] == format_date(local, "short", locale="ja_JP")
    assert parts[4] == f"{local.month}月{local.day}日"


def test_a_code_is_described_in_the_customers_language() -> None:
    expires = datetime(2025, 7, 1, tzinfo=UTC)
    cases = [
        ("ko", DiscountCode("A1", "amount", Decimal("5000"), expires), f"{format_currency(5000, 'KRW', locale='ko_KR')} 할인"),
        ("ja", DiscountCode("A1", "free_shipping", None, expires), "送料無料"),
        ("en", DiscountCode("A1", "percent", Decimal("15"), expires), "15% off"),
        ("en", DiscountCode("A1", "amount", Decimal("5"), expires, currency="EUR"), "€5.00 off"),
    ]
    for locale, code, expected in cases:
        context = replace(sample_context(locale), code=code)
        assert offer(context) == expected
        assert expected in render(default_template("birthday"), context).text


def test_a_customers_name_is_escaped_in_html_and_raw_in_text_and_sms() -> None:
    attack = "<script>alert(1)</script>"
    for locale in LOCALES:
        context = sample_context(locale)
        context = replace(context, customer=replace(context.customer, first_name=attack, last_name="Doe"))
        message = render(default_template("thank_you"), context)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in message.html
        assert "<script" not in message.html
        assert attack in message.text and attack in message.sms


def test_links_come_only_from_the_context_escaped_and_only_http() -> None:
    context = sample_context("en")
    assert context.order is not None
    lines = (
        replace(context.order.lines[0], product_url='https://shop.example.com/p?a=1&b="><script>x</script>'),
        replace(context.order.lines[1], product_url="javascript:alert(1)", image_url="data:image/png;base64,AAAA"),
    )
    context = replace(context, order=replace(context.order, lines=lines))
    message = render(default_template("thank_you"), context)
    assert 'href="https://shop.example.com/p?a=1&amp;b=&#34;&gt;&lt;script&gt;x&lt;/script&gt;"' in message.html
    assert "javascript:" not in message.html and "data:image" not in message.html
    assert "javascript:" not in message.text


def test_templates_see_plain_data_only() -> None:
    context = sample_context("en")
    data = template_data(context, formatter(context))

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            assert all(isinstance(k, str) and not k.startswith("_") for k in value)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        else:
            assert value is None or type(value) in (str, int, bool, Decimal, Amount, datetime, date), value

    walk(data)
    assert data["order"]["total"] == Decimal("66.50") and data["order"]["total"].currency == "USD"


def minimal_context(item: Journey, locale: str) -> RenderContext:
    """Only what the journey needs; every optional part empty (no names, logo, address, images, tracking...)."""
    full = sample_context(locale)
    needs = set(item.needs)
    bare = [replace(line, variant=None, product_url=None, image_url=None, guide_url=None) for line in
            (full.order.lines if full.order else ())]
    order = replace(full.order, tracking=None, status_url=None, lines=tuple(bare)) if "order" in needs and full.order else None
    checkout = None
    if "checkout" in needs and full.checkout:
        checkout = Checkout(lines=(LineItem("Gift card", 1, Decimal("25"), Decimal("25")),),
                            recovery_url=full.checkout.recovery_url)
    links = Links(**{f.name: getattr(full.links, f.name) for f in fields(Links) if f"links.{f.name}" in needs})
    tier = replace(full.tier, old=None, perks=()) if "tier" in needs and full.tier else None
    return RenderContext(
        shop=Shop(name=full.shop.name, currency=full.shop.currency, support_email=full.shop.support_email,
                  url=full.shop.url),
        customer=Customer(locale=full.customer.locale, timezone=full.customer.timezone),
        order=order, checkout=checkout, links=links, points=full.points if "points" in needs else None, tier=tier,
    )


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("key", KEYS)
def test_every_default_renders_with_only_what_its_journey_needs(key: str, locale: str) -> None:
    item = journey(key)
    context = minimal_context(item, locale)
    assert item.missing(context) == []
    message = render(default_template(key), context)
    assert message.subject and message.html and message.text and message.sms
    assert "None" not in message.text and 'href=""' not in message.html


def test_marketing_mail_carries_the_unsubscribe_footer_and_transactional_mail_does_not() -> None:
    context = sample_context("en")
    assert context.links.unsubscribe and context.links.preferences
    for item in journeys():
        message = render(default_template(item.key), context)
        marketing = item.category == "marketing"
        assert (escape(context.links.unsubscribe) in message.html) is marketing, item.key
        assert (context.links.unsubscribe in message.text) is marketing, item.key
        assert (escape(context.links.preferences) in message.html) is marketing, item.key
        assert ("Reply STOP to opt out." in message.sms) is marketing, item.key
        assert marketing is ("links.unsubscribe" in item.needs), item.key
    assert "(광고)" in render(default_template("win_back"), sample_context("ko")).subject  # Korean law for ads


def test_journey_metadata_describes_triggers_the_engine_can_schedule() -> None:
    survey = journey("survey")
    assert (survey.category, survey.trigger["event"]) == ("transactional", "OrderDelivered")
    assert (survey.delay.days, survey.latest is not None and survey.latest.days) == (3, 5)
    assert journey("thank_you").trigger["event"] == "OrderPaid" and journey("thank_you").delay.total_seconds() == 0
    assert journey("points_expiry").delay.days == -14  # 14 days before the points expire
    assert {j.key for j in journeys() if j.category == "marketing"} == {
        "abandoned_cart", "replenishment", "birthday", "anniversary", "win_back"}
    assert all(j.title and j.description and ("event" in j.trigger) != ("schedule" in j.trigger) for j in journeys())
    empty = RenderContext(shop=sample_context().shop, customer=Customer())
    assert journey("shipped").missing(empty) == ["order"]
    assert journey("survey").missing(replace(empty, order=sample_context().order)) == ["links.survey"]


def test_a_downgrade_is_announced_without_congratulations() -> None:
    context = sample_context("en")
    assert context.tier is not None
    message = render(default_template("vip_tier"), replace(context, tier=replace(context.tier, upgraded=False)))
    assert message.subject == "Your membership level is now Gold"
    assert "Congratulations" not in message.text


def test_preview_renders_the_sample_in_a_locale_and_other_locales_fall_back_to_english_copy() -> None:
    message = preview(default_template("shipped"), "ja")
    assert isinstance(message, RenderedMessage) and "ヤマト運輸" in message.text
    french = preview(default_template("thank_you"), "fr-FR")
    assert french.subject == "Thank you for your order #1001"
    assert format_currency(Decimal("66.50"), "USD", locale="fr_FR") in french.text  # numbers in the customer's locale


def test_an_unknown_timezone_or_locale_falls_back_instead_of_failing() -> None:
    context = sample_context("en")
    odd = replace(context, customer=replace(context.customer, locale="xx-??", timezone="Mars/Olympus_Mons"))
    message = render(default_template("thank_you"), odd)
    assert message.subject == "Thank you for your order #1001" and "$66.50" in message.text


def test_the_package_is_pure_jinja_and_babel() -> None:
    import ast
    import sys
    from pathlib import Path

    import app.rendering

    allowed = set(sys.stdlib_module_names) | {"jinja2", "babel", "markupsafe", "app"}
    for path in Path(app.rendering.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] in allowed, (path.name, name)
                assert not name.startswith("app.") or name.startswith("app.rendering"), (path.name, name)


def test_a_recommendation_without_a_usable_link_is_left_out() -> None:
    context = sample_context("en")
    picks = (replace(context.recommendations[0], url="javascript:alert(1)"), *context.recommendations[1:])
    message = render(default_template("win_back"), replace(context, recommendations=picks))
    assert context.recommendations[0].title not in message.text
    assert context.recommendations[1].title in message.text and "javascript:" not in message.html
