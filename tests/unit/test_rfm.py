"""RFM (app/core/rfm.py, app/analytics/rfm.py): the grid's labels cell by cell, every combination named and every
label reached, bad scores refused; quintile scores with ties, spread and order checked against a plain-Python
reading of the definition, and the vectorised labels equal to the scalar ones."""

from __future__ import annotations

import math
from collections import Counter
from itertools import product

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.analytics.rfm import quintile_scores, rfm_labels, rfm_scores
from app.core.rfm import RFM_LABELS, fm_score, rfm_label


@pytest.mark.parametrize(("r", "f", "m", "label"), [
    (5, 5, 5, "champions"), (5, 4, 3, "champions"),  # FM (4+3)/2 rounds up to 4
    (4, 5, 5, "loyal"), (3, 4, 4, "loyal"), (2, 5, 5, "cannot_lose"), (1, 5, 4, "cannot_lose"),
    (5, 1, 1, "new"), (5, 2, 1, "potential_loyalist"), (4, 1, 1, "promising"), (4, 3, 3, "potential_loyalist"),
    (3, 3, 3, "need_attention"), (3, 1, 2, "about_to_sleep"), (3, 2, 2, "about_to_sleep"),
    (2, 3, 3, "at_risk"), (1, 4, 4, "at_risk"), (2, 1, 2, "hibernating"), (2, 2, 2, "hibernating"),
    (1, 1, 1, "lost"), (1, 2, 2, "lost"),
])
def test_the_grid(r: int, f: int, m: int, label: str) -> None:
    assert rfm_label(r, f, m) == label


def test_every_combination_has_a_label_and_every_label_is_reached() -> None:
    found = Counter(rfm_label(r, f, m) for r, f, m in product(range(1, 6), repeat=3))
    assert sum(found.values()) == 125
    assert set(found) == set(RFM_LABELS) and len(RFM_LABELS) == 11
    assert all(len(label) <= 24 for label in RFM_LABELS)  # customer_metrics.rfm_segment is String(24)


def test_recency_never_lowers_a_segment_to_a_better_one_when_it_drops() -> None:
    """Lower recency with the same F and M never lands in champions or loyal from below them."""
    for f, m in product(range(1, 6), repeat=2):
        labels = [rfm_label(r, f, m) for r in range(5, 0, -1)]
        if "champions" in labels:
            assert labels.index("champions") == 0


@pytest.mark.parametrize("bad", [0, 6, -1, True, 2.0, "3", None])
def test_scores_outside_one_to_five_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="score from 1 to 5"):
        rfm_label(bad, 3, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        rfm_label(3, 3, bad)  # type: ignore[arg-type]


def test_fm_is_the_mean_rounded_half_up() -> None:
    assert [fm_score(f, m) for f, m in ((1, 1), (1, 2), (2, 3), (4, 5), (5, 5), (1, 5))] == [1, 2, 3, 5, 5, 3]


# --- quintile scores -------------------------------------------------------------------------------------------


def _by_definition(values: list[float], higher_is_better: bool = True) -> list[int]:
    """The definition read plainly: a value's rank is the mean of the positions its equals take in sorted order
    (1-based), and its score the fifth its mid-rank (rank - 1/2) / n falls in."""
    keyed = values if higher_is_better else [-v for v in values]
    ordered = sorted(keyed)
    n = len(values)
    out = []
    for v in keyed:
        positions = [i + 1 for i, w in enumerate(ordered) if w == v]
        rank = sum(positions) / len(positions)
        out.append(min(5, max(1, math.ceil(5 * (rank - 0.5) / n))))
    return out


def test_distinct_values_fill_each_score_equally() -> None:
    scores = quintile_scores(np.arange(10.0))
    assert scores.tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert quintile_scores([50.0, 10.0, 40.0, 20.0, 30.0]).tolist() == [5, 1, 4, 2, 3]
    assert quintile_scores(np.arange(10.0), higher_is_better=False).tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]


def test_ties_share_a_score_and_a_value_all_share_is_the_middle() -> None:
    assert quintile_scores([1.0] * 7).tolist() == [3] * 7
    assert quintile_scores([7.0]).tolist() == [3]
    # Most customers order once: they share one score (their mean rank's), below the repeat customers'.
    orders = [1.0] * 8 + [2.0, 5.0]
    scores = quintile_scores(orders).tolist()
    assert scores == [2] * 8 + [5, 5]
    assert scores == _by_definition(orders)
    assert quintile_scores([]).tolist() == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=60), st.booleans())
def test_scores_match_the_definition_and_keep_the_order(values: list[int], higher: bool) -> None:
    floats = [float(v) for v in values]
    scores = quintile_scores(floats, higher_is_better=higher).tolist()
    assert scores == _by_definition(floats, higher)
    for a, sa in zip(floats, scores, strict=True):  # a better value never scores lower
        for b, sb in zip(floats, scores, strict=True):
            if (a > b) == higher and a != b:
                assert sa >= sb


def test_rfm_scores_rank_recency_reversed() -> None:
    r, f, m = rfm_scores([3, 400, 30, 90, 10], [6, 1, 2, 1, 3], ["250.5", "20", "80", "15", "120"])
    assert r.tolist() == [5, 1, 3, 2, 4]  # 3 days ago is the most recent
    assert f.tolist() == [5, 1, 3, 1, 4]  # the two single orders share a score
    assert m.tolist() == [5, 2, 3, 1, 4]
    assert r.dtype == np.int64
    assert [rfm_label(*x) for x in zip(r.tolist(), f.tolist(), m.tolist(), strict=True)] == [
        "champions", "lost", "need_attention", "hibernating", "loyal"]


@pytest.mark.parametrize(("args", "message"), [
    (([1, 2], [1], [1, 2]), "one recency, frequency and monetary value per customer"),
    (([1, float("nan")], [1, 1], [1, 1]), "recency_days: every value must be a finite number"),
    (([1, 2], [1, 1], [1, float("inf")]), "monetary: every value must be a finite number"),
    (([[1, 2]], [[1, 1]], [[1, 1]]), "recency_days: one value per customer"),
])
def test_bad_arrays_are_refused(args: tuple[list[float], list[float], list[float]], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        rfm_scores(*args)


def test_vectorised_labels_equal_the_scalar_ones() -> None:
    grid = np.array(list(product(range(1, 6), repeat=3)))
    labels = rfm_labels(grid[:, 0], grid[:, 1], grid[:, 2])
    assert labels.tolist() == [rfm_label(int(r), int(f), int(m)) for r, f, m in grid]
    assert rfm_labels([], [], []).tolist() == []
    with pytest.raises(ValueError, match="whole-number scores from 1 to 5"):
        rfm_labels([1, 6], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="whole-number scores"):
        rfm_labels([1.5], [1], [1])
