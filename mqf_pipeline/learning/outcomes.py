"""Per agent and session: the outcome of its signal portfolio, and decayed rolling statistics of it.

Signal portfolio of agent k for signal session s (the session before D in the returns' calendar): over
the symbols k scored at s that have a return at D, weights a_i = mu_d_i / sum_j |mu_d_j| (long-short,
proportional to the daily expected return mu_d = mu / horizon_days, gross exposure 1).

* ``predicted_return`` = sum_i a_i mu_d_i = sum mu_d^2 / sum |mu_d| (>= 0, decimal per session);
* ``actual_return`` = sum_i a_i ret_i, ret_i the simple return of i from s's close to D's close;
* ``hit`` = 1 if predicted * actual > 0 else 0 (so 1 iff the portfolio made money);
* an agent whose mu_d are all 0 at s (no view) has no outcome at D.

The outcome is dated D: it is known at D's close. Rolling statistics over the last ``lookback`` outcome
sessions (lag 0 = the session itself), weight decay ** lag with decay = 0.5 ** (1 / half_life); sessions
where the agent has no outcome are left out of its window.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.typing import NDArray

#: Columns and dtypes of :func:`agent_outcomes`.
OUTCOME_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "agent": pl.String(),
    "signal_date": pl.Date(),
    "n_symbols": pl.Int64(),
    "predicted_return": pl.Float64(),
    "actual_return": pl.Float64(),
    "hit": pl.Int32(),
}


def returns_from_bars(bars: pl.DataFrame, price: str = "adjusted_close") -> pl.DataFrame:
    """Simple close-to-close returns (decimal): ``ret`` of (date, symbol) = price_D / price_prev - 1, prev the
    session before D among all the bars' dates; a symbol without a bar at prev gets no return at D.

    Columns: date, symbol, ret.
    """
    days = bars.select(pl.col("date").unique().sort())
    prev = days.with_columns(prev=pl.col("date").shift(1))
    px = bars.select("date", "symbol", pl.col(price).cast(pl.Float64).alias("px"))
    return (
        px.join(prev, on="date")
        .join(px.rename({"date": "prev", "px": "px_prev"}), on=["prev", "symbol"])
        .filter((pl.col("px_prev") > 0) & pl.col("px").is_finite())
        .select("date", "symbol", (pl.col("px") / pl.col("px_prev") - 1.0).alias("ret"))
        .sort("date", "symbol")
    )


def agent_outcomes(signals: pl.DataFrame, returns: pl.DataFrame) -> pl.DataFrame:
    """Outcome rows (:data:`OUTCOME_SCHEMA`) per agent and session D (module docstring).

    ``signals``: date, symbol, agent, mu (over the agent's horizon, decimal), horizon_days (Signal rows or
    ``model_outputs``); ``returns``: date, symbol, ret (from the previous session's close to date's close,
    decimal; its dates are the session calendar). Sorted by date, agent.
    """
    missing = [c for c in ("date", "symbol", "agent", "mu", "horizon_days") if c not in signals.columns]
    missing += [f"returns.{c}" for c in ("date", "symbol", "ret") if c not in returns.columns]
    if missing:
        raise ValueError(f"agent_outcomes: missing column(s) {missing}")
    days = returns.select(pl.col("date").unique().sort()).with_columns(signal_date=pl.col("date").shift(1))
    sig = signals.select(
        pl.col("date").alias("signal_date"),
        pl.col("symbol").cast(pl.String),
        pl.col("agent").cast(pl.String),
        (pl.col("mu").cast(pl.Float64) / pl.col("horizon_days").cast(pl.Float64)).alias("mu_d"),
    ).filter(pl.col("mu_d").is_finite())
    rows = sig.join(days.drop_nulls(), on="signal_date").join(
        returns.select("date", pl.col("symbol").cast(pl.String), pl.col("ret").cast(pl.Float64)).filter(
            pl.col("ret").is_finite()
        ),
        on=["date", "symbol"],
    )
    gross = pl.col("mu_d").abs().sum()
    out = (
        rows.group_by("date", "agent", "signal_date")
        .agg(
            n_symbols=pl.len().cast(pl.Int64),
            gross=gross,
            predicted_return=(pl.col("mu_d") ** 2).sum() / gross,
            actual_return=(pl.col("mu_d") * pl.col("ret")).sum() / gross,
        )
        .filter(pl.col("gross") > 0)
        .with_columns(hit=(pl.col("predicted_return") * pl.col("actual_return") > 0).cast(pl.Int32))
    )
    return out.select([pl.col(c).cast(t) for c, t in OUTCOME_SCHEMA.items()]).sort("date", "agent")


def decayed_window_stats(
    x: NDArray[np.float64], lookback: int, decay: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Decayed mean, std (population: weighted mean of squared deviations) and observation count per row.

    ``x``: (T, N) with NaN where missing; row t's window is rows t - lookback + 1 .. t, row t - j weighted
    ``decay ** j``. The mean is NaN with no observation, the std with fewer than 2. Shapes (T, N).
    """
    n = x.shape[1]
    if x.shape[0] == 0:  # no outcome session yet
        return np.zeros((0, n)), np.zeros((0, n)), np.zeros((0, n))
    padded = np.vstack([np.full((lookback - 1, n), np.nan), x])
    win = np.lib.stride_tricks.sliding_window_view(padded, lookback, axis=0)  # (T, N, lookback), oldest first
    ok = np.isfinite(win)
    w = np.where(ok, decay ** np.arange(lookback - 1, -1, -1, dtype=np.float64), 0.0)
    vals = np.where(ok, win, 0.0)
    total = w.sum(axis=-1)
    count = ok.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (w * vals).sum(axis=-1) / total
        var = (w * (vals - mean[..., None]) ** 2).sum(axis=-1) / total
    mean = np.where(count >= 1, mean, np.nan)
    std = np.where(count >= 2, np.sqrt(np.maximum(var, 0.0)), np.nan)
    return mean, std, count.astype(np.float64)


def rolling_sharpe(mean: NDArray[np.float64], std: NDArray[np.float64], periods_per_year: int) -> NDArray[np.float64]:
    """Annualised Sharpe of per-session returns: mean / std * sqrt(periods_per_year); NaN where std is NaN or
    at rounding level (<= 1e-12 |mean|: a constant window)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = std > 1e-12 * np.abs(mean)
        return np.where(ok & (std > 0), mean / std * np.sqrt(periods_per_year), np.nan)


__all__ = ["OUTCOME_SCHEMA", "agent_outcomes", "decayed_window_stats", "returns_from_bars", "rolling_sharpe"]
