"""Conditional VaR: volatility-scaled filtered historical simulation (FHS) with EVT on the residuals.

The seed's hybrid VaR weighs the last ``window`` returns equally, so after a volatility jump it is
too low for months and its exceptions cluster (Christoffersen rejects). Here each return is first
standardised by its EWMA volatility forecast made the period before (RiskMetrics,
``sigma_t^2 = lam sigma_{t-1}^2 + (1 - lam) r_{t-1}^2``); the loss quantile of the standardised
residuals over the window (empirical, or a GPD peaks-over-threshold tail fit, McNeil and Frey 2000)
is then rescaled by today's volatility forecast:

    VaR_t = sigma_t * q_level(-z),   ES_t = sigma_t * ES_level(-z),   z_s = r_s / sigma_s.

Returns are simple decimal returns per period; VaR and ES are positive loss fractions for the period
whose return is ``returns[t]``, made from ``returns[:t]`` only (no lookahead). :func:`fhs_var_es` gives the
forecasts along a series (backtests), :func:`fhs_var_next` the one for the period after a window (the risk
engine's ``var_conditional``), with a documented fallback to the hybrid VaR on short windows.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mqf_pipeline.risk import evt
from mqf_pipeline.risk.var import (
    QUANTILE_METHOD,
    check_level,
    christoffersen_independence,
    historical_cvar,
    hybrid_var,
    kupiec_pof,
)

#: RiskMetrics' daily decay.
EWMA_LAMBDA = 0.94
#: Returns whose mean square seeds the EWMA variance (no forecast before them).
EWMA_INIT_PERIODS = 20


def ewma_volatility(returns: np.ndarray, lam: float = EWMA_LAMBDA, init_periods: int = EWMA_INIT_PERIODS) -> np.ndarray:
    """One-period-ahead EWMA volatility forecasts: ``out[t]`` uses ``returns[:t]`` only.

    Seeded with the mean square of the first ``init_periods`` returns (so ``out[:init_periods]`` is NaN:
    no forecast without history)."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1 or not np.isfinite(r).all():
        raise ValueError("returns must be a finite 1-d array")
    if not 0.0 < lam < 1.0:
        raise ValueError(f"lam must be in (0, 1), got {lam}")
    if init_periods < 2 or r.size <= init_periods:
        raise ValueError(f"need more than init_periods={init_periods} returns, got {r.size}")
    var = np.full(r.size, np.nan)
    v = float(np.mean(r[:init_periods] ** 2))
    for t in range(init_periods, r.size):
        var[t] = v
        v = lam * v + (1.0 - lam) * r[t] ** 2
    return np.sqrt(var)


def fhs_var_es(
    returns: np.ndarray,
    level: float = 0.99,
    window: int = 252,
    lam: float = EWMA_LAMBDA,
    tail: str = "evt",
    threshold_quantile: float = 0.90,
) -> tuple[np.ndarray, np.ndarray]:
    """Rolling one-period FHS VaR and ES (module docstring); NaN where fewer than ``window`` residuals exist.

    ``tail``: ``"evt"`` fits a GPD to the residual losses above their ``threshold_quantile`` quantile
    (all windows in one vectorised fit); ``"empirical"`` takes the residuals' quantile and tail mean."""
    level = check_level(level)
    _check_tail(tail)
    r = np.asarray(returns, dtype=np.float64)
    sigma = ewma_volatility(r, lam)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = r / sigma  # NaN before the first forecast (and while the volatility is still zero)
    first = _first_residual(z)
    var, es = np.full(r.size, np.nan), np.full(r.size, np.nan)
    targets = np.arange(first + window, r.size)
    if targets.size:
        var[targets], es[targets] = _fhs_tail(z, sigma[targets], targets, window, level, tail, threshold_quantile)
    return var, es


def _check_tail(tail: str) -> None:
    if tail not in ("evt", "empirical"):
        raise ValueError(f"tail must be 'evt' or 'empirical', got {tail!r}")


