"""The BG/NBD and Gamma-Gamma models (app.analytics.clv): the published CDNOW estimates, the model's own properties,
a synthetic population recovered, and the "not enough data yet" path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import special

from app.analytics import clv

CDNOW = Path(__file__).resolve().parents[1] / "data" / "cdnow_summary.csv"


@pytest.fixture(scope="module")
def cdnow() -> np.ndarray:
    """2,357 CDNOW customers, weeks, 39-week calibration period: ID, x, t_x, T, zbar (see tests/data/README.md)."""
    return np.genfromtxt(CDNOW, delimiter=",", names=True)


@pytest.fixture(scope="module")
def cdnow_model(cdnow: np.ndarray) -> clv.Model:
    model = clv.fit(cdnow["x"], cdnow["t_x"], cdnow["T"], cdnow["zbar"])
    assert isinstance(model, clv.Model)
    return model


def simulate(
    n: int, r: float, alpha: float, a: float, b: float, T: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(x, t_x) for n BG/NBD customers of ages T, vectorised: the customer would drop out at their K-th repeat order
    (K geometric in p), N(T) orders arrive by T as a Poisson process, x = min(K, N(T)), and the x-th of N(T)
    uniform arrival times on [0, T] is T times a Beta(x, N(T) - x + 1) draw."""
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    orders = rng.poisson(lam * T)
    x = np.minimum(rng.geometric(p), orders)
    t_x = np.where(x > 0, T * rng.beta(np.maximum(x, 1), np.maximum(orders - x + 1, 1)), 0.0)
    return x.astype(float), t_x


def test_bgnbd_on_cdnow_reproduces_the_published_estimates(cdnow_model: clv.Model) -> None:
    """Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way", section 4: r = 0.243, alpha = 4.414,
    a = 0.793, b = 2.426 and LL = -9582.4 on this very sample."""
    bg = cdnow_model.bgnbd
    assert bg.r == pytest.approx(0.243, abs=0.0005)
    assert bg.alpha == pytest.approx(4.414, abs=0.0005)
    assert bg.a == pytest.approx(0.793, abs=0.0005)
    assert bg.b == pytest.approx(2.426, abs=0.0005)
    assert bg.log_likelihood == pytest.approx(-9582.4, abs=0.05)
    assert bg.customers == 2357


def test_gamma_gamma_on_cdnow_reproduces_the_published_estimates(cdnow_model: clv.Model) -> None:
    """Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis" (and Fader &
    Hardie's 2013 note on the Gamma-Gamma model): p = 6.25, q = 3.74, gamma = 15.44 from the 946 customers with a
    repeat purchase in the 39 weeks, on the mean value of their repeat purchases (zbar in the data, in dollars).

    Our fit gives p = 6.2488, q = 3.7446, gamma = 15.4477: p and q round to the published figures, gamma rounds to
    15.45 rather than 15.44 (0.05% apart; the zbar column is itself rounded to cents), so gamma is held to 0.1%."""
    gg = cdnow_model.spend
    assert gg is not None
    assert gg.customers == 946
    assert gg.p == pytest.approx(6.25, abs=0.005)
    assert gg.q == pytest.approx(3.74, abs=0.005)
    assert gg.gamma == pytest.approx(15.44, rel=0.001)


def test_expected_orders_match_the_papers_closed_form(cdnow_model: clv.Model) -> None:
    """The module takes eq. 10's 2F1 through Euler's transformation; the paper's own form gives the same numbers."""
    bg = cdnow_model.bgnbd
    r, alpha, a, b = bg.r, bg.alpha, bg.a, bg.b
    x = np.array([0.0, 1.0, 2.0, 7.0, 26.0])
    t_x = np.array([0.0, 1.71, 30.43, 35.0, 30.86])
    T = np.array([38.86, 38.86, 38.86, 37.0, 31.0])
    t = 39.0
    z = t / (alpha + T + t)
    f = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    paper = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * f)
    paper /= 1 + (x > 0) * a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    assert bg.expected_orders(t, x, t_x, T) == pytest.approx(paper, rel=1e-9)


