"""Features and regimes through Dagster on a small simulated deployment long enough to fit the HMM."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from mqf_pipeline import calendar
from mqf_pipeline.storage.lake import Lake
from mqf_pipeline.storage.schema import table_spec
from tests.deployment import materializations, run_market_data, settings_for, write_configs

START, END = dt.date(2022, 3, 1), dt.date(2023, 6, 30)
SESSIONS = calendar.sessions(START, END)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    root = tmp_path_factory.mktemp("signals")
    config_dir = write_configs(
        root,
        n_symbols=12,
        signals={"regime_min_train_sessions": 60, "regime_refit_sessions": 21, "preset": "momentum"},
    )
    instance = dg.DagsterInstance.ephemeral()
    return config_dir, instance, run_market_data(config_dir, START, END, instance)


def test_regime_rows_after_min_train(deployment):
    config_dir, _, result = deployment
    assert result.success
    lake = Lake(settings_for(config_dir).lake_root)
    rows = lake.read("regime_history")
    assert rows.height == len(SESSIONS) - 60  # one per session from the first refit on
    assert set(rows.get_column("regime")) <= {"BULL_QUIET", "BULL_VOLATILE", "BEAR_QUIET", "BEAR_CRISIS"}
    probs = rows.select(pl.sum_horizontal("prob_normal", "prob_volatile", "prob_crisis")).to_series()
    assert ((probs - 1).abs() < 1e-9).all()
    assert list(rows.columns)[:8] == list(table_spec("regime_history").columns)[:8]
    mats = materializations(result)
    assert mats["regime"][-1].metadata["regime"].value in {"BULL_QUIET", "BULL_VOLATILE", "BEAR_QUIET", "BEAR_CRISIS"}


def test_regime_rerun_identical(deployment):
    config_dir, instance, _ = deployment
    lake = Lake(settings_for(config_dir).lake_root)
    day = SESSIONS[-5]
    before = lake.stored_hash("regime_history", day)
    assert run_market_data(config_dir, day, day, instance).success
    assert lake.stored_hash("regime_history", day) == before


def test_agent_signals_stored_with_contract_and_metadata(deployment):
    config_dir, _, result = deployment
    lake = Lake(settings_for(config_dir).lake_root)
    outputs = lake.read("model_outputs")
    # momentum preset: momentum, ts_momentum, trend, risk
    assert set(outputs.get_column("agent")) == {"momentum", "ts_momentum", "trend", "risk"}
    assert outputs.get_column("confidence").is_between(0, 1).all()
    assert outputs.get_column("signal").is_between(-1, 1).all()
    assert (outputs.get_column("sigma") > 0).all()
    assert outputs.get_column("cycle_id").str.starts_with("institutional-").all()
    mats = materializations(result)
    meta = mats["agent_signals"][-1].metadata
    assert "momentum/coverage" in meta and "agents_table" in meta


def test_agent_signals_rerun_identical(deployment):
    config_dir, instance, _ = deployment
    lake = Lake(settings_for(config_dir).lake_root)
    day = SESSIONS[-7]
    before = lake.stored_hash("model_outputs", day)
    assert before is not None
    assert run_market_data(config_dir, day, day, instance).success
    assert lake.stored_hash("model_outputs", day) == before


def test_cycle_summary_reports_regime_and_signals(deployment):
    from mqf_pipeline.report import market_data_summary

    config_dir, _, _ = deployment
    summary = market_data_summary(Lake(settings_for(config_dir).lake_root), SESSIONS[-1])
    assert summary["symbols_scored"] == 12 and summary["features"] > 0
    assert summary["regime"].split(" ")[0] in {"BULL_QUIET", "BULL_VOLATILE", "BEAR_QUIET", "BEAR_CRISIS"}
    assert summary["agent_signals"].endswith("from 4 agents")
