"""Customer lifetime: a BG/NBD model of repeat orders with a Gamma-Gamma model of spend, fitted per shop.

Pure numerics on numpy arrays, vectorised over customers (no Python loop over them anywhere): no Flask,
SQLAlchemy or database here. Every customer is summarised as

- ``x``: repeat orders (orders after the first; orders at the same instant count once),
- ``t_x``: the time of the last order, counted from the first (0 when ``x`` is 0),
- ``T``: the customer's age, from the first order to the end of the observation,
- ``m_x``: the mean value of the repeat orders (ignored when ``x`` is 0),

in one time unit of the caller's choosing (days for a shop; the CDNOW tests use weeks). Every horizon and
rate below is in that same unit.

**BG/NBD** (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way: An Alternative to the
Pareto/NBD Model"). While alive, a customer orders as a Poisson process with rate lambda ~ Gamma(r, alpha);
after each repeat order they drop out for good with probability p ~ Beta(a, b). The likelihood of one
customer is (eq. 6 of the paper)

    L = B(a, b + x) / B(a, b) * Gamma(r + x) alpha^r / Gamma(r)
        * [ (alpha + T)^-(r + x) + [x > 0] a / (b + x - 1) * (alpha + t_x)^-(r + x) ]

and it is maximised over log(r, alpha, a, b) with an analytic gradient (L-BFGS-B). Dropping out happens only
right after a repeat order, so a customer with no repeat order is alive with probability 1 under this model
(``p_alive`` says so: read a low ``expected_orders`` for them, not their ``p_alive``).

**Next order.** The expected waiting time for the next order is infinite under the model (a customer may
have dropped out, and the Gamma mixture of rates is heavy-tailed), so we report a closed-form *quantile*
instead. Given the history, an alive customer's rate is Gamma(r + x, alpha + T) distributed and they order
next after an exponential wait; they cannot drop out before that order. Hence, exactly,

    P(next order within t) = P(alive) * (1 - ((alpha + T) / (alpha + T + t))^(r + x))

and ``time_to_next_order`` solves it for t at a given probability (the median, 1/2, by default):

    t = (alpha + T) * ((1 - probability / P(alive))^(-1 / (r + x)) - 1),

infinite when P(alive) <= probability (more likely than not, with the median, they never order again).

**Gamma-Gamma** (Fader, Hardie & Lee 2005, "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis";
Fader & Hardie 2013, "The Gamma-Gamma Model of Monetary Value"). Order values are Gamma(p, nu) with
nu ~ Gamma(q, gamma) across customers, independent of the order process; fitted on the customers with a
repeat order by maximum likelihood of their mean repeat value. A customer's expected order value is
p (gamma + x m_x) / (p x + q - 1), which for x = 0 is the population mean p gamma / (q - 1) (needs q > 1).

**CLV** over a horizon H is the expected number of orders in H times the expected order value (revenue; the
caller applies a margin). With a discount rate d per time unit, H is cut into ``steps`` equal slices and the
orders expected in each slice are discounted by (1 + d)^-t at the slice's end (a slightly cautious figure).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

Floats = npt.NDArray[np.float64]

# Below these a shop is "not enough data yet": four parameters need a few hundred customers, and the
# drop-out parameters are learnt only from customers who came back.
MIN_CUSTOMERS = 200
MIN_REPEAT_CUSTOMERS = 50

# A fitted log-parameter with a larger standard error than this (a factor of e^2, about 7, either way) is not
# identified by the data; the fit is then "not enough data yet".
MAX_LOG_STANDARD_ERROR = 2.0

_LOG_BOUND = 15.0  # log-parameters are searched within -15..15 (time rescaled to the customers' mean age)


class Shortfall(StrEnum):
    TOO_FEW_CUSTOMERS = "too_few_customers"
    TOO_FEW_REPEAT_CUSTOMERS = "too_few_repeat_customers"
    NO_CONVERGENCE = "no_convergence"  # the optimiser did not settle on a well-defined interior maximum


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: float  # the sum of the weights

    def p_alive(self, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> Floats:
        """P(still a customer at T | x, t_x, T); 1 for x = 0 (drop-outs happen only after a repeat order)."""
        xs, txs, Ts = _history(x, t_x, T)
        return self._p_alive(xs, txs, Ts)

    def expected_orders(self, t: float, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> Floats:
        """E[orders in (T, T + t] | x, t_x, T]: eq. 10 of the paper, its 2F1 taken through Euler's transformation
        2F1(r+x, b+x; c; z) = (1-z)^(a-1-r-x) 2F1(a+b-1-r, a-1; c; z), which keeps it finite for large x."""
        xs, txs, Ts = _history(x, t_x, T)
        return self._expected_orders(float(t), xs, txs, Ts)

    def next_order_within(self, t: float, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> Floats:
        """P(the next order comes within t after T | x, t_x, T) (see the module's docstring)."""
        xs, txs, Ts = _history(x, t_x, T)
        rx = self.r + xs
        with np.errstate(over="ignore"):
            later = np.exp(-rx * np.log1p(float(t) / (self.alpha + Ts)))
        return np.asarray(self._p_alive(xs, txs, Ts) * (1.0 - later), dtype=np.float64)

    def time_to_next_order(
        self, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike, probability: float = 0.5
    ) -> Floats:
        """The time after T by which the next order has come with this probability (the median by default);
        inf where the customer is not that likely ever to order again. Closed form, see the module's docstring."""
        if not 0.0 < probability < 1.0:
            raise ValueError("probability must be strictly between 0 and 1")
        xs, txs, Ts = _history(x, t_x, T)
        alive = self._p_alive(xs, txs, Ts)
        out = np.full(xs.shape, np.inf)
        reach = alive > probability
        with np.errstate(over="ignore"):
            out[reach] = (self.alpha + Ts[reach]) * np.expm1(-np.log1p(-probability / alive[reach]) / (self.r + xs[reach]))
        return out

    def _p_alive(self, x: Floats, t_x: Floats, T: Floats) -> Floats:
        repeat = x > 0
        xm = np.where(repeat, x, 1.0)
        log_odds = (
            np.log(self.a)
            - np.log(self.b + xm - 1.0)
            + (self.r + xm) * (np.log(self.alpha + T) - np.log(self.alpha + np.where(repeat, t_x, 0.0)))
        )
        return np.where(repeat, np.asarray(special.expit(-log_odds), dtype=np.float64), 1.0)

    def _expected_orders(self, t: float, x: Floats, t_x: Floats, T: Floats) -> Floats:
        if t < 0:
            raise ValueError("the horizon must not be negative")
        r, alpha, b = self.r, self.alpha, self.b
        a = self.a
        if abs(a - 1.0) < 1e-7:  # the closed form is 0/0 at a = 1; its limit is this close
            a = 1.0 + 1e-7 if a >= 1.0 else 1.0 - 1e-7
        z = t / (alpha + T + t)
        f = np.asarray(special.hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z), dtype=np.float64)
        head = (a + b + x - 1.0) / (a - 1.0)
        body = -np.expm1((a - 1.0) * np.log1p(-z)) - np.exp((a - 1.0) * np.log1p(-z)) * (f - 1.0)
        return np.asarray(head * body * self._p_alive(x, t_x, T), dtype=np.float64)


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    gamma: float
    log_likelihood: float
    customers: float  # the sum of the weights of the customers it was fitted on (those with a repeat order)

    @property
    def mean_order_value(self) -> float:
        """The population's mean order value, p gamma / (q - 1)."""
        return self.p * self.gamma / (self.q - 1.0)

    def expected_order_value(self, x: npt.ArrayLike, m_x: npt.ArrayLike) -> Floats:
        """E[order value | x repeat orders of mean m_x]: a weighted mean of the population's and the customer's."""
        xs = np.asarray(x, dtype=np.float64)
        ms = np.where(xs > 0, np.asarray(m_x, dtype=np.float64), 0.0)
        return np.asarray(self.p * (self.gamma + xs * ms) / (self.p * xs + self.q - 1.0), dtype=np.float64)


