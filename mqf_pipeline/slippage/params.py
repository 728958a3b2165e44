"""Parameters of the slippage feedback loop (seed 002 Part 5): which fills and which cost measure the
model learns from (:class:`FillSpec`), the model's shrinkage (:class:`SlippageParams`) and the feedback
actions (:class:`FeedbackParams`). All costs are in bps; all are small frozen dataclasses."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from mqf_pipeline.execution.policy import PolicyParams

#: The cost measures a fill's slippage can be read as (bps, positive = cost):
#: ``cost_vs_mid`` = market_impact_bps + spread_bps / 2, the fill's price against the mid of its bucket
#: (half spread plus impact; no market move); ``slippage_bps`` = the shortfall against the arrival price
#: (the open; includes the intraday market move); ``total_cost_bps`` = that shortfall plus commission.
Target = Literal["cost_vs_mid", "slippage_bps", "total_cost_bps"]
TARGETS: tuple[str, ...] = ("cost_vs_mid", "slippage_bps", "total_cost_bps")


@dataclass(frozen=True)
class FillSpec:
    """Which execution_feedback rows count and what their slippage is.

    ``target`` the cost measure (:data:`TARGETS`, bps). ``passive_strategies`` schedules whose fills are
    left out (a LIMIT fill earns its offset: its cost is not a function of size, volatility and spread).
    """

    target: Target = "cost_vs_mid"
    passive_strategies: tuple[str, ...] = ("LIMIT",)

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"FillSpec.target must be one of {TARGETS}, got {self.target!r}")


@dataclass(frozen=True)
class SlippageParams:
    """The per-symbol slippage model.

    ``shrinkage`` k >= 0: a symbol's coefficients minimise
    ``||y_s - X_s b||^2 + k (b - b_pool)' G (b - b_pool)``, ``G = X'X / N`` the pooled design's second
    moments: the pooled fit counts as k pseudo-fills shaped like the pooled design, so a symbol's own fills
    outweigh it once it has more than k of them. ``k = 0``: a symbol's own OLS (when its design has full
    rank). The default 10 was chosen out of sample on simulated fills (seeds 100-109 of the paper and
    live-like worlds of ``bench/slippage.py``, disjoint from the seeds it reports; k in {0, 2, 5, 10, 20,
    100}: 2-10 best live-like, larger k best in paper mode). ``min_fills``: fewer fills than this and a
    symbol uses the pooled coefficients. ``min_pooled_fills``: fewer usable fills in all and nothing is fitted (status
    ``too_few_fills``): the static default predicts, as with no fills. ``lookback_days``: only fills within
    this many calendar days up to the estimation date (None: all). ``static``: the execution policy whose
    ``expected_cost_bps`` (its default strategy under its cost model) predicts while nothing is fitted.
    """

    shrinkage: float = 10.0
    min_fills: int = 2
    min_pooled_fills: int = 20
    lookback_days: int | None = None
    fills: FillSpec = field(default_factory=FillSpec)
    static: PolicyParams = field(default_factory=PolicyParams)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.shrinkage) and self.shrinkage >= 0):
            raise ValueError(f"SlippageParams.shrinkage must be a finite number >= 0, got {self.shrinkage}")
        if self.min_fills < 1:
            raise ValueError(f"SlippageParams.min_fills must be >= 1, got {self.min_fills}")
        if self.min_pooled_fills < 1:
            raise ValueError(f"SlippageParams.min_pooled_fills must be >= 1, got {self.min_pooled_fills}")
        if self.lookback_days is not None and self.lookback_days < 1:
            raise ValueError(f"SlippageParams.lookback_days must be >= 1 or None, got {self.lookback_days}")


@dataclass(frozen=True)
class FeedbackParams:
    """Seed 002 section 5.5 feedback actions.

    A symbol whose slippage in a session (``fills.target``, notional-weighted over its fills) exceeds
    ``threshold_bps`` gets, for the next ``hold_sessions`` sessions, its signal score multiplied by
    ``score_multiplier`` and its Kelly size by ``kelly_multiplier``, and POV as its preferred schedule if
    the slippage exceeded ``pov_above_bps``, else TWAP. Thresholds in bps: the seed's ``slippage > 0.05`` has
    no unit; as a decimal it is 500 bps, above the 100 bps spike at which section 3.4's kill switch already
    forces MARKET (POV would never be chosen), and as percent 5 bps, under a typical half spread plus impact
    (TWAP would never be chosen). The defaults are 25 bps (about twice a typical fund order's cost) and
    50 bps (the policy's ``max_estimated_slippage_bps``).
    """

    threshold_bps: float = 25.0
    pov_above_bps: float = 50.0
    hold_sessions: int = 5
    score_multiplier: float = 0.8
    kelly_multiplier: float = 0.7
    fills: FillSpec = field(default_factory=FillSpec)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold_bps) and math.isfinite(self.pov_above_bps)):
            raise ValueError("FeedbackParams thresholds must be finite bps")
        if self.pov_above_bps < self.threshold_bps:
            raise ValueError(
                f"FeedbackParams.pov_above_bps ({self.pov_above_bps}) must be >= threshold_bps ({self.threshold_bps})"
            )
        if self.hold_sessions < 1:
            raise ValueError(f"FeedbackParams.hold_sessions must be >= 1, got {self.hold_sessions}")
        for name in ("score_multiplier", "kelly_multiplier"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"FeedbackParams.{name} must be in [0, 1], got {value}")
