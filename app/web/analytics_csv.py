"""The analytics page's CSV downloads, one per chart, written from the same figures the overview answers with.

Made to open well in a spreadsheet: UTF-8 with a byte-order mark (without it Excel reads Korean and Japanese as
mojibake), the header row in the admin's language, numbers without group separators and with the locale's decimal
sign (Babel), money to the currency's minor unit in a column that names the currency, rates as percentages, dates
in the shop's time zone (ISO, which every spreadsheet sorts). Text that came from elsewhere (a segment's or a
journey's name, a customer id, an email) could start a formula, so a cell that begins with = + - @ (or a tab or a
carriage return) and is not a plain number gets a leading apostrophe (OWASP's "CSV injection" advice): the
spreadsheet shows it as the text it is.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel.numbers import format_decimal, get_currency_precision
from flask import Response

from app.core.rfm import RFM_LABELS
from app.i18n import translations

BOM = "\ufeff"
FORMULA = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")
CHUNK = 64 * 1024  # characters buffered before a piece of the download is sent
Rows = Iterator[list[str]]


def safe(cell: str) -> str:
    """The cell as a spreadsheet will show it, never run it: formula-like text gets a leading apostrophe."""
    return "'" + cell if cell.startswith(FORMULA) and not NUMBER.fullmatch(cell) else cell


@dataclass(frozen=True)
class Cells:
    """How figures are written in one download: the admin's locale, the shop's currency and time zone."""

    locale: str
    currency: str
    zone: ZoneInfo

    @property
    def _(self) -> Callable[[str], str]:
        return translations(self.locale, "analytics_admin").gettext

    def number(self, value: Any, places: int = 0) -> str:
        if value is None:
            return ""
        exact = Decimal(str(value)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
        return str(format_decimal(exact if exact else Decimal(0), format="0" + ("." + "0" * places if places else ""),
                                  locale=self.locale))

    def money(self, amount: Any, currency: str | None = None) -> str:
        return self.number(amount, get_currency_precision(currency or self.currency))

    def percent(self, rate: Any) -> str:
        """A share (0.25) as a percentage (25.0)."""
        return "" if rate is None else self.number(100 * Decimal(str(rate)), 1)

    def day(self, iso: str | None) -> str:
        return "" if not iso else datetime.fromisoformat(iso).astimezone(self.zone).date().isoformat()

    def yes(self, flag: bool) -> str:
        return self._("yes") if flag else self._("no")


def rfm_names(_: Callable[[str], str]) -> dict[str, str]:
    """The RFM segments' names (`app.core.rfm`), as the page and the downloads show them."""
    names = {"champions": _("Champions"), "loyal": _("Loyal"), "potential_loyalist": _("Potential loyalists"),
             "new": _("New customers"), "promising": _("Promising"), "need_attention": _("Need attention"),
             "about_to_sleep": _("About to sleep"), "at_risk": _("At risk"), "cannot_lose": _("Can't lose them"),
             "hibernating": _("Hibernating"), "lost": _("Lost")}
    return {label: names.get(label, label.replace("_", " ").capitalize()) for label in RFM_LABELS}


def response(rows: Iterable[list[str]], filename: str) -> Response:
    """The rows as a CSV attachment, streamed as they are produced."""
    def pieces() -> Iterator[bytes]:
        buffer = io.StringIO()
        buffer.write(BOM)
        writer = csv.writer(buffer)
        for row in rows:
            writer.writerow([safe(cell) for cell in row])
            if buffer.tell() >= CHUNK:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue().encode()

    answer = Response(pieces(), mimetype="text/csv")
    answer.headers["Content-Disposition"] = f'attachment; filename="encore-{filename}"'
    answer.headers["Cache-Control"] = "no-store"
    return answer


# --- one function per chart: (figures, cells) -> the header row, then a row per point ----------------------------


def repeat_rate(summary: dict[str, Any] | None, c: Cells) -> Rows:
    _ = c._
    yield [_("Month"), _("Customers"), _("Returning customers"), _("Repeat rate (%)")]
    for m in (summary or {}).get("repeat_rate_by_month", []):
        yield [m["month"], str(m["customers"]), str(m["returning"]), c.percent(m["rate"])]


def cohorts(summary: dict[str, Any] | None, c: Cells) -> Rows:
    _ = c._
    found = (summary or {}).get("cohorts", [])
    months = max((len(x["retention"]) for x in found), default=0)
    yield [_("First order month"), _("Customers")] + [_("Month {n} (%)").format(n=n) for n in range(months)]
    for x in found:
        yield [x["cohort"], str(x["size"])] + [c.percent(v) for v in x["retention"]] + [""] * (months - len(x["retention"]))


def nps_trend(trend: dict[str, Any], c: Cells) -> Rows:
    _ = c._
    yield [_("Month"), _("NPS"), _("Answers"), _("Promoters"), _("Passives"), _("Detractors"),
           _("Average satisfaction (1-5)"), _("Satisfaction answers"), _("Too few answers")]
    for m in trend["months"]:
        yield [m["month"], c.number(m["nps"], 1), str(m["answers"]), str(m["promoters"]), str(m["passives"]),
               str(m["detractors"]), c.number(m["satisfaction"], 2), str(m["ratings"]), c.yes(m["too_few"])]


