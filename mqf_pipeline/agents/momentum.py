"""Cross-sectional 12-1 momentum (Jegadeesh-Titman): winners of the past year, skipping the last month,
keep outperforming losers over the next month.

Score at D: ``mom = log(P[D-skip] / P[D-lookback])`` (adjusted closes, sessions counted as rows;
defaults 21 and 252, the simulator's definition), ranked within the date into the uniform score
``z`` (mean 0, sd 1, bounded by +-sqrt(3); see :func:`.evaluation.cross_score`).

* ``mu = ic * z * sigma`` with ``ic`` the prior information coefficient over the horizon
  (Grinold: E[r | z] = IC * sigma * z) and ``sigma = sd63 * sqrt(horizon)``;
* ``signal = z / sqrt(3)`` in [-1, 1];
* ``confidence = breadth * density * (1/2 + |signal|/2)``.

With the default windows, a ``mom_12_1`` column in ``data.features`` (:mod:`mqf_pipeline.features`:
the simple return ``P[D-21] / P[D-252] - 1``) is used where it is non-null, as ``log1p`` of it, and
the local computation fills the rest; the two agree (and ranks are what matter), so stored features
and bars give the same signals.
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
class MomentumAgent:
    """Cross-sectional 12-1 momentum. Lookbacks in sessions; ``ic`` is a prior over the horizon."""

    name: ClassVar[str] = "momentum"
    lookback: int = 252
    skip: int = 21
    horizon_days: int = 21
    vol_window: int = 63
    ic: float = 0.05
    min_names: int = 20
    feature: str | None = "mom_12_1"

    #: (lookback, skip) of the features module's ``mom_12_1``.
    FEATURE_WINDOWS: ClassVar[tuple[int, int]] = (252, 21)

    def __post_init__(self) -> None:
        check_positive(
            lookback=self.lookback,
            horizon_days=self.horizon_days,
            vol_window=self.vol_window,
            ic=self.ic,
            min_names=self.min_names,
        )
        if not 0 <= self.skip < self.lookback:
            raise ValueError(f"skip must be in [0, lookback), got {self.skip}")

    def signals(self, data: AgentData, dates: Sequence[dt.date]) -> pl.DataFrame:
        """Signal rows for ``dates``; symbols need ``lookback`` prior sessions."""
        if not dates:
            return empty_signals()
        px = pl.col("adjusted_close")
        panel = price_panel(data.bars, until=max(dates))
        mom = (px.shift(self.skip) / px.shift(self.lookback)).log().over("symbol")
        if (
            self.feature is not None
            and self.feature in data.features.columns
            and (self.lookback, self.skip) == self.FEATURE_WINDOWS
        ):
            stored = data.features.select("date", "symbol", _stored=pl.col(self.feature).cast(pl.Float64))
            panel = panel.join(stored, on=["date", "symbol"], how="left").sort("symbol", "date")
            mom = pl.coalesce(pl.when(pl.col("_stored") > -1).then(pl.col("_stored").log1p()), mom)
        frame = (
            panel.with_columns(
                mom=mom,
                vol=rolling_vol(self.vol_window),
                dens=density(self.lookback),
            )
            .with_columns(score=pl.when(pl.col("vol").is_not_null()).then(pl.col("mom")))
            .with_columns(z=cross_score(pl.col("score")), breadth=breadth(self.min_names))
            .with_columns(signal=pl.col("z") / SQRT3, sigma=pl.col("vol") * math.sqrt(self.horizon_days))
            .with_columns(
                mu=self.ic * pl.col("z") * pl.col("sigma"),
                confidence=confidence(pl.col("signal"), pl.col("breadth"), pl.col("dens")),
                reason_codes=reason_json(
                    [
                        pl.format("MOM_12_1_Q{}", quintile(pl.col("z"))),
                        pl.when(pl.col("z") >= SQRT3 * 0.8).then(pl.lit("MOM_12_1_TOP_DECILE")),
                        pl.when(pl.col("z") <= -SQRT3 * 0.8).then(pl.lit("MOM_12_1_BOTTOM_DECILE")),
                    ]
                ),
            )
        )
        return to_signals(frame, self.name, self.horizon_days, dates)
