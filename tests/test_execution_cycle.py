"""The execution cycle on a synthetic lake with the paper broker: timing, ledger = broker, idempotent
reruns, blocking by the kill switch and a FREEZE breaker, and the SIGKILL crash test (slow)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from bench.crash import build_lake, crash_test
from mqf_pipeline import calendar, kill_switch
from mqf_pipeline.config import load_settings
from mqf_pipeline.execution.brokers.paper import PaperBroker
from mqf_pipeline.stages.base import StepOutput, run_stage
from mqf_pipeline.stages.context import run_context
from mqf_pipeline.stages.execution import (
    ExecutionStage,
    ExecutionStateError,
    ReconciliationError,
    load_carried,
    load_inputs,
)
from mqf_pipeline.stages.params import cost_params
from mqf_pipeline.storage.lake import Lake

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = load_settings(ROOT / "configs")
NOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _run(
    lake: Lake,
    days: list[dt.date],
    broker: PaperBroker,
    latest: dt.date,
    switch: Path | None = None,
    write: bool = False,
) -> list[StepOutput]:
    """The execution stage over ``days`` (written to the lake when ``write``)."""
    ctx = run_context(lake, SETTINGS, kill_switch_path=switch, now=NOW)
    stage = ExecutionStage(broker, latest_session=latest)
    steps = run_stage(stage, ctx, days)
    if write:
        stage.write(ctx, steps, days)
    return steps


def _broker(path: Path) -> PaperBroker:
    return PaperBroker(path, initial_cash=SETTINGS.risk.initial_nav, params=cost_params(SETTINGS.execution), seed=11)


@pytest.fixture(scope="module")
def traded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, PaperBroker, list[dt.date], list]:
    root = tmp_path_factory.mktemp("exec")
    days = build_lake(root / "lake", symbols=40, sessions=12)
    lake, broker = Lake(str(root / "lake")), _broker(root / "broker")
    results = [s.detail for s in _run(lake, days, broker, days[-1], write=True)]
    return lake, broker, days, results


def test_orders_of_d_trade_during_d_plus_1(traded) -> None:
    lake, _, days, _ = traded
    orders = lake.read("orders")
    outcomes = lake.read("execution_outcomes")
    assert orders.height and outcomes.height
    assert outcomes.filter(pl.col("date") == days[0]).is_empty()  # nothing was ordered before the first session
    made = dict(zip(orders["order_id"].to_list(), orders["date"].to_list(), strict=True))
    for oid, day, fill_time in outcomes.select("order_id", "date", "fill_time").iter_rows():
        i = days.index(day)
        assert made[oid] == days[i - 1], oid
        if fill_time is not None:
            assert fill_time.date() == day  # UTC 14:30..21:00 stays on the session's date
    assert (outcomes["status"].is_in(["FILLED", "CANCELLED"])).all()
    assert (outcomes["filled_qty"] <= outcomes["ordered_qty"] + 1e-9).all()


def test_ledger_equals_the_broker_and_nav_adds_up(traded) -> None:
    lake, broker, days, _ = traded
    last = lake.read("positions", [days[-1]])
    ours = dict(last.select("symbol", "qty").iter_rows())
    theirs = broker.positions()
    assert set(ours) == set(theirs)
    assert all(abs(ours[s] - theirs[s]) < 1e-9 for s in ours)
    acct = lake.read("account", [days[-1]]).row(0, named=True)
    assert acct["nav"] == pytest.approx(acct["cash"] + float(last["market_value"].sum()), abs=1e-6)
    assert acct["cash"] == pytest.approx(broker.account().cash, abs=1e-6)


def test_rerun_is_identical_and_submits_nothing(traded, tmp_path: Path) -> None:
    lake, broker, days, _ = traded
    tables = ("orders", "execution_decisions", "execution_outcomes", "execution_feedback", "positions", "account")
    span = days[4:8]
    before = {(t, d): lake.stored_hash(t, d) for t in tables for d in span}
    log = broker.submit_log()
    results = [s.detail for s in _run(lake, span, broker, days[-1], write=True)]
    assert {(t, d): lake.stored_hash(t, d) for t in tables for d in span} == before
    assert broker.submit_log() == log
    assert sum(r.already_at_broker for r in results) == sum(r.orders.height for r in results)


def test_gap_in_the_stored_state_is_named(traded) -> None:
    lake, _, days, _ = traded
    later = calendar.session_offset(days[-1], 5)
    with pytest.raises(ExecutionStateError, match="not materialized"):
        load_carried(lake, later, 1e6)


def test_kill_switch_and_freeze_block_submission(tmp_path: Path) -> None:
    days = build_lake(tmp_path / "lake", symbols=20, sessions=3)
    lake, broker = Lake(str(tmp_path / "lake")), _broker(tmp_path / "broker")
    switch = tmp_path / "KILL_SWITCH"
    kill_switch.engage(switch, "test: stop orders", "pytest")
    blocked = _run(lake, days[:1], broker, days[-1], switch=switch)[0].detail.orders
    assert blocked.height and (blocked["status"] == "REJECTED").all()
    assert blocked["reason"].str.contains("KILL_SWITCH").all() and blocked["broker_order_id"].is_null().all()
    assert broker.submit_log() == []
    switch.unlink()
    cfg = SETTINGS.execution
    inputs = load_inputs(lake, days[:1], cfg.adv_window_sessions, cfg.vol_window_sessions)
    frozen = type(inputs)(
        **{
            **inputs.__dict__,
            "risk": pl.DataFrame({"date": [days[0]], "breaker_status": ["FREEZE"], "kill_switch": [False]}),
        }
    )
    carried = load_carried(lake, days[0], SETTINGS.risk.initial_nav)
    ctx = run_context(lake, SETTINGS, now=NOW)
    result = ExecutionStage(broker, latest_session=days[0]).step(days[0], frozen, carried, ctx).detail
    assert (result.orders["status"] == "REJECTED").all() and result.orders["reason"].str.contains("FREEZE").all()
    assert broker.submit_log() == []


def test_broker_disagreement_stops_the_cycle(tmp_path: Path) -> None:
    days = build_lake(tmp_path / "lake", symbols=20, sessions=3)
    lake, broker = Lake(str(tmp_path / "lake")), _broker(tmp_path / "broker")
    _run(lake, days[:2], broker, days[-1], write=True)
    positions = lake.read("positions", [days[1]])
    assert positions.height
    lake.write("positions", days[1], positions.with_columns(qty=pl.col("qty") * 2), now=NOW)
    with pytest.raises(ReconciliationError, match="positions differ from broker paper"):
        _run(lake, days[2:3], broker, days[-1])


@pytest.mark.slow
def test_sigkill_crash_test_small(tmp_path: Path) -> None:
    """8 kills at random points, each followed by a rerun of the partition (bench/crash.py lands 100); every 4th
    session breaches, so emergency rebalances are among the orders killed and rerun."""
    result = crash_test(kills=8, symbols=40, seed=3, workdir=tmp_path)
    assert result["kills_landed"] == 8 and result["kills_mid_submission"] >= 3
    assert result["emergency_orders"] > 0  # emergency rebalances (own client order ids) in play
    assert result["duplicate_trades_at_broker"] == 0
    assert result["duplicate_submit_attempts"] == 0
    assert result["lake_submitted_missing_at_broker"] == 0
    assert result["broker_orders_missing_in_lake"] == 0
    assert result["max_position_diff_vs_fills"] < 1e-9
    assert result["partitions_differing_from_reference"] == 0
    assert result["fills_equal_reference"]


def test_no_lookahead_data_after_d_moves_nothing_for_d(tmp_path: Path) -> None:
    """Bars and targets after session D changed: every execution row of sessions <= D is unchanged."""
    rows = {}
    for name, shock in (("base", 1.0), ("shocked", 1.7)):
        days = build_lake(tmp_path / name / "lake", symbols=20, sessions=8)
        lake = Lake(str(tmp_path / name / "lake"))
        cut = days[4]
        later = [d for d in days if d > cut]
        bars = lake.read("price_history", later)
        lake.write_many(
            "price_history",
            bars.with_columns(
                pl.col("open", "close", "high", "low", "adjusted_close") * shock, volume=pl.col("volume") * 3
            ),
            later,
            now=NOW,
        )
        targets = lake.read("portfolio_targets", later)
        lake.write_many(
            "portfolio_targets", targets.with_columns(target_weight=pl.col("target_weight") * shock / 2), later, now=NOW
        )
        results = [s.detail for s in _run(lake, days, _broker(tmp_path / name / "broker"), days[-1])]
        rows[name] = {r.day: r for r in results if r.day <= cut}
        assert any(r.day > cut for r in results)
    for day, base in rows["base"].items():
        other = rows["shocked"][day]
        for attr in ("orders", "decisions", "outcomes", "feedback", "positions"):
            assert getattr(base, attr).equals(getattr(other, attr)), (day, attr)
        assert base.account == other.account


def test_files_without_spreads_and_a_close_only_session(tmp_path: Path) -> None:
    """Bars as a user's files give them: no spread column anywhere, and one session with closes only. Every
    order is priced at the spread estimated from the bars before (or the default), the outcomes and feedback
    say which, and orders meeting the close-only session are cancelled NO_OHLC (not NO_BAR)."""
    import json

    from mqf_pipeline.execution.spread_estimate import SPREAD_SOURCES

    days = build_lake(tmp_path / "lake", symbols=12, sessions=4)
    lake = Lake(str(tmp_path / "lake"))
    keys = lake.partitions("price_history")
    bars = lake.read("price_history", keys).with_columns(spread_bps=pl.lit(None, dtype=pl.Float64))
    close_only = pl.col("date") == days[2]
    bars = bars.with_columns(
        pl.when(close_only).then(None).otherwise(pl.col(c)).alias(c) for c in ("open", "high", "low")
    )
    lake.write_many("price_history", bars, keys, now=NOW)
    results = {r.day: r for r in (s.detail for s in _run(lake, days, _broker(tmp_path / "broker"), days[-1]))}
    cfg = SETTINGS.execution
    market = load_inputs(lake, days, cfg.adv_window_sessions, cfg.vol_window_sessions).market
    assert market["spread_bps"].null_count() == 0 and set(market["spread_source"]) <= {"estimated_edge", "default"}
    spread = {(d, s): x for d, s, x in market.select("date", "symbol", "spread_bps").iter_rows()}
    decisions = results[days[0]].decisions
    assert decisions.height
    for s, x in decisions.select("symbol", "spread_bps").iter_rows():
        assert x == spread[(days[0], s)]  # the policy priced the spread the market rows carry
    filled = results[days[1]].outcomes.filter(pl.col("filled_qty") > 0)
    assert filled.height and set(filled["spread_source"]) <= set(SPREAD_SOURCES) - {"quoted"}
    for row in filled.iter_rows(named=True):
        assert row["bid_ask_spread"] == spread[(days[1], row["symbol"])]
    feedback = results[days[1]].feedback
    assert feedback.height == filled.height and feedback["spread_source"].null_count() == 0
    for row in feedback.iter_rows(named=True):
        assert json.loads(row["market_conditions_json"])["spread_source"] == row["spread_source"]
    cancelled = results[days[2]].outcomes
    assert cancelled.height and (cancelled["status"] == "CANCELLED").all()
    assert set(cancelled["cancel_reason"]) == {"NO_OHLC"}
