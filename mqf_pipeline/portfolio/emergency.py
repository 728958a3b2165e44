"""The emergency rebalance (seed 002 sections 4.4-4.5: on a risk breach, greedy: instant, suboptimal).

On a session whose risk state breaches (circuit breaker DEFENSIVE or FREEZE, or a limit of seed 000
section 7.4 still breached after the decisions' scaling), the held book is cut, not re-optimised:

* the gross to reach: on a breaker breach, or a REJECT limit breached (drawdown, stress: no scale cures
  them), at most ``max_gross`` (fraction of NAV: a state, so a breach lasting several sessions cuts
  once, not again every session); on SCALE limits breached, ``gross x min(scales)`` (VaR, CVaR, vol and
  gross scale linearly with the book, so ``limit / value`` cures them); the smaller of the two applies,
  and nothing is cut when the book is already there;
* positions are cut greedily in liquidation order, the largest risk first (``|weight| x daily sigma``,
  ties by symbol), each by the smaller of its size and what is left to cut: no position grows, none
  crosses zero.

Weights are signed fractions of NAV; sigma is a daily decimal volatility.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mqf_pipeline.portfolio.rebalance import BREACH_STATUSES


@dataclass(frozen=True)
class EmergencyParams:
    """``max_gross``: the gross (fraction of NAV) a book may keep on a breaker breach or a breach no limit
    scale can cure, in (0, 1]."""

    max_gross: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.max_gross <= 1.0:
            raise ValueError(f"emergency max_gross must be in (0, 1] (fraction of NAV), got {self.max_gross}")


def gross(book: Mapping[str, float]) -> float:
    """Sum of |weight| (fraction of NAV)."""
    return float(sum(abs(w) for w in book.values()))


def target_gross(
    held_gross: float, risk_row: Mapping[str, object] | None, params: EmergencyParams, *, forced: bool = False
) -> float | None:
    """The gross the book is cut to for ``risk_row``'s breach (module docstring); None when the row does not
    breach or the book is already within it. ``forced``: a breach from outside the risk state (the kill
    switch when it de-risks), cut like a breaker breach."""
    risk_row = risk_row or {}
    breaker = forced or risk_row.get("breaker_status") in BREACH_STATUSES
    checks = [c for c in json.loads(str(risk_row.get("limits_json") or "[]")) if c.get("breached")]
    scales = [float(c["scale"]) for c in checks if c.get("action") == "SCALE" and c.get("scale") is not None]
    uncured = breaker or any(c.get("action") != "SCALE" for c in checks) or (checks and not scales)
    caps = [held_gross * max(min(k, 1.0), 0.0) for k in scales] + ([params.max_gross] if uncured else [])
    if not caps or min(caps) >= held_gross - 1e-12:
        return None
    return min(caps)


def liquidation_order(book: Mapping[str, float], sigma: Mapping[str, float]) -> list[str]:
    """Held symbols, largest risk first: ``|weight| x sigma`` descending (a missing or invalid sigma counts
    as the largest, the position is cut first), then symbol."""

    def risk(s: str) -> float:
        vol = sigma.get(s)
        return math.inf if vol is None or not math.isfinite(vol) or vol <= 0 else abs(book[s]) * vol

    return sorted((s for s, w in book.items() if w), key=lambda s: (-risk(s), s))


def derisk(book: Mapping[str, float], cap: float, order: Sequence[str]) -> dict[str, float]:
    """``book`` cut greedily in ``order`` until its gross is at most ``cap`` (module docstring)."""
    out = dict(book)
    excess = gross(book) - max(cap, 0.0)
    for s in order:
        if excess <= 1e-15:
            break
        w = out.get(s, 0.0)
        cut = min(abs(w), excess)
        out[s] = 0.0 if cut >= abs(w) else w - math.copysign(cut, w)
        excess -= cut
    return out


def emergency_targets(
    held: Mapping[str, float],
    targets: Mapping[str, float],
    risk_row: Mapping[str, object] | None,
    sigma: Mapping[str, float],
    params: EmergencyParams,
    *,
    forced: bool = False,
) -> dict[str, float] | None:
    """The session's targets when its risk state breaches (or ``forced``), else None: per symbol, the
    optimiser's target where it reduces the position further than the greedy cut, else the cut (no increase,
    no new name)."""
    cap = target_gross(gross(held), risk_row, params, forced=forced)
    if cap is None or not any(held.values()):
        return None
    cut = derisk(held, cap, liquidation_order(held, sigma))
    out = {}
    for s, w in cut.items():
        opt = float(targets.get(s, 0.0))
        out[s] = opt if opt * w >= 0 and abs(opt) <= abs(w) else w
    return out
