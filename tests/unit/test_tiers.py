"""VIP tiers (app/core/tiers.py): the tier progress reaches, moving up at once, moving down only after a grace
period that qualifying again ends, and a property: a standing never moves down within the grace period and never
sits above what the progress reached once the grace has run out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.loyalty import LoyaltyError
from app.core.tiers import Change, Standing, Tier, evaluate, ladder, multiplier, reached

AT = datetime(2026, 11, 20, tzinfo=UTC)
GRACE = timedelta(days=30)
TIERS = (Tier("gold", "Gold", Decimal("1000"), Decimal("2"), ("free shipping",)),
         Tier("member", "Member", Decimal("0")),
         Tier("silver", "Silver", Decimal("300"), Decimal("1.5")))


def test_progress_reaches_the_highest_tier_at_or_below_it() -> None:
    assert [t.key for t in ladder(TIERS)] == ["member", "silver", "gold"]
    assert [getattr(reached(TIERS, Decimal(p)), "key", None) for p in ("0", "299.99", "300", "5000")] == [
        "member", "member", "silver", "gold"]
    assert reached(TIERS[:1], Decimal("10")) is None
    assert multiplier(TIERS, "gold") == Decimal("2") and multiplier(TIERS, None) == Decimal("1")
    with pytest.raises(LoyaltyError):
        ladder([Tier("a", "A", Decimal("1")), Tier("b", "B", Decimal("1"))])


def test_up_at_once_down_after_the_grace_and_qualifying_again_ends_the_grace() -> None:
    standing, change = evaluate(TIERS, Standing("member"), Decimal("1200"), AT, GRACE)
    assert (standing, change) == (Standing("gold"), Change("member", "gold", True))
    standing, change = evaluate(TIERS, standing, Decimal("400"), AT + timedelta(days=1), GRACE)
    assert (standing, change) == (Standing("gold", AT + timedelta(days=1)), None)  # the grace begins
    again, change = evaluate(TIERS, standing, Decimal("1000"), AT + timedelta(days=5), GRACE)
    assert (again, change) == (Standing("gold"), None)  # qualifying again ends it
    standing, _ = evaluate(TIERS, again, Decimal("400"), AT + timedelta(days=6), GRACE)
    assert evaluate(TIERS, standing, Decimal("400"), AT + timedelta(days=35), GRACE) == (standing, None)
    down, change = evaluate(TIERS, standing, Decimal("400"), AT + timedelta(days=36), GRACE)
    assert (down, change) == (Standing("silver"), Change("gold", "silver", False))


@given(st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 20)), max_size=30))
@settings(max_examples=300, deadline=None)
def test_never_down_within_the_grace_never_above_what_is_reached_after_it(steps: list[tuple[int, int]]) -> None:
    standing, at = Standing(None), AT
    ranks = {t.key: i for i, t in enumerate(ladder(TIERS))}
    for progress, days in steps:
        at += timedelta(days=days)
        before = standing
        standing, change = evaluate(TIERS, standing, Decimal(progress), at, GRACE)
        target = reached(TIERS, Decimal(progress))
        assert target is not None
        if change is not None and not change.upgraded:
            assert before.below_since is not None and at - before.below_since >= GRACE
        assert standing.tier is not None and ranks[standing.tier] >= ranks[target.key]  # never below what is reached
        if standing.below_since is None:  # no grace running: the standing is exactly what the progress reaches
            assert standing.tier == target.key
