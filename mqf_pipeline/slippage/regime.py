"""Seed 002 section 5.6 regime-sensitive slippage: a multiplier on the model's estimate and a band
whose width follows the regime's confidence.

``estimate = base x multiplier``; ``lower, upper = estimate -/+ |estimate| x (1 - confidence)`` (the seed
writes ``estimate x (1 - confidence)``, which swaps lower and upper for a negative estimate, e.g. a
passive fill's rebate; the absolute value keeps lower <= upper). All in bps.

Regime labels: the project's risk regimes (``regime_history.regime``, copied into
``execution_feedback.regime``; :data:`mqf_pipeline.regimes.mapping.RISK_MULTIPLIERS`) are the seed's four
names, so they map to themselves. Any other label (null before the regime model's first refit, an HMM
state name) is unknown: multiplier 1.0 (the seed's default) and confidence 0.5 (the seed gives none, its
lookup would fail; 0.5 is the table's widest band).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from numpy.typing import ArrayLike

#: Seed section 5.6: regime -> (multiplier, confidence).
REGIME_ADJUSTMENTS: dict[str, tuple[float, float]] = {
    "BULL_QUIET": (1.0, 0.9),
    "BULL_VOLATILE": (1.3, 0.7),
    "BEAR_QUIET": (1.2, 0.8),
    "BEAR_CRISIS": (2.0, 0.5),
}
#: (multiplier, confidence) of an unknown regime.
UNKNOWN_ADJUSTMENT: tuple[float, float] = (1.0, 0.5)


def seed_regime(label: str | None) -> str | None:
    """The seed's regime name for a project regime label; None when it is not one of the four."""
    return label if label in REGIME_ADJUSTMENTS else None


def seed_regime_expr(label: pl.Expr) -> pl.Expr:
    """:func:`seed_regime` as a polars expression."""
    return pl.when(label.is_in(list(REGIME_ADJUSTMENTS))).then(label).otherwise(None)


def regime_estimate(base_bps: ArrayLike, regime: str | Sequence[str | None] | None) -> pl.DataFrame:
    """Regime-adjusted slippage per row: columns ``estimate``, ``lower``, ``upper`` (bps), ``regime`` (the
    seed name, null if unknown), ``multiplier``, ``confidence``. ``regime`` one label for all rows or one
    per row of ``base_bps`` (the model's predictions, bps)."""
    base = np.atleast_1d(np.asarray(base_bps, dtype=float))
    labels = [regime] * len(base) if regime is None or isinstance(regime, str) else list(regime)
    if len(labels) != len(base):
        raise ValueError(f"{len(labels)} regimes for {len(base)} estimates")
    names = [seed_regime(x) for x in labels]
    adj = np.array([REGIME_ADJUSTMENTS.get(n, UNKNOWN_ADJUSTMENT) if n else UNKNOWN_ADJUSTMENT for n in names])
    adj = adj.reshape(len(base), 2)
    estimate = base * adj[:, 0]
    half = np.abs(estimate) * (1.0 - adj[:, 1])
    return pl.DataFrame(
        {
            "estimate": estimate,
            "lower": estimate - half,
            "upper": estimate + half,
            "regime": pl.Series(names, dtype=pl.String),
            "multiplier": adj[:, 0],
            "confidence": adj[:, 1],
        }
    )
