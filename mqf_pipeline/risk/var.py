"""Value at risk and expected shortfall (seed 000 §7.3), component CVaR and VaR backtests.

Units and conventions, everywhere in this module:

* ``returns`` are simple decimal returns per period (per day): shape ``(T,)`` for one series or
  ``(T, N)`` with one column per symbol or portfolio. Functions reduce along axis 0 and return a
  ``float`` for a 1-D input, an array of shape ``(N,)`` for a 2-D input.
* VaR and CVaR are **positive loss fractions per period**: ``0.031`` is a 3.1% one-day loss. A
  negative value means even the tail is a gain.
* ``level`` is the confidence level (seed: 0.95); the tail probability is ``1 - level``.
* Empirical quantiles use numpy's ``method=QUANTILE_METHOD`` (``"linear"``, numpy's default, type 7
  of Hyndman-Fan): with the sorted sample ``x_(0) <= ... <= x_(T-1)`` and ``h = (T - 1) * alpha``,
  ``q = x_(floor h) + (h - floor h) * (x_(floor h + 1) - x_(floor h))``. The choice matters: on 252
  points the numpy methods differ by a few percent in the 5% tail. (The risk *agent* in
  ``mqf_pipeline.agents.risk`` uses ``"inverted_cdf"`` on log returns for its cross-sectional score;
  that is a ranking input, not this module's risk number.)
* Non-finite input is rejected: a NaN or inf raises ``ValueError`` naming the first bad column;
  callers drop or clean rows first. The seed's 252-day window is the caller's slice.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.stats import chi2, norm

QUANTILE_METHOD: str = "linear"
"""The numpy quantile method used by every empirical quantile in ``mqf_pipeline.risk``."""


def check_level(level: float, name: str = "level") -> float:
    """``level`` as a float strictly inside (0, 1); ``ValueError`` otherwise."""
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {level}")
    return level


def returns_matrix(returns: np.ndarray, min_rows: int = 1) -> tuple[np.ndarray, bool]:
    """``returns`` as a float64 ``(T, N)`` matrix and whether the input was 1-D.

    Raises ``ValueError`` for other shapes, fewer than ``min_rows`` rows, or a non-finite value
    (the message names the first column index holding one)."""
    arr = np.asarray(returns, dtype=np.float64)
    if arr.ndim not in (1, 2):
        raise ValueError(f"returns must be 1-D (T,) or 2-D (T, N), got shape {arr.shape}")
    one_d = arr.ndim == 1
    mat = arr[:, None] if one_d else arr
    if mat.shape[0] < min_rows or mat.shape[1] == 0:
        raise ValueError(f"need at least {min_rows} rows and one column, got shape {arr.shape}")
    bad = ~np.isfinite(mat)
    if bad.any():
        col = int(np.flatnonzero(bad.any(axis=0))[0])
        raise ValueError(f"returns column {col} holds NaN or inf: drop or clean those rows first")
    return mat, one_d


def _out(values: np.ndarray, one_d: bool) -> np.ndarray | float:
    return float(values[0]) if one_d else values


def historical_var(returns: np.ndarray, level: float = 0.95) -> np.ndarray | float:
    """Historical VaR: ``-quantile(returns, 1 - level, method=QUANTILE_METHOD)`` along axis 0.

    Positive loss fraction per period; ``float`` for ``(T,)`` input, ``(N,)`` array for ``(T, N)``."""
    level = check_level(level)
    mat, one_d = returns_matrix(returns)
    return _out(-np.quantile(mat, 1.0 - level, axis=0, method=QUANTILE_METHOD), one_d)


def parametric_var(returns: np.ndarray, level: float = 0.95) -> np.ndarray | float:
    """Normal VaR: ``-(mean + norm.ppf(1 - level) * std(ddof=1))`` along axis 0 (needs T >= 2).

    Positive loss fraction per period; ``float`` for ``(T,)`` input, ``(N,)`` array for ``(T, N)``."""
    level = check_level(level)
    mat, one_d = returns_matrix(returns, min_rows=2)
    z = norm.ppf(1.0 - level)
    return _out(-(mat.mean(axis=0) + z * mat.std(axis=0, ddof=1)), one_d)


def hybrid_var(returns: np.ndarray, level: float = 0.95, hist_weight: float = 0.6) -> np.ndarray | float:
    """Seed §7.3 hybrid VaR: ``hist_weight * historical + (1 - hist_weight) * parametric`` (60/40).

    Positive loss fraction per period; ``hist_weight`` in [0, 1]."""
    if not 0.0 <= hist_weight <= 1.0:
        raise ValueError(f"hist_weight must be in [0, 1], got {hist_weight}")
    hist = historical_var(returns, level)
    param = parametric_var(returns, level)
    return hist_weight * hist + (1.0 - hist_weight) * param


def _tail_mask(mat: np.ndarray, level: float) -> np.ndarray:
    """Rows at or below each column's ``1 - level`` quantile (never empty: q >= the column minimum)."""
    q = np.quantile(mat, 1.0 - level, axis=0, method=QUANTILE_METHOD)
    return mat <= q


