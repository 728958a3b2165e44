"""Which orders of a session the governance gates let through (seed 000 sections 7.5 and 10.4).

The kill switch stops every submission (asked before each one by the order step). The other gates stop
only orders that add risk, so the fund can always get smaller:

* Phase 3 (risk) failed: the decided book breaches a limit of section 7.4;
* Phase 4 (orders) failed: an earlier phase failed or the kill switch was engaged at decision time;
* the circuit breaker is at FREEZE ("only position reductions may be ordered");
* the session's regime is BEAR_CRISIS (risk multiplier 0: no new exposure).

An order adds risk unless it moves an open position toward zero without crossing it: a trade that
crosses zero is planned as two legs, the close (leg 0, a reduction) and the new position (leg 1, which
adds risk).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from mqf_pipeline.execution.orders import OrderRequest, Side

#: Regimes in which no order may add risk.
NO_NEW_RISK_REGIMES = ("BEAR_CRISIS",)


@dataclass(frozen=True)
class OrderBlocker:
    """The session's reason to refuse orders that add risk (None: every order may go), and the shares held
    before the session's orders (what tells a reduction from an increase)."""

    new_risk: str | None
    held: Mapping[str, float]

    @property
    def session_reason(self) -> str | None:
        return self.new_risk

    def reason(self, request: OrderRequest, leg: int) -> str | None:
        """Why ``request`` (leg ``leg`` of its symbol's trade) may not be submitted, else None."""
        if self.new_risk is None:
            return None
        return None if is_reduction(self.held.get(request.symbol, 0.0), request, leg) else self.new_risk


def is_reduction(held_qty: float, request: OrderRequest, leg: int) -> bool:
    """True when the order only shrinks the open position ``held_qty`` (shares, signed): the opposite side,
    at most the position's size, and not the opening leg of a trade that crosses zero."""
    if leg > 0 or held_qty == 0:
        return False
    closes_long = held_qty > 0 and request.side is Side.SELL
    closes_short = held_qty < 0 and request.side is Side.BUY
    return (closes_long or closes_short) and request.qty <= abs(held_qty) + 1e-9


def new_risk_reason(risk: pl.DataFrame, gates: pl.DataFrame, regime: str | None) -> str | None:
    """The first reason the session may not add risk: Phase 3, Phase 4, FREEZE, a no-new-risk regime."""
    failed = {int(r["phase"]): str(r["detail"]) for r in gates.iter_rows(named=True) if not r["passed"]}
    if 3 in failed:
        return f"GATE_PHASE3_RISK: {failed[3]}"
    if 4 in failed:
        return f"GATE_PHASE4_ORDERS: {failed[4]}"
    if risk.height and risk["breaker_status"][0] == "FREEZE":
        return "BREAKER_FREEZE: the circuit breaker is at FREEZE, only position reductions may be ordered"
    if regime in NO_NEW_RISK_REGIMES:
        return f"REGIME_{regime}: the regime's risk multiplier is 0, only position reductions may be ordered"
    return None


def order_blocker(
    risk: pl.DataFrame, gates: pl.DataFrame, regime: str | None, held: Mapping[str, float]
) -> OrderBlocker:
    """The session's :class:`OrderBlocker` from its risk_state and governance_gates rows and its regime."""
    return OrderBlocker(new_risk_reason(risk, gates, regime), dict(held))
