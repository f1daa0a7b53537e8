"""Realistic sample data for previews and for validating a merchant's template: every part of the context filled,
in the customer's language (English, Korean or Japanese; English data for any other locale)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.rendering.catalog import language_of
from app.rendering.context import (
    Checkout,
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

SAMPLE_NOW = datetime(2025, 6, 12, 1, 30, tzinfo=UTC)
SITE = "https://shop.example.com"
CDN = "https://cdn.example.com/images"


@dataclass(frozen=True)
class _Copy:
    shop: str
    currency: str
    address: str
    first: str
    last: str
    locale: str
    timezone: str
    code: str
    bought: tuple[tuple[str, str, int, str], ...]  # title, variant, quantity, unit price
    left: tuple[tuple[str, str, int, str], ...]
    picks: tuple[tuple[str, str], ...]  # title, price
    carrier: str
    tracking: str
    tiers: tuple[str, str]
    perks: tuple[str, ...]
    shipping: str


_COPY = {
    "en": _Copy(
        shop="Hearth & Bean Coffee", currency="USD", address="123 Market Street, Portland, OR 97204, USA",
        first="Jane", last="Doe", locale="en-US", timezone="America/Los_Angeles", code="JANE10-7Q2X",
        bought=(("Ethiopia Yirgacheffe whole beans", "500 g", 2, "18.50"), ("Ceramic pour-over dripper", "White", 1, "24.00")),
        left=(("Colombia Huila whole beans", "250 g", 1, "12.00"), ("Paper filters (100)", "Size 02", 1, "6.50")),
        picks=(("Paper filters (100)", "6.50"), ("Hand grinder", "49.00"), ("Glass carafe, 600 ml", "22.00")),
        carrier="UPS", tracking="1Z999AA10123456784", tiers=("Silver", "Gold"),
        perks=("Free shipping on every order", "Early access to new roasts"), shipping="5.50",
    ),
    "ko": _Copy(
        shop="서울 커피 로스터스", currency="KRW", address="서울특별시 마포구 월드컵북로 12, 3층",
        first="민지", last="김", locale="ko-KR", timezone="Asia/Seoul", code="MINJI10-7Q2X",
        bought=(("에티오피아 예가체프 원두", "500g", 2, "18000"), ("세라믹 핸드드립 드리퍼", "화이트", 1, "24000")),
        left=(("콜롬비아 우일라 원두", "250g", 1, "12000"), ("핸드드립 필터 (100매)", "2~4인용", 1, "6500")),
        picks=(("핸드드립 필터 (100매)", "6500"), ("수동 커피 그라인더", "49000"), ("유리 서버 600ml", "22000")),
        carrier="CJ대한통운", tracking="567812349012", tiers=("실버", "골드"),
        perks=("모든 주문 무료 배송", "신규 원두 우선 구매"), shipping="3000",
    ),
    "ja": _Copy(
        shop="やまびこ珈琲", currency="JPY", address="〒150-0001 東京都渋谷区神宮前1-2-3",
        first="花子", last="山田", locale="ja-JP", timezone="Asia/Tokyo", code="HANAKO10-7Q2X",
        bought=(("エチオピア イルガチェフェ（豆）", "500g", 2, "1800"), ("有田焼ドリッパー", "白", 1, "2400")),
        left=(("コロンビア ウイラ（豆）", "250g", 1, "1200"), ("ペーパーフィルター（100枚）", "2〜4杯用", 1, "650")),
        picks=(("ペーパーフィルター（100枚）", "650"), ("手挽きコーヒーミル", "4900"), ("ガラスサーバー 600ml", "2200")),
        carrier="ヤマト運輸", tracking="4321-5678-9012", tiers=("シルバー", "ゴールド"),
        perks=("全品送料無料", "新作豆の先行販売"), shipping="600",
    ),
}


def _line(index: int, item: tuple[str, str, int, str]) -> LineItem:
    title, variant, quantity, price = item
    unit = Decimal(price)
    slug = f"product-{index}"
    return LineItem(
        title=title, variant=variant, quantity=quantity, unit_price=unit, total=unit * quantity,
        product_url=f"{SITE}/products/{slug}", image_url=f"{CDN}/{slug}.jpg", guide_url=f"{SITE}/guides/{slug}",
    )


def sample_context(locale: str = "en", now: datetime | None = None) -> RenderContext:
    """A full context: an order with tracking, a checkout, a 10 % code, three recommendations, every link,
    points about to expire and a tier upgrade. Fixed data (and a fixed `now` unless given): previews and
    validation are reproducible."""
    now = now or SAMPLE_NOW
    copy = _COPY[language_of(locale)]
    customer_locale = copy.locale if locale.lower() in _COPY else locale  # "ko" -> "ko-KR"; "en-GB", "fr" kept
    lines = tuple(_line(i, item) for i, item in enumerate(copy.bought, start=1))
    subtotal = sum((line.total for line in lines), Decimal("0"))
    token = "c7f2a91e"
    return RenderContext(
        shop=Shop(
            name=copy.shop, currency=copy.currency, support_email="help@example.com", url=SITE,
            logo_url=f"{CDN}/logo.png", address=copy.address,
        ),
        customer=Customer(
            first_name=copy.first, last_name=copy.last, email="customer@example.org", locale=customer_locale,
            timezone=copy.timezone,
        ),
        order=Order(
            name="#1001", total=subtotal + Decimal(copy.shipping), subtotal=subtotal, currency=copy.currency,
            created_at=now - timedelta(days=4, hours=3), lines=lines,
            tracking=Tracking(company=copy.carrier, number=copy.tracking, url=f"{SITE}/tracking/{copy.tracking}"),
            status_url=f"{SITE}/orders/{token}",
        ),
        checkout=Checkout(
            lines=tuple(_line(i, item) for i, item in enumerate(copy.left, start=3)),
            recovery_url=f"{SITE}/cart/recover/{token}", currency=copy.currency,
            total=sum((Decimal(p) * q for _, _, q, p in copy.left), Decimal("0")),
        ),
        code=DiscountCode(code=copy.code, kind="percent", value=Decimal("10"), expires_at=now + timedelta(days=14)),
        recommendations=tuple(
            Recommendation(title=title, url=f"{SITE}/products/pick-{i}", image_url=f"{CDN}/pick-{i}.jpg",
                           price=Decimal(price))
            for i, (title, price) in enumerate(copy.picks, start=1)
        ),
        links=Links(
            survey=f"{SITE}/apps/encore/survey/{token}", review=f"{SITE}/apps/encore/review/{token}",
            preferences=f"{SITE}/apps/encore/preferences/{token}", unsubscribe=f"{SITE}/apps/encore/unsubscribe/{token}",
            referral=f"{SITE}/r/{copy.code.split('-')[0].lower()}",
        ),
        points=Points(balance=1250, expiring=300, expires_at=now + timedelta(days=14)),
        tier=Tier(old=copy.tiers[0], new=copy.tiers[1], upgraded=True, perks=copy.perks),
    )
