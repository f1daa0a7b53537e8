"""RFM segments: a customer's recency, frequency and monetary scores (1-5 each, 5 best) named as one segment.

The scores are quintiles over the shop's customers (`app.analytics.rfm.rfm_scores`); this module only names a
combination, so the nightly refresh (which fills `customer_metrics.rfm_segment`) and the segments built on it
(`app.segments`, keys "rfm:<label>") agree on one grid.

The grid is the usual one, read on two axes: recency (R) down the rows, and frequency and spend together
(FM, the mean of F and M rounded half up) across the columns. Recency comes first because it says most about
whether a customer will order again; frequency and spend move together in most shops, and averaging them keeps
a big one-off order from making a "champion" of a customer who bought once.

    R \\ FM     1                 2                 3                 4              5
    5        new               potential_loyalist potential_loyalist champions     champions
    4        promising         potential_loyalist potential_loyalist loyal         loyal
    3        about_to_sleep    about_to_sleep     need_attention     loyal         loyal
    2        hibernating       hibernating        at_risk            at_risk       cannot_lose
    1        lost              lost               at_risk            at_risk       cannot_lose

Every one of the 125 combinations has exactly one label, and every label is reached.
"""

from __future__ import annotations

RFM_LABELS: tuple[str, ...] = (
    "champions", "loyal", "potential_loyalist", "new", "promising", "need_attention", "about_to_sleep", "at_risk",
    "cannot_lose", "hibernating", "lost",
)

# RFM_GRID[r - 1][fm - 1]: rows by R, columns by FM; the grid above, bottom row first.
RFM_GRID: tuple[tuple[str, str, str, str, str], ...] = (
    ("lost", "lost", "at_risk", "at_risk", "cannot_lose"),
    ("hibernating", "hibernating", "at_risk", "at_risk", "cannot_lose"),
    ("about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"),
    ("promising", "potential_loyalist", "potential_loyalist", "loyal", "loyal"),
    ("new", "potential_loyalist", "potential_loyalist", "champions", "champions"),
)


def _score(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise ValueError(f"{name} is a score from 1 to 5, not {value!r}")
    return value


def fm_score(f: int, m: int) -> int:
    """Frequency and spend as one score: their mean, a half rounded up (F 4 and M 5 make 5)."""
    return (_score("f", f) + _score("m", m) + 1) // 2


def rfm_label(r: int, f: int, m: int) -> str:
    """The segment of a customer scored (r, f, m), each 1-5 with 5 best; ValueError for anything else."""
    return RFM_GRID[_score("r", r) - 1][fm_score(f, m) - 1]


__all__ = ["RFM_GRID", "RFM_LABELS", "fm_score", "rfm_label"]
