"""Time-series momentum (Moskowitz-Ooi-Pedersen): a name's own excess return over the past year predicts
the sign of its next month, and positions are sized to equal risk.

At D, per symbol: ``ex = log(P[D] / P[D-lookback]) - rf``, with ``rf`` the cash return over the same
sessions (mean ``SHORT_RATE`` (decimal annual, from ``data.macro``) over the last ``lookback`` macro
dates x ``lookback / 252``; 0 without macro data); ``vol_annual = sd63 * sqrt(252)``.

* ``mu = ic * sign(ex) * sigma`` (a pure sign forecast; ``sigma = sd63 * sqrt(horizon)``);
* ``signal = sign(ex) * min(1, target_vol / vol_annual)`` (the vol-scaled position);
* ``confidence = density * (1/2 + tanh(|t|)/2)`` with ``t = ex / (sd63 * sqrt(lookback))`` the trailing
  trend's t-statistic: a year that ended near flat is a weak sign.

Reason codes: ``TSMOM_LONG`` / ``TSMOM_SHORT`` / ``TSMOM_FLAT``; ``TSMOM_VOL_SCALED`` when the vol cap
binds; ``TSMOM_WEAK_TREND`` when |t| < 0.5.
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
    SESSIONS_PER_YEAR,
    check_positive,
    confidence,
    density,
    empty_signals,
    price_panel,
    rolling_vol,
    to_signals,
)


def cash_return(macro: pl.DataFrame, lookback: int, series_id: str = "SHORT_RATE") -> pl.DataFrame:
    """(date, rf): cash return over the last ``lookback`` sessions at each macro date, from the mean of the
    annual ``series_id`` rate over its last ``lookback`` observations (decimal, simple accrual)."""
    if macro.is_empty() or not {"date", "series_id", "value"} <= set(macro.columns):
        return pl.DataFrame(schema={"date": pl.Date, "rf": pl.Float64})
    return (
        macro.filter((pl.col("series_id") == series_id) & pl.col("value").is_finite())
        .select("date", "value")
        .unique("date", keep="last")
        .sort("date")
        .select("date", rf=pl.col("value").rolling_mean(lookback, min_samples=1) * (lookback / SESSIONS_PER_YEAR))
    )


@dataclass(frozen=True)
class TimeSeriesMomentumAgent:
    """Sign of own ``lookback``-session excess return, vol-scaled to ``target_vol`` (annual decimal)."""

    name: ClassVar[str] = "ts_momentum"
    lookback: int = 252
    vol_window: int = 63
    horizon_days: int = 21
    target_vol: float = 0.20
    ic: float = 0.03

    def __post_init__(self) -> None:
        check_positive(
            lookback=self.lookback,
            vol_window=self.vol_window,
            horizon_days=self.horizon_days,
            target_vol=self.target_vol,
            ic=self.ic,
        )

    def signals(self, data: AgentData, dates: Sequence[dt.date]) -> pl.DataFrame:
        """Signal rows for ``dates``; symbols need ``lookback`` prior sessions."""
        if not dates:
            return empty_signals()
        px = pl.col("adjusted_close")
        rates = cash_return(data.macro, self.lookback)
        frame = (
            price_panel(data.bars, until=max(dates))
            .sort("date")
            .join_asof(rates, on="date", strategy="backward")
            .sort("symbol", "date")
            .with_columns(
                ret_lb=(px / px.shift(self.lookback)).log().over("symbol"),
                vol=rolling_vol(self.vol_window),
                dens=density(self.lookback),
            )
            .with_columns(ex=pl.col("ret_lb") - pl.col("rf").fill_null(0.0))
            .with_columns(
                direction=pl.col("ex").sign(),
                vol_annual=pl.col("vol") * math.sqrt(SESSIONS_PER_YEAR),
                t=pl.col("ex") / (pl.col("vol") * math.sqrt(self.lookback)),
                sigma=pl.col("vol") * math.sqrt(self.horizon_days),
            )
            .with_columns(scale=(self.target_vol / pl.col("vol_annual")).clip(upper_bound=1.0))
            .with_columns(
                signal=pl.col("direction") * pl.col("scale"),
                mu=self.ic * pl.col("direction") * pl.col("sigma"),
                confidence=confidence(pl.col("t").abs().tanh(), pl.col("dens")),
                reason_codes=reason_json(
                    [
                        pl.when(pl.col("direction") > 0)
                        .then(pl.lit("TSMOM_LONG"))
                        .when(pl.col("direction") < 0)
                        .then(pl.lit("TSMOM_SHORT"))
                        .otherwise(pl.lit("TSMOM_FLAT")),
                        pl.when(pl.col("scale") < 1).then(pl.lit("TSMOM_VOL_SCALED")),
                        pl.when(pl.col("t").abs() < 0.5).then(pl.lit("TSMOM_WEAK_TREND")),
                    ]
                ),
            )
        )
        return to_signals(frame, self.name, self.horizon_days, dates)
