"""Fundamental-quality agent: earnings growth, revenue trend and cash-flow quality; horizon 63 sessions.

For decision date D it uses the latest quarterly accounts with ``report_date`` <= D (see
:func:`mqf_pipeline.agents.valuation.quarterly_accounts`; TTM = trailing four fiscal quarters):

* ``eps_growth``: TTM EPS over the TTM EPS a year earlier, minus 1, on one share basis, with the
  denominator's absolute value (so a loss shrinking counts as growth); clipped to [-1, 1];
* ``revenue_trend``: OLS slope of log quarterly revenue on the quarter index over the last
  ``trend_quarters`` consecutive quarters, annualised (x4), decimal per year;
* ``accruals_quality``: (TTM operating cash flow - TTM earnings) / TTM revenue: cash earnings
  beyond book earnings (low accruals) mark quality;
* ``cash_flow_yield``: TTM operating cash flow / market value at D's raw close (shares from the
  report, restated for splits since the period end).

Each is scored cross-sectionally (rank score, sd 1; within sector by default) and the weighted
mean of the available scores is re-scored into ``z``; ``mu = ic * z * sigma`` relative to the
cross-section, ``sigma`` the trailing daily volatility x sqrt(63).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import ClassVar

import polars as pl

from mqf_pipeline.agents.base import AgentData
from mqf_pipeline.agents.valuation import (
    accounts_asof,
    composite_signals,
    decision_keys,
    empty_signals,
    quarterly_accounts,
    split_index,
    weighted_composite,
)

#: Calendar-day span allowed per quarter step in the revenue-trend window.
_QUARTER_DAYS = (80, 100)


def revenue_trend(quarterly: pl.DataFrame, quarters: int) -> pl.DataFrame:
    """``quarterly`` with ``revenue_trend``: annualised OLS slope of log revenue over the last ``quarters``
    consecutive fiscal quarters (null when a gap, a non-positive revenue or fewer quarters)."""
    q = quarterly.sort("symbol", "fiscal_period_end")
    fpe = pl.col("fiscal_period_end")
    step_ok = (fpe - fpe.shift(1)).dt.total_days().over("symbol").is_between(*_QUARTER_DAYS)
    y = pl.when(pl.col("revenue") > 0).then(pl.col("revenue").log())
    t = pl.int_range(pl.len(), dtype=pl.Int64).over("symbol").cast(pl.Float64)
    q = q.with_columns(_y=y, _t=t, _ok=step_ok.cast(pl.Int32))
    mean = {
        name: expr.rolling_mean(quarters).over("symbol")
        for name, expr in (
            ("my", pl.col("_y")),
            ("mt", pl.col("_t")),
            ("mty", pl.col("_t") * pl.col("_y")),
            ("mtt", pl.col("_t") ** 2),
        )
    }
    slope = (mean["mty"] - mean["mt"] * mean["my"]) / (mean["mtt"] - mean["mt"] ** 2)
    contiguous = pl.col("_ok").rolling_sum(quarters - 1).over("symbol") == quarters - 1
    return q.with_columns(revenue_trend=pl.when(contiguous).then(4.0 * slope)).drop("_y", "_t", "_ok")


class FundamentalAgent:
    """Quality composite of EPS growth, revenue trend, accruals quality and cash-flow yield; horizon 63."""

    name: ClassVar[str] = "fundamental"

    def __init__(
        self,
        *,
        weights: tuple[float, float, float, float] = (0.25, 0.25, 0.2, 0.3),
        trend_quarters: int = 8,
        ic: float = 0.06,
        sector_neutral: bool = True,
        vol_lookback: int = 63,
        max_report_age_days: int = 400,
        stale_after_days: int = 120,
        min_names: int = 5,
    ) -> None:
        """``weights``: of (eps_growth, revenue_trend, accruals_quality, cash_flow_yield); ``ic``: assumed
        IC of the composite over the horizon; ``trend_quarters``: revenue-slope window (>= 4)."""
        if trend_quarters < 4:
            raise ValueError(f"trend_quarters must be >= 4, got {trend_quarters}")
        self.weights = weights
        self.trend_quarters = trend_quarters
        self.ic = ic
        self.sector_neutral = sector_neutral
        self.vol_lookback = vol_lookback
        self.max_report_age_days = max_report_age_days
        self.stale_after_days = stale_after_days
        self.min_names = min_names
        self.horizon_days = 63

    def metrics(self, data: AgentData, dates: Sequence[dt.date]) -> pl.DataFrame:
        """Point-in-time (date, symbol, sector, eps_growth, revenue_trend, accruals_quality, cash_flow_yield,
        report_age_days) on the requested dates (decimals; see the module docstring)."""
        keys = decision_keys(data, dates)
        schema = {
            "date": pl.Date,
            "symbol": pl.String,
            "sector": pl.String,
            "eps_growth": pl.Float64,
            "revenue_trend": pl.Float64,
            "accruals_quality": pl.Float64,
            "cash_flow_yield": pl.Float64,
            "report_age_days": pl.Int64,
        }
        if keys.height == 0:
            return pl.DataFrame(schema=schema)
        bars = data.bars.filter(pl.col("date") <= keys.get_column("date").max())
        quarterly = quarterly_accounts(data.fundamentals, split_index(bars))
        if quarterly.height == 0:
            return pl.DataFrame(schema=schema)
        quarterly = revenue_trend(quarterly, self.trend_quarters).sort("known_at", "symbol")
        # market value at D = raw close x report shares x splits since the period end
        market_value = (
            pl.col("close")
            * pl.col("shares_outstanding").cast(pl.Float64)
            * pl.col("split_index")
            / pl.col("split_index_right")
        )
        prev = pl.col("ttm_eps_o_prev")
        return (
            accounts_asof(keys, quarterly)
            .with_columns(report_age_days=(pl.col("date") - pl.col("report_date")).dt.total_days())
            .filter(pl.col("report_age_days") <= self.max_report_age_days, pl.col("close") > 0)
            .with_columns(
                eps_growth=pl.when(prev.abs() > 0).then(((pl.col("ttm_eps_o") - prev) / prev.abs()).clip(-1.0, 1.0)),
                accruals_quality=pl.when(pl.col("ttm_revenue") > 0).then(
                    (pl.col("ttm_ocf") - pl.col("ttm_earnings")) / pl.col("ttm_revenue")
                ),
                cash_flow_yield=pl.when(market_value > 0).then(pl.col("ttm_ocf") / market_value),
            )
            .with_columns(pl.col("eps_growth", "revenue_trend", "accruals_quality", "cash_flow_yield").fill_nan(None))
            .select(list(schema))
            .sort("date", "symbol")
        )

    def signals(self, data: AgentData, dates: Sequence[dt.date]) -> pl.DataFrame:
        """Signal rows for the requested dates (symbols with at least one scored metric and a volatility)."""
        metrics = self.metrics(data, dates)
        if metrics.height == 0:
            return empty_signals()
        by = ["date", "sector"] if self.sector_neutral else ["date"]
        names = ("eps_growth", "revenue_trend", "accruals_quality", "cash_flow_yield")
        parts = {f"z_{n}": (n, w) for n, w in zip(names, self.weights, strict=True)}
        out = weighted_composite(metrics, parts, by, data.bars, self.vol_lookback, self.min_names)
        codes = [
            pl.when(pl.col("z_eps_growth") > 1.0)
            .then(pl.lit("EPS_GROWTH_STRONG"))
            .when(pl.col("eps_growth") < 0)
            .then(pl.lit("EPS_DECLINING")),
            pl.when(pl.col("z_revenue_trend") > 1.0)
            .then(pl.lit("REVENUE_GROWING"))
            .when(pl.col("revenue_trend") < 0)
            .then(pl.lit("REVENUE_SHRINKING")),
            pl.when(pl.col("z_accruals_quality") > 1.0)
            .then(pl.lit("CASH_EARNINGS_STRONG"))
            .when(pl.col("z_accruals_quality") < -1.0)
            .then(pl.lit("HIGH_ACCRUALS")),
            pl.when(pl.col("z_cash_flow_yield") > 1.0)
            .then(pl.lit("HIGH_CASH_FLOW_YIELD"))
            .when(pl.col("cash_flow_yield") < 0)
            .then(pl.lit("NEGATIVE_CASH_FLOW")),
            pl.when(pl.col("report_age_days") > self.stale_after_days).then(pl.lit("STALE_REPORT")),
            pl.when(pl.col("z") > 0).then(pl.lit("QUALITY_HIGH")).otherwise(pl.lit("QUALITY_LOW")),
        ]
        return composite_signals(out, codes, self.name, self.ic, self.horizon_days, self.stale_after_days)
