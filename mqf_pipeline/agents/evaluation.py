"""Price-panel building blocks shared by the price agents, and out-of-sample signal evaluation.

Panel helpers (used by :mod:`.momentum`, :mod:`.trend`, ...): :func:`price_panel` turns canonical
bars into a per-symbol, time-ordered panel of daily log returns; :func:`cross_score`,
:func:`density`, :func:`confidence` and :func:`to_signals` are the polars pieces every price
agent assembles its Signal rows from.

Evaluation: :func:`forward_returns` (simple return from D's close to the close ``h`` sessions
later, aligned to D), :func:`daily_ic` (cross-sectional rank IC per date), :func:`ic_summary`
(mean, sd, t-statistic, hit rate) and :func:`shuffled_control` (forward returns permuted across
symbols within each date: any IC left is noise).

Units: returns are decimal (0.01 = 1%); volatilities are daily decimal unless named ``*_annual``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import polars as pl

from mqf_pipeline.agents.base import SIGNAL_SCHEMA

SESSIONS_PER_YEAR = 252
#: sd of the uniform rank score ``sqrt(12) * (u - 1/2)`` is 1; its bound is sqrt(3).
SQRT3 = math.sqrt(3.0)
_SQRT12 = math.sqrt(12.0)
#: Calendar days allowed per session (weekends, holidays) before a window counts as gappy.
CALENDAR_DAYS_PER_SESSION = 1.5


# ---- panel helpers ---------------------------------------------------------------------------
def price_panel(bars: pl.DataFrame, until: dt.date | None = None) -> pl.DataFrame:
    """Per-symbol time-ordered panel: date, symbol, adjusted_close, ``ret`` (daily log return of the
    adjusted close, null on a symbol's first row) and ``obs`` (0-based row number within the symbol).

    Rows with a missing or non-positive adjusted close are dropped (a gap, not a zero return);
    ``until`` drops rows after that date (nothing later is needed for decisions up to it).
    """
    frame = bars.select("date", "symbol", "adjusted_close").filter(
        pl.col("adjusted_close").is_finite() & (pl.col("adjusted_close") > 0)
    )
    if until is not None:
        frame = frame.filter(pl.col("date") <= until)
    return frame.sort("symbol", "date").with_columns(
        ret=pl.col("adjusted_close").log().diff().over("symbol"),
        obs=pl.int_range(pl.len(), dtype=pl.Int64).over("symbol"),
    )


def rolling_vol(window: int, column: str = "ret") -> pl.Expr:
    """Per-symbol rolling sample sd (ddof=1) of ``column`` over ``window`` rows (daily decimal)."""
    return pl.col(column).rolling_std(window, min_samples=window).over("symbol")


def cross_score(expr: pl.Expr) -> pl.Expr:
    """Uniform rank score within each date: ``sqrt(12) * ((rank - 1/2) / n - 1/2)``.

    Mean 0 and sd 1 over the date's non-null values, bounded by +-sqrt(3); ties share the average
    rank; a date with a single value scores it 0; null stays null. (The simulator plants its
    alpha on exactly this score.)
    """
    n = expr.count().over("date")
    rank = expr.rank("average").over("date")
    score = _SQRT12 * ((rank - 0.5) / n - 0.5)
    return pl.when(n > 1).then(score).otherwise(pl.when(expr.is_not_null()).then(0.0))


def breadth(min_names: int) -> pl.Expr:
    """min(1, names with a non-null ``score`` column on the date / ``min_names``): thin cross-sections
    are trusted less (expects a ``score`` column)."""
    return (pl.col("score").count().over("date") / float(min_names)).clip(0.0, 1.0)


def density(window: int) -> pl.Expr:
    """Data density of the last ``window`` rows of a symbol, in [0, 1]: 1 when they span at most
    ``1.5 * window`` calendar days (weekends and holidays), falling as missing sessions stretch them."""
    span = (pl.col("date") - pl.col("date").shift(window)).dt.total_days().over("symbol")
    return (CALENDAR_DAYS_PER_SESSION * window / span.cast(pl.Float64)).clip(0.0, 1.0)


def confidence(strength: pl.Expr, *factors: pl.Expr) -> pl.Expr:
    """``prod(factors) * (1/2 + |strength| / 2)``, clipped to [0, 1]: half the trust comes from the data
    (factors in [0, 1]), half grows with the magnitude of the signal (``strength`` in [-1, 1])."""
    out = 0.5 + 0.5 * strength.abs().clip(0.0, 1.0)
    for f in factors:
        out = out * f
    return out.clip(0.0, 1.0)


def quintile(score: pl.Expr) -> pl.Expr:
    """Quintile 1..5 (5 = highest) of a uniform rank score from :func:`cross_score`."""
    u = score / _SQRT12 + 0.5
    return (u * 5).floor().clip(0, 4).cast(pl.Int32) + 1


def to_signals(frame: pl.DataFrame, agent: str, horizon: int, dates: Sequence[dt.date]) -> pl.DataFrame:
    """Signal rows of ``frame`` (holding mu, sigma, confidence, signal, reason_codes) dated in ``dates``,
    keeping only rows where all four numbers are finite and sigma > 0; columns in SIGNAL_SCHEMA order."""
    wanted = pl.Series("d", list(dates), dtype=pl.Date)
    ok = pl.all_horizontal(pl.col(c).is_finite() for c in ("mu", "sigma", "confidence", "signal")) & (
        pl.col("sigma") > 0
    )
    return (
        frame.filter(pl.col("date").is_in(wanted.implode()) & ok.fill_null(False))
        .with_columns(
            agent=pl.lit(agent, pl.String),
            horizon_days=pl.lit(horizon, pl.Int32),
            confidence=pl.col("confidence").clip(0.0, 1.0),
            signal=pl.col("signal").clip(-1.0, 1.0),
        )
        .select([pl.col(c).cast(t) for c, t in SIGNAL_SCHEMA.items()])
        .sort("date", "symbol")
    )


def empty_signals() -> pl.DataFrame:
    """A Signal frame with no rows."""
    return pl.DataFrame(schema=SIGNAL_SCHEMA)


def check_positive(**values: float) -> None:
    """Raise ValueError naming the first parameter that is not > 0."""
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")


# ---- evaluation ------------------------------------------------------------------------------
def forward_returns(bars: pl.DataFrame, horizon: int = 1) -> pl.DataFrame:
    """(date, symbol, fwd_return): simple return of the adjusted close from D's close to the close
    ``horizon`` rows (sessions) later for that symbol, dated D; rows without a future close are dropped."""
    check_positive(horizon=horizon)
    adj = pl.col("adjusted_close")
    return (
        bars.select("date", "symbol", "adjusted_close")
        .filter(adj.is_finite() & (adj > 0))
        .sort("symbol", "date")
        .with_columns(fwd_return=(adj.shift(-horizon) / adj - 1.0).over("symbol"))
        .drop_nulls("fwd_return")
        .select("date", "symbol", "fwd_return")
        .sort("date", "symbol")
    )


def daily_ic(
    signals: pl.DataFrame,
    fwd: pl.DataFrame,
    method: Literal["spearman", "pearson"] = "spearman",
    column: str = "signal",
    min_names: int = 10,
) -> pl.DataFrame:
    """(date, ic, n): cross-sectional correlation of ``signals[column]`` with ``fwd.fwd_return`` per date.

    ``signals`` must hold one agent; dates with fewer than ``min_names`` joint rows or a constant
    signal (undefined correlation) are dropped.
    """
    if "agent" in signals.columns and signals.get_column("agent").n_unique() > 1:
        raise ValueError("daily_ic takes one agent's signals; filter by agent first")
    joined = signals.select("date", "symbol", column).join(
        fwd.select("date", "symbol", "fwd_return"), on=["date", "symbol"], how="inner"
    )
    joined = joined.drop_nulls().filter(pl.col(column).is_finite() & pl.col("fwd_return").is_finite())
    return (
        joined.group_by("date")
        .agg(ic=pl.corr(column, "fwd_return", method=method), n=pl.len().cast(pl.Int64))
        .filter((pl.col("n") >= min_names) & pl.col("ic").is_finite())
        .sort("date")
    )


def ic_summary(ic_frame: pl.DataFrame) -> dict[str, Any]:
    """mean_ic, ic_sd (ddof=1), t_stat = mean / (sd / sqrt(n)) (valid for non-overlapping horizons, e.g.
    1-day forward returns), n_days and hit_rate (share of days with ic > 0). NaN where undefined."""
    ic = ic_frame.get_column("ic").to_numpy().astype(np.float64)
    n = int(ic.size)
    mean = float(ic.mean()) if n else math.nan
    sd = float(ic.std(ddof=1)) if n > 1 else math.nan
    t = mean / (sd / math.sqrt(n)) if n > 1 and sd > 0 else math.nan
    hit = float((ic > 0).mean()) if n else math.nan
    return {"mean_ic": mean, "ic_sd": sd, "t_stat": t, "n_days": n, "hit_rate": hit}


def shuffled_control(fwd: pl.DataFrame, seed: int) -> pl.DataFrame:
    """``fwd`` with ``fwd_return`` permuted across symbols within each date (seeded, deterministic)."""
    base = fwd.sort("date", "symbol")
    key = np.random.default_rng(seed).random(base.height)
    permuted = base.with_columns(_key=pl.Series(key)).sort("date", "_key").get_column("fwd_return")
    return base.with_columns(fwd_return=permuted)