def historical_cvar(returns: np.ndarray, level: float = 0.95) -> np.ndarray | float:
    """Historical CVaR (expected shortfall): mean of ``-r`` over the returns at or below the VaR quantile.

    Tie rule: every return equal to the quantile is in the tail, so tied observations count alike
    (the tail can then hold more than ``(1 - level) * T`` rows). Positive loss fraction per period,
    always >= :func:`historical_var`."""
    level = check_level(level)
    mat, one_d = returns_matrix(returns)
    tail = _tail_mask(mat, level)
    return _out(-np.where(tail, mat, 0.0).sum(axis=0) / tail.sum(axis=0), one_d)


def portfolio_matrix(weights: np.ndarray, returns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated weights (N,), the cleaned returns matrix (T, N) and the portfolio series ``returns @ weights``."""
    w = np.asarray(weights, dtype=np.float64)
    mat = np.asarray(returns, dtype=np.float64)
    if w.ndim != 1 or mat.ndim != 2 or mat.shape[1] != w.size:
        raise ValueError(f"need weights (N,) and returns (T, N); got {w.shape} and {mat.shape}")
    if not np.isfinite(w).all():
        raise ValueError("weights hold NaN or inf")
    mat, _ = returns_matrix(mat)
    return w, mat, mat @ w


def component_cvar(weights: np.ndarray, returns: np.ndarray, level: float = 0.95) -> tuple[float, np.ndarray]:
    """Portfolio historical CVaR and its Euler decomposition over positions.

    ``weights`` (N,) are portfolio weights (fractions of capital, any sign), ``returns`` (T, N).
    The portfolio series is ``returns @ weights``; its tail scenarios are the rows at or below its
    ``1 - level`` quantile (tie rule of :func:`historical_cvar`). ``component_i = w_i * mean(-r_i)``
    over those scenarios; the components sum to the CVaR (exactly, up to rounding), and the
    marginal CVaR of position i is ``component_i / w_i``. Positive loss fractions per period."""
    level = check_level(level)
    return euler_cvar(*portfolio_matrix(weights, returns), level)


def euler_cvar(w: np.ndarray, mat: np.ndarray, port: np.ndarray, level: float) -> tuple[float, np.ndarray]:
    """Historical CVaR of ``port`` and each position's Euler component over its tail scenarios."""
    tail = _tail_mask(port[:, None], level)[:, 0]
    return float(-port[tail].mean()), w * -mat[tail].mean(axis=0)


class BacktestStat(NamedTuple):
    """A likelihood-ratio backtest: the LR ``statistic`` and its ``pvalue``."""

    statistic: float
    pvalue: float


def _hits(hits: np.ndarray) -> np.ndarray:
    h = np.asarray(hits)
    if h.ndim != 1 or h.size == 0:
        raise ValueError(f"hits must be a non-empty 1-D array, got shape {h.shape}")
    if not np.isin(h, (0, 1)).all():
        raise ValueError("hits must be booleans or 0/1")
    return h.astype(bool)


def _xlogy(x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
    """``x * log(y)`` with ``0 * log(0) = 0``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x == 0, 0.0, x * np.log(np.where(x == 0, 1.0, y)))


def kupiec_pof(hits: np.ndarray, level: float = 0.95) -> BacktestStat:
    """Kupiec (1995) proportion-of-failures test that the hit rate equals ``1 - level``.

    ``hits[t]`` is True when the realised loss exceeded the VaR forecast for period t. With ``x`` hits
    in ``T`` periods, ``p = 1 - level`` and ``phat = x / T``:
    ``LR = -2 [x log p + (T - x) log(1 - p) - x log phat - (T - x) log(1 - phat)]`` (``0 log 0 = 0``),
    p-value from chi2(1). Well sized for the usual ~50 expected hits."""
    level = check_level(level)
    h = _hits(hits)
    n, x = h.size, int(h.sum())
    p, phat = 1.0 - level, x / n
    ll0 = _xlogy(x, p) + _xlogy(n - x, 1.0 - p)
    ll1 = _xlogy(x, phat) + _xlogy(n - x, 1.0 - phat)
    lr = max(float(-2.0 * (ll0 - ll1)), 0.0)
    return BacktestStat(lr, float(chi2.sf(lr, 1)))


def transition_counts(hits: np.ndarray) -> np.ndarray:
    """The 2 x 2 table ``[[n00, n01], [n10, n11]]``: ``n_ij`` = number of t with hit[t-1] = i, hit[t] = j."""
    h = _hits(hits).astype(np.int64)
    idx = 2 * h[:-1] + h[1:]
    return np.bincount(idx, minlength=4).reshape(2, 2)


def _lr_ind(n00: np.ndarray, n01: np.ndarray, n10: np.ndarray, n11: np.ndarray) -> np.ndarray:
    """Christoffersen's LR_ind for (arrays of) transition counts."""
    n0, n1 = n00 + n01, n10 + n11
    tot = n0 + n1
    pi = (n01 + n11) / tot
    with np.errstate(divide="ignore", invalid="ignore"):
        pi01 = np.where(n0 > 0, n01 / np.maximum(n0, 1), 0.0)
        pi11 = np.where(n1 > 0, n11 / np.maximum(n1, 1), 0.0)
    ll0 = _xlogy(n00 + n10, 1.0 - pi) + _xlogy(n01 + n11, pi)
    ll1 = _xlogy(n00, 1.0 - pi01) + _xlogy(n01, pi01) + _xlogy(n10, 1.0 - pi11) + _xlogy(n11, pi11)
    return np.maximum(-2.0 * (ll0 - ll1), 0.0)


def christoffersen_independence(
    hits: np.ndarray, n_sim: int = 0, seed: int | np.random.Generator | None = None
) -> BacktestStat:
    """Christoffersen (1998) test that hits are independent (first-order Markov alternative).

    ``LR_ind = -2 [log L(pi) - log L(pi01, pi11)]`` on the transition counts of
    :func:`transition_counts` (``0 log 0 = 0``); it equals the G statistic of independence of that
    2 x 2 table. With ``n_sim = 0`` the p-value is asymptotic chi2(1), which is undersized with the
    few hits of a 95% VaR over a few years (a lone pair of consecutive hits is rare). With
    ``n_sim > 0`` it is a Monte Carlo permutation p-value: under the null the hits are exchangeable
    given their number, so the sequence is shuffled ``n_sim`` times and
    ``p = (1 + #{LR_sim >= LR_obs}) / (1 + n_sim)`` (exact size, no nuisance parameter)."""
    h = _hits(hits)
    if h.size < 2:
        raise ValueError("need at least two periods")
    (n00, n01), (n10, n11) = transition_counts(h)
    lr = float(_lr_ind(np.array(n00), np.array(n01), np.array(n10), np.array(n11)))
    if n_sim <= 0:
        return BacktestStat(lr, float(chi2.sf(lr, 1)))
    rng = np.random.default_rng(seed)
    sims = rng.permuted(np.broadcast_to(h, (n_sim, h.size)), axis=1).astype(np.int64)
    idx = 2 * sims[:, :-1] + sims[:, 1:]
    counts = [(idx == k).sum(axis=1) for k in range(4)]
    lr_sim = _lr_ind(*counts)
    exceed = int((lr_sim >= lr - 1e-9 * max(1.0, lr)).sum())
    return BacktestStat(lr, (1 + exceed) / (1 + n_sim))
