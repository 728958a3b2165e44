"""The seed-000 §7.2 risk regimes: the HMM state x trend rule and the ``regime_history`` rows.

Risk-regime rule (HMM state x trend, trend = index above its 200-session mean):

========  =========================  =========================
state     uptrend (position > 0)     downtrend (position <= 0)
========  =========================  =========================
NORMAL    BULL_QUIET (1.0x)          BEAR_QUIET (0.5x)
VOLATILE  BULL_VOLATILE (0.7x)       BEAR_QUIET (0.5x)
CRISIS    BEAR_CRISIS (0.0x)         BEAR_CRISIS (0.0x)
========  =========================  =========================

VOLATILE in a downtrend maps to BEAR_QUIET, not BEAR_CRISIS: the HMM has a separate CRISIS
state for crisis-level volatility, so the full block (0.0x) is kept for it, while moderately high
volatility under the 200-session mean is typical of the rebound after a crisis (prices still
below the mean, volatility decaying) and gets risk-off sizing (0.5x) rather than none.
A missing trend (fewer than 200 sessions) counts as a downtrend (the conservative side).
"""

from __future__ import annotations

from typing import Any, Literal

import polars as pl

from mqf_pipeline.regimes.features import market_features
from mqf_pipeline.regimes.model import RegimeModel
from mqf_pipeline.regimes.walk_forward import PROB_COLUMNS, filtered_regimes

#: Seed 000 §7.2 risk regimes and their gross-exposure multipliers.
RISK_MULTIPLIERS: dict[str, float] = {
    "BULL_QUIET": 1.0,
    "BULL_VOLATILE": 0.7,
    "BEAR_QUIET": 0.5,
    "BEAR_CRISIS": 0.0,
}
#: (HMM state, uptrend) -> risk regime; see the module docstring for the reasoning.
REGIME_RULE: dict[tuple[str, bool], str] = {
    ("NORMAL", True): "BULL_QUIET",
    ("NORMAL", False): "BEAR_QUIET",
    ("VOLATILE", True): "BULL_VOLATILE",
    ("VOLATILE", False): "BEAR_QUIET",
    ("CRISIS", True): "BEAR_CRISIS",
    ("CRISIS", False): "BEAR_CRISIS",
}
#: Columns of the seed-002 ``regime_history`` table (besides the surrogate ``id``/``created_at``).
REGIME_HISTORY_COLUMNS: tuple[str, ...] = (
    "date",
    "regime",
    "regime_prob",
    "spy_ma200_position",
    "volatility_percentile",
    "vix_level",
)


def risk_regime(hmm_state: pl.Expr, spy_ma200_position: pl.Expr) -> pl.Expr:
    """The §7.2 risk regime (named ``regime``) from the HMM state and the trend (:data:`REGIME_RULE`)."""
    up = spy_ma200_position.fill_null(0.0) > 0
    expr = pl.lit(None, dtype=pl.String)
    for (state, uptrend), regime in REGIME_RULE.items():
        expr = pl.when((hmm_state == state) & (up == uptrend)).then(pl.lit(regime)).otherwise(expr)
    return expr.alias("regime")


def regime_history(
    bars: pl.DataFrame | None,
    macro: pl.DataFrame | None = None,
    *,
    features: pl.DataFrame | None = None,
    model: RegimeModel | None = None,
    refit_every: int | Literal["monthly"] = 21,
    min_train: int = 504,
    **options: Any,
) -> pl.DataFrame:
    """Rows for the seed-002 ``regime_history`` table, one per date from the first refit date on.

    Columns: :data:`REGIME_HISTORY_COLUMNS`, then prob_normal, prob_volatile, prob_crisis
    (filtered), hmm_state and risk_multiplier (:data:`RISK_MULTIPLIERS`). ``regime_prob`` is the
    filtered probability of the chosen (most probable) HMM state. ``features`` may be passed
    instead of ``bars``/``macro`` to skip :func:`market_features`; ``model`` is the unfitted
    :class:`RegimeModel` prototype (default ``RegimeModel()``) and ``options`` go to
    :func:`filtered_regimes`.
    """
    if features is None:
        if bars is None:
            raise ValueError("pass bars (and macro) or precomputed features")
        features = market_features(bars, macro)
    walk = filtered_regimes(features, model if model is not None else RegimeModel(), refit_every, min_train, **options)
    out = walk.frame.join(
        features.select("date", "spy_ma200_position", "volatility_percentile", "vix_level"), on="date", how="left"
    ).with_columns(
        risk_regime(pl.col("hmm_state"), pl.col("spy_ma200_position")),
        pl.max_horizontal(*PROB_COLUMNS).alias("regime_prob"),
    )
    return out.select(
        *REGIME_HISTORY_COLUMNS,
        *PROB_COLUMNS,
        "hmm_state",
        pl.col("regime").replace_strict(RISK_MULTIPLIERS, return_dtype=pl.Float64).alias("risk_multiplier"),
    )


__all__ = ["REGIME_HISTORY_COLUMNS", "REGIME_RULE", "RISK_MULTIPLIERS", "regime_history", "risk_regime"]
