"""Trend strength: price above its moving averages, fast average above slow, and a significant slope.

At D, per symbol (adjusted closes P, daily log-return sd ``vol`` over ``vol_window`` sessions):

* ``a = log(P / SMA_fast) / (vol * k_a)`` and ``b = log(SMA_fast / SMA_slow) / (vol * k_b)``, where
  ``k_a``, ``k_b`` make each unit-variance under a driftless random walk
  (``P - SMA_n = sum_j e[D-j] (n-1-j)/n``, so ``k_a^2 = sum_j c_j(fast)^2`` and
  ``k_b^2 = sum_j (c_j(slow) - c_j(fast))^2``);
* ``t``: t-statistic of the OLS slope of log P on time over ``slope_window`` sessions
  (``t = r sqrt((n-2)/(1-r^2))``, r the rolling correlation); a level regression's t grows like
  sqrt(n) even without drift, so it enters as ``c = t / sqrt(n-2)``;
* ``z = (a + b + c) / 3`` (each clipped to +-``z_cap``).

``mu = ic * z * sigma`` (``sigma = vol * sqrt(horizon)``), ``signal = tanh(z)``,
``confidence = density * (1/2 + |signal|/2)``.

Reason codes: ``PRICE_ABOVE_SMA<fast>``/``PRICE_BELOW_SMA<fast>``,
``SMA<fast>_ABOVE_SMA<slow>``/``SMA<fast>_BELOW_SMA<slow>``, ``SLOPE_T_GT_2``/``SLOPE_T_LT_-2``.

Stored features (:mod:`mqf_pipeline.features`, same definitions on the same adjusted closes) are read from
``data.features`` where they are non-null, the local computation filling the rest: ``sma_<fast>`` and
``sma_<slow>`` for the averages, ``trend_strength`` for ``t`` when ``slope_window`` is its 63 sessions, and
``hvol_<vol_window> / sqrt(252)`` for ``vol`` when that window is stored (21 or 63). Both agree to ~1e-9
relative (the t-statistic; ~1e-13 for the others), so stored features and bars give the same signals.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl

from mqf_pipeline.agents.base import AgentData, reason_json
from mqf_pipeline.agents.evaluation import (
    check_positive,
    density,
    empty_signals,
    price_panel,
    rolling_vol,
    to_signals,
)
from mqf_pipeline.agents.scoring import tanh_forecast
from mqf_pipeline.features.indicators import HVOL_PERIODS, SESSIONS_PER_YEAR, SMA_PERIODS, TREND_N


def sma_weights(n: int, length: int) -> np.ndarray:
    """``c_j = (n-1-j)/n`` for j < n (0 after), length ``length``: P - SMA_n = sum_j c_j e[D-j]."""
    j = np.arange(length, dtype=np.float64)
    return np.clip((n - 1 - j) / n, 0.0, None)


@dataclass(frozen=True)
class TrendAgent:
    """Trend strength from SMA(fast), SMA(slow) and a rolling slope t-statistic. Windows in sessions."""

    name: ClassVar[str] = "trend"
    fast: int = 50
    slow: int = 200
    slope_window: int = 63
    vol_window: int = 63
    horizon_days: int = 21
    ic: float = 0.03
    z_cap: float = 3.0

    def __post_init__(self) -> None:
        check_positive(
            fast=self.fast, vol_window=self.vol_window, horizon_days=self.horizon_days, ic=self.ic, z_cap=self.z_cap
        )
        if not self.slow > self.fast > 1:
            raise ValueError(f"need slow > fast > 1, got fast={self.fast}, slow={self.slow}")
        if self.slope_window < 4:
            raise ValueError(f"slope_window must be >= 4, got {self.slope_window}")

    def stored_columns(self, features: pl.DataFrame) -> dict[str, pl.Expr]:
        """Local column -> the stored feature with the same definition (in the local units), for those in
        ``features``."""
        stored: dict[str, tuple[bool, str, pl.Expr]] = {
            "sma_f": (self.fast in SMA_PERIODS, f"sma_{self.fast}", pl.col(f"sma_{self.fast}")),
            "sma_s": (self.slow in SMA_PERIODS, f"sma_{self.slow}", pl.col(f"sma_{self.slow}")),
            "t": (self.slope_window == TREND_N, "trend_strength", pl.col("trend_strength")),
            "vol": (
                self.vol_window in HVOL_PERIODS,
                f"hvol_{self.vol_window}",
                pl.col(f"hvol_{self.vol_window}") / math.sqrt(SESSIONS_PER_YEAR),
            ),
        }
        return {c: e for c, (same, name, e) in stored.items() if same and name in features.columns}

    def signals(self, data: AgentData, dates: Sequence[dt.date]) -> pl.DataFrame:
        """Signal rows for ``dates``; symbols need ``slow`` sessions of history (or the stored features)."""
        if not dates:
            return empty_signals()
        k_a = float(np.sqrt(np.sum(sma_weights(self.fast, self.slow) ** 2)))
        k_b = float(np.sqrt(np.sum((sma_weights(self.slow, self.slow) - sma_weights(self.fast, self.slow)) ** 2)))
        n = self.slope_window
        px = pl.col("adjusted_close")
        r = pl.col("r").clip(-1.0 + 1e-12, 1.0 - 1e-12)
        panel = price_panel(data.bars, until=max(dates))
        stored = self.stored_columns(data.features)
        if stored:
            features = data.features.select("date", "symbol", **{f"_stored_{c}": e for c, e in stored.items()})
            panel = panel.join(features, on=["date", "symbol"], how="left").sort("symbol", "date")
        frame = (
            panel.with_columns(
                sma_f=px.rolling_mean(self.fast, min_samples=self.fast).over("symbol"),
                sma_s=px.rolling_mean(self.slow, min_samples=self.slow).over("symbol"),
                r=pl.rolling_corr(pl.col("obs").cast(pl.Float64), px.log(), window_size=n, min_samples=n).over(
                    "symbol"
                ),
                vol=rolling_vol(self.vol_window),
                dens=density(self.slow),
            )
            .with_columns(t=r * ((n - 2) / (1.0 - r * r)).sqrt())
            .with_columns(**{c: pl.coalesce(f"_stored_{c}", c) for c in stored})
            .with_columns(
                a=((px / pl.col("sma_f")).log() / (pl.col("vol") * k_a)).clip(-self.z_cap, self.z_cap),
                b=((pl.col("sma_f") / pl.col("sma_s")).log() / (pl.col("vol") * k_b)).clip(-self.z_cap, self.z_cap),
                c=(pl.col("t") / math.sqrt(n - 2)).clip(-self.z_cap, self.z_cap),
            )
            .with_columns(
                z=pl.when(pl.col("vol") > 0).then((pl.col("a") + pl.col("b") + pl.col("c")) / 3.0),
                sigma=pl.col("vol") * math.sqrt(self.horizon_days),
            )
            .pipe(
                tanh_forecast,
                self.ic,
                (pl.col("dens"),),
                reason_codes=reason_json(
                    [
                        pl.when(px > pl.col("sma_f"))
                        .then(pl.lit(f"PRICE_ABOVE_SMA{self.fast}"))
                        .otherwise(pl.lit(f"PRICE_BELOW_SMA{self.fast}")),
                        pl.when(pl.col("sma_f") > pl.col("sma_s"))
                        .then(pl.lit(f"SMA{self.fast}_ABOVE_SMA{self.slow}"))
                        .otherwise(pl.lit(f"SMA{self.fast}_BELOW_SMA{self.slow}")),
                        pl.when(pl.col("t") > 2)
                        .then(pl.lit("SLOPE_T_GT_2"))
                        .when(pl.col("t") < -2)
                        .then(pl.lit("SLOPE_T_LT_-2")),
                    ]
                ),
            )
        )
        return to_signals(frame, self.name, self.horizon_days, dates)
