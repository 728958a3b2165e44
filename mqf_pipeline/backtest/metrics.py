"""Performance metrics of a walk-forward backtest (issue 16 point 2): pure numpy functions.

Units and conventions, everywhere in this module (pinned to empyrical-reloaded, the test oracle):

* ``returns`` are simple **decimal** returns per period (0.01 = 1%), 1-D: a numpy array, a polars
  ``Series`` (nulls become NaN) or a sequence of floats. ``periods_per_year`` is the annualisation
  factor (252 for daily, 52 weekly, 12 monthly). ``risk_free`` and ``required_return`` are **per
  period** (a daily rate for daily returns), a scalar or an array aligned with ``returns``.
  ``benchmark`` is aligned by position and must have the same length. ``+-inf`` raises ``ValueError``.
* **NaN handling** (empyrical's): a NaN return is a missing observation. Means and standard deviations
  skip it (``nanmean``, ``nanstd``); compounding (wealth curve, drawdown, annual return) treats it as
  a 0 return **but still counts the period**, so it lengthens the sample in years. Length checks
  count every period, NaN included: Sharpe, Sortino, volatility and the benchmark ratios need at
  least 2 periods, annual return and drawdown at least 1; otherwise they return NaN.
* Standard deviations use ``ddof=1``. When every present value is equal the deviation is taken as
  exactly 0 (not a ~1e-18 rounding residue), so Sharpe and the information ratio become ``+-inf``
  (``nan`` for a zero mean); volatility and tracking error are then 0.
* Annualised figures: ``annual_return`` is compounded (CAGR: ``prod(1 + r) ** (ppy / T) - 1``);
  volatility, Sharpe, Sortino, downside risk, tracking error and the information ratio scale by
  ``sqrt(ppy)`` (Sortino's numerator by ``ppy``, as in empyrical). The ``*_per_period`` variants are
  not annualised: :func:`information_ratio_per_period` is empyrical's ``excess_sharpe``.
* ``max_drawdown`` is a **negative decimal** (or 0) on the compounded wealth curve anchored at 1
  before the first period; ``calmar_ratio`` = ``annual_return / |max_drawdown|``, NaN without a drawdown.
* Weights matrices are ``(T, N)``: one row per period (the weights held over that period), one column
  per asset, as decimal fractions of NAV; NaN weights count as 0 (no position).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

FloatArray = npt.NDArray[np.float64]
ReturnsLike = FloatArray | pl.Series | Sequence[float]
RateLike = float | ReturnsLike
WeightsLike = FloatArray | pl.DataFrame | Sequence[Sequence[float]]

PERIODS_PER_YEAR: int = 252
"""Default annualisation factor: trading days per year."""


def as_returns(returns: ReturnsLike, name: str = "returns") -> FloatArray:
    """``returns`` as a 1-D float64 array (polars nulls -> NaN); ``ValueError`` on other shapes or ``+-inf``."""
    if isinstance(returns, pl.Series):
        arr = returns.cast(pl.Float64).to_numpy().astype(np.float64, copy=True)
    else:
        arr = np.array(returns, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError(f"{name} holds +-inf: clean the series first")
    return arr


def _rate(rate: RateLike, n: int, name: str) -> float | FloatArray:
    """A per-period scalar rate, or an array rate checked against the returns length ``n``."""
    if np.isscalar(rate):
        return float(rate)  # type: ignore[arg-type]
    arr = as_returns(rate, name)  # type: ignore[arg-type]
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} periods, returns have {n}")
    return arr


def _div(num: float, den: float) -> float:
    """``num / den`` with IEEE semantics (``x/0 = +-inf``, ``0/0 = nan``) instead of ``ZeroDivisionError``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(num) / np.float64(den))


def _std(values: FloatArray) -> float:
    """Sample standard deviation (``ddof=1``, NaN skipped); exactly 0 when all present values are equal.

    NaN with fewer than two present values."""
    present = values[~np.isnan(values)]
    if present.size < 2:
        return float("nan")
    if present.max() == present.min():
        return 0.0
    return float(np.std(present, ddof=1))


