"""Decision and risk assets: the meta-brain's decisions with their audit, and the risk state (one step).

Decisions for session D need the risk state of D-1 (breakers, NAV, book) and the risk state of D
needs D's decisions, so both are outputs of one multi-asset that walks the sessions in order;
``risk_state`` depends on its own previous partition, which Dagster shows in the lineage and
respects in backfills.
"""

import datetime as dt
import json

import dagster as dg
import polars as pl

from assets.common import RETRY, md_table, partition_dates, write_metadata
from assets.partitions import TRADING_DAYS
from mqf_pipeline.decisions.audit import AuditWriteError, write_audit
from mqf_pipeline.governance import phases as governance
from mqf_pipeline.stages.decisions import CODE_VERSION, CycleStateError, run_cycles
from mqf_pipeline.storage.schema import empty_frame
from mqf_pipeline.universe import universe_frame
from resources import KillSwitchResource, SettingsResource, StorageResource

PREVIOUS = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
INPUTS = ["agent_signals", "trading_eligibility", "data_quality", "regime", "features", "price_history"]

#: (asset key, group, description); every output has the same inputs and code version.
OUTPUTS: tuple[tuple[str, str, str], ...] = (
    (
        "decisions",
        "decisions",
        "Meta-brain decisions per symbol and session (seed 000 sections 3.1, 6): confidence-weighted ensemble, "
        "disagreement penalty, robust z, fractional Kelly, opportunity cost, CVaR-first rules -> EXECUTE_BUY / "
        "EXECUTE_SELL / HOLD / REJECT with reason codes.",
    ),
    (
        "audit_log",
        "decisions",
        "The 15-field audit record of every decision (seed 000 section 10.1), written before the decisions; if it "
        "cannot be written the run halts with CRITICAL.",
    ),
    (
        "governance_gates",
        "decisions",
        "Governance gates Phase 0-4 per cycle (seed 000 section 10.4) with their outcome and detail.",
    ),
    (
        "risk_contributions",
        "risk",
        "Per position of the decided book: weight, sector, beta, Euler component and marginal CVaR.",
    ),
    (
        "risk_state",
        "risk",
        "The risk engine after each cycle (seed 000 section 7): NAV and drawdown, hybrid VaR, EVT CVaR, stress "
        "scenarios, sector and correlation-shock limits, circuit breaker and recovery state (persisted: the next "
        "session continues it), sizing multiplier, kill switch.",
    ),
)
DECISION_SPECS = [
    dg.AssetSpec(
        key,
        group_name=group,
        deps=[*INPUTS, dg.AssetDep("risk_state", partition_mapping=PREVIOUS)] if key == "risk_state" else INPUTS,
        code_version=CODE_VERSION,
        kinds={"parquet"},
        description=text,
    )
    for key, group, text in OUTPUTS
]
GATE_CHECKS = [
    dg.AssetCheckSpec(
        f"gate_phase{phase}_{name}",
        asset="decisions" if phase < 3 else "risk_state",
        blocking=False,
        description=f"Governance gate Phase {phase} ({name}) of the latest session in the run. Not blocking: a "
        "failed gate is recorded (governance_gates) and the order stage refuses on Phase 4; a blocking check "
        "would fail the whole cycle run on a normal risk state.",
    )
    for phase, name in governance.PHASES.items()
]


