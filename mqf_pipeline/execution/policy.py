"""The execution policy: which child-order schedule each order gets, with the deployment boundaries of
seed 002 section 3.4 as guards.

No learned execution model is deployed, so the policy is rule-based: the configured default schedule
(VWAP), then the guards in the seed's order: while the execution kill switch is engaged (a recent fill
cost more than 100 bps vs the mid) every order falls back to MARKET; a MARKET order above 0.25
size/ADV becomes TWAP; an action whose expected cost exceeds 50 bps becomes LIMIT. The intraday
boundaries (cancel when the mid is 5% from arrival, abort when volume exceeds 3x ADV) act inside the
broker's simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mqf_pipeline.execution import simulator as sim
from mqf_pipeline.execution.strategies import Strategy

POLICY = "rule-based"


@dataclass(frozen=True)
class OrderState:
    """What the policy sees about one order (seed 002 section 3.2 state; imbalance is not observable from
    daily bars and is left out)."""

    size_adv: float  # order shares / ADV shares
    sigma: float  # daily volatility, decimal
    spread_bps: float
    time_remaining: float = 1.0  # orders start at the next session's open
    #: the fitted slippage model's expected cost of an aggressive schedule (bps vs the mid); None: the static
    #: cost model's (seed 002 Part 5: the model refitted on the fund's own fills replaces the default)
    fitted_cost_bps: float | None = None


@dataclass(frozen=True)
class Choice:
    action: Strategy
    expected_cost_bps: float | None  # None for LIMIT: the cost model has no expected cost for a passive order
    used_fallback: bool
    fallback_reason: str | None


@dataclass(frozen=True)
class PolicyParams:
    """The rule-based policy's knobs (configs/execution.yaml): the ``default_strategy``, the size/ADV above
    which a MARKET order becomes TWAP, the expected cost (bps) above which an order becomes LIMIT, and the
    cost model the expected cost comes from."""

    default_strategy: Strategy = Strategy.VWAP
    twap_above_size_adv: float = 0.25
    max_estimated_slippage_bps: float = 50.0
    cost: sim.CostParams = field(default_factory=sim.CostParams)


def choose(state: OrderState, policy: PolicyParams, *, kill_switch: bool, preferred: Strategy | None = None) -> Choice:
    """The schedule for one order and why (fallback reasons: SLIPPAGE_SPIKE, SIZE_ADV, EXPECTED_COST; and
    SLIPPAGE_FEEDBACK when seed 002 section 5.5's feedback prefers a schedule for the symbol, ``preferred``)."""
    params = policy.cost
    action, reasons = Strategy(policy.default_strategy), []
    if kill_switch:
        action = Strategy.MARKET
        reasons.append("SLIPPAGE_SPIKE")
    elif preferred is not None and preferred is not action:
        action = preferred
        reasons.append("SLIPPAGE_FEEDBACK")
    if state.size_adv > policy.twap_above_size_adv and action is Strategy.MARKET:
        action = Strategy.TWAP
        reasons.append("SIZE_ADV")
    expected = _expected(action, state, params)
    if expected is not None and expected > policy.max_estimated_slippage_bps:
        action = Strategy.LIMIT
        reasons.append("EXPECTED_COST")
        expected = _expected(action, state, params)
    return Choice(action, expected, bool(reasons), ",".join(reasons) or None)


def _expected(action: Strategy, state: OrderState, params: sim.CostParams) -> float | None:
    """Expected cost in bps of an aggressive schedule (the fitted model's when the state carries it, else the
    static cost model's); None for LIMIT, whose risk is not filling (the
    simulator gives its fill probability, not a cost), so no model estimate is recorded for it."""
    if action is Strategy.LIMIT:
        return None
    if state.fitted_cost_bps is not None:
        return state.fitted_cost_bps
    return float(sim.expected_cost_bps(action, state.size_adv, state.sigma, state.spread_bps, params))
