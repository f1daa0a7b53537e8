"""Net Promoter Score and satisfaction by calendar month, in the shop's own time zone, for the analytics page.

The survey asks two things: how happy the customer is with the order (1 to 5) and, on answers from after it was
added, how likely they are to recommend the shop (0 to 10). NPS is the share of promoters (9 and 10) minus the share
of detractors (0 to 6), in percentage points, from -100 to 100; passives (7 and 8) count only in the total. A month
is the shop's calendar month (an answer at 23:30 on 31 January in Seoul is January's, whatever UTC says), and an
answer belongs to the month it was first given in: changing it later moves nothing.

A handful of answers swings NPS by tens of points, so a month with fewer than `MIN_ANSWERS` is flagged `too_few`
rather than left out: the merchant sees that the month had answers, and that its figure is not one to act on.

The months' first instants are worked out here, in the zone (daylight saving included), and the database counts
each month's answers in one grouped statement that only compares times with them (`counts`), the same SQL on every
database; `by_month` turns the counts into the figures with numpy, every month at once, months without an answer
included.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from app.core.dates import zone
from app.db.models import SurveyResponse

Ints = npt.NDArray[np.int64]
PROMOTER, DETRACTOR = 9, 6  # 9-10 promote, 0-6 detract
MIN_ANSWERS = 10  # a month with fewer NPS answers is flagged too few to read
MONTHS = 12  # the trend's length, ending with the current month


@dataclass(frozen=True)
class Month:
    month: str  # "2026-01", the shop's calendar month
    answers: int  # NPS answers (0-10)
    promoters: int
    passives: int
    detractors: int
    nps: float | None  # % promoters - % detractors, one decimal; None without answers
    ratings: int  # satisfaction answers (1-5)
    satisfaction: float | None  # their mean, two decimals
    too_few: bool  # fewer than MIN_ANSWERS NPS answers

    def data(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Counts:
    """Per month (its place in the range): NPS answers, promoters, detractors, satisfaction answers, their sum."""

    month: Ints
    answers: Ints
    promoters: Ints
    detractors: Ints
    ratings: Ints
    score_sum: Ints


def months(tz: str, now: datetime, count: int = MONTHS) -> tuple[list[str], list[datetime]]:
    """The last `count` calendar months in the zone, up to the one holding `now`: their labels ("2026-01"), and their
    first instants followed by the next month's (count + 1 aware datetimes)."""
    z = zone(tz)
    local = now.astimezone(z)
    first = local.year * 12 + local.month - count
    found = range(first, first + count + 1)  # months since year 0
    return ([f"{i // 12:04d}-{i % 12 + 1:02d}" for i in found[:-1]],
            [datetime(i // 12, i % 12 + 1, 1, tzinfo=z) for i in found])


def counts(s: Session, shop_id: int, starts: list[datetime], until: datetime) -> Counts:
    """The shop's answers first given from starts[0] to `until`, counted by month (0 for the first)."""
    r = SurveyResponse
    earlier = [(r.created_at < start, i) for i, start in enumerate(starts[1:-1])]
    month = case(*earlier, else_=len(starts) - 2) if earlier else literal(0)
    answered = select(month.label("month"), r.nps, r.score).where(
        r.shop_id == shop_id, r.created_at >= starts[0], r.created_at < starts[-1], r.created_at <= until).subquery()
    a = answered.c
    rows = s.execute(select(a.month, func.count(a.nps), func.sum(case((a.nps >= PROMOTER, 1), else_=0)),
                            func.sum(case((a.nps <= DETRACTOR, 1), else_=0)), func.count(a.score),
                            func.coalesce(func.sum(a.score), 0)).group_by(a.month)).all()
    return Counts(*np.array(rows, dtype=np.int64).reshape(-1, 6).T)


def by_month(labels: list[str], found: Counts) -> list[Month]:
    """Each month's figures, from its counts (none for a month without)."""
    n = len(labels)
    keep = (found.month >= 0) & (found.month < n)
    at = found.month[keep]

    def spread(values: Ints) -> Ints:
        return np.bincount(at, weights=values[keep], minlength=n).astype(np.int64)

    answers, promoters, detractors = spread(found.answers), spread(found.promoters), spread(found.detractors)
    ratings, score_sum = spread(found.ratings), spread(found.score_sum)
    with np.errstate(invalid="ignore", divide="ignore"):
        net = np.round(100.0 * (promoters - detractors) / answers, 1)
        mean = np.round(score_sum / ratings, 2)
    return [Month(month=labels[i], answers=int(answers[i]), promoters=int(promoters[i]),
                  passives=int(answers[i] - promoters[i] - detractors[i]), detractors=int(detractors[i]),
                  nps=float(net[i]) if answers[i] else None, ratings=int(ratings[i]),
                  satisfaction=float(mean[i]) if ratings[i] else None, too_few=bool(answers[i] < MIN_ANSWERS))
            for i in range(n)]


def trend(s: Session, shop_id: int, tz: str, now: datetime, count: int = MONTHS) -> dict[str, Any]:
    """The last `count` calendar months up to the current one, from the first month with an answer if that is
    later; no months at all while there is no answer in them."""
    labels, starts = months(tz, now, count)
    found = counts(s, shop_id, starts, now)
    answered = found.month[(found.answers + found.ratings) > 0]
    first = int(answered.min()) if answered.size else len(labels)
    return {"months": [m.data() for m in by_month(labels, found)[first:]], "min_answers": MIN_ANSWERS}