def needs(lift: dict[str, Any], _: Callable[[str], str]) -> str:
    """What a lift still needs (`app.core.lift.Shortfall`s), as the page says it."""
    texts = {("treated", "size"): _("{need} customers who got it (now {have})"),
             ("holdout", "size"): _("{need} customers in the holdout group (now {have})"),
             ("both", "conversions"): _("{need} orders from the two groups together (now {have})")}
    return "; ".join(texts.get((x["group"], x["measure"]), "{need} {group} {measure} ({have})").format(**x)
                     for x in lift.get("needs") or [])


def proof_of_value(report: list[dict[str, Any]], c: Cells) -> Rows:
    _ = c._
    statuses = {"measured": _("Measured"), "not_enough_data": _("Not enough data yet"), "no_holdout": _("No holdout group")}
    programs = {"loyalty": _("Loyalty program"), "referrals": _("Referral program")}
    yield [_("Kind"), _("Name"), _("Attribution window (days)"), _("Holdout (%)"), _("Attributed orders"),
           _("Attributed revenue"), _("Currency"), _("Lift"), _("What is still needed"), _("Customers who got it"),
           _("Of them, ordered"), _("Conversion, got it (%)"), _("Holdout customers"), _("Of them, ordered (holdout)"),
           _("Conversion, holdout (%)"), _("Difference (points)"), _("95% interval, low (points)"),
           _("95% interval, high (points)"), _("Relative lift (%)"), _("Incremental orders"),
           _("Incremental orders, 95% low"), _("Incremental orders, 95% high"), _("Incremental revenue"),
           _("Incremental revenue, 95% low"), _("Incremental revenue, 95% high")]
    for row in report:
        got, lift = row["attributed"], row["lift"]
        treated, holdout, currency = lift["treated"], lift["holdout"], got["currency"]
        kind = _("Journey") if row["kind"] == "journey" else _("Program")
        name = programs.get(row["key"], row["name"]) if row["kind"] == "program" else row["name"]
        orders = lift["incremental_orders"] or {"value": None, "ci95": [None, None]}
        revenue = lift["incremental_revenue"] or {"value": None, "ci95": [None, None]}
        days = row["window_days"]
        yield [kind, name, c.number(days, 0 if float(days).is_integer() else 2), str(row.get("holdout_percent", "")),
               str(got["orders"]), c.money(got["revenue"], currency), currency,
               statuses.get(lift["status"], lift["status"]), needs(lift, _), str(treated["n"]),
               str(treated["converted"]), c.percent(treated["rate"]), str(holdout["n"]), str(holdout["converted"]),
               c.percent(holdout["rate"]), c.percent(lift["difference"]),
               *(c.percent(v) for v in lift["ci95"] or [None, None]),
               c.percent(lift["relative"]), c.number(orders["value"], 2), *(c.number(v, 2) for v in orders["ci95"]),
               c.money(revenue["value"], currency), *(c.money(v, currency) for v in revenue["ci95"])]


def segments(found: list[dict[str, Any]], c: Cells) -> Rows:
    _ = c._
    kinds = {"rule": _("Your rules"), "rfm": _("RFM")}
    yield [_("Segment"), _("Key"), _("Kind"), _("Customers"), _("Counted on")]
    for x in found:
        yield [x["name"], x["key"], kinds.get(x["kind"], x["kind"]), str(x["size"]), c.day(x["refreshed_at"])]


def customers(found: Iterable[dict[str, Any]], c: Cells) -> Rows:
    _ = c._
    yield [_("Customer id"), _("Email"), _("Name"), _("Orders"), _("Revenue ({currency})").format(currency=c.currency),
           _("First order"), _("Last order"), _("RFM segment"), _("Recency (1-5)"), _("Frequency (1-5)"),
           _("Monetary (1-5)"), _("Chance still a customer (%)"), _("Expected orders, next 90 days"),
           _("Expected next order"), _("Predicted lifetime value ({currency})").format(currency=c.currency)]
    names = rfm_names(_)
    for x in found:
        rfm = x["rfm"]
        yield [x["id"], x["email"] or "", x["name"] or "", str(x["orders"]), c.money(x["revenue"]),
               c.day(x["first_order_at"]), c.day(x["last_order_at"]), names.get(rfm["segment"], rfm["segment"]),
               str(rfm["r"]), str(rfm["f"]), str(rfm["m"]), c.percent(x["p_alive"]), c.number(x["expected_orders_90d"], 2),
               c.day(x["expected_next_order_at"]), c.money(x["predicted_clv"])]


EXPORTS: dict[str, Callable[[Any, Cells], Rows]] = {
    "repeat-rate": repeat_rate, "cohorts": cohorts, "nps": nps_trend, "proof-of-value": proof_of_value,
    "segments": segments, "customers": customers,
}
