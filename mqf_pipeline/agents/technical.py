"""Technical agent (seed 000 §3.2): RSI, MACD and Bollinger position, read from the stored features, combined
into one momentum score per symbol and date.

At D, per symbol, from ``data.features`` (:mod:`mqf_pipeline.features`, TA-Lib definitions) only:

* ``x_rsi = rsi_14 - 50`` (RSI points; above 50 = recent gains outweigh losses);
* ``x_macd = macd_hist / atr_14`` (MACD line minus its signal line, in units of the 14-session average
  true range: dimensionless, comparable across price levels and volatilities);
* ``x_bb = 2 * bb_pctb - 1`` (the close's position in its 20-session Bollinger band: -1 at the lower band,
  0 at the middle, +1 at the upper band).

Each component is standardised across the date's names that have all the inputs,
``z_k = clip((x_k - mean_D(x_k)) / sd_D(x_k), -z_cap, z_cap)`` (sd with ddof=1; null when the date has
fewer than 2 such names or a zero sd), and ``z = w_rsi z_rsi + w_macd z_macd + w_bb z_bb`` (``weights``;
the default is the equal-weight momentum reading, negative weights read the component as reversion).

``sigma = hvol_63 / sqrt(252) * sqrt(horizon)`` (the stored 63-session volatility of daily log returns,
back to daily decimal), then :func:`.scoring.tanh_forecast`: ``signal = tanh(z)``, ``mu = ic * z * sigma``,
``confidence = breadth * agreement * (1/2 + |signal|/2)`` with ``breadth = min(1, names / min_names)`` and
``agreement = (1 + |sum_k w_k z_k| / sum_k |w_k z_k|) / 2`` in [1/2, 1] (1 when the components agree).

A (symbol, date) lacking any of rsi_14, macd_hist, bb_pctb, atr_14 (> 0) or hvol_63 (> 0) gets no row: the
agent never fills a missing feature. It reads nothing but features dated D for decision date D.

Reason codes: ``RSI_OVERBOUGHT`` (RSI > 70) / ``RSI_OVERSOLD`` (< 30); ``MACD_ABOVE_SIGNAL`` /
``MACD_BELOW_SIGNAL`` / ``MACD_ON_SIGNAL``; ``BB_ABOVE_UPPER`` (%B > 1) / ``BB_BELOW_LOWER`` (%B < 0).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from mqf_pipeline.agents.base import AgentData, reason_json
from mqf_pipeline.agents.evaluation import SESSIONS_PER_YEAR, check_positive, empty_signals, to_signals
from mqf_pipeline.agents.scoring import tanh_forecast

#: The stored features the agent reads (names of :func:`mqf_pipeline.features.feature_names`).
FEATURES: tuple[str, ...] = ("rsi_14", "macd_hist", "bb_pctb", "atr_14", "hvol_63")
#: Component name -> its raw value from the features (see the module docstring).
COMPONENTS: dict[str, pl.Expr] = {
    "rsi": pl.col("rsi_14") - 50.0,
    "macd": pl.col("macd_hist") / pl.col("atr_14"),
    "bb": 2.0 * pl.col("bb_pctb") - 1.0,
}


def component_scores(features: pl.DataFrame, dates: Sequence[dt.date], z_cap: float) -> pl.DataFrame:
    """Rows of ``features`` dated in ``dates`` with every input present, plus ``x_<k>`` (raw components),
    ``z_<k>`` (standardised across the date, clipped to +-``z_cap``) and ``names`` (rows on the date)."""
    wanted = pl.Series("d", list(dates), dtype=pl.Date).implode()
    complete = pl.all_horizontal(pl.col(c).is_not_null() & pl.col(c).is_finite() for c in FEATURES)
    frame = features.filter(
        pl.col("date").is_in(wanted) & complete & (pl.col("atr_14") > 0) & (pl.col("hvol_63") > 0)
    ).with_columns(**{f"x_{k}": e for k, e in COMPONENTS.items()}, names=pl.len().over("date"))

    def standardised(k: str) -> pl.Expr:
        x = pl.col(f"x_{k}")
        sd = x.std(ddof=1).over("date")
        return pl.when(sd > 0).then(((x - x.mean().over("date")) / sd).clip(-z_cap, z_cap))

    return frame.with_columns(**{f"z_{k}": standardised(k) for k in COMPONENTS})


@dataclass(frozen=True)
class TechnicalAgent:
    """RSI, MACD and Bollinger %B from stored features, standardised per date and combined with ``weights``
    (rsi, macd, bb). ``horizon_days`` in sessions; ``ic`` a prior over the horizon."""

    name: ClassVar[str] = "technical"
    weights: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)
    horizon_days: int = 10
    ic: float = 0.02
    z_cap: float = 3.0
    min_names: int = 20

    def __post_init__(self) -> None:
        check_positive(horizon_days=self.horizon_days, ic=self.ic, z_cap=self.z_cap, min_names=self.min_names)
        if len(self.weights) != len(COMPONENTS) or not all(math.isfinite(w) for w in self.weights):
            raise ValueError(f"weights must be {len(COMPONENTS)} finite numbers (rsi, macd, bb), got {self.weights}")
        if not sum(abs(w) for w in self.weights) > 0:
            raise ValueError("weights must not all be 0")

    def signals(self, data: AgentData, dates: Sequence[dt.date]) -> pl.DataFrame:
        """Signal rows for ``dates``: symbols with every feature of :data:`FEATURES` stored at the date."""
        if not dates or not set(FEATURES) <= set(data.features.columns):
            return empty_signals()
        terms = [w * pl.col(f"z_{k}") for w, k in zip(self.weights, COMPONENTS, strict=True)]
        total, spread = pl.sum_horizontal(terms), pl.sum_horizontal(t.abs() for t in terms)
        frame = (
            component_scores(data.features, dates, self.z_cap)
            .with_columns(
                # sum_horizontal skips nulls: keep z null unless every component is defined
                z=pl.when(pl.all_horizontal(t.is_not_null() for t in terms)).then(total),
                agreement=pl.when(spread > 0).then(0.5 + 0.5 * total.abs() / spread).otherwise(1.0),
                breadth=(pl.col("names") / float(self.min_names)).clip(0.0, 1.0),
                sigma=pl.col("hvol_63") / math.sqrt(SESSIONS_PER_YEAR) * math.sqrt(self.horizon_days),
            )
            .pipe(
                tanh_forecast,
                self.ic,
                (pl.col("breadth"), pl.col("agreement")),
                reason_codes=reason_json(
                    [
                        pl.when(pl.col("rsi_14") > 70)
                        .then(pl.lit("RSI_OVERBOUGHT"))
                        .when(pl.col("rsi_14") < 30)
                        .then(pl.lit("RSI_OVERSOLD")),
                        pl.when(pl.col("macd_hist") > 0)
                        .then(pl.lit("MACD_ABOVE_SIGNAL"))
                        .when(pl.col("macd_hist") < 0)
                        .then(pl.lit("MACD_BELOW_SIGNAL"))
                        .otherwise(pl.lit("MACD_ON_SIGNAL")),
                        pl.when(pl.col("bb_pctb") > 1)
                        .then(pl.lit("BB_ABOVE_UPPER"))
                        .when(pl.col("bb_pctb") < 0)
                        .then(pl.lit("BB_BELOW_LOWER")),
                    ]
                ),
            )
        )
        return to_signals(frame, self.name, self.horizon_days, dates)