@dataclass(frozen=True)
class NotEnoughData:
    """Why a shop has no model yet, and what can be shown anyway."""

    reason: Shortfall
    customers: int
    repeat_customers: int


@dataclass(frozen=True)
class Predictions:
    p_alive: Floats
    expected_orders: Floats  # in the horizon
    next_order_in: Floats  # the median time to the next order, inf when it is more likely than not never
    expected_order_value: Floats | None  # None without a spend model
    clv: Floats | None  # over the CLV horizon; None without a spend model


@dataclass(frozen=True)
class Model:
    bgnbd: BgNbd
    spend: GammaGamma | None  # None when the spend could not be modelled (see spend_shortfall)
    spend_shortfall: Shortfall | None = None

    def predict(
        self,
        x: npt.ArrayLike,
        t_x: npt.ArrayLike,
        T: npt.ArrayLike,
        m_x: npt.ArrayLike | None = None,
        *,
        horizon: float,
        clv_horizon: float | None = None,
        discount_rate: float = 0.0,
    ) -> Predictions:
        """Each customer's P(alive), expected orders in ``horizon``, median time to the next order, and, with a spend
        model and ``m_x``, expected order value and CLV over ``clv_horizon`` (``horizon`` when not given)."""
        xs, txs, Ts = _history(x, t_x, T)
        bg = self.bgnbd
        value = None if self.spend is None or m_x is None else self.spend.expected_order_value(xs, m_x)
        return Predictions(
            p_alive=bg._p_alive(xs, txs, Ts),
            expected_orders=bg._expected_orders(float(horizon), xs, txs, Ts),
            next_order_in=bg.time_to_next_order(xs, txs, Ts),
            expected_order_value=value,
            clv=None
            if value is None
            else _clv(bg, value, xs, txs, Ts, float(clv_horizon if clv_horizon is not None else horizon), discount_rate),
        )


