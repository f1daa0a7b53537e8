"""The pure statistics of lift (app.core.lift): the Wilson and Newcombe intervals against scipy and the published
values, the interval's coverage over many simulated experiments whose true effect is known, the "not enough data
yet" and "no holdout" verdicts, and the stable assignment of customers to a program's holdout."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import numpy as np
import pytest
from scipy.stats import binomtest

from app.core import lift
from app.core.lift import Counts, Status


@pytest.mark.parametrize(("x", "n"), [(0, 10), (1, 10), (7, 50), (50, 50), (130, 1000), (3, 2000)])
def test_wilson_is_scipys_wilson_score_interval(x: int, n: int) -> None:
    expected = binomtest(x, n).proportion_ci(0.95, method="wilson")
    assert lift.wilson(x, n) == pytest.approx((expected.low, expected.high), abs=1e-12)


# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (the hybrid score interval, no continuity
# correction), to the four decimals printed there.
PUBLISHED = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize(("counts", "interval"), PUBLISHED)
def test_newcombe_reproduces_the_published_intervals(counts: tuple[int, int, int, int],
                                                      interval: tuple[float, float]) -> None:
    low, high = lift.newcombe(*counts)
    assert (round(low, 4), round(high, 4)) == interval


def test_newcombe_needs_people_in_both_groups() -> None:
    with pytest.raises(ValueError):
        lift.newcombe(1, 10, 0, 0)


def _coverage(n1: int, p1: float, n2: int, p2: float, seed: int, runs: int = 500) -> float:
    """The share of `runs` simulated experiments whose interval holds the true difference p1 - p2."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.binomial(n1, p1, runs), rng.binomial(n2, p2, runs)
    held = [low <= p1 - p2 <= high for low, high in (lift.newcombe(int(a), n1, int(b), n2) for a, b in zip(x1, x2, strict=True))]
    return float(np.mean(held))


@pytest.mark.parametrize(("n1", "p1", "n2", "p2", "seed"), [
    (2000, 0.15, 500, 0.10, 1),  # a journey with a 20% holdout and a 5-point effect
    (2000, 0.12, 500, 0.12, 2),  # no effect at all
    (900, 0.06, 100, 0.03, 3),  # a small 10% holdout with rare conversions
    (5000, 0.30, 5000, 0.25, 4),  # a program split down the middle
])
def test_the_interval_covers_the_true_difference_about_95_times_in_100(n1: int, p1: float, n2: int, p2: float,
                                                                        seed: int) -> None:
    assert 0.92 <= _coverage(n1, p1, n2, p2, seed) <= 0.98


def test_a_measured_lift_is_the_difference_with_its_interval_scaled_to_orders_and_revenue() -> None:
    treated, holdout = Counts(1000, 150, Decimal("6000.00")), Counts(250, 25)
    got = lift.measure(treated, holdout, 20)
    assert got.status == Status.MEASURED and got.needs == []
    assert got.difference is not None and got.incremental is not None and got.revenue is not None
    assert got.difference.value == pytest.approx(0.05)
    assert (got.difference.low, got.difference.high) == pytest.approx(lift.newcombe(150, 1000, 25, 250))
    assert got.difference.low < 0.05 < got.difference.high
    assert got.relative == pytest.approx(0.5)  # 15% against 10%
    assert (got.incremental.value, got.incremental.low, got.incremental.high) == pytest.approx(
        (50.0, got.difference.low * 1000, got.difference.high * 1000))
    per_conversion = Decimal("40")  # 6,000 spent by 150 converters
    assert got.revenue[0] == Decimal("2000.00")
    assert got.revenue[1] == (per_conversion * Decimal(repr(got.incremental.low))).quantize(Decimal("0.01"))
    assert got.revenue[1] < got.revenue[0] < got.revenue[2]


def test_a_holdout_that_never_converts_has_no_relative_lift_and_yen_have_no_decimals() -> None:
    got = lift.measure(Counts(400, 40, Decimal("12000")), Counts(100, 0), 20, places=0)
    assert got.status == Status.MEASURED and got.relative is None
    assert got.revenue is not None and all(x == x.to_integral_value() for x in got.revenue)