@dg.multi_asset(
    specs=DECISION_SPECS,
    check_specs=GATE_CHECKS,
    partitions_def=TRADING_DAYS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    retry_policy=RETRY,
    name="decide_and_check_risk",
)
def decide_and_check_risk(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    kill_switch: KillSwitchResource,
):
    """Walk the sessions in order: gates, decisions with audit, risk validation, breakers, risk state."""
    cfg = settings.get()
    lake = storage.lake()
    days = partition_dates(context)

    def switch() -> str | None:
        state = kill_switch.status()
        if state.active:
            context.log.warning(f"{state.describe()}: every decision is REJECT (KILL_SWITCH), no order may be created")
        return state.describe() if state.active else None

    try:
        results = run_cycles(lake, cfg, days, universe_frame(cfg), kill_switch=switch, progress=context.log.info)
    except CycleStateError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    now = dt.datetime.now(dt.UTC)
    audit_rows = pl.concat([r.audit_log for r in results], how="vertical_relaxed")
    try:
        audit_written = write_audit(lake, audit_rows, days, now)
    except AuditWriteError as exc:
        context.log.critical(f"HALT: {exc}; no decision of this run is stored")
        raise dg.Failure(description=f"CRITICAL: {exc}", allow_retries=False) from exc
    decisions = [r.decisions for r in results if r.decisions.height]
    decision_rows = pl.concat(decisions) if decisions else empty_frame("decisions")
    decided = lake.write_many("decisions", decision_rows, days, now=now)
    gates = pl.concat([governance.gate_rows(r.gates, r.day, r.risk_state["cycle_id"]) for r in results])
    gates_written = lake.write_many("governance_gates", gates, days, now=now)
    contrib = pl.concat([r.contributions for r in results], how="vertical_relaxed")
    contrib_written = lake.write_many("risk_contributions", contrib, days, now=now)
    state = pl.DataFrame([r.risk_state for r in results], infer_schema_length=None)
    state_written = lake.write_many("risk_state", state, days, now=now)

    last = results[-1]
    counts = {k: last.counts.get(k, 0) for k in ("EXECUTE_BUY", "EXECUTE_SELL", "HOLD", "REJECT")}
    rs = last.risk_state
    yield dg.MaterializeResult(
        asset_key="decisions",
        metadata=write_metadata(
            decided,
            session=str(last.day),
            **{k.lower(): v for k, v in counts.items()},
            kill_switch=(rs["kill_switch"] and "ENGAGED: every decision REJECT (KILL_SWITCH)") or "off",
            decisions_preview=dg.MetadataValue.md(_preview(last.decisions)) if last.decisions.height else "none",
        ),
    )
    yield dg.MaterializeResult(asset_key="audit_log", metadata=write_metadata(audit_written))
    yield dg.MaterializeResult(
        asset_key="governance_gates",
        metadata=write_metadata(gates_written, **{f"phase{g.phase}_{g.name}": g.passed for g in last.gates}),
    )
    yield dg.MaterializeResult(asset_key="risk_contributions", metadata=write_metadata(contrib_written))
    yield dg.MaterializeResult(
        asset_key="risk_state",
        metadata=write_metadata(
            state_written,
            session=str(last.day),
            nav=round(float(rs["nav"]), 2),
            drawdown=round(float(rs["drawdown"]), 6),
            gross_exposure=round(float(rs["gross_exposure"]), 6),
            var_hybrid=_r(rs["var_hybrid"]),
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
    for gate in last.gates:
        yield dg.AssetCheckResult(
            check_name=f"gate_phase{gate.phase}_{gate.name}",
            asset_key="decisions" if gate.phase < 3 else "risk_state",
            passed=gate.passed,
            severity=dg.AssetCheckSeverity.ERROR if gate.phase >= 3 else dg.AssetCheckSeverity.WARN,
            description=gate.detail,
            metadata={
                "session": str(last.day),
                "sessions_failed_in_run": sum(not g.passed for r in results for g in r.gates if g.phase == gate.phase),
                "sessions_in_run": len(results),
            },
        )


def _preview(decisions: pl.DataFrame) -> str:
    cols = ["symbol", "final_decision", "position_size", "mu_hat", "conviction", "reason_codes_json"]
    order = pl.when(pl.col("final_decision").str.starts_with("EXECUTE")).then(0).otherwise(1)
    return md_table(decisions.sort(order, pl.col("position_size").abs(), descending=[False, True]).select(cols), 15)


def _r(value: object) -> object:
    return round(float(value), 6) if isinstance(value, int | float) else value