def clv(
    bgnbd: BgNbd,
    spend: GammaGamma,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    m_x: npt.ArrayLike,
    horizon: float,
    discount_rate: float = 0.0,
    steps: int = 12,
) -> Floats:
    """Expected revenue from each customer over the horizon (see the module's docstring for the discounting)."""
    xs, txs, Ts = _history(x, t_x, T)
    return _clv(bgnbd, spend.expected_order_value(xs, m_x), xs, txs, Ts, float(horizon), discount_rate, steps)


def _clv(
    bg: BgNbd, value: Floats, x: Floats, t_x: Floats, T: Floats, horizon: float, discount_rate: float, steps: int = 12
) -> Floats:
    if discount_rate < 0 or steps < 1:
        raise ValueError("the discount rate must not be negative and steps must be at least 1")
    if discount_rate == 0:
        return np.asarray(bg._expected_orders(horizon, x, t_x, T) * value, dtype=np.float64)
    total = np.zeros(x.shape)
    before = np.zeros(x.shape)
    for k in range(1, steps + 1):  # over the slices of the horizon, each vectorised over the customers
        t = horizon * k / steps
        upto = bg._expected_orders(t, x, t_x, T)
        total += (upto - before) / (1.0 + discount_rate) ** t
        before = upto
    return np.asarray(total * value, dtype=np.float64)


def fit(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
    m_x: npt.ArrayLike | None = None,
    *,
    weights: npt.ArrayLike | None = None,
    min_customers: int = MIN_CUSTOMERS,
    min_repeat_customers: int = MIN_REPEAT_CUSTOMERS,
) -> Model | NotEnoughData:
    """A shop's model, or why it has none yet. ``weights`` count identical customers (default 1 each). The spend model
    is fitted when ``m_x`` is given; when it cannot be, the model still predicts orders (``spend`` is None)."""
    xs, txs, Ts = _history(x, t_x, T)
    w = _weights(weights, xs.shape)
    customers = int(round(float(w.sum())))
    repeaters = int(round(float(w[xs > 0].sum())))
    if customers < min_customers:
        return NotEnoughData(Shortfall.TOO_FEW_CUSTOMERS, customers, repeaters)
    if repeaters < min_repeat_customers:
        return NotEnoughData(Shortfall.TOO_FEW_REPEAT_CUSTOMERS, customers, repeaters)
    bg = fit_bgnbd(xs, txs, Ts, weights=w)
    if bg is None:
        return NotEnoughData(Shortfall.NO_CONVERGENCE, customers, repeaters)
    if m_x is None:
        return Model(bg, None, Shortfall.TOO_FEW_REPEAT_CUSTOMERS)
    ms = np.asarray(m_x, dtype=np.float64)
    if ms.shape != xs.shape:
        raise ValueError("m_x must have one value per customer")
    spenders = (xs > 0) & (ms > 0)
    if float(w[spenders].sum()) < min_repeat_customers:
        return Model(bg, None, Shortfall.TOO_FEW_REPEAT_CUSTOMERS)
    gg = fit_gamma_gamma(xs[spenders], ms[spenders], weights=w[spenders])
    if gg is None:
        return Model(bg, None, Shortfall.NO_CONVERGENCE)
    return Model(bg, gg)


