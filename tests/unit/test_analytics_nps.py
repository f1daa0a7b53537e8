"""NPS by month (app.analytics.nps.by_month) on counts as the database returns them, and the CSV cells of the
analytics downloads (app.web.analytics_csv): formula-like text neutralised, numbers in the locale's own way."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from app.analytics import nps
from app.core.rfm import RFM_LABELS
from app.i18n import translations
from app.web import analytics_csv
from app.web.analytics_csv import Cells, safe


def counts(rows: list[tuple[int, int, int, int, int, int]]) -> nps.Counts:
    """(month, answers, promoters, detractors, ratings, score sum) per month, as `nps.counts` reads them."""
    return nps.Counts(*np.array(rows, dtype=np.int64).reshape(-1, 6).T)


LABELS = ["2025-12", "2026-01", "2026-02", "2026-03"]


def test_each_month_with_its_figures_and_the_months_without_answers() -> None:
    found = nps.by_month(LABELS, counts([
        (0, 10, 7, 1, 12, 50),
        (2, 9, 0, 9, 9, 9),
        (7, 4, 4, 0, 4, 20),  # outside the months asked for: left out
    ]))
    assert [m.month for m in found] == LABELS
    december, january, february, march = found
    assert (december.nps, december.passives, december.too_few, december.satisfaction) == (60.0, 2, False, 4.17)
    assert january == nps.Month("2026-01", 0, 0, 0, 0, None, 0, None, True)
    assert (february.nps, february.too_few, february.satisfaction) == (-100.0, True, 1.0)  # 9 answers: too few
    assert march.answers == 0 and march.nps is None


def test_nps_is_promoters_less_detractors_in_points_with_one_decimal() -> None:
    (month,) = nps.by_month(["2026-01"], counts([(0, 3, 1, 0, 3, 10)]))
    assert month.nps == 33.3 and month.passives == 2 and month.satisfaction == 3.33
    assert month.data() == {"month": "2026-01", "answers": 3, "promoters": 1, "passives": 2, "detractors": 0,
                            "nps": 33.3, "ratings": 3, "satisfaction": 3.33, "too_few": True}


def test_no_counts_no_figures() -> None:
    assert nps.by_month([], counts([])) == []
    assert [m.answers for m in nps.by_month(LABELS[:2], counts([]))] == [0, 0]


def test_the_months_are_the_shops_calendar_months_from_local_midnight() -> None:
    labels, starts = nps.months("Asia/Seoul", datetime(2026, 2, 28, 15, 30, tzinfo=UTC), 3)  # 1 March in Seoul
    assert labels == ["2026-01", "2026-02", "2026-03"]
    assert [s.isoformat() for s in starts] == ["2026-01-01T00:00:00+09:00", "2026-02-01T00:00:00+09:00",
                                               "2026-03-01T00:00:00+09:00", "2026-04-01T00:00:00+09:00"]
    labels, starts = nps.months("America/New_York", datetime(2026, 3, 15, tzinfo=UTC), 12)
    assert labels[0] == "2025-04" and labels[-1] == "2026-03" and len(starts) == 13
    assert starts[-1].astimezone(UTC) == datetime(2026, 4, 1, 4, tzinfo=UTC)  # daylight saving time by then
    assert starts[-5].astimezone(UTC) == datetime(2025, 12, 1, 5, tzinfo=UTC)  # standard time in December


@pytest.mark.parametrize(("cell", "shown"), [
    ("=1+2", "'=1+2"), ("+SUM(A1)", "'+SUM(A1)"), ("-1+2", "'-1+2"), ("@cmd", "'@cmd"), ("\tx", "'\tx"),
    ("\rx", "'\rx"), ("-12.50", "-12.50"), ("-3", "-3"), ("-0,5", "-0,5"), ("Kim =1", "Kim =1"), ("", ""),
])
def test_formula_like_cells_get_an_apostrophe_and_numbers_stay_numbers(cell: str, shown: str) -> None:
    assert safe(cell) == shown


def test_cells_write_numbers_the_locales_way_without_grouping() -> None:
    seoul = ZoneInfo("Asia/Seoul")
    assert Cells("en", "USD", seoul).money("1234.565") == "1234.57"  # half up, the currency's two decimals
    assert Cells("ja", "JPY", seoul).money(Decimal("1234.5")) == "1235"  # yen have none
    assert Cells("de", "EUR", seoul).money("1234.5") == "1234,50"
    assert Cells("en", "USD", seoul).percent(-0.0004) == "0.0"  # never "-0.0"
    assert Cells("ko", "KRW", seoul).percent(0.1234) == "12.3"
    assert Cells("en", "USD", seoul).number(None) == "" and Cells("en", "USD", seoul).money(None) == ""
    assert Cells("en", "USD", seoul).day("2026-03-31T16:00:00+00:00") == "2026-04-01"
    assert (Cells("ko", "USD", seoul).yes(True), Cells("ja", "USD", seoul).yes(False)) == ("예", "いいえ")


def test_every_rfm_segment_has_a_name_in_every_language() -> None:
    for language in ("en", "ko", "ja"):
        names = analytics_csv.rfm_names(translations(language, "analytics_admin").gettext)
        assert set(names) == set(RFM_LABELS) and len(set(names.values())) == len(RFM_LABELS)
    assert analytics_csv.rfm_names(translations("ko", "analytics_admin").gettext)["champions"] == "챔피언"
