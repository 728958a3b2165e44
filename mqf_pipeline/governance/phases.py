"""Governance gates Phase 0-4 (seed 000 section 10.4), evaluated once per cycle.

* Phase 0, history: at least one symbol has >= ``min_history_rows`` accepted bars.
* Phase 1, data quality: at least one of those passes the quality gate (score >= 0.6, no hard flag).
* Phase 2, signals: at least one enabled agent produced a valid signal for an eligible symbol.
* Phase 3, risk: the book after the decisions is within every REJECT-action limit of section 7.4
  (drawdown, stress loss) and, after SCALE actions, within VaR and CVaR.
* Phase 4, orders: order generation is allowed: phases 0-3 passed, the kill switch is off and the
  circuit breaker is not in FREEZE with increases pending. (Orders themselves are the execution
  stage's; this gate is what that stage must see passed.)

A cycle stops at the first failing phase among 0-2: no decisions are made, and the reason is
audited. Phases 3 and 4 are evaluated on the decided book.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

PHASES: dict[int, str] = {0: "history", 1: "data_quality", 2: "signals", 3: "risk", 4: "orders"}


@dataclass(frozen=True)
class Gate:
    """The outcome of one gate for one cycle."""

    phase: int
    passed: bool
    detail: str

    @property
    def name(self) -> str:
        return PHASES[self.phase]


def data_gates(eligibility: pl.DataFrame, signals: pl.DataFrame, min_history_rows: int) -> list[Gate]:
    """Phases 0-2 from the session's trading_eligibility rows and its agent signals (eligible symbols)."""
    n = eligibility.height
    n0 = int(eligibility.get_column("phase0_pass").sum()) if n else 0
    n1 = int(eligibility.filter(pl.col("phase0_pass") & pl.col("phase1_pass")).height) if n else 0
    agents = sorted(signals.get_column("agent").unique().to_list()) if signals.height else []
    covered = signals.get_column("symbol").n_unique() if signals.height else 0
    return [
        Gate(0, n0 > 0, f"{n0} of {n} symbols have >= {min_history_rows} accepted bars"),
        Gate(1, n1 > 0, f"{n1} of {n0} symbols with history pass the quality gate (score >= 0.6, no hard flag)"),
        Gate(2, bool(agents), f"{len(agents)} agent(s) signalled {covered} eligible symbol(s): {', '.join(agents)}"),
    ]


def risk_gate(limit_checks: list[dict[str, object]]) -> Gate:
    """Phase 3 from the book's limit checks (dicts with name, value, limit, breached, action)."""
    breached = [c for c in limit_checks if c["breached"]]
    if not breached:
        return Gate(3, True, "every limit of seed 000 section 7.4 holds for the decided book")
    text = "; ".join(f"{c['name']} {_fmt(c['value'])} > {_fmt(c['limit'])} ({c['action']})" for c in breached)
    return Gate(3, False, f"limit(s) breached after scaling: {text}")


def orders_gate(earlier: list[Gate], kill_switch: str | None, frozen: bool) -> Gate:
    """Phase 4: orders may be generated only if phases 0-3 passed, the kill switch is off and no freeze."""
    failed = [g.name for g in earlier if not g.passed]
    if kill_switch:
        return Gate(4, False, f"order generation refused: {kill_switch}")
    if failed:
        return Gate(4, False, f"order generation refused: gate(s) failed: {', '.join(failed)}")
    if frozen:
        return Gate(4, True, "circuit breaker FREEZE: only position reductions may be ordered")
    return Gate(4, True, "order generation permitted")


def gate_rows(gates: list[Gate], day: dt.date, cycle_id: str) -> pl.DataFrame:
    """governance_gates rows for one cycle."""
    return pl.DataFrame(
        {
            "date": [day] * len(gates),
            "cycle_id": [cycle_id] * len(gates),
            "phase": [g.phase for g in gates],
            "gate": [g.name for g in gates],
            "passed": [g.passed for g in gates],
            "detail": [g.detail for g in gates],
        },
        schema={
            "date": pl.Date,
            "cycle_id": pl.String,
            "phase": pl.Int64,
            "gate": pl.String,
            "passed": pl.Boolean,
            "detail": pl.String,
        },
    )


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
