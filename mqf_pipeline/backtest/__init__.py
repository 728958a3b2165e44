"""Walk-forward backtest evaluation (issue 16): performance metrics as pure numpy functions.

Units: decimal returns per period (daily unless ``periods_per_year`` says otherwise); conventions
(NaN handling, ``ddof``, annualisation) are pinned in :mod:`mqf_pipeline.backtest.metrics`.
"""

from mqf_pipeline.backtest.metrics import (
    PERIODS_PER_YEAR,
    PerformanceSummary,
    active_returns,
    annual_return,
    annual_volatility,
    as_returns,
    as_weights,
    calmar_ratio,
    cost_drag,
    downside_risk,
    drawdown_series,
    exposure,
    gross_exposure,
    hit_rate,
    information_ratio,
    information_ratio_per_period,
    max_drawdown,
    sharpe_ratio,
    sortino_ratio,
    summarize,
    tracking_error,
    tracking_error_per_period,
    turnover,
    wealth_curve,
)

__all__ = [
    "PERIODS_PER_YEAR",
    "PerformanceSummary",
    "active_returns",
    "annual_return",
    "annual_volatility",
    "as_returns",
    "as_weights",
    "calmar_ratio",
    "cost_drag",
    "downside_risk",
    "drawdown_series",
    "exposure",
    "gross_exposure",
    "hit_rate",
    "information_ratio",
    "information_ratio_per_period",
    "max_drawdown",
    "sharpe_ratio",
    "sortino_ratio",
    "summarize",
    "tracking_error",
    "tracking_error_per_period",
    "turnover",
    "wealth_curve",
]