def bgnbd_log_likelihood(
    params: tuple[float, float, float, float], x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
) -> Floats:
    """Each customer's log-likelihood under BG/NBD parameters (r, alpha, a, b)."""
    xs, txs, Ts = _history(x, t_x, T)
    r, alpha, a, b = params
    repeat = xs > 0
    xm = np.where(repeat, xs, 1.0)
    l3 = -(r + xs) * np.log(alpha + Ts)
    l4 = np.where(repeat, np.log(a) - np.log(b + xm - 1.0) - (r + xs) * np.log(alpha + txs), -np.inf)
    shared = special.gammaln(r + xs) - special.gammaln(r) + r * np.log(alpha) + special.betaln(a, b + xs) - special.betaln(a, b)
    return np.asarray(shared + np.logaddexp(l3, l4), dtype=np.float64)


def fit_bgnbd(x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike, *, weights: npt.ArrayLike | None = None) -> BgNbd | None:
    """Maximum likelihood BG/NBD parameters, or None when they are not a settled, well-defined maximum (``_maximise``)."""
    xs, txs, Ts = _history(x, t_x, T)
    w = _weights(weights, xs.shape)
    total = float(w.sum())
    if total <= 0 or not np.any(xs[w > 0] > 0):
        return None
    # The terms that depend on x alone are summed over its distinct values (a handful), not over customers.
    ux, inverse = np.unique(xs, return_inverse=True)
    wx = np.bincount(inverse.ravel(), weights=w)
    # Time is measured in the customers' mean age while fitting, so that alpha starts and ends near 1 whatever the unit.
    scale = float(w @ Ts) / total
    if scale <= 0:
        return None
    Tsc = Ts / scale
    wrx = w * xs  # for the sums of w (r + x) f(T) = r (w . f) + (w x . f)
    # With [x > 0] the bracket of the likelihood is (alpha+T)^-(r+x) (1 + e^d), d = log a - log(b+x-1)
    # + (r+x) (log(alpha+T) - log(alpha+t_x)): the customers with repeat orders only add softplus(d), with
    # e^d / (1 + e^d) = expit(d) the weight of "dropped out after the last order" in the gradient.
    rep = xs > 0
    xr, wr = xs[rep], w[rep]
    Tr, txr = Tsc[rep], txs[rep] / scale
    ur, inverse_r = np.unique(xr, return_inverse=True)
    inverse_r = inverse_r.ravel()

    def objective(theta: Floats) -> tuple[float, Floats]:
        r, alpha, a, b = (float(v) for v in np.exp(theta))
        log_at = np.log(alpha + Tsc)
        inv_at = 1.0 / (alpha + Tsc)
        log_atr = np.log(alpha + Tr)
        log_atxr = np.log(alpha + txr)
        gap = log_atr - log_atxr
        rxr = r + xr
        d = (np.log(a) - np.log(b + ur - 1.0))[inverse_r] + rxr * gap
        drop = wr * np.asarray(special.expit(d), dtype=np.float64)  # w times P(dropped out after the last order)
        ll = (
            float(wx @ (special.gammaln(r + ux) + special.betaln(a, b + ux)))
            - total * (float(special.gammaln(r)) + float(special.betaln(a, b)) - r * np.log(alpha))
            - r * float(w @ log_at)
            - float(wrx @ log_at)
            + float(wr @ np.logaddexp(0.0, d))
        )
        psi_ab = float(special.digamma(a + b))
        psi_abx = special.digamma(a + b + ux)
        drop_x = np.bincount(inverse_r, weights=drop, minlength=ur.size)  # summed per distinct x
        d_r = (
            float(wx @ special.digamma(r + ux))
            - total * (float(special.digamma(r)) - np.log(alpha))
            - float(w @ log_at)
            + float(drop @ gap)
        )
        d_alpha = (
            total * r / alpha
            - r * float(w @ inv_at)
            - float(wrx @ inv_at)
            + float(drop @ (rxr * (1.0 / (alpha + Tr) - 1.0 / (alpha + txr))))
        )
        d_a = total * psi_ab - float(wx @ psi_abx) + float(drop_x.sum()) / a
        d_b = (
            float(wx @ (special.digamma(b + ux) - psi_abx))
            - total * (float(special.digamma(b)) - psi_ab)
            - float(drop_x @ (1.0 / (b + ur - 1.0)))
        )
        grad = np.array([d_r * r, d_alpha * alpha, d_a * a, d_b * b])
        return -ll / total, -grad / total

    rate = float(w @ xs) / total  # repeat orders per mean age
    start = np.log([1.0, 1.0 / rate, 1.0, 1.0])
    theta = _maximise(objective, start, total)
    if theta is None:
        return None
    r, alpha, a, b = (float(v) for v in np.exp(theta))
    alpha *= scale
    ll = float(w @ bgnbd_log_likelihood((r, alpha, a, b), xs, txs, Ts))
    return BgNbd(r=r, alpha=alpha, a=a, b=b, log_likelihood=ll, customers=total)


