"""Short-term reversal: a name that moved unusually far over the last week, relative to the market and to
its own recent volatility, tends to give part of it back over the next week.

At D: ``x = log(P[D] / P[D-window]) / (sd20 * sqrt(window))`` (the ``window``-session move in its own
20-session daily-vol units), demeaned across the date's names (a market-wide move is not a reversal
candidate), clipped to +-``z_cap``; the score is ``z = -x``.

* ``mu = ic * z * sigma`` with ``ic`` the prior IC over the horizon and ``sigma = sd63 * sqrt(horizon)``;
* ``signal = tanh(z)``;
* ``confidence = breadth * density * (1/2 + |signal|/2)``.

Reason codes: ``REV_OVERSOLD`` / ``REV_OVERBOUGHT`` when the raw move is beyond +-2 sd, else
``REV_NEUTRAL``.
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
    breadth,
    check_positive,
    density,
    empty_signals,
    price_panel,
    rolling_vol,
    to_signals,
)
from mqf_pipeline.agents.scoring import tanh_forecast


@dataclass(frozen=True)
class MeanReversionAgent:
    """Short-term (``window``-session) reversal, vol-normalised and market-relative. Windows in sessions."""

    name: ClassVar[str] = "mean_reversion"
    window: int = 5
    vol_window: int = 20
    sigma_window: int = 63
    horizon_days: int = 5
    ic: float = 0.02
    z_cap: float = 3.0
    extreme: float = 2.0
    min_names: int = 20

    def __post_init__(self) -> None:
        check_positive(
            window=self.window,
            vol_window=self.vol_window,
            sigma_window=self.sigma_window,
            horizon_days=self.horizon_days,
            ic=self.ic,
            z_cap=self.z_cap,
            extreme=self.extreme,
            min_names=self.min_names,
        )

    def signals(self, data: AgentData, dates: Sequence[dt.date]) -> pl.DataFrame:
        """Signal rows for ``dates``; symbols need ``max(window, vol_window, sigma_window)`` prior sessions."""
        if not dates:
            return empty_signals()
        px = pl.col("adjusted_close")
        frame = (
            price_panel(data.bars, until=max(dates))
            .with_columns(
                move=(px / px.shift(self.window)).log().over("symbol"),
                vol_short=rolling_vol(self.vol_window),
                vol=rolling_vol(self.sigma_window),
                dens=density(max(self.sigma_window, 21)),
            )
            .with_columns(
                raw=pl.when(pl.col("vol").is_not_null() & (pl.col("vol_short") > 0)).then(
                    pl.col("move") / (pl.col("vol_short") * math.sqrt(self.window))
                )
            )
            .with_columns(score=pl.col("raw") - pl.col("raw").mean().over("date"))
            .with_columns(
                z=-pl.col("score").clip(-self.z_cap, self.z_cap),
                breadth=breadth(self.min_names),
                sigma=pl.col("vol") * math.sqrt(self.horizon_days),
            )
            .pipe(
                tanh_forecast,
                self.ic,
                (pl.col("breadth"), pl.col("dens")),
                reason_codes=reason_json(
                    pl.when(pl.col("raw") <= -self.extreme)
                    .then(pl.lit("REV_OVERSOLD"))
                    .when(pl.col("raw") >= self.extreme)
                    .then(pl.lit("REV_OVERBOUGHT"))
                    .otherwise(pl.lit("REV_NEUTRAL"))
                ),
            )
        )
        return to_signals(frame, self.name, self.horizon_days, dates)
