"""Portfolio targets through Dagster on a small simulated deployment: constraints, modes, reruns."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import polars as pl
import pytest

from mqf_pipeline import calendar
from mqf_pipeline.portfolio.rebalance import STRATEGIC, TACTICAL
from mqf_pipeline.storage.lake import Lake
from tests.deployment import materializations, run_market_data, settings_for, write_configs

START, END = dt.date(2022, 3, 1), dt.date(2022, 9, 30)
SESSIONS = calendar.sessions(START, END)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    root = tmp_path_factory.mktemp("portfolio")
    config_dir = write_configs(
        root, n_symbols=20, min_history_rows=60, signals={"regime_min_train_sessions": 60, "preset": "hybrid"}
    )
    instance = dg.DagsterInstance.ephemeral()
    result = run_market_data(config_dir, START, END, instance)
    assert result.success
    return config_dir, instance, result, Lake(settings_for(config_dir).lake_root)


def test_targets_respect_the_constraints(deployment):
    """Every stored target book: gross <= 1, long <= 0.6, single name <= 0.10, sector <= 0.15 (1e-7)."""
    config_dir, _, _, lake = deployment
    settings = settings_for(config_dir)
    cfg, risk = settings.portfolio, settings.risk
    targets = lake.read("portfolio_targets")
    results = lake.read("optimization_results")
    assert targets.height and results.height == len(SESSIONS)
    assert (targets["target_weight"] >= -1e-9).all()  # shorts off
    optimal = results.filter(pl.col("optimizer_status") == "optimal")["date"]
    books = targets.filter(pl.col("date").is_in(optimal.implode()))
    per_day = books.group_by("date").agg(gross=pl.col("target_weight").abs().sum(), top=pl.col("target_weight").max())
    assert (per_day["gross"] <= min(risk.limits.max_gross_leverage, cfg.long) + 1e-7).all()
    assert (per_day["top"] <= risk.limits.single_name + 1e-7).all()
    constraints = lake.read("portfolio_constraints")
    assert {"gross", "turnover", "sector"} <= set(constraints["constraint_type"].unique())
    assert constraints["utilization_pct"].is_not_null().all()


def test_rebalance_modes_follow_the_calendar(deployment):
    _, _, _, lake = deployment
    results = lake.read("optimization_results").sort("date")
    modes = dict(zip(results["date"].to_list(), results["rebalance"].to_list(), strict=True))
    fridays = [d for d in SESSIONS if d.weekday() == 4]
    assert all(modes[d] in (STRATEGIC, "EMERGENCY") for d in fridays)
    assert any(m == TACTICAL for m in modes.values())


def test_holds_before_decisions_and_metadata(deployment):
    _, _, result, lake = deployment
    early = lake.read("optimization_results", [SESSIONS[5]])
    assert early["optimizer_status"].item() == "hold"
    assert "no decisions" in json.loads(early["conflicts"].item())[0]
    meta = materializations(result)["optimization_results"][-1].metadata
    for key in ("rebalance", "status", "method", "solve_time_ms"):
        assert key in meta


def test_rerun_identical_targets(deployment):
    config_dir, instance, _, lake = deployment
    day = SESSIONS[-10]
    tables = ("portfolio_targets", "portfolio_constraints", "optimization_results")
    before = {t: lake.stored_hash(t, day) for t in tables}
    assert run_market_data(config_dir, day, day, instance).success
    assert {t: lake.stored_hash(t, day) for t in tables} == before


# ---------------------------------------------------------------------------------------------- execution
EXECUTION_TABLES = ("orders", "execution_decisions", "execution_outcomes", "execution_feedback", "positions", "account")


def test_execution_books_fills_into_positions_that_match_the_broker(deployment):
    """Every session has its account; each session's positions equal the paper broker's sum of fills then."""
    from mqf_pipeline.execution.brokers.paper import PaperBroker
    from mqf_pipeline.stages.params import cost_params

    config_dir, _, result, lake = deployment
    cfg = settings_for(config_dir)
    assert sorted(lake.partitions("account")) == [d.isoformat() for d in SESSIONS]
    broker = PaperBroker(cfg.broker_dir, initial_cash=cfg.risk.initial_nav, params=cost_params(cfg.execution), seed=1)
    positions = lake.read("positions")
    assert positions.height  # the fund did hold positions
    for day in SESSIONS:
        ours = dict(positions.filter(pl.col("date") == day).select("symbol", "qty").iter_rows())
        theirs = broker.positions_as_of(day)
        assert ours.keys() == theirs.keys(), day
        assert all(abs(q - theirs[s]) < 1e-9 for s, q in ours.items()), day
    orders, outcomes = lake.read("orders"), lake.read("execution_outcomes")
    assert orders.filter(pl.col("status") == "SUBMITTED").height == outcomes.height  # every order traded next day
    meta = materializations(result)["orders"][-1].metadata
    for key in ("orders", "submitted", "already_at_broker", "blocked"):
        assert key in meta


def test_execution_rerun_identical_and_kill_switch_blocks_the_next_session(deployment):
    from mqf_pipeline import kill_switch

    config_dir, instance, _, lake = deployment
    cfg = settings_for(config_dir)
    day = SESSIONS[-10]
    before = {t: lake.stored_hash(t, day) for t in EXECUTION_TABLES}
    assert run_market_data(config_dir, day, day, instance).success
    assert {t: lake.stored_hash(t, day) for t in EXECUTION_TABLES} == before
    nxt = calendar.session_offset(END, 1)
    kill_switch.engage(cfg.kill_switch_path, "test: halt orders", "pytest")
    try:
        assert run_market_data(config_dir, nxt, nxt, instance).success
    finally:
        cfg.kill_switch_path.unlink()
    orders = lake.read("orders", [nxt])
    assert (orders["status"] == "REJECTED").all()
    assert orders.is_empty() or orders["reason"].str.contains("KILL_SWITCH").all()
    assert lake.exists("positions", nxt)