def test_p_alive_is_a_probability_and_one_without_a_repeat_order(cdnow: np.ndarray, cdnow_model: clv.Model) -> None:
    """In BG/NBD a customer can drop out only right after a repeat purchase, so x = 0 means alive with probability 1."""
    bg = cdnow_model.bgnbd
    alive = bg.p_alive(cdnow["x"], cdnow["t_x"], cdnow["T"])
    assert np.all((alive >= 0) & (alive <= 1))
    assert np.all(alive[cdnow["x"] == 0] == 1.0)
    assert np.all(alive[cdnow["x"] > 0] < 1.0)
    # A longer silence since the last order, or the same silence after more orders, makes it less likely.
    assert bg.p_alive(3, 5.0, 38.0) < bg.p_alive(3, 30.0, 38.0)
    assert bg.p_alive(10, 5.0, 38.0) < bg.p_alive(2, 5.0, 38.0)


def test_expected_orders_grow_with_the_horizon(cdnow: np.ndarray, cdnow_model: clv.Model) -> None:
    bg = cdnow_model.bgnbd
    history = (cdnow["x"], cdnow["t_x"], cdnow["T"])
    assert np.all(bg.expected_orders(0.0, *history) == 0.0)
    previous = np.zeros(len(cdnow))
    for horizon in (1.0, 13.0, 39.0, 78.0, 520.0):
        now = bg.expected_orders(horizon, *history)
        assert np.all(now > previous)
        previous = now


def test_the_next_order_quantile_solves_its_probability(cdnow: np.ndarray, cdnow_model: clv.Model) -> None:
    bg = cdnow_model.bgnbd
    history = (cdnow["x"], cdnow["t_x"], cdnow["T"])
    alive = bg.p_alive(*history)
    median = bg.time_to_next_order(*history)
    finite = np.isfinite(median)
    assert np.array_equal(finite, alive > 0.5)
    reached = bg.next_order_within(1.0, *history)  # broadcast check: one horizon for everyone
    assert np.all((reached >= 0) & (reached <= alive))
    for i in np.flatnonzero(finite)[:50]:
        within = bg.next_order_within(float(median[i]), cdnow["x"][i], cdnow["t_x"][i], cdnow["T"][i])
        assert float(within) == pytest.approx(0.5, abs=1e-9)
    quartile = bg.time_to_next_order(*history, probability=0.25)
    assert np.all(quartile[finite] < median[finite])


def test_spend_and_clv(cdnow: np.ndarray, cdnow_model: clv.Model) -> None:
    gg = cdnow_model.spend
    assert gg is not None
    value = gg.expected_order_value(cdnow["x"], cdnow["zbar"])
    # Without a repeat order it is the population's mean; with many it leans towards the customer's own mean.
    assert np.all(value[cdnow["x"] == 0] == pytest.approx(gg.mean_order_value))
    assert float(gg.expected_order_value(20, 100.0)) > float(gg.expected_order_value(1, 100.0)) > gg.mean_order_value
    history = (cdnow["x"], cdnow["t_x"], cdnow["T"])
    plain = clv.clv(cdnow_model.bgnbd, gg, *history, cdnow["zbar"], horizon=52.0)
    assert plain == pytest.approx(cdnow_model.bgnbd.expected_orders(52.0, *history) * value)
    discounted = clv.clv(cdnow_model.bgnbd, gg, *history, cdnow["zbar"], horizon=52.0, discount_rate=0.002)
    assert np.all((discounted > 0) & (discounted < plain))
    predictions = cdnow_model.predict(*history, cdnow["zbar"], horizon=13.0, clv_horizon=52.0, discount_rate=0.002)
    assert predictions.clv == pytest.approx(discounted)
    assert predictions.expected_order_value == pytest.approx(value)