def gamma_gamma_log_likelihood(params: tuple[float, float, float], x: npt.ArrayLike, m_x: npt.ArrayLike) -> Floats:
    """Each customer's log-likelihood of their mean order value m_x over x > 0 orders, under (p, q, gamma)."""
    p, q, gamma = params
    xs = np.asarray(x, dtype=np.float64)
    ms = np.asarray(m_x, dtype=np.float64)
    px = p * xs
    return np.asarray(
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * np.log(gamma)
        + (px - 1.0) * np.log(ms)
        + px * np.log(xs)
        - (px + q) * np.log(gamma + ms * xs),
        dtype=np.float64,
    )


def fit_gamma_gamma(x: npt.ArrayLike, m_x: npt.ArrayLike, *, weights: npt.ArrayLike | None = None) -> GammaGamma | None:
    """Maximum likelihood Gamma-Gamma parameters from customers with x > 0 repeat orders of mean value m_x > 0, or None
    when the optimiser does not settle or q <= 1 (the population's mean order value would be unbounded)."""
    xs = np.asarray(x, dtype=np.float64)
    ms = np.asarray(m_x, dtype=np.float64)
    if xs.shape != ms.shape or xs.ndim != 1:
        raise ValueError("x and m_x must be one-dimensional arrays of the same length")
    if xs.size == 0 or np.any(xs <= 0) or np.any(ms <= 0) or not np.all(np.isfinite(ms)):
        raise ValueError("the spend model takes customers with repeat orders of a positive mean value only")
    w = _weights(weights, xs.shape)
    total = float(w.sum())
    if total <= 0:
        return None
    scale = float(w @ ms) / total  # values are measured in their mean while fitting, whatever the currency
    mx = ms / scale * xs
    # Everything but log(gamma + m x) depends on x alone, or is a constant: summed over the distinct x values once.
    ux, inverse = np.unique(xs, return_inverse=True)
    wx = np.bincount(inverse.ravel(), weights=w)
    wxs = w * xs
    log_m = np.log(ms / scale)
    constant_p = float(wxs @ (log_m + np.log(xs)))  # sum of w x (log m + log x), the p x log(m x) term over p
    constant_1 = float(w @ log_m)

    def objective(theta: Floats) -> tuple[float, Floats]:
        p, q, gamma = (float(v) for v in np.exp(theta))
        pu = p * ux
        log_gm = np.log(gamma + mx)
        inv_gm = 1.0 / (gamma + mx)
        psi_puq = special.digamma(pu + q)
        ll = (
            float(wx @ (special.gammaln(pu + q) - special.gammaln(pu)))
            + p * constant_p
            - constant_1
            - p * float(wxs @ log_gm)
            - q * float(w @ log_gm)
            + total * (q * np.log(gamma) - float(special.gammaln(q)))
        )
        d_p = float(wx @ (ux * (psi_puq - special.digamma(pu)))) + constant_p - float(wxs @ log_gm)
        d_q = float(wx @ psi_puq) - float(w @ log_gm) + total * (np.log(gamma) - float(special.digamma(q)))
        d_gamma = total * q / gamma - p * float(wxs @ inv_gm) - q * float(w @ inv_gm)
        grad = np.array([d_p * p, d_q * q, d_gamma * gamma])
        return -ll / total, -grad / total

    start = np.log([1.0, 2.0, 1.0])
    theta = _maximise(objective, start, total)
    if theta is None:
        return None
    p, q, gamma = (float(v) for v in np.exp(theta))
    gamma *= scale
    if q <= 1.0:
        return None
    ll = float(w @ gamma_gamma_log_likelihood((p, q, gamma), xs, ms))
    return GammaGamma(p=p, q=q, gamma=gamma, log_likelihood=ll, customers=total)


@dataclass(frozen=True)
class Summary:
    customer: npt.NDArray[np.generic]  # the distinct customer ids, sorted
    x: Floats
    t_x: Floats
    T: Floats
    m_x: Floats  # 0 for customers without a repeat order


