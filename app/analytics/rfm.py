"""RFM scores: each customer's recency, frequency and monetary value as quintile scores over the shop, 1 to 5,
5 best, vectorised over customers (no Python loop over them), and their segment names (`app.core.rfm`).

A score is the quintile of a customer's *mid-rank*: customers are ranked (ties sharing the mean of the ranks
they span, `scipy.stats.rankdata(method="average")`), and the rank's midpoint, (rank - 1/2) / n, is cut in
fifths. So

- equal values always get equal scores (two customers with one order each are never told apart by the order
  they were read in), whatever their number;
- distinct values spread evenly: n customers with n distinct values fill each score with n/5 of them;
- a value everyone shares sits in the middle (3), as does a shop's only customer: nobody is "best" or "worst"
  at something all have equally.

Recency is days since the last order, so fewer is better and it is ranked reversed; frequency (orders) and
monetary (spend, net of refunds) are better when higher.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import stats

from app.core.rfm import RFM_GRID

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

# RFM_GRID as an array, for looking labels up by (r, fm) all at once.
_GRID = np.array(RFM_GRID, dtype=object)


def _column(name: str, values: npt.ArrayLike) -> Floats:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name}: one value per customer (a 1-D array), not shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: every value must be a finite number")
    return array


def quintile_scores(values: npt.ArrayLike, *, higher_is_better: bool = True) -> Ints:
    """Scores 1-5 (5 best) of `values` among themselves: the fifth each value's mid-rank falls in."""
    array = _column("values", values)
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    ranks: Floats = stats.rankdata(array if higher_is_better else -array, method="average")
    scores: Ints = np.clip(np.ceil(5 * (ranks - 0.5) / array.size), 1, 5).astype(np.int64)
    return scores


def rfm_scores(recency_days: npt.ArrayLike, frequency: npt.ArrayLike, monetary: npt.ArrayLike
               ) -> tuple[Ints, Ints, Ints]:
    """(r, f, m) scores of each customer, 1-5 with 5 best: recency in days since the last order (fewer is better),
    frequency in orders, monetary in money spent. ValueError for arrays of different lengths or non-finite values."""
    recency, orders, spend = (_column(n, v) for n, v in (("recency_days", recency_days), ("frequency", frequency),
                                                           ("monetary", monetary)))
    if not recency.size == orders.size == spend.size:
        raise ValueError(f"one recency, frequency and monetary value per customer, not {recency.size}, "
                         f"{orders.size} and {spend.size}")
    return (quintile_scores(recency, higher_is_better=False), quintile_scores(orders), quintile_scores(spend))


def rfm_labels(r: npt.ArrayLike, f: npt.ArrayLike, m: npt.ArrayLike) -> npt.NDArray[np.object_]:
    """Each customer's segment (`app.core.rfm.rfm_label`, all at once). ValueError for a score outside 1-5."""
    rs, fs, ms = (np.asarray(x) for x in (r, f, m))
    for name, scores in (("r", rs), ("f", fs), ("m", ms)):
        if scores.size and (not np.issubdtype(scores.dtype, np.integer) or scores.min() < 1 or scores.max() > 5):
            raise ValueError(f"{name}: whole-number scores from 1 to 5")
    if not rs.shape == fs.shape == ms.shape:
        raise ValueError("one r, f and m score per customer")
    if rs.size == 0:
        return np.empty(rs.shape, dtype=object)
    labels: npt.NDArray[np.object_] = _GRID[rs - 1, (fs + ms + 1) // 2 - 1]
    return labels


__all__ = ["quintile_scores", "rfm_labels", "rfm_scores"]
