"""Risk agent: tail risk and correlation stress, as (mostly) negative views.

At D, per symbol (daily log returns of the adjusted close):

* tail: over the last ``tail_window`` returns, the historical ``alpha`` quantile (numpy
  ``method="inverted_cdf"``: the k-th smallest return, ``k = ceil(alpha * window)``) gives
  ``var = -q`` and the mean of the k smallest returns gives ``es`` (expected shortfall; both positive
  losses, daily decimal); ``z_es`` is its uniform rank score within the date;
* correlation: ``dcorr = corr(r, m)_short - corr(r, m)_long`` with ``m`` the equal-weight mean return of
  the date's names (rising co-movement with the market); ``z_corr`` its rank score;
* market stress ``s`` = clip(mean over the date's names of ``dcorr`` / ``stress_level``, 0, 1): when
  average correlation to the market rises, diversification fails and every view shifts down.

``z = -(tail_weight * z_es + (1 - tail_weight) * z_corr) - stress_shift * s``;
``mu = ic * z * sigma`` (``sigma = sd63 * sqrt(horizon)``), ``signal = tanh(z)``,
``confidence = breadth * density * (1/2 + |signal|/2)``.

Reason codes: ``TAIL_ES_Q<k>`` (5 = fattest tail quintile), ``CORR_TO_MARKET_RISING`` (dcorr > 0.1),
``MARKET_CORR_STRESS`` (s >= 0.5).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view

from mqf_pipeline.agents.base import AgentData, reason_json
from mqf_pipeline.agents.evaluation import (
    breadth,
    check_positive,
    cross_score,
    density,
    empty_signals,
    price_panel,
    quintile,
    rolling_vol,
    to_signals,
)
from mqf_pipeline.agents.scoring import tanh_forecast


def trailing_tail(panel: pl.DataFrame, window: int, alpha: float) -> pl.DataFrame:
    """``panel`` (from :func:`.evaluation.price_panel`, sorted by symbol then date) with ``var`` and ``es``:
    historical VaR and expected shortfall (positive daily losses) of the last ``window`` returns, null until
    a symbol has ``window`` returns."""
    k = math.ceil(alpha * window)
    ret = panel.get_column("ret").fill_null(np.nan).to_numpy().astype(np.float64)
    obs = panel.get_column("obs").to_numpy()
    var = np.full(ret.size, np.nan)
    es = np.full(ret.size, np.nan)
    starts = np.flatnonzero(obs == 0)
    for start, end in zip(starts, [*starts[1:], ret.size], strict=True):
        r = ret[start + 1 : end]  # the first row of a symbol has no return
        if r.size < window:
            continue
        worst = np.partition(sliding_window_view(r, window), k - 1, axis=1)[:, :k]
        var[start + window : end] = -worst[:, k - 1]
        es[start + window : end] = -worst.mean(axis=1)
    return panel.with_columns(
        var=pl.Series(var, dtype=pl.Float64).fill_nan(None), es=pl.Series(es, dtype=pl.Float64).fill_nan(None)
    )


@dataclass(frozen=True)
class RiskAgent:
    """Tail risk (historical VaR/ES) and correlation stress. Windows in sessions; ``alpha`` a tail probability."""

    name: ClassVar[str] = "risk"
    tail_window: int = 252
    alpha: float = 0.05
    corr_short: int = 63
    corr_long: int = 252
    sigma_window: int = 63
    horizon_days: int = 5
    ic: float = 0.02
    tail_weight: float = 0.7
    stress_level: float = 0.10
    stress_shift: float = 1.0
    min_names: int = 20

    def __post_init__(self) -> None:
        check_positive(
            tail_window=self.tail_window,
            sigma_window=self.sigma_window,
            horizon_days=self.horizon_days,
            ic=self.ic,
            stress_level=self.stress_level,
            min_names=self.min_names,
        )
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {self.alpha}")
        if not 2 < self.corr_short < self.corr_long:
            raise ValueError(f"need 2 < corr_short < corr_long, got {self.corr_short}, {self.corr_long}")
        if not 0 <= self.tail_weight <= 1 or self.stress_shift < 0:
            raise ValueError("tail_weight must be in [0, 1] and stress_shift >= 0")

    def signals(self, data: AgentData, dates: Sequence[dt.date]) -> pl.DataFrame:
        """Signal rows for ``dates``; symbols need ``max(tail_window, corr_long)`` returns."""
        if not dates:
            return empty_signals()
        panel = price_panel(data.bars, until=max(dates)).with_columns(mkt=pl.col("ret").mean().over("date"))
        frame = (
            trailing_tail(panel, self.tail_window, self.alpha)
            .with_columns(
                dcorr=(
                    pl.rolling_corr("ret", "mkt", window_size=self.corr_short, min_samples=self.corr_short)
                    - pl.rolling_corr("ret", "mkt", window_size=self.corr_long, min_samples=self.corr_long)
                ).over("symbol"),
                vol=rolling_vol(self.sigma_window),
                dens=density(max(self.tail_window, self.corr_long)),
            )
            .with_columns(
                score=pl.when(pl.col("vol").is_not_null() & pl.col("dcorr").is_finite()).then(pl.col("es")),
                dcorr=pl.when(pl.col("es").is_not_null() & pl.col("vol").is_not_null()).then(pl.col("dcorr")),
            )
            .with_columns(
                z_es=cross_score(pl.col("score")),
                z_corr=cross_score(pl.col("dcorr")),
                stress=(pl.col("dcorr").mean().over("date") / self.stress_level).clip(0.0, 1.0),
                breadth=breadth(self.min_names),
                sigma=pl.col("vol") * math.sqrt(self.horizon_days),
            )
            .with_columns(
                z=-(self.tail_weight * pl.col("z_es") + (1 - self.tail_weight) * pl.col("z_corr"))
                - self.stress_shift * pl.col("stress")
            )
            .pipe(
                tanh_forecast,
                self.ic,
                (pl.col("breadth"), pl.col("dens")),
                reason_codes=reason_json(
                    [
                        pl.format("TAIL_ES_Q{}", quintile(pl.col("z_es"))),
                        pl.when(pl.col("dcorr") > 0.1).then(pl.lit("CORR_TO_MARKET_RISING")),
                        pl.when(pl.col("stress") >= 0.5).then(pl.lit("MARKET_CORR_STRESS")),
                    ]
                ),
            )
        )
        return to_signals(frame, self.name, self.horizon_days, dates)
