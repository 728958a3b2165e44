"""Decision and risk tables of the trading cycle (:mod:`assets.trading_cycle`): descriptions, the gate
checks, and the materialization metadata of the decisions part.

Decisions for session D need the risk state of D-1 (breakers, NAV peak) and the positions booked at D's
close; ``risk_state`` depends on its own previous partition, which Dagster shows in the lineage and
respects in backfills.
"""

import json

import dagster as dg
import polars as pl

from assets.common import md_table, write_metadata
from mqf_pipeline.governance import phases as governance
from mqf_pipeline.stages.base import StageRun
from mqf_pipeline.stages.decisions import CycleDetail, gate_summary

DESCRIPTIONS = {
    "decisions": "Meta-brain decisions per symbol and session (seed 000 sections 3.1, 6): confidence-weighted "
    "ensemble, disagreement penalty, robust z, fractional Kelly, opportunity cost, CVaR-first rules -> "
    "EXECUTE_BUY / EXECUTE_SELL / HOLD / REJECT with reason codes.",
    "audit_log": "The 15-field audit record of every decision (seed 000 section 10.1), written before the "
    "decisions; if it cannot be written the run halts with CRITICAL.",
    "governance_gates": "Governance gates Phase 0-4 per cycle (seed 000 section 10.4) with their outcome and detail.",
    "risk_contributions": "Per position of the decided book: weight, sector, beta, Euler component and marginal CVaR.",
    "risk_state": "The risk engine after each cycle (seed 000 section 7): NAV and drawdown, hybrid VaR, EVT CVaR, "
    "stress scenarios, sector and correlation-shock limits, circuit breaker and recovery state (persisted: the "
    "next session continues it), sizing multiplier, kill switch.",
}
GROUPS = {"risk_contributions": "risk", "risk_state": "risk"}
GATE_CHECKS = [
    dg.AssetCheckSpec(
        f"gate_phase{phase}_{name}",
        asset="decisions" if phase < 3 else "risk_state",
        blocking=False,
        description=f"Governance gate Phase {phase} ({name}) of the latest session in the run. The gate acts inside "
        "the trading cycle's step (Phases 0-2 stop the session's decisions; Phase 3 or 4 failing stops every order "
        "that adds risk, recorded per order), so the check reports it and does not block: execution runs in the "
        "same step, and a blocking check would fail a whole backfill on one session's normal risk state.",
    )
    for phase, name in governance.PHASES.items()
]


def results(run: StageRun):
    """The decision part's MaterializeResults and gate check results for a trading-cycle run."""
    last: CycleDetail = run.last.detail
    yield from _materializations(run.written, str(run.last.day), last)
    for gate in last.gates:
        yield dg.AssetCheckResult(
            check_name=f"gate_phase{gate.phase}_{gate.name}",
            asset_key="decisions" if gate.phase < 3 else "risk_state",
            passed=gate.passed,
            severity=dg.AssetCheckSeverity.ERROR if gate.phase >= 3 else dg.AssetCheckSeverity.WARN,
            description=gate.detail,
            metadata={
                "session": str(run.last.day),
                "sessions_failed_in_run": gate_summary(run.steps, gate.phase),
                "sessions_in_run": len(run.steps),
            },
        )


def _materializations(written, session: str, last: CycleDetail):
    """One MaterializeResult per table, with the last session's summary."""
    counts = {k: last.counts.get(k, 0) for k in ("EXECUTE_BUY", "EXECUTE_SELL", "HOLD", "REJECT")}
    rs = last.risk_state
    yield dg.MaterializeResult(
        asset_key="decisions",
        metadata=write_metadata(
            written["decisions"],
            session=session,
            **{k.lower(): v for k, v in counts.items()},
            kill_switch=(rs["kill_switch"] and "ENGAGED: every decision REJECT (KILL_SWITCH)") or "off",
            agents_without_signals=(
                f"{', '.join(last.agents_without_signals)} (no data: their ensemble weight went to the others pro rata)"
                if last.agents_without_signals
                else "none"
            ),
            decisions_preview=dg.MetadataValue.md(_preview(last.decisions)) if last.decisions.height else "none",
        ),
    )
    yield dg.MaterializeResult(asset_key="audit_log", metadata=write_metadata(written["audit_log"]))
    yield dg.MaterializeResult(
        asset_key="governance_gates",
        metadata=write_metadata(
            written["governance_gates"], **{f"phase{g.phase}_{g.name}": g.passed for g in last.gates}
        ),
    )
    yield dg.MaterializeResult(asset_key="risk_contributions", metadata=write_metadata(written["risk_contributions"]))
    yield dg.MaterializeResult(
        asset_key="risk_state",
        metadata=write_metadata(
            written["risk_state"],
            session=session,
            nav=round(float(rs["nav"]), 2),
            drawdown=round(float(rs["drawdown"]), 6),
            gross_exposure=round(float(rs["gross_exposure"]), 6),
            var_hybrid=_r(rs["var_hybrid"]),
            var_conditional=_r(rs["var_conditional"]),
            var_model=str(rs["var_model"]),
            cvar_evt=_r(rs["cvar_evt"]),
            stress_worst=f"{rs['stress_worst_scenario']}: {_r(rs['stress_worst_loss'])}",
            breaker=f"{rs['breaker_status']} (tier {rs['breaker_tier']})",
            breaker_status=str(rs["breaker_status"]),
            breaker_tier=int(rs["breaker_tier"]),
            limits_breached=sum(bool(c["breached"]) for c in json.loads(rs["limits_json"])),
            sizing_multiplier=round(float(rs["sizing_multiplier"]), 4),
            regime=str(rs["regime"]),
            kill_switch=bool(rs["kill_switch"]),
        ),
    )


def _preview(decisions: pl.DataFrame) -> str:
    cols = ["symbol", "final_decision", "position_size", "mu_hat", "conviction", "reason_codes_json"]
    order = pl.when(pl.col("final_decision").str.starts_with("EXECUTE")).then(0).otherwise(1)
    return md_table(decisions.sort(order, pl.col("position_size").abs(), descending=[False, True]).select(cols), 15)


def _r(value: object) -> object:
    return round(float(value), 6) if isinstance(value, int | float) else value