def _first_residual(z: np.ndarray) -> int:
    """Index of the first finite standardised residual (``z.size`` if none): before it there is no volatility
    forecast, or a zero one (a series starting with zero returns, e.g. a name not yet listed)."""
    finite = np.flatnonzero(np.isfinite(z))
    return int(finite[0]) if finite.size else z.size


def _fhs_tail(
    z: np.ndarray,
    sigma_next: np.ndarray,
    targets: np.ndarray,
    window: int,
    level: float,
    tail: str,
    threshold_quantile: float,
) -> tuple[np.ndarray, np.ndarray]:
    """FHS VaR and ES for periods ``targets``: the residual tail of ``z[t - window : t]`` (all finite) times the
    volatility forecast ``sigma_next`` for t. Positive loss fractions per period, shape ``targets.shape``."""
    windows = np.lib.stride_tricks.sliding_window_view(z, window)[targets - window].T  # column k: z[t_k - window : t_k]
    if tail == "evt":
        fit = evt.fit_pot(windows, threshold_quantile)
        q, tail_mean = evt.evt_var(fit, level), evt.evt_es(fit, level)
    else:
        losses = -windows
        q = np.quantile(losses, level, axis=0, method=QUANTILE_METHOD)
        beyond = losses >= q
        tail_mean = np.where(beyond, losses, 0.0).sum(axis=0) / beyond.sum(axis=0)
    return sigma_next * q, sigma_next * tail_mean


#: Fewest standardised residuals behind a one-step forecast (:func:`fhs_var_next`): ten GPD exceedances at the
#: 0.90 threshold (``evt.MIN_EVT_EXCEEDANCES``), the least :func:`evt.scaled_component_cvar` trusts a fit on.
MIN_FHS_RESIDUALS = 100


class VarForecast(NamedTuple):
    """A one-period VaR / ES forecast (positive decimal loss fractions of the next period).

    ``model``: what produced it, ``"fhs_evt"`` / ``"fhs_empirical"``, or ``"hybrid"`` when the window was too
    short for FHS (then ``fallback`` says why, and ``es`` is the historical CVaR); ``residuals``: standardised
    residuals behind the tail (0 on fallback)."""

    var: float
    es: float
    model: str
    residuals: int
    fallback: str | None = None


def fhs_var_next(
    returns: np.ndarray,
    level: float = 0.99,
    window: int = 252,
    lam: float = EWMA_LAMBDA,
    tail: str = "evt",
    threshold_quantile: float = 0.90,
    min_residuals: int = MIN_FHS_RESIDUALS,
    hist_weight: float = 0.6,
) -> VarForecast:
    """Conditional VaR and ES of the period right after the last of ``returns`` (simple decimal returns, oldest
    first), made from ``returns`` only: the forecast :func:`fhs_var_es` makes for that period.

    The tail uses the last ``min(window, available)`` standardised residuals (the EWMA is seeded on the first
    20 returns, so ``returns[:t]`` with ``t >= 20 + window`` gives exactly ``rolling_var(r, "fhs_" + tail, level,
    window)[t]``). Fallback, flagged by ``model="hybrid"`` and ``fallback``: with fewer than ``min_residuals``
    residuals (under 120 returns by default, or a series that is zero until too late), or a residual tail the
    GPD cannot model at ``level`` (ties leave too few exceedances, or the fit is NaN), the forecast is the
    seed's unconditional :func:`var.hybrid_var` (``hist_weight``) with the historical CVaR as ES. ``es`` is NaN
    when the fitted GPD has ``xi >= 1`` (no finite mean; the VaR stands). Needs at least 2 finite returns
    (``ValueError`` otherwise)."""
    level = check_level(level)
    _check_tail(tail)
    if window < 1 or min_residuals < 1:
        raise ValueError(f"window and min_residuals must be >= 1, got {window} and {min_residuals}")
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1 or r.size < 2 or not np.isfinite(r).all():
        raise ValueError(f"returns must be a finite 1-d array of at least 2 returns, got shape {r.shape}")
    init = EWMA_INIT_PERIODS  # as in fhs_var_es
    if r.size < init + min_residuals:
        reason = f"{r.size} returns, FHS needs {init + min_residuals} ({min_residuals} residuals)"
    else:
        sigma = ewma_volatility(np.append(r, 0.0), lam, init)  # the appended period is the target: never read
        with np.errstate(divide="ignore", invalid="ignore"):  # zero volatility before a series' first move
            z = r / sigma[:-1]
        n = min(window, r.size - _first_residual(z))
        if n < min_residuals:
            reason = f"{n} residuals after the zero-volatility start, FHS needs {min_residuals}"
        else:
            try:
                v, e = _fhs_tail(z, sigma[-1:], np.array([r.size]), n, level, tail, threshold_quantile)
            except ValueError as exc:  # evt: level not inside the modelled tail (ties at the threshold)
                reason = f"residual tail not usable: {exc}"
            else:
                if np.isfinite(v[0]):
                    return VarForecast(float(v[0]), float(e[0]), f"fhs_{tail}", n)
                reason = "residual tail fit is NaN (too few distinct exceedances)"
    return VarForecast(
        float(hybrid_var(r, level, hist_weight=hist_weight)), float(historical_cvar(r, level)), "hybrid", 0, reason
    )


