"""Defensive (low-volatility anomaly): names with low realised volatility earn at least as much as
high-volatility names with less risk, so rank long low vol, short high vol.

At D: ``vol_lb`` = sd of daily log returns over ``lookback`` sessions; ``z = -cross_score(vol_lb)``
(uniform rank score within the date: mean 0, sd 1, bounded by +-sqrt(3); lowest vol scores highest).

``mu = ic * z * sigma`` (``sigma = sd63 * sqrt(horizon)``), ``signal = z / sqrt(3)``,
``confidence = breadth * density * (1/2 + |signal|/2)``.

Reason codes: ``LOW_VOL_Q<k>`` (k = 5 for the lowest-vol quintile), plus ``LOW_VOL_TOP_DECILE`` /
``HIGH_VOL_TOP_DECILE`` at the extremes.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from mqf_pipeline.agents.base import AgentData, reason_json
from mqf_pipeline.agents.evaluation import (
    SQRT3,
    breadth,
    check_positive,
    confidence,
    cross_score,
    density,
    empty_signals,
    price_panel,
    quintile,
    rolling_vol,
    to_signals,
)


@dataclass(frozen=True)
class DefensiveAgent:
    """Low realised volatility, ranked across the date. Windows in sessions."""

    name: ClassVar[str] = "defensive"
    lookback: int = 252
    sigma_window: int = 63
    horizon_days: int = 21
    ic: float = 0.02
    min_names: int = 20

    def __post_init__(self) -> None:
        check_positive(
            lookback=self.lookback,
            sigma_window=self.sigma_window,
            horizon_days=self.horizon_days,
            ic=self.ic,
            min_names=self.min_names,
        )

    def signals(self, data: AgentData, dates: Sequence[dt.date]) -> pl.DataFrame:
        """Signal rows for ``dates``; symbols need ``lookback`` sessions of returns."""
        if not dates:
            return empty_signals()
        frame = (
            price_panel(data.bars, until=max(dates))
            .with_columns(
                vol_lb=rolling_vol(self.lookback),
                vol=rolling_vol(self.sigma_window),
                dens=density(self.lookback),
            )
            .with_columns(score=pl.when(pl.col("vol").is_not_null()).then(pl.col("vol_lb")))
            .with_columns(z=-cross_score(pl.col("score")), breadth=breadth(self.min_names))
            .with_columns(signal=pl.col("z") / SQRT3, sigma=pl.col("vol") * math.sqrt(self.horizon_days))
            .with_columns(
                mu=self.ic * pl.col("z") * pl.col("sigma"),
                confidence=confidence(pl.col("signal"), pl.col("breadth"), pl.col("dens")),
                reason_codes=reason_json(
                    [
                        pl.format("LOW_VOL_Q{}", quintile(pl.col("z"))),
                        pl.when(pl.col("z") >= SQRT3 * 0.8).then(pl.lit("LOW_VOL_TOP_DECILE")),
                        pl.when(pl.col("z") <= -SQRT3 * 0.8).then(pl.lit("HIGH_VOL_TOP_DECILE")),
                    ]
                ),
            )
        )
        return to_signals(frame, self.name, self.horizon_days, dates)
