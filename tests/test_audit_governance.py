"""The 15-field audit record, its halt-on-failure writer, and the governance gates."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from mqf_pipeline.decisions import audit
from mqf_pipeline.governance import phases as governance
from mqf_pipeline.storage.lake import Lake
from mqf_pipeline.storage.schema import conform

DAY = dt.date(2024, 3, 8)


def _decided() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "symbol": ["BBB", "AAA"],
            "final_decision": ["EXECUTE_BUY", "REJECT"],
            "mu_hat": [0.001, 0.0],
            "sigma_hat": [0.02, 0.02],
            "conviction": [0.6, 0.1],
            "position_size": [0.05, 0.0],
            "stop_loss": [95.0, None],
            "reason_codes": ['["KELLY_SIZED"]', '["PHASE0_HISTORY"]'],
            "data_quality_score": [1.0, 0.4],
            "provider_confidence": [0.99, 0.99],
            "agent_results": ['{"momentum": {"mu": 0.02}}', "{}"],
            "risk_checks": ['{"kill_switch": false}', '{"kill_switch": false}'],
            "metadata": ['{"current_weight": 0.0}', '{"current_weight": 0.0}'],
        }
    )


def test_audit_record_has_the_15_fields_and_a_deterministic_timestamp():
    records = audit.audit_records(_decided(), day=DAY, strategy="institutional")
    assert records.columns == list(audit.AUDIT_FIELDS) and len(audit.AUDIT_FIELDS) == 15
    assert records["symbol"].to_list() == ["AAA", "BBB"]
    assert records["cycle_id"].unique().to_list() == ["institutional-2024-03-08"]
    assert records["timestamp"][0] == dt.datetime(2024, 3, 8, 21, 0, tzinfo=dt.UTC)  # 16:00 New York (EST)
    assert audit.decision_time(dt.date(2024, 7, 8)).hour == 20  # 16:00 New York (EDT)


def test_missing_field_is_named():
    with pytest.raises(ValueError, match=r"lack field\(s\) \['stop_loss'\]"):
        audit.audit_records(_decided().drop("stop_loss"), day=DAY, strategy="x")


def test_audit_log_and_decision_rows_conform_to_the_tables():
    records = audit.audit_records(_decided(), day=DAY, strategy="institutional")
    log = conform("audit_log", audit.audit_log_rows(records, DAY))
    assert log["level"].to_list() == ["WARNING", "INFO"]  # REJECT is a warning
    payload = json.loads(log["payload_json"][1])
    assert set(payload) == set(audit.AUDIT_FIELDS) and payload["agent_results"] == {"momentum": {"mu": 0.02}}
    assert "EXECUTE_BUY BBB" in log["message"][1]
    rows = conform("decisions", audit.decision_rows(records, DAY))
    assert rows["final_decision"].to_list() == ["REJECT", "EXECUTE_BUY"]
    event = conform(
        "audit_log",
        audit.cycle_event_row(day=DAY, strategy="s", event_key="GATE_PHASE0", level="WARNING", message="m", payload={}),
    )
    assert event.height == 1


def test_write_audit_failure_raises_audit_write_error_and_keeps_what_was_stored(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    records = audit.audit_records(_decided(), day=DAY, strategy="institutional")
    rows = audit.audit_log_rows(records, DAY)
    audit.write_audit(lake, rows, [DAY], dt.datetime.now(dt.UTC))
    before = lake.read("audit_log", [DAY])
    bad = rows.with_columns(pl.lit(None, pl.String).alias("message"))  # NOT NULL column
    with pytest.raises(audit.AuditWriteError, match=r"audit_log for 2024-03-08..2024-03-08 could not be written"):
        audit.write_audit(lake, bad, [DAY], dt.datetime.now(dt.UTC))
    assert lake.read("audit_log", [DAY]).equals(before)


def test_gates():
    elig = pl.DataFrame(
        {"symbol": ["A", "B", "C"], "phase0_pass": [True, True, False], "phase1_pass": [True, False, True]}
    )
    sig = pl.DataFrame({"symbol": ["A"], "agent": ["momentum"]})
    gates = governance.data_gates(elig, sig, 1260)
    assert [g.passed for g in gates] == [True, True, True]
    assert gates[1].detail.startswith("1 of 2 symbols")
    none = governance.data_gates(elig.with_columns(pl.lit(False).alias("phase0_pass")), sig.clear(), 1260)
    assert [g.passed for g in none] == [False, False, False]
    checks = [{"name": "var_95", "value": 0.05, "limit": 0.04, "breached": True, "action": "SCALE"}]
    risk = governance.risk_gate(checks)
    assert not risk.passed and "var_95 0.0500 > 0.0400 (SCALE)" in risk.detail
    assert governance.risk_gate([{**checks[0], "breached": False}]).passed
    assert not governance.orders_gate([*gates, risk], None, frozen=False).passed
    ok = [*gates, governance.risk_gate([])]
    assert governance.orders_gate(ok, None, frozen=False).passed
    killed = governance.orders_gate(ok, "kill switch ENGAGED since x", frozen=False)
    assert not killed.passed and "kill switch ENGAGED" in killed.detail
    rows = governance.gate_rows([*ok, killed], DAY, "c")
    assert conform("governance_gates", rows).height == 5
