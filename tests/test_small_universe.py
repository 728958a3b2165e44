"""Small universes and bars-only data: the regime stage fits the HMM observations the universe can give and
says which; both stages warn once below SMALL_UNIVERSE symbols; agents whose input table is empty say so once
per run and carry a reason in the coverage table."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import polars as pl
import pytest

from mqf_pipeline import calendar
from mqf_pipeline.agents.registry import build_agents
from mqf_pipeline.regimes.features import (
    DEFAULT_OBSERVATIONS,
    SMALL_UNIVERSE,
    market_features,
    small_universe_warning,
    supported_observations,
    universe_size,
)
from mqf_pipeline.regimes.mapping import RISK_MULTIPLIERS
from mqf_pipeline.regimes.model import RegimeModel
from mqf_pipeline.regimes.walk_forward import filtered_regimes
from mqf_pipeline.stages.base import RunContext, run_stage
from mqf_pipeline.stages.regimes import RegimeStage
from mqf_pipeline.stages.signals import SignalStage, signal_report, signal_run
from mqf_pipeline.stages.universe import universe_frame
from mqf_pipeline.storage.lake import Lake
from mqf_pipeline.storage.schema import row_schema
from tests.conftest import clean_raw_bars
from tests.deployment import settings_for, write_configs

START, END = dt.date(2022, 1, 3), dt.date(2022, 8, 31)
SESSIONS = calendar.sessions(START, END)
MIN_TRAIN, REFIT = 60, 21
STAGE_LOG = "mqf_pipeline.stages"


def _lake(root: Path, symbols: list[str]) -> Lake:
    """A lake holding only bars (no fundamentals, headlines, features or macro) for ``symbols``."""
    lake = Lake(str(root / "lake"))
    bars = clean_raw_bars(symbols, START, END, seed=5).with_columns(
        provider=pl.lit("files"),
        raw_hash=pl.lit("h"),
        validation_flags=pl.lit(None, pl.String),
        ingestion_timestamp=pl.lit(dt.datetime(2022, 9, 1, tzinfo=dt.UTC)),
        n_duplicates=pl.lit(0, pl.Int32),
    )
    lake.write_many("price_history", bars.select(list(row_schema("price_history"))), SESSIONS)
    return lake


def _settings(root: Path):
    signals = {"regime_min_train_sessions": MIN_TRAIN, "regime_refit_sessions": REFIT, "preset": "sentiment"}
    return settings_for(write_configs(root, signals={**signals, "feature_block_sessions": 21}))


def _messages(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def test_observations_the_universe_supports() -> None:
    assert supported_observations(0) == supported_observations(1) == ("return_pct",)
    assert supported_observations(2) == DEFAULT_OBSERVATIONS
    assert supported_observations(1, ("return_pct", "breadth", "log_vix")) == ("return_pct", "log_vix")
    assert small_universe_warning(3) == "universe of 3 symbols < 10: cross-sectional agents and regimes are unreliable"
    assert small_universe_warning(SMALL_UNIVERSE) is None
    bars = clean_raw_bars(["A", "B"], START, END).with_columns(
        adjusted_close=pl.when(pl.col("symbol") == "B").then(None).otherwise(pl.col("adjusted_close"))
    )
    assert universe_size(bars) == 1  # B has no usable close


def test_one_symbol_fits_return_only_and_says_so_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ctx = RunContext(lake=_lake(tmp_path, ["IDX"]), settings=_settings(tmp_path))
    days = SESSIONS[-30:]
    with caplog.at_level(logging.INFO, logger=STAGE_LOG):
        steps = run_stage(RegimeStage(), ctx, days)
    run = steps[-1].detail.run
    assert (run.observations, run.universe_size, run.small_universe) == (("return_pct",), 1, True)
    assert run.metadata() == {"observations": "return_pct", "universe_size": 1, "small_universe": True}
    rows = pl.concat([s.detail.rows for s in steps])
    assert rows.height == len(days) and set(rows.get_column("regime")) <= set(RISK_MULTIPLIERS)
    small = _messages(caplog, "universe of 1 symbol < 10: cross-sectional agents and regimes are unreliable")
    used = _messages(caplog, "HMM observations ('return_pct',) instead of ('return_pct', 'log_dispersion')")
    assert len(small) == 1 and len(used) == 1
    assert small[0].levelno == used[0].levelno == logging.WARNING
    assert "log_dispersion need(s) >= 2 symbols per session" in used[0].getMessage()


def test_two_symbols_use_the_default_observations(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ctx = RunContext(lake=_lake(tmp_path, ["IDXA", "IDXB"]), settings=_settings(tmp_path))
    with caplog.at_level(logging.INFO, logger=STAGE_LOG):
        steps = run_stage(RegimeStage(), ctx, SESSIONS[-5:])
    run = steps[-1].detail.run
    assert (run.observations, run.universe_size, run.small_universe) == (DEFAULT_OBSERVATIONS, 2, True)
    assert all(s.detail.rows is not None and s.detail.rows.height == 1 for s in steps)
    assert len(_messages(caplog, "universe of 2 symbols < 10")) == 1
    (used,) = _messages(caplog, "HMM observations ('return_pct', 'log_dispersion')")
    assert used.levelno == logging.INFO


def test_a_fit_that_cannot_happen_says_why() -> None:
    feats = market_features(clean_raw_bars(["IDX"], START, END))
    with pytest.raises(ValueError) as err:
        filtered_regimes(feats, RegimeModel(), REFIT, MIN_TRAIN, observations=DEFAULT_OBSERVATIONS)
    msg = str(err.value)
    assert f"need at least 40 complete rows of observations {list(DEFAULT_OBSERVATIONS)}, got 0 of {MIN_TRAIN}" in msg
    assert f"log_dispersion missing on {MIN_TRAIN} row(s): needs >= 2 symbols per session" in msg
    assert "return_pct missing on 1 row(s): first session" in msg


def test_bars_only_agents_say_so_once_per_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = _settings(tmp_path)
    lake = _lake(tmp_path, ["IDXA", "IDXB", "STK"])
    agents = build_agents(["momentum", "valuation", "fundamental", "sentiment"])
    days = SESSIONS[-63:]  # three blocks of 21 sessions
    with caplog.at_level(logging.INFO):
        signals, notes = signal_run(
            lake, universe_frame(cfg), days, agents, block_sessions=21, history=cfg.signals.agent_history_sessions
        )
    assert set(notes.missing) == {"valuation", "fundamental", "sentiment"}
    assert (notes.universe_size, notes.small_universe) == (3, True)
    assert set(signals.get_column("agent")) <= {"momentum"}
    for agent, label in (
        ("valuation", "fundamentals"),
        ("fundamental", "fundamentals"),
        ("sentiment", "news headlines"),
    ):
        expected = f"agent {agent}: no {label} in the lake for any symbol up to {days[-1]} (bars-only data): no signals"
        assert [r.levelno for r in _messages(caplog, expected)] == [logging.WARNING]
        assert not _messages(caplog, f"agent {agent} produced no signals")  # not repeated per block
    assert len(_messages(caplog, "universe of 3 symbols < 10: cross-sectional agents")) == 1


def test_signal_report_carries_a_reason_per_agent(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = _settings(tmp_path)
    ctx = RunContext(lake=_lake(tmp_path, ["IDXA", "IDXB", "STK"]), settings=cfg, universe=universe_frame(cfg))
    with caplog.at_level(logging.INFO):
        steps = run_stage(SignalStage(), ctx, SESSIONS[-42:])
    assert len(_messages(caplog, "signals: universe of 3 symbols < 10")) == 1
    cover, _, _ = signal_report(ctx, steps)
    by_agent = {str(r["agent"]): r for r in cover}
    assert set(by_agent) == set(cfg.signals.starting_weights())
    reasons = {a: (r["status"], r["reason"], r["coverage"]) for a, r in by_agent.items() if r["status"] != "ok"}
    assert reasons["valuation"] == reasons["fundamental"] == ("no data", "no fundamentals", 0.0)
    assert reasons["sentiment"] == ("no data", "no headlines", 0.0)
    assert str(by_agent["valuation"]["detail"]).startswith("no fundamentals in the lake up to")
    assert reasons["momentum"] == ("no data", "warm-up", 0.0)  # 12-1 momentum needs 252 sessions of bars
    assert all(r["reason"] == "" for r in cover if r["status"] == "ok")
    assert steps[-1].detail.notes.small_universe