def rolling_hybrid_var(
    returns: np.ndarray, level: float = 0.99, window: int = 252, hist_weight: float = 0.6
) -> np.ndarray:
    """The seed's unconditional hybrid VaR made each period from the previous ``window`` returns."""
    r = np.asarray(returns, dtype=np.float64)
    out = np.full(r.size, np.nan)
    if r.size <= window:
        return out
    windows = np.lib.stride_tricks.sliding_window_view(r[:-1], window).T  # column k: r[k : k + window]
    out[window:] = hybrid_var(windows, level, hist_weight=hist_weight)
    return out


#: The models :func:`calibration_report` compares: the seed's hybrid VaR and the conditional ones.
MODELS = ("hybrid", "fhs_evt", "fhs_empirical")


def rolling_var(returns: np.ndarray, model: str, level: float, window: int = 252) -> np.ndarray:
    """One-period VaR forecasts of ``model`` (one of :data:`MODELS`), NaN where there is no forecast."""
    if model == "hybrid":
        return rolling_hybrid_var(returns, level, window)
    if model in ("fhs_evt", "fhs_empirical"):
        return fhs_var_es(returns, level, window, tail=model.removeprefix("fhs_"))[0]
    raise ValueError(f"unknown VaR model {model!r}; known: {list(MODELS)}")


def calibration_report(
    returns: np.ndarray,
    levels: tuple[float, ...] = (0.95, 0.99),
    window: int = 252,
    models: tuple[str, ...] = MODELS,
    n_sim: int = 999,
    seed: int = 0,
) -> list[dict[str, object]]:
    """Backtest of each model and level on ``returns``: exceptions, hit rate, Kupiec POF and Christoffersen
    independence p-values (Monte Carlo with ``n_sim`` shuffles), mean VaR. Rows, models side by side."""
    r = np.asarray(returns, dtype=np.float64)
    rows: list[dict[str, object]] = []
    for level in levels:
        for model in models:
            var = rolling_var(r, model, level, window)
            ok = np.isfinite(var)
            hits = (-r[ok] > var[ok]).astype(np.int64)
            rows.append(
                {
                    "model": model,
                    "level": level,
                    "periods": int(ok.sum()),
                    "exceptions": int(hits.sum()),
                    "hit_rate": float(hits.mean()) if hits.size else float("nan"),
                    "kupiec_p": kupiec_pof(hits, level).pvalue,
                    "christoffersen_p": christoffersen_independence(hits, n_sim=n_sim, seed=seed).pvalue,
                    "mean_var": float(np.mean(var[ok])) if ok.any() else float("nan"),
                }
            )
    return rows