def test_a_simulated_population_is_recovered() -> None:
    rng = np.random.default_rng(20050101)
    truth = {"r": 0.5, "alpha": 6.0, "a": 0.8, "b": 2.5}
    n = 30_000
    T = rng.uniform(20.0, 60.0, n)
    x, t_x = simulate(n, truth["r"], truth["alpha"], truth["a"], truth["b"], T, rng)
    # Spend: each customer's mean over x repeat orders of Gamma(p, nu) values, nu ~ Gamma(q, gamma).
    p, q, gamma = 4.0, 3.0, 20.0
    nu = rng.gamma(q, 1.0 / gamma, n)
    m_x = np.where(x > 0, rng.gamma(p * np.maximum(x, 1), 1.0 / (nu * np.maximum(x, 1))), 0.0)
    model = clv.fit(x, t_x, T, m_x)
    assert isinstance(model, clv.Model)
    bg = model.bgnbd
    assert bg.r == pytest.approx(truth["r"], rel=0.1)
    assert bg.alpha == pytest.approx(truth["alpha"], rel=0.15)
    assert bg.a == pytest.approx(truth["a"], rel=0.15)
    assert bg.b == pytest.approx(truth["b"], rel=0.2)
    assert model.spend is not None
    assert model.spend.p == pytest.approx(p, rel=0.15)
    assert model.spend.q == pytest.approx(q, rel=0.15)
    assert model.spend.gamma == pytest.approx(gamma, rel=0.2)
    # Weights: the same customers listed once with a count of 2 fit like the list doubled.
    doubled = clv.fit_bgnbd(np.tile(x[:3000], 2), np.tile(t_x[:3000], 2), np.tile(T[:3000], 2))
    weighted = clv.fit_bgnbd(x[:3000], t_x[:3000], T[:3000], weights=np.full(3000, 2.0))
    assert doubled is not None and weighted is not None
    for name in ("r", "alpha", "a", "b", "log_likelihood"):
        assert getattr(weighted, name) == pytest.approx(getattr(doubled, name), rel=1e-4)


def test_a_shop_too_small_gets_not_enough_data_and_what_can_be_shown(cdnow: np.ndarray) -> None:
    few = clv.fit(cdnow["x"][:40], cdnow["t_x"][:40], cdnow["T"][:40], cdnow["zbar"][:40])
    assert isinstance(few, clv.NotEnoughData)
    assert few.reason is clv.Shortfall.TOO_FEW_CUSTOMERS
    assert few.customers == 40
    assert few.repeat_customers == int(np.sum(cdnow["x"][:40] > 0))

    once = cdnow["x"] == 0  # nobody came back: nothing to learn drop-out from
    loyal = np.flatnonzero(~once)[:10]
    keep = np.concatenate([np.flatnonzero(once), loyal])
    no_repeats = clv.fit(cdnow["x"][keep], cdnow["t_x"][keep], cdnow["T"][keep])
    assert no_repeats == clv.NotEnoughData(clv.Shortfall.TOO_FEW_REPEAT_CUSTOMERS, len(keep), 10)

    # Orders can be modelled, spend cannot: the model predicts orders and says why there is no value.
    no_spend = clv.fit(cdnow["x"], cdnow["t_x"], cdnow["T"])
    assert isinstance(no_spend, clv.Model)
    assert no_spend.spend is None and no_spend.spend_shortfall is clv.Shortfall.TOO_FEW_REPEAT_CUSTOMERS
    predictions = no_spend.predict(cdnow["x"], cdnow["t_x"], cdnow["T"], horizon=13.0)
    assert predictions.clv is None and predictions.expected_order_value is None
    assert predictions.expected_orders.shape == (len(cdnow),)


def test_a_fit_that_does_not_settle_is_not_a_model() -> None:
    """Customers who all keep ordering like clockwork give no evidence of drop-out: b runs off to infinity."""
    n = 500
    T = np.full(n, 40.0)
    x = np.full(n, 8.0)
    t_x = np.full(n, 39.5)
    result = clv.fit(x, t_x, T)
    assert result == clv.NotEnoughData(clv.Shortfall.NO_CONVERGENCE, n, n)


def test_summarise_orders() -> None:
    customer = np.array([7, 3, 7, 3, 9, 7, 3])
    time = np.array([10.0, 2.0, 4.0, 2.0, 30.0, 12.0, 8.0])
    value = np.array([5.0, 10.0, 20.0, 1.0, 8.0, 9.0, 30.0])
    summary = clv.summarise(customer, time, value, end=40.0)
    assert summary.customer.tolist() == [3, 7, 9]
    assert summary.x.tolist() == [1.0, 2.0, 0.0]  # customer 3's two orders at time 2 are one
    assert summary.t_x.tolist() == [6.0, 8.0, 0.0]
    assert summary.T.tolist() == [38.0, 36.0, 10.0]
    assert summary.m_x.tolist() == [30.0, 7.0, 0.0]


def test_histories_are_checked() -> None:
    bg = clv.BgNbd(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0, customers=0)
    with pytest.raises(ValueError):
        bg.p_alive(1, 5.0, 4.0)  # t_x after T
    with pytest.raises(ValueError):
        bg.p_alive(0, 2.0, 4.0)  # a last repeat order without any
    with pytest.raises(ValueError):
        bg.p_alive(1.5, 2.0, 4.0)