def _mean(values: FloatArray) -> float:
    """Mean of the present (non-NaN) values; NaN when there are none."""
    present = values[~np.isnan(values)]
    return float(present.mean()) if present.size else float("nan")


def annual_return(returns: ReturnsLike, periods_per_year: float = PERIODS_PER_YEAR) -> float:
    """Compounded annual growth rate, decimal: ``prod(1 + r) ** (ppy / T) - 1``.

    ``T`` counts every period (NaN returns compound as 0 but count); NaN for an empty series."""
    r = as_returns(returns)
    if r.size < 1:
        return float("nan")
    ending = np.prod(1.0 + np.nan_to_num(r, nan=0.0))
    with np.errstate(invalid="ignore"):
        return float(np.power(ending, periods_per_year / r.size) - 1.0)


def annual_volatility(returns: ReturnsLike, periods_per_year: float = PERIODS_PER_YEAR) -> float:
    """Annualised volatility, decimal: ``std(r, ddof=1) * sqrt(ppy)``, NaN skipped; NaN if ``T < 2``."""
    r = as_returns(returns)
    if r.size < 2:
        return float("nan")
    return _std(r) * float(np.sqrt(periods_per_year))


def sharpe_ratio(returns: ReturnsLike, risk_free: RateLike = 0.0, periods_per_year: float = PERIODS_PER_YEAR) -> float:
    """Annualised Sharpe ratio: ``mean(r - rf) / std(r - rf, ddof=1) * sqrt(ppy)``.

    ``risk_free`` is per period (scalar or aligned array). NaN if ``T < 2``; ``+-inf`` for a constant
    non-zero excess return."""
    r = as_returns(returns)
    if r.size < 2:
        return float("nan")
    excess = r - _rate(risk_free, r.size, "risk_free")
    return _div(_mean(excess), _std(excess)) * float(np.sqrt(periods_per_year))


def downside_risk(
    returns: ReturnsLike, required_return: RateLike = 0.0, periods_per_year: float = PERIODS_PER_YEAR
) -> float:
    """Annualised downside deviation: ``sqrt(mean(min(r - req, 0) ** 2)) * sqrt(ppy)``.

    The mean runs over all present periods (those above ``req`` contribute 0), no ``ddof``
    correction; NaN returns are skipped. NaN for an empty series."""
    r = as_returns(returns)
    if r.size < 1:
        return float("nan")
    below = np.minimum(r - _rate(required_return, r.size, "required_return"), 0.0)
    return float(np.sqrt(_mean(below**2))) * float(np.sqrt(periods_per_year))


def sortino_ratio(
    returns: ReturnsLike, required_return: RateLike = 0.0, periods_per_year: float = PERIODS_PER_YEAR
) -> float:
    """Annualised Sortino ratio: ``mean(r - req) * ppy / downside_risk(r, req, ppy)``.

    ``required_return`` is per period. With no return below ``req`` the downside risk is 0 and the
    ratio is ``+inf`` (``nan`` when the mean excess is also 0). NaN if ``T < 2``."""
    r = as_returns(returns)
    if r.size < 2:
        return float("nan")
    excess = r - _rate(required_return, r.size, "required_return")
    return _div(_mean(excess) * periods_per_year, downside_risk(r, required_return, periods_per_year))


def wealth_curve(returns: ReturnsLike) -> FloatArray:
    """Compounded wealth ``prod_{s<=t}(1 + r_s)`` per period, starting from 1 before the first; NaN -> 0 return."""
    return np.cumprod(1.0 + np.nan_to_num(as_returns(returns), nan=0.0))


def drawdown_series(returns: ReturnsLike) -> FloatArray:
    """Drawdown per period, decimal ``<= 0``: ``W_t / max(1, max_{s<=t} W_s) - 1`` on :func:`wealth_curve`."""
    wealth = np.concatenate(([1.0], wealth_curve(returns)))
    peak = np.fmax.accumulate(wealth)
    return ((wealth - peak) / peak)[1:]


def max_drawdown(returns: ReturnsLike) -> float:
    """Maximum drawdown, a negative decimal (``-0.25`` = 25% peak-to-trough) or 0; NaN for an empty series.

    The peak includes the starting wealth 1, so a first-period loss is a drawdown."""
    dd = drawdown_series(returns)
    return float(dd.min()) if dd.size else float("nan")


