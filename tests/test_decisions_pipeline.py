"""Decisions, audit, gates and the risk state through Dagster on a small simulated deployment.

One module-scoped run of the research cycle (no execution: the risk state marks the decided book) over
ten months (20 symbols, Phase 0 needs 60 bars), then:
the audit record of every decision, limits on the book, the NAV recomputed independently from the
stored books and returns (1e-12 relative), reruns with identical rows, the kill switch engaged while
a run is in flight, the audit-failure halt and the missing-state error.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json

import dagster as dg
import numpy as np
import polars as pl
import pytest

from mqf_pipeline import calendar, kill_switch
from mqf_pipeline.decisions import audit
from mqf_pipeline.stages import decisions as decision_cycle
from mqf_pipeline.storage.lake import Lake
from tests.deployment import materializations, run_market_data, settings_for, write_configs

START, END = dt.date(2022, 3, 1), dt.date(2022, 12, 30)
JOB = "research_cycle_job"
SESSIONS = calendar.sessions(START, END)
MIN_HISTORY = 60


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    root = tmp_path_factory.mktemp("decisions")
    config_dir = write_configs(
        root, n_symbols=20, min_history_rows=MIN_HISTORY, signals={"regime_min_train_sessions": 60, "preset": "hybrid"}
    )
    instance = dg.DagsterInstance.ephemeral()
    result = run_market_data(config_dir, START, END, instance, job_name=JOB)
    assert result.success
    return config_dir, instance, result, Lake(settings_for(config_dir).lake_root)


def test_every_decision_has_its_audit_record(deployment):
    _, _, _, lake = deployment
    decisions = lake.read("decisions")
    log = lake.read("audit_log").filter(pl.col("component") == "meta_brain")
    per_symbol = log.filter(~pl.col("event_key").str.starts_with("GATE_"))
    assert decisions.height > 1000 and per_symbol.height == decisions.height
    assert set(decisions["final_decision"].unique()) <= set(audit.LEVELS)
    assert {"EXECUTE_BUY", "EXECUTE_SELL", "HOLD"} <= set(decisions["final_decision"].unique())
    payload = json.loads(per_symbol["payload_json"][0])
    assert set(payload) == set(audit.AUDIT_FIELDS)
    joined = decisions.join(per_symbol, left_on=["cycle_id", "symbol"], right_on=["cycle_id", "event_key"])
    assert joined.height == decisions.height
    assert (decisions["timestamp"].dt.hour() >= 20).all()  # the session close, not the wall clock


def test_book_within_limits(deployment):
    config_dir, _, _, lake = deployment
    cfg = settings_for(config_dir).risk
    decisions = lake.read("decisions")
    assert decisions["position_size"].is_between(0.0, cfg.limits.single_name + 1e-12).all()  # shorts off
    gross = decisions.group_by("date").agg(pl.col("position_size").abs().sum())["position_size"]
    assert (gross <= cfg.limits.max_gross_leverage + 1e-12).all()
    state = lake.read("risk_state")
    assert ((state["gross_exposure"] - gross.max()) <= 1e-12).all()
    contributions = lake.read("risk_contributions")
    last = state.sort("date").row(-1, named=True)
    mine = contributions.filter(pl.col("date") == last["date"])
    if mine.height:  # Euler contributions sum to the book's EVT CVaR
        assert mine["component_cvar"].sum() == pytest.approx(last["cvar_evt"], rel=1e-9)


def test_gates_stop_cycles_before_history_and_pass_after(deployment):
    _, _, _, lake = deployment
    gates = lake.read("governance_gates")
    first_ok = SESSIONS[MIN_HISTORY - 1]
    early = gates.filter((pl.col("date") < first_ok) & (pl.col("phase") == 0))
    assert early.height and not early["passed"].any()
    assert lake.read("decisions").filter(pl.col("date") < first_ok).height == 0
    events = lake.read("audit_log").filter(pl.col("event_key") == "GATE_PHASE0")
    assert events.height == early.height
    late = gates.filter(pl.col("date") >= SESSIONS[MIN_HISTORY + 5])
    assert late.filter(pl.col("phase") <= 2)["passed"].all()


def test_nav_follows_the_stored_books(deployment):
    """nav_t = nav_{t-1} (1 + sum_i w_{i,t-1} r_{i,t}) from stored books and adjusted closes: rel 1e-12."""
    _, _, _, lake = deployment
    state = lake.read("risk_state").sort("date")
    bars = lake.read("price_history").sort("symbol", "date")
    wide = (
        bars.with_columns(r=pl.col("adjusted_close") / pl.col("adjusted_close").shift(1).over("symbol") - 1)
        .pivot(on="symbol", index="date", values="r")
        .sort("date")
    )
    rets = {r["date"]: r for r in wide.iter_rows(named=True)}
    rows = state.to_dicts()
    checked = 0
    for prev, cur in itertools.pairwise(rows):
        book = json.loads(prev["book_json"])
        pnl = sum(w * (rets[cur["date"]].get(s) or 0.0) for s, w in book.items())
        assert cur["nav"] == pytest.approx(prev["nav"] * (1 + pnl), rel=1e-12)
        checked += bool(book)
    assert checked > 50
    assert (state["book_source"] == "decided").all()
    assert (state["drawdown"] >= 0).all() and (state["peak_nav"] >= state["nav"]).all()


def test_risk_state_metadata_and_checks(deployment):
    _, _, result, _ = deployment
    mats = materializations(result)
    meta = mats["risk_state"][-1].metadata
    for key in ("nav", "var_hybrid", "cvar_evt", "breaker", "sizing_multiplier", "stress_worst"):
        assert key in meta
    # agents of the preset without a signal for an eligible symbol on the last session (their look-back is
    # longer than this deployment's history) are named, recomputed here from the stored rows
    config_dir, _, _, lake = deployment
    day = SESSIONS[-1]
    eligible = lake.read("trading_eligibility", [day]).filter(pl.col("eligible"))["symbol"].to_list()
    outputs = lake.read("model_outputs", [day]).filter(pl.col("symbol").is_in(eligible))
    weights = settings_for(config_dir).signals.starting_weights()
    silent = sorted(a for a, w in weights.items() if w > 0 and a not in set(outputs["agent"].to_list()))
    assert silent  # the case is exercised
    expected = f"{', '.join(silent)} (no data: their ensemble weight went to the others pro rata)"
    assert mats["decisions"][-1].metadata["agents_without_signals"].value == expected
    checks = {e.check_name for e in result.get_asset_check_evaluations()}
    assert {"gate_phase0_history", "gate_phase3_risk", "gate_phase4_orders"} <= checks


def test_rerun_gives_identical_rows(deployment):
    config_dir, instance, _, lake = deployment
    day = SESSIONS[-20]
    tables = ("decisions", "audit_log", "risk_state", "risk_contributions", "governance_gates")
    before = {t: lake.stored_hash(t, day) for t in tables}
    assert run_market_data(config_dir, day, day, instance, job_name=JOB).success
    assert {t: lake.stored_hash(t, day) for t in tables} == before


def test_kill_switch_engaged_during_the_run_blocks_orders(deployment, monkeypatch):
    """The switch appears after the run started (while the decision step loads its inputs)."""
    config_dir, instance, _, lake = deployment
    path = settings_for(config_dir).kill_switch_path
    original = decision_cycle.load_inputs

    def operator_pulls_the_switch(*args, **kwargs):
        kill_switch.engage(path, "test: operator halt mid-run")
        return original(*args, **kwargs)

    monkeypatch.setattr(decision_cycle, "load_inputs", operator_pulls_the_switch)
    day = SESSIONS[-1]
    try:
        result = run_market_data(config_dir, day, day, instance, job_name=JOB)
    finally:
        kill_switch.release(path)
    assert result.success
    decided = lake.read("decisions", [day])
    assert decided.height and (decided["final_decision"] == "REJECT").all()
    assert decided["reason_codes_json"].str.contains("KILL_SWITCH").all()
    gate4 = lake.read("governance_gates", [day]).filter(pl.col("phase") == 4).row(0, named=True)
    assert not gate4["passed"] and "kill switch ENGAGED" in gate4["detail"]
    assert lake.read("risk_state", [day])["kill_switch"].item() is True
    meta = materializations(result)["decisions"][-1].metadata
    assert "ENGAGED" in meta["kill_switch"].value
    # released: the same session decides normally again
    monkeypatch.undo()
    assert run_market_data(config_dir, day, day, instance, job_name=JOB).success
    assert not (lake.read("decisions", [day])["final_decision"] == "REJECT").all()


def test_audit_failure_halts_with_critical_and_stores_no_decision(deployment, monkeypatch):
    config_dir, instance, _, lake = deployment
    day = SESSIONS[-2]
    before = lake.stored_hash("decisions", day)
    original = Lake.write_many

    def failing(self, table, *args, **kwargs):
        if table == "audit_log":
            raise OSError(28, "No space left on device")
        return original(self, table, *args, **kwargs)

    monkeypatch.setattr(Lake, "write_many", failing)
    result = run_market_data(config_dir, day, day, instance, job_name=JOB)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "CRITICAL" in failure.event_specific_data.error.message
    assert "No space left on device" in failure.event_specific_data.error.message
    logs = instance.all_logs(result.run_id)
    assert any(r.level == 50 and "HALT" in r.user_message for r in logs)  # logging.CRITICAL
    assert lake.stored_hash("decisions", day) == before


def test_missing_previous_state_is_a_clear_error(deployment):
    config_dir, _, _, lake = deployment
    settings = settings_for(config_dir)
    later = calendar.session_offset(END, 5)
    with pytest.raises(decision_cycle.CycleStateError, match=r"continue the risk state of .*not materialized"):
        decision_cycle.load_carried(lake, later, settings.risk.initial_nav)
    fresh = decision_cycle.load_carried(lake, SESSIONS[0], settings.risk.initial_nav)
    assert fresh.book == {} and fresh.nav == settings.risk.initial_nav
    assert np.isfinite(fresh.peak_nav)


def test_no_lookahead_later_sessions_change_nothing_before(deployment):
    """Cycles over D0..D and over D0..D+10 (which loads every input up to D+10) agree exactly up to D,
    and equal the stored rows."""
    config_dir, _, _, lake = deployment
    settings = settings_for(config_dir)
    from mqf_pipeline.stages.base import run_stage
    from mqf_pipeline.stages.context import run_context

    ctx = run_context(lake, settings)
    short = [r.detail for r in run_stage(decision_cycle.DecisionStage(), ctx, SESSIONS[-40:-30])]
    long = [r.detail for r in run_stage(decision_cycle.DecisionStage(), ctx, SESSIONS[-40:-20])]
    for a, b in zip(short, long, strict=False):
        assert a.decisions.equals(b.decisions) and a.risk_state == b.risk_state
        stored = (
            lake.read("decisions", [a.risk_state["date"]])
            .drop("id", "created_at", strict=False)
            .select(a.decisions.columns)
        )
        assert stored.sort("symbol").equals(a.decisions.sort("symbol"))
