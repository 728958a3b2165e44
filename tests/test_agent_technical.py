"""Technical agent (RSI, MACD, Bollinger %B from stored features): closed form on a hand-built features frame,
missing features give no row, the Signal contract on the simulator, and no lookahead."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mqf_pipeline import calendar
from mqf_pipeline.agents import registry
from mqf_pipeline.agents.base import SIGNAL_SCHEMA, Agent, AgentData, validate_signals
from mqf_pipeline.agents.technical import FEATURES, TechnicalAgent
from mqf_pipeline.features import compute_features
from mqf_pipeline.market.sim import MarketSimulator, SimulatorParams

#: Relative tolerance of the closed-form checks (a handful of float64 operations).
REL = 1e-12
START, SPLIT, END = dt.date(2021, 1, 4), dt.date(2022, 3, 1), dt.date(2022, 6, 30)
DAYS = [dt.date(2024, 3, 4), dt.date(2024, 3, 5)]
SYMBOLS = [f"S{i}" for i in range(6)]
EMPTY = pl.DataFrame()


def hand_features(seed: int = 11) -> pl.DataFrame:
    """Wide features for 6 symbols on 2 dates (seeded); S5 lacks rsi_14 on the first date."""
    rng = np.random.default_rng(seed)
    n = len(DAYS) * len(SYMBOLS)
    frame = pl.DataFrame(
        {
            "date": [d for d in DAYS for _ in SYMBOLS],
            "symbol": SYMBOLS * len(DAYS),
            "rsi_14": rng.uniform(10, 90, n),
            "macd_hist": rng.normal(0, 0.5, n),
            "bb_pctb": rng.uniform(-0.3, 1.3, n),
            "atr_14": rng.uniform(0.5, 3.0, n),
            "hvol_63": rng.uniform(0.1, 0.6, n),
            "sma_20": rng.uniform(50, 150, n),  # a feature the agent does not read
        }
    )
    return frame.with_columns(
        rsi_14=pl.when((pl.col("date") == DAYS[0]) & (pl.col("symbol") == "S5")).then(None).otherwise("rsi_14")
    )


def closed_form(frame: pl.DataFrame, agent: TechnicalAgent) -> dict[tuple[dt.date, str], dict[str, float]]:
    """z, sigma, signal, mu and confidence per (date, symbol), in numpy, from the module docstring."""
    out: dict[tuple[dt.date, str], dict[str, float]] = {}
    for day in DAYS:
        rows = frame.filter(pl.col("date") == day).drop_nulls(list(FEATURES))
        x = np.column_stack(
            [
                rows["rsi_14"].to_numpy() - 50.0,
                rows["macd_hist"].to_numpy() / rows["atr_14"].to_numpy(),
                2.0 * rows["bb_pctb"].to_numpy() - 1.0,
            ]
        )
        zk = np.clip((x - x.mean(axis=0)) / x.std(axis=0, ddof=1), -agent.z_cap, agent.z_cap)
        terms = zk * np.asarray(agent.weights)
        z = terms.sum(axis=1)
        agreement = 0.5 + 0.5 * np.abs(z) / np.abs(terms).sum(axis=1)
        breadth = min(1.0, len(rows) / agent.min_names)
        sigma = rows["hvol_63"].to_numpy() / math.sqrt(252) * math.sqrt(agent.horizon_days)
        signal = np.tanh(z)
        for i, sym in enumerate(rows["symbol"].to_list()):
            out[(day, sym)] = {
                "z": z[i],
                "sigma": sigma[i],
                "signal": signal[i],
                "mu": agent.ic * z[i] * sigma[i],
                "confidence": breadth * agreement[i] * (0.5 + 0.5 * abs(signal[i])),
            }
    return out


@pytest.mark.parametrize("weights", [(1 / 3, 1 / 3, 1 / 3), (0.5, -0.2, 0.3)])
def test_closed_form_on_hand_built_features(weights: tuple[float, float, float]) -> None:
    """mu, sigma, signal and confidence equal the numpy closed form to 1e-12 relative; z = mu / (ic sigma)."""
    agent = TechnicalAgent(weights=weights, min_names=4)
    features = hand_features()
    out = agent.signals(AgentData(bars=pl.DataFrame(), features=features, universe=pl.DataFrame()), DAYS)
    expected = closed_form(features, agent)
    assert out.height == len(expected) == 2 * len(SYMBOLS) - 1  # S5 has no row on the first date
    assert "S5" not in out.filter(pl.col("date") == DAYS[0])["symbol"].to_list()
    for row in out.iter_rows(named=True):
        want = expected[(row["date"], row["symbol"])]
        for col in ("mu", "sigma", "signal", "confidence"):
            assert row[col] == pytest.approx(want[col], rel=REL, abs=1e-15), (row["symbol"], col)
        assert row["mu"] / (agent.ic * row["sigma"]) == pytest.approx(want["z"], rel=1e-10)
    validate_signals("technical", out)


def test_missing_features_give_no_row() -> None:
    """A null, a non-positive ATR or volatility, or an absent feature column: no row, never a filled value."""
    agent = TechnicalAgent(min_names=4)
    base = hand_features()
    broken = base.with_columns(
        atr_14=pl.when(pl.col("symbol") == "S1").then(0.0).otherwise("atr_14"),
        hvol_63=pl.when(pl.col("symbol") == "S2").then(None).otherwise("hvol_63"),
        macd_hist=pl.when(pl.col("symbol") == "S3").then(float("nan")).otherwise("macd_hist"),
    )
    out = agent.signals(AgentData(bars=pl.DataFrame(), features=broken, universe=pl.DataFrame()), DAYS)
    assert not set(out["symbol"]) & {"S1", "S2", "S3"}
    # the cross-section is the complete rows only: dropping the broken rows beforehand changes nothing
    clean = broken.filter(~pl.col("symbol").is_in(["S1", "S2", "S3"]))
    assert_frame_equal(out, agent.signals(AgentData(bars=pl.DataFrame(), features=clean, universe=EMPTY), DAYS))
    for missing in FEATURES:
        data = AgentData(bars=pl.DataFrame(), features=base.drop(missing), universe=pl.DataFrame())
        assert agent.signals(data, DAYS).height == 0
    # one complete name on a date: no cross-section, no row
    lone = base.filter((pl.col("date") == DAYS[1]) & (pl.col("symbol") == "S0"))
    assert agent.signals(AgentData(bars=pl.DataFrame(), features=lone, universe=pl.DataFrame()), DAYS).height == 0
    assert agent.signals(AgentData(bars=EMPTY, features=EMPTY, universe=EMPTY), DAYS).height == 0


@pytest.mark.parametrize(
    "kwargs", [{"weights": (0.0, 0.0, 0.0)}, {"weights": (1.0, 1.0)}, {"ic": 0.0}, {"horizon_days": 0}, {"z_cap": -1}]
)
def test_bad_parameters(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TechnicalAgent(**kwargs)  # type: ignore[arg-type]


# ---- on the simulator ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim_data() -> AgentData:
    sim = MarketSimulator(SimulatorParams(n_symbols=100))
    bars = sim.bars(START, END)
    return AgentData(bars=bars, features=compute_features(bars), universe=sim.universe())


@pytest.fixture(scope="module")
def decision_dates() -> list[dt.date]:
    return calendar.sessions(dt.date(2022, 1, 3), END)


@pytest.fixture(scope="module")
def sim_signals(sim_data: AgentData, decision_dates: list[dt.date]) -> pl.DataFrame:
    return TechnicalAgent().signals(sim_data, decision_dates)


def test_contract_on_simulator(sim_signals: pl.DataFrame, decision_dates: list[dt.date]) -> None:
    out = sim_signals
    agent = registry.build_agents(["technical"])[0]
    assert isinstance(agent, Agent) and isinstance(agent, TechnicalAgent)
    assert out.schema == pl.Schema(SIGNAL_SCHEMA)
    assert_frame_equal(validate_signals("technical", out), out)
    assert set(out["date"].unique()) <= set(decision_dates)
    assert out.group_by("date").len()["len"].min() == 100  # 252+ sessions of history: every name scored
    assert out["horizon_days"].unique().to_list() == [10]
    assert out["confidence"].is_between(0.0, 1.0).all() and out["signal"].is_between(-1.0, 1.0).all()
    assert (out["sigma"] > 0).all() and out["mu"].is_finite().all()
    nonzero = out.filter(pl.col("signal") != 0)
    assert (nonzero["signal"].sign() == nonzero["mu"].sign()).all()
    # |mu| <= ic * z_cap * sum|w| * sigma (z is bounded by the clipped components)
    assert (out["mu"].abs() <= 0.02 * 3.0 * out["sigma"] * (1 + 1e-12)).all()
    for codes in out["reason_codes"].unique().to_list():
        assert json.loads(codes), "empty reason codes"


def test_no_lookahead(sim_data: AgentData, sim_signals: pl.DataFrame, decision_dates: list[dt.date]) -> None:
    """Scrambling every feature after SPLIT (values and row order) leaves every signal dated <= SPLIT identical."""
    features = sim_data.features
    after = pl.col("date") > SPLIT
    scrambled = features.with_columns(
        [pl.when(after).then(pl.col(c).shuffle(seed=5) * 1.7).otherwise(pl.col(c)).alias(c) for c in FEATURES]
    ).sample(fraction=1.0, shuffle=True, seed=3)
    data = AgentData(bars=sim_data.bars, features=scrambled, universe=sim_data.universe)
    got = TechnicalAgent().signals(data, decision_dates)
    before = sim_signals.filter(pl.col("date") <= SPLIT)
    assert before.height > 0
    assert_frame_equal(got.filter(pl.col("date") <= SPLIT), before)
    assert_frame_equal(TechnicalAgent().signals(sim_data.until(SPLIT), decision_dates), before)
    assert not got.filter(pl.col("date") > SPLIT).equals(sim_signals.filter(pl.col("date") > SPLIT))


def test_single_date_matches_batch(sim_data: AgentData, sim_signals: pl.DataFrame) -> None:
    day = dt.date(2022, 4, 1)
    assert_frame_equal(TechnicalAgent().signals(sim_data, [day]), sim_signals.filter(pl.col("date") == day))
    assert TechnicalAgent().signals(sim_data, []).height == 0


def test_reads_only_features(sim_data: AgentData, sim_signals: pl.DataFrame, decision_dates: list[dt.date]) -> None:
    """Without bars the signals are the same: the agent reads the stored indicators, not the prices."""
    data = AgentData(bars=pl.DataFrame(), features=sim_data.features, universe=pl.DataFrame())
    assert_frame_equal(TechnicalAgent().signals(data, decision_dates), sim_signals)