def calmar_ratio(returns: ReturnsLike, periods_per_year: float = PERIODS_PER_YEAR) -> float:
    """Calmar ratio: compounded :func:`annual_return` / ``|max_drawdown|``; NaN without a drawdown or if infinite."""
    mdd = max_drawdown(returns)
    if not mdd < 0.0:
        return float("nan")
    ratio = annual_return(returns, periods_per_year) / abs(mdd)
    return float("nan") if np.isinf(ratio) else ratio


def active_returns(returns: ReturnsLike, benchmark: ReturnsLike) -> FloatArray:
    """Per-period active return ``r - b`` (decimal), aligned by position; NaN where either is NaN."""
    r, b = as_returns(returns), as_returns(benchmark, "benchmark")
    if r.shape != b.shape:
        raise ValueError(f"benchmark has {b.size} periods, returns have {r.size}")
    return r - b


def tracking_error_per_period(returns: ReturnsLike, benchmark: ReturnsLike) -> float:
    """Tracking error, **not annualised**: ``std(r - b, ddof=1)``; NaN if ``T < 2``."""
    active = active_returns(returns, benchmark)
    return _std(active) if active.size >= 2 else float("nan")


def tracking_error(returns: ReturnsLike, benchmark: ReturnsLike, periods_per_year: float = PERIODS_PER_YEAR) -> float:
    """Annualised tracking error: :func:`tracking_error_per_period` ``* sqrt(ppy)``."""
    return tracking_error_per_period(returns, benchmark) * float(np.sqrt(periods_per_year))


def information_ratio_per_period(returns: ReturnsLike, benchmark: ReturnsLike) -> float:
    """Information ratio, **not annualised**: ``mean(r - b) / std(r - b, ddof=1)`` (empyrical ``excess_sharpe``)."""
    active = active_returns(returns, benchmark)
    if active.size < 2:
        return float("nan")
    return _div(_mean(active), _std(active))


def information_ratio(
    returns: ReturnsLike, benchmark: ReturnsLike, periods_per_year: float = PERIODS_PER_YEAR
) -> float:
    """Annualised information ratio: :func:`information_ratio_per_period` ``* sqrt(ppy)``."""
    return information_ratio_per_period(returns, benchmark) * float(np.sqrt(periods_per_year))


def hit_rate(returns: ReturnsLike) -> float:
    """Share of periods with ``r > 0`` among the periods with a non-zero, non-NaN return; NaN if none, in [0, 1]."""
    r = as_returns(returns)
    traded = r[~np.isnan(r) & (r != 0.0)]
    return float(np.mean(traded > 0.0)) if traded.size else float("nan")


