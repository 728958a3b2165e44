"""Volatility-regime agent: favour names whose volatility is compressing relative to their own history and
avoid names whose volatility is expanding (vol expansion comes with drawdowns and de-risking flows), with
less trust where volatility itself is unstable.

At D, per symbol (daily log returns of the adjusted close):

* ``vol_s``, ``vol_l``: sd over the last ``short`` and ``long`` sessions;
* vol-of-vol ``vov``: sd of ``log(vol_s)`` over the last ``long`` sessions (unitless);
* regime change ``x = log(vol_s / vol_l) / vov``: how unusual the current vol ratio is in units of the
  name's own vol variability, clipped to +-``z_cap``; the score is ``z = -x``.

``mu = ic * z * sigma`` (``sigma = sd63 * sqrt(horizon)``), ``signal = tanh(z)``,
``confidence = density * exp(-vov) * (1/2 + |signal|/2)`` (``exp(-vov)``: ~0.75 for typical vov 0.3).

Reason codes: ``VOL_EXPANDING`` (x > 1), ``VOL_COMPRESSING`` (x < -1) or ``VOL_STABLE``; plus
``VOL_OF_VOL_HIGH`` when ``vov`` > ``high_vov``.
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
    check_positive,
    density,
    empty_signals,
    price_panel,
    rolling_vol,
    to_signals,
)
from mqf_pipeline.agents.scoring import tanh_forecast


@dataclass(frozen=True)
class VolatilityAgent:
    """Vol-regime change (short vs long realised vol) scaled by vol-of-vol. Windows in sessions."""

    name: ClassVar[str] = "volatility"
    short: int = 21
    long: int = 126
    sigma_window: int = 63
    horizon_days: int = 21
    ic: float = 0.02
    z_cap: float = 3.0
    high_vov: float = 0.5

    def __post_init__(self) -> None:
        check_positive(
            short=self.short,
            sigma_window=self.sigma_window,
            horizon_days=self.horizon_days,
            ic=self.ic,
            z_cap=self.z_cap,
            high_vov=self.high_vov,
        )
        if not self.long > self.short:
            raise ValueError(f"long ({self.long}) must exceed short ({self.short})")

    def signals(self, data: AgentData, dates: Sequence[dt.date]) -> pl.DataFrame:
        """Signal rows for ``dates``; symbols need ``short + long`` prior sessions."""
        if not dates:
            return empty_signals()
        frame = (
            price_panel(data.bars, until=max(dates))
            .with_columns(
                vol_s=rolling_vol(self.short),
                vol_l=rolling_vol(self.long),
                vol=rolling_vol(self.sigma_window),
                dens=density(self.long),
            )
            .with_columns(log_vs=pl.when(pl.col("vol_s") > 0).then(pl.col("vol_s").log()))
            .with_columns(vov=rolling_vol(self.long, "log_vs"))
            .with_columns(
                x=pl.when((pl.col("vov") > 0) & (pl.col("vol_l") > 0) & pl.col("vol").is_not_null()).then(
                    (pl.col("log_vs") - pl.col("vol_l").log()) / pl.col("vov")
                )
            )
            .with_columns(
                z=-pl.col("x").clip(-self.z_cap, self.z_cap), sigma=pl.col("vol") * math.sqrt(self.horizon_days)
            )
            .pipe(
                tanh_forecast,
                self.ic,
                (pl.col("dens"), (-pl.col("vov")).exp()),
                reason_codes=reason_json(
                    [
                        pl.when(pl.col("x") > 1)
                        .then(pl.lit("VOL_EXPANDING"))
                        .when(pl.col("x") < -1)
                        .then(pl.lit("VOL_COMPRESSING"))
                        .otherwise(pl.lit("VOL_STABLE")),
                        pl.when(pl.col("vov") > self.high_vov).then(pl.lit("VOL_OF_VOL_HIGH")),
                    ]
                ),
            )
        )
        return to_signals(frame, self.name, self.horizon_days, dates)