@pytest.mark.parametrize(("treated", "holdout", "needs"), [
    (Counts(99, 30), Counts(100, 20), [lift.Shortfall("treated", "size", 99, 100)]),
    (Counts(500, 50), Counts(40, 4), [lift.Shortfall("holdout", "size", 40, 100)]),
    (Counts(300, 6), Counts(100, 3), [lift.Shortfall("both", "conversions", 9, 10)]),
    (Counts(20, 1), Counts(0, 0), [lift.Shortfall("treated", "size", 20, 100), lift.Shortfall("holdout", "size", 0, 100),
                                   lift.Shortfall("both", "conversions", 1, 10)]),
])
def test_too_little_data_says_what_is_missing_and_gives_no_number(treated: Counts, holdout: Counts,
                                                                   needs: list[lift.Shortfall]) -> None:
    got = lift.measure(treated, holdout, 10)
    assert got.status == Status.NOT_ENOUGH_DATA and got.needs == needs
    assert (got.difference, got.relative, got.incremental, got.revenue) == (None, None, None, None)


def test_just_enough_data_is_measured() -> None:
    assert lift.measure(Counts(100, 5), Counts(100, 5), 50).status == Status.MEASURED


def test_nobody_held_out_is_no_holdout_and_no_number_at_all() -> None:
    got = lift.measure(Counts(5000, 700, Decimal("1000")), Counts(0, 0), 0)
    assert got.status == Status.NO_HOLDOUT and got.needs == []
    assert (got.difference, got.relative, got.incremental, got.revenue) == (None, None, None, None)
    # Held out before the share went to 0: those people still measure the journey.
    assert lift.measure(Counts(5000, 700), Counts(300, 30), 0).status == Status.MEASURED


def test_a_group_cannot_convert_more_people_than_it_has() -> None:
    with pytest.raises(ValueError):
        Counts(10, 11)
    with pytest.raises(ValueError):
        Counts(10, -1)


@pytest.mark.parametrize("value", [-1, 51, 10.0, "10", True, None])
def test_the_holdout_share_is_a_whole_percentage_from_0_to_50(value: object) -> None:
    with pytest.raises(lift.HoldoutError, match="0 to 50"):
        lift.holdout_percent(value)


def test_good_holdout_shares_pass() -> None:
    assert [lift.holdout_percent(x) for x in (0, 1, 50)] == [0, 1, 50]


CUSTOMERS = [f"cust-{i}" for i in range(20_000)]


def test_a_programs_holdout_is_about_its_share_and_grows_without_reshuffling() -> None:
    ten = {c for c in CUSTOMERS if lift.held_out(7, lift.LOYALTY, c, 10)}
    twenty = {c for c in CUSTOMERS if lift.held_out(7, lift.LOYALTY, c, 20)}
    sd = (len(CUSTOMERS) * 0.1 * 0.9) ** 0.5
    assert abs(len(ten) - 2000) < 4 * sd
    assert ten < twenty  # raising the share only moves customers into the holdout
    assert not any(lift.held_out(7, lift.LOYALTY, c, 0) for c in CUSTOMERS)
    referrals = {c for c in CUSTOMERS if lift.held_out(7, lift.REFERRALS, c, 10)}
    other_shop = {c for c in CUSTOMERS if lift.held_out(8, lift.LOYALTY, c, 10)}
    # Each program and each shop draws its own holdout: they overlap as independent draws do (10% of 10%).
    assert abs(len(ten & referrals) - 200) < 80 and abs(len(ten & other_shop) - 200) < 80


def test_a_customer_is_in_the_same_group_in_every_process() -> None:
    """The assignment is a digest of the ids, never Python's per-process salted hash()."""
    here = [lift.held_out(3, lift.REFERRALS, c, 30) for c in CUSTOMERS[:300]]
    code = ("from app.core import lift; print(''.join('1' if lift.held_out(3, lift.REFERRALS, f'cust-{i}', 30) "
            "else '0' for i in range(300)))")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout.strip()
        assert out == "".join("1" if x else "0" for x in here)