def as_weights(weights: WeightsLike) -> FloatArray:
    """``weights`` as a float64 ``(T, N)`` matrix, NaN -> 0; a polars frame must hold only numeric weight columns."""
    if isinstance(weights, pl.DataFrame):
        bad = [c for c, dt in weights.schema.items() if not dt.is_numeric()]
        if bad:
            raise ValueError(f"weights frame has non-numeric columns {bad}: pass only the weight columns")
        arr = weights.cast(pl.Float64).to_numpy().astype(np.float64, copy=True)
    else:
        arr = np.array(weights, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"weights must be 2-D (T, N), got shape {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError("weights hold +-inf")
    return np.nan_to_num(arr, nan=0.0)


def turnover(weights: WeightsLike, initial_weights: Sequence[float] | FloatArray | None = None) -> FloatArray:
    """One-way turnover per period, decimal of NAV: ``sum_i |w_{t,i} - w_{t-1,i}| / 2``.

    Without ``initial_weights`` the first row has no predecessor and the result has ``T - 1`` values;
    with them (e.g. zeros for a start in cash) it has ``T``. A full switch between two long-only
    books is 1.0; building a book from cash is half its gross exposure."""
    w = as_weights(weights)
    if initial_weights is not None:
        start = np.nan_to_num(np.asarray(initial_weights, dtype=np.float64).reshape(1, -1), nan=0.0)
        if start.shape[1] != w.shape[1]:
            raise ValueError(f"initial_weights has {start.shape[1]} assets, weights have {w.shape[1]}")
        w = np.vstack((start, w))
    return np.abs(np.diff(w, axis=0)).sum(axis=1) / 2.0


def gross_exposure(weights: WeightsLike) -> FloatArray:
    """Gross exposure per period, decimal of NAV: ``sum_i |w_{t,i}|`` (1.0 = fully invested long-only)."""
    return np.abs(as_weights(weights)).sum(axis=1)


def exposure(weights: WeightsLike) -> float:
    """Mean gross exposure over the ``T`` periods, decimal of NAV; NaN for no periods."""
    gross = gross_exposure(weights)
    return float(gross.mean()) if gross.size else float("nan")


def cost_drag(costs: ReturnsLike, periods_per_year: float = PERIODS_PER_YEAR) -> float:
    """Annualised cost drag, decimal per year and positive for a cost: ``sum(c) / T * ppy`` (arithmetic).

    ``costs`` are per-period trading costs as **positive** fractions of NAV (0.0005 = 5 bp), e.g.
    ``gross - net`` returns; NaN counts as no cost but the period still counts in ``T``."""
    c = as_returns(costs, "costs")
    if c.size < 1:
        return float("nan")
    return float(np.nansum(c)) / c.size * periods_per_year


@dataclass(frozen=True)
class PerformanceSummary:
    """All metrics of one backtest; units as in the module docstring. NaN where an input was not given."""

    n_periods: int
    periods_per_year: float
    annual_return: float
    annual_volatility: float
    sharpe_ratio: float
    sortino_ratio: float
    max_drawdown: float
    calmar_ratio: float
    hit_rate: float
    tracking_error: float
    tracking_error_per_period: float
    information_ratio: float
    information_ratio_per_period: float
    turnover: float
    """Mean one-way turnover per period (decimal of NAV)."""
    annual_turnover: float
    """Mean one-way turnover per period times ``periods_per_year``."""
    cost_drag: float
    exposure: float


def summarize(
    returns: ReturnsLike,
    benchmark: ReturnsLike | None = None,
    periods_per_year: float = PERIODS_PER_YEAR,
    risk_free: RateLike = 0.0,
    required_return: RateLike = 0.0,
    weights: WeightsLike | None = None,
    initial_weights: Sequence[float] | FloatArray | None = None,
    costs: ReturnsLike | None = None,
) -> PerformanceSummary:
    """Every metric of this module for one return series (decimal, per period; net of costs if you report net).

    ``benchmark`` feeds tracking error and information ratio, ``weights`` (and ``initial_weights``)
    turnover and exposure, ``costs`` the cost drag; each missing input leaves its fields NaN."""
    r = as_returns(returns)
    nan = float("nan")
    te = te_pp = ir = ir_pp = nan
    if benchmark is not None:
        te_pp = tracking_error_per_period(r, benchmark)
        te = te_pp * float(np.sqrt(periods_per_year))
        ir_pp = information_ratio_per_period(r, benchmark)
        ir = ir_pp * float(np.sqrt(periods_per_year))
    mean_turnover = gross = nan
    if weights is not None:
        to = turnover(weights, initial_weights)
        mean_turnover = float(to.mean()) if to.size else nan
        gross = exposure(weights)
    return PerformanceSummary(
        n_periods=int(r.size),
        periods_per_year=float(periods_per_year),
        annual_return=annual_return(r, periods_per_year),
        annual_volatility=annual_volatility(r, periods_per_year),
        sharpe_ratio=sharpe_ratio(r, risk_free, periods_per_year),
        sortino_ratio=sortino_ratio(r, required_return, periods_per_year),
        max_drawdown=max_drawdown(r),
        calmar_ratio=calmar_ratio(r, periods_per_year),
        hit_rate=hit_rate(r),
        tracking_error=te,
        tracking_error_per_period=te_pp,
        information_ratio=ir,
        information_ratio_per_period=ir_pp,
        turnover=mean_turnover,
        annual_turnover=mean_turnover * periods_per_year,
        cost_drag=nan if costs is None else cost_drag(costs, periods_per_year),
        exposure=gross,
    )