def summarise(customer: npt.ArrayLike, time: npt.ArrayLike, value: npt.ArrayLike, end: float) -> Summary:
    """Per-customer (x, t_x, T, m_x) from orders (customer id, time, value), observed until ``end``. Orders of one
    customer at the same time are one order (their values added), as in the models an order is an event in time."""
    c = np.asarray(customer)
    t = np.asarray(time, dtype=np.float64)
    v = np.asarray(value, dtype=np.float64)
    if not (c.ndim == t.ndim == v.ndim == 1) or not (c.shape == t.shape == v.shape):
        raise ValueError("customer, time and value must be one-dimensional arrays of the same length")
    if c.size and float(t.max()) > end:
        raise ValueError("an order comes after the end of the observation")
    order = np.lexsort((t, c))
    c, t, v = c[order], t[order], v[order]
    new_order = np.ones(c.shape, dtype=bool)
    new_order[1:] = (c[1:] != c[:-1]) | (t[1:] != t[:-1])
    oc, ot = c[new_order], t[new_order]
    ov = np.bincount(np.cumsum(new_order) - 1, weights=v) if c.size else np.zeros(0)
    first = np.ones(oc.shape, dtype=bool)
    first[1:] = oc[1:] != oc[:-1]
    which = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    lasts = np.append(starts[1:] - 1, oc.size - 1).astype(np.intp) if oc.size else starts
    x = (np.bincount(which) - 1).astype(np.float64) if oc.size else np.zeros(0)
    repeat_value = np.bincount(which, weights=np.where(first, 0.0, ov)) if oc.size else np.zeros(0)
    return Summary(
        customer=oc[starts],
        x=x,
        t_x=ot[lasts] - ot[starts],
        T=end - ot[starts],
        m_x=np.divide(repeat_value, x, out=np.zeros_like(x), where=x > 0),
    )


def _maximise(objective: Callable[[Floats], tuple[float, Floats]], start: Floats, total: float) -> Floats | None:
    """The log-parameters maximising a likelihood (``objective`` is minus its mean log-likelihood and gradient), or
    None unless the optimiser settled on a well-defined interior maximum: inside the bounds, the observed information
    positive definite, and every log-parameter's standard error at most MAX_LOG_STANDARD_ERROR (a likelihood flat
    along some direction, e.g. nobody seen dropping out, lets a parameter drift anywhere: that is no estimate)."""
    bound = (-_LOG_BOUND, _LOG_BOUND)
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        result = optimize.minimize(
            objective, start, jac=True, method="L-BFGS-B", bounds=[bound] * start.size, options={"maxiter": 2000}
        )
        theta = np.asarray(result.x, dtype=np.float64)
        if not bool(result.success) or not np.all(np.isfinite(theta)) or not np.isfinite(float(result.fun)):
            return None
        if np.any(np.abs(theta) > _LOG_BOUND - 1e-3):
            return None
        # The observed information, by forward differences of the analytic gradient (enough to tell a flat direction).
        step = 1e-5
        at = objective(theta)[1]
        hessian = np.empty((theta.size, theta.size))
        for i in range(theta.size):  # over the parameters (3 or 4), each a vectorised pass over the customers
            shift = np.zeros(theta.size)
            shift[i] = step
            hessian[i] = (objective(theta + shift)[1] - at) / step
        information = total * (hessian + hessian.T) / 2
    if not np.all(np.isfinite(information)) or float(np.linalg.eigvalsh(information).min()) <= 0:
        return None
    if float(np.sqrt(np.diag(np.linalg.inv(information))).max()) > MAX_LOG_STANDARD_ERROR:
        return None
    return theta


def _history(x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> tuple[Floats, Floats, Floats]:
    xs = np.asarray(x, dtype=np.float64)
    txs = np.asarray(t_x, dtype=np.float64)
    Ts = np.asarray(T, dtype=np.float64)
    xs, txs, Ts = np.broadcast_arrays(xs, txs, Ts)
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(txs)) and np.all(np.isfinite(Ts))):
        raise ValueError("x, t_x and T must be finite")
    if np.any(xs < 0) or np.any(xs != np.floor(xs)):
        raise ValueError("x counts repeat orders: a whole number, 0 or more")
    if np.any(txs < 0) or np.any(txs > Ts):
        raise ValueError("each customer needs 0 <= t_x <= T")
    if np.any((xs == 0) & (txs != 0)):
        raise ValueError("t_x is 0 for a customer without a repeat order")
    return xs, txs, Ts


def _weights(weights: npt.ArrayLike | None, shape: tuple[int, ...]) -> Floats:
    if weights is None:
        return np.ones(shape)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != shape or np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be one non-negative number per customer")
    return w
