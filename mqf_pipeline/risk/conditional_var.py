"""Conditional VaR: volatility-scaled filtered historical simulation (FHS) with EVT on the residuals.

The seed's hybrid VaR weighs the last ``window`` returns equally, so after a volatility jump it is
too low for months and its exceptions cluster (Christoffersen rejects). Here each return is first
standardised by its EWMA volatility forecast made the period before (RiskMetrics,
``sigma_t^2 = lam sigma_{t-1}^2 + (1 - lam) r_{t-1}^2``); the loss quantile of the standardised
residuals over the window (empirical, or a GPD peaks-over-threshold tail fit, McNeil and Frey 2000)
is then rescaled by today's volatility forecast:

    VaR_t = sigma_t * q_level(-z),   ES_t = sigma_t * ES_level(-z),   z_s = r_s / sigma_s.

Returns are simple decimal returns per period; VaR and ES are positive loss fractions for the period
whose return is ``returns[t]``, made from ``returns[:t]`` only (no lookahead).
"""

from __future__ import annotations

import numpy as np

from mqf_pipeline.risk import evt
from mqf_pipeline.risk.var import (
    QUANTILE_METHOD,
    check_level,
    christoffersen_independence,
    hybrid_var,
    kupiec_pof,
)

#: RiskMetrics' daily decay.
EWMA_LAMBDA = 0.94


def ewma_volatility(returns: np.ndarray, lam: float = EWMA_LAMBDA, init_periods: int = 20) -> np.ndarray:
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
    if tail not in ("evt", "empirical"):
        raise ValueError(f"tail must be 'evt' or 'empirical', got {tail!r}")
    r = np.asarray(returns, dtype=np.float64)
    sigma = ewma_volatility(r, lam)
    z = r / sigma  # NaN before the first forecast
    first = int(np.flatnonzero(np.isfinite(z))[0])
    var, es = np.full(r.size, np.nan), np.full(r.size, np.nan)
    targets = np.arange(first + window, r.size)
    if targets.size == 0:
        return var, es
    windows = np.lib.stride_tricks.sliding_window_view(z[first:-1], window)  # row j: z[first + j : first + j + window]
    windows = windows[: targets.size].T  # (window, n_targets), column k ends right before targets[k]
    if tail == "evt":
        fit = evt.fit_pot(windows, threshold_quantile)
        q, tail_mean = evt.evt_var(fit, level), evt.evt_es(fit, level)
    else:
        losses = -windows
        q = np.quantile(losses, level, axis=0, method=QUANTILE_METHOD)
        beyond = losses >= q
        tail_mean = np.where(beyond, losses, 0.0).sum(axis=0) / beyond.sum(axis=0)
    var[targets] = sigma[targets] * q
    es[targets] = sigma[targets] * tail_mean
    return var, es


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
