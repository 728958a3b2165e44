"""Features, regimes and agent signals through Dagster on a small simulated deployment long enough to fit the
HMM; the signals read the stored features (lineage, point in time, a session alone = inside a range)."""

from __future__ import annotations

import datetime as dt
import shutil

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mqf_pipeline import calendar
from mqf_pipeline.agents.registry import build_agents
from mqf_pipeline.features import feature_names, to_long
from mqf_pipeline.stages.features import block_start
from mqf_pipeline.stages.signals import SignalStage, agent_signals_for_dates, load_features
from mqf_pipeline.stages.universe import universe_frame
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
        signals={
            "regime_min_train_sessions": 60,
            "regime_refit_sessions": 21,
            "preset": "momentum",
            "agents": ["technical"],
        },
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
    meta = mats["regime"][-1].metadata
    assert meta["regime"].value in {"BULL_QUIET", "BULL_VOLATILE", "BEAR_QUIET", "BEAR_CRISIS"}
    # 12 symbols: the default observations, and no small-universe flag (threshold 10)
    assert meta["observations"].value == "return_pct, log_dispersion"
    assert (meta["universe_size"].value, meta["small_universe"].value) == (12, False)


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
    # momentum preset: momentum, ts_momentum, trend, risk; plus the technical agent (from stored features)
    assert set(outputs.get_column("agent")) == {"momentum", "ts_momentum", "trend", "risk", "technical"}
    technical = outputs.filter(pl.col("agent") == "technical")
    # a row wherever the stored features it reads are complete (hvol_63 is the last to start, 63 sessions in)
    hvol_days = lake.read("features").filter(pl.col("feature") == "hvol_63").get_column("date").unique()
    assert set(technical.get_column("date")) == set(hvol_days)
    assert outputs.get_column("confidence").is_between(0, 1).all()
    assert outputs.get_column("signal").is_between(-1, 1).all()
    assert (outputs.get_column("sigma") > 0).all()
    assert outputs.get_column("cycle_id").str.starts_with("institutional-").all()
    mats = materializations(result)
    meta = mats["agent_signals"][-1].metadata
    assert "momentum/coverage" in meta and "agents_table" in meta
    assert (meta["universe_size"].value, meta["small_universe"].value) == (12, False)


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
    assert summary["agent_signals"].endswith("from 5 agents")


def test_agent_signals_depend_on_features(deployment):
    """Lineage follows the code: the signal stage reads the features table, so agent_signals depends on the
    features asset (derived from READS, declared nowhere else)."""
    config_dir, _, _ = deployment
    from tests.deployment import definitions_for

    assert "features" in SignalStage.READS
    graph = definitions_for(config_dir).resolve_asset_graph()
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey("agent_signals")).parent_keys}
    assert "features" in parents


def test_load_features_pivots_the_stored_rows(deployment):
    """Wide features hold exactly the stored long rows: every known feature a column, nothing else added."""
    config_dir, _, _ = deployment
    lake = Lake(settings_for(config_dir).lake_root)
    lo, hi = SESSIONS[-3], SESSIONS[-1]
    wide = load_features(lake, lo, hi)
    assert wide.columns == ["date", "symbol", *feature_names()]
    stored = lake.read_range("features", lo, hi).select("date", "symbol", "feature", "value")
    key = ["date", "symbol", "feature"]
    assert_frame_equal(to_long(wide).drop("feature_version").sort(key), stored.sort(key))
    assert load_features(lake, dt.date(2000, 1, 3), dt.date(2000, 1, 4)).columns == wide.columns


def _signals(lake: Lake, config_dir, days: list[dt.date]) -> pl.DataFrame:
    cfg = settings_for(config_dir)
    agents = build_agents(cfg.signals.enabled_agents(), cfg.signals.agent_params)
    return agent_signals_for_dates(
        lake,
        universe_frame(cfg),
        days,
        agents,
        block_sessions=cfg.signals.feature_block_sessions,
        history=cfg.signals.agent_history_sessions,
    )


def test_session_alone_equals_range_and_ignores_later_data(deployment, tmp_path):
    """Signals (technical included) of a session are the same alone and inside its block's range, and do not
    move when every bar and feature after it is changed (exactly: the frames are equal)."""
    config_dir, _, _ = deployment
    lake = Lake(settings_for(config_dir).lake_root)
    block = settings_for(config_dir).signals.feature_block_sessions
    day = SESSIONS[-10]
    in_block = [d for d in SESSIONS if block_start(d, block) == block_start(day, block)]
    assert in_block[-1] > day  # the range holds later sessions of the same block
    alone = _signals(lake, config_dir, [day])
    assert set(alone.get_column("agent")) >= {"technical", "trend", "momentum"}
    assert_frame_equal(_signals(lake, config_dir, in_block).filter(pl.col("date") == day), alone)
    # a copy of the lake whose bars and features after the session are scaled
    copy = Lake(str(tmp_path / "lake"))
    shutil.copytree(lake.root, copy.root)
    for later in [d for d in in_block if d > day]:
        for table, cols in (
            ("features", ["value"]),
            ("price_history", ["open", "high", "low", "close", "adjusted_close"]),
        ):
            rows = copy.read(table, [later]).with_columns(pl.col(c) * 1.5 for c in cols)
            copy.write(table, later, rows.drop([c for c in rows.columns if c not in table_spec(table).columns]))
    moved = _signals(copy, config_dir, in_block)
    assert_frame_equal(moved.filter(pl.col("date") == day), alone)
    assert not moved.filter(pl.col("date") > day).equals(
        _signals(lake, config_dir, in_block).filter(pl.col("date") > day)
    )


def test_agents_without_data_in_metadata_and_summary(deployment):
    """The signal report lists every enabled agent (status "no data" for one without signals) and the run
    summary names a weighted agent with no signal at the session (here valuation, not run by this preset)."""
    from mqf_pipeline.report import market_data_summary
    from mqf_pipeline.stages.signals import agents_without_data, no_data_note

    config_dir, _, result = deployment
    cfg = settings_for(config_dir)
    lake = Lake(cfg.lake_root)
    present = set(lake.read("model_outputs", [SESSIONS[-1]]).get_column("agent"))
    weights = cfg.signals.starting_weights()
    meta = materializations(result)["agent_signals"][-1].metadata
    missing = agents_without_data(lake, SESSIONS[-1], present, weights)
    expected = no_data_note(missing) or "none"
    assert meta["agents_without_data"].value == expected
    for m in missing:  # a short reason per silent agent ("warm-up", "no fundamentals", ...)
        assert meta[f"{m['agent']}/reason"].value in {"warm-up", "scored no symbol", "no fundamentals", "no headlines"}
    line = market_data_summary(lake, SESSIONS[-1], {**weights, "valuation": 0.1})["agents_without_data"]
    assert line.startswith("no data: valuation (scored no symbol on")  # simulated fundamentals are stored
