"""Price agents (momentum, mean reversion, volatility, time-series momentum, trend, defensive, risk),
the agent registry and presets, and the IC evaluation helpers."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from scipy import stats

from mqf_pipeline import calendar
from mqf_pipeline.agents import registry
from mqf_pipeline.agents.base import SIGNAL_SCHEMA, Agent, AgentData, validate_signals
from mqf_pipeline.agents.defensive import DefensiveAgent
from mqf_pipeline.agents.evaluation import (
    cross_score,
    daily_ic,
    forward_returns,
    ic_summary,
    price_panel,
    shuffled_control,
)
from mqf_pipeline.agents.mean_reversion import MeanReversionAgent
from mqf_pipeline.agents.momentum import MomentumAgent
from mqf_pipeline.agents.risk import RiskAgent, trailing_tail
from mqf_pipeline.agents.trend import TrendAgent, sma_weights
from mqf_pipeline.agents.ts_momentum import TimeSeriesMomentumAgent, cash_return
from mqf_pipeline.agents.volatility import VolatilityAgent
from mqf_pipeline.market.sim import MarketSimulator, SimulatorParams

PRICE_AGENTS: dict[str, type] = {
    "momentum": MomentumAgent,
    "mean_reversion": MeanReversionAgent,
    "volatility": VolatilityAgent,
    "ts_momentum": TimeSeriesMomentumAgent,
    "trend": TrendAgent,
    "defensive": DefensiveAgent,
    "risk": RiskAgent,
}
#: Short windows so the property tests run on ~60-session synthetic panels.
SMALL_PARAMS: dict[str, dict[str, int]] = {
    "momentum": {"lookback": 30, "skip": 5, "vol_window": 10, "min_names": 3},
    "mean_reversion": {"window": 3, "vol_window": 8, "sigma_window": 10, "min_names": 3},
    "volatility": {"short": 5, "long": 15, "sigma_window": 10},
    "ts_momentum": {"lookback": 30, "vol_window": 10},
    "trend": {"fast": 5, "slow": 20, "slope_window": 10, "vol_window": 10},
    "defensive": {"lookback": 20, "sigma_window": 10, "min_names": 3},
    "risk": {"tail_window": 20, "corr_short": 5, "corr_long": 20, "sigma_window": 10, "min_names": 3},
}
START, SPLIT, END = dt.date(2021, 1, 4), dt.date(2022, 3, 1), dt.date(2022, 6, 30)


@pytest.fixture(scope="module")
def sim() -> MarketSimulator:
    return MarketSimulator(SimulatorParams(n_symbols=100))


@pytest.fixture(scope="module")
def sim_data(sim: MarketSimulator) -> AgentData:
    return AgentData(
        bars=sim.bars(START, END), features=pl.DataFrame(), universe=sim.universe(), macro=sim.macro(START, END)
    )


@pytest.fixture(scope="module")
def decision_dates() -> list[dt.date]:
    return calendar.sessions(dt.date(2022, 1, 3), END)


@pytest.fixture(scope="module")
def sim_signals(sim_data: AgentData, decision_dates: list[dt.date]) -> dict[str, pl.DataFrame]:
    return {name: cls().signals(sim_data, decision_dates) for name, cls in PRICE_AGENTS.items()}


# ---- contract on simulator data ----------------------------------------------------------------
@pytest.mark.parametrize("name", list(PRICE_AGENTS))
def test_contract_on_simulator(name: str, sim_signals: dict[str, pl.DataFrame], decision_dates: list[dt.date]) -> None:
    out = sim_signals[name]
    agent = PRICE_AGENTS[name]()
    assert isinstance(agent, Agent)
    assert out.schema == pl.Schema(SIGNAL_SCHEMA)
    assert_frame_equal(validate_signals(name, out), out)
    assert set(out.get_column("date").unique()) <= set(decision_dates)
    assert out.get_column("horizon_days").unique().to_list() == [agent.horizon_days]
    # 2021-01-04 .. 2022-06-30 is 375 sessions: every agent scores all 100 names from mid-January 2022
    late = out.filter(pl.col("date") >= dt.date(2022, 2, 1))
    assert late.group_by("date").len().get_column("len").min() == 100
    assert (out.get_column("sigma") > 0).all()
    for codes in out.get_column("reason_codes").unique().to_list():
        assert json.loads(codes), f"{name}: empty reason codes"
    both = out.filter(pl.col("signal") != 0)
    assert (both.get_column("signal").sign() == both.get_column("mu").sign()).all()


def test_horizons() -> None:
    expected = {"momentum": 21, "mean_reversion": 5, "ts_momentum": 21, "trend": 21, "defensive": 21, "risk": 5}
    for name, horizon in expected.items():
        assert PRICE_AGENTS[name]().horizon_days == horizon


@pytest.mark.parametrize("name", list(PRICE_AGENTS))
def test_deterministic(
    name: str, sim_data: AgentData, sim_signals: dict[str, pl.DataFrame], decision_dates: list[dt.date]
) -> None:
    assert_frame_equal(PRICE_AGENTS[name]().signals(sim_data, decision_dates), sim_signals[name])


@pytest.mark.parametrize("name", list(PRICE_AGENTS))
def test_no_lookahead(
    name: str, sim_data: AgentData, sim_signals: dict[str, pl.DataFrame], decision_dates: list[dt.date]
) -> None:
    """Scrambling every bar (and macro value) after SPLIT leaves every signal dated <= SPLIT identical."""
    rng = np.random.default_rng(7)
    bars = sim_data.bars
    after = (bars.get_column("date") > SPLIT).to_numpy()
    noise = np.where(after, np.exp(rng.normal(0.0, 0.2, bars.height)), 1.0)
    perturbed = bars.with_columns(
        [pl.col(c) * pl.Series(noise) for c in ("open", "high", "low", "close", "adjusted_close")]
    ).sample(fraction=1.0, shuffle=True, seed=3)
    macro = sim_data.macro.with_columns(
        value=pl.when(pl.col("date") > SPLIT).then(pl.col("value") * 3.0).otherwise(pl.col("value"))
    )
    data = AgentData(bars=perturbed, features=sim_data.features, universe=sim_data.universe, macro=macro)
    got = PRICE_AGENTS[name]().signals(data, decision_dates)
    before = sim_signals[name].filter(pl.col("date") <= SPLIT)
    assert before.height > 0
    assert_frame_equal(got.filter(pl.col("date") <= SPLIT), before)
    # and the data cut at SPLIT gives the same rows as well
    assert_frame_equal(PRICE_AGENTS[name]().signals(sim_data.until(SPLIT), decision_dates), before)
    # later rows did change
    assert not got.filter(pl.col("date") > SPLIT).equals(sim_signals[name].filter(pl.col("date") > SPLIT))


@pytest.mark.parametrize("name", list(PRICE_AGENTS))
def test_single_date_matches_batch(name: str, sim_data: AgentData, sim_signals: dict[str, pl.DataFrame]) -> None:
    day = dt.date(2022, 4, 1)
    assert_frame_equal(PRICE_AGENTS[name]().signals(sim_data, [day]), sim_signals[name].filter(pl.col("date") == day))
    assert PRICE_AGENTS[name]().signals(sim_data, []).height == 0


def test_momentum_recovers_planted_score(sim: MarketSimulator, sim_signals: dict[str, pl.DataFrame]) -> None:
    """Our 12-1 momentum ranks the names exactly as the simulator's planted momentum does."""
    truth = sim.truth(dt.date(2022, 1, 3), END).alphas.select("date", "symbol", "momentum_12_1", "alpha_momentum")
    joined = sim_signals["momentum"].join(truth, on=["date", "symbol"]).drop_nulls("momentum_12_1")
    per_day = joined.group_by("date").agg(
        rho=pl.corr("signal", "momentum_12_1", method="spearman"),
        rho_alpha=pl.corr("signal", "alpha_momentum", method="spearman"),
    )
    assert per_day.height > 50
    assert per_day.get_column("rho").min() == pytest.approx(1.0, abs=1e-12)
    assert per_day.get_column("rho_alpha").min() == pytest.approx(1.0, abs=1e-12)


def test_momentum_prefers_stored_feature(
    sim_data: AgentData, sim_signals: dict[str, pl.DataFrame], decision_dates: list[dt.date]
) -> None:
    """A ``mom_12_1`` feature (simple return P[D-21]/P[D-252] - 1) gives the same signals; so does a feature
    frame with holes (the local computation fills them); other windows ignore the feature."""
    px = pl.col("adjusted_close")
    features = sim_data.bars.sort("symbol", "date").select(
        "date", "symbol", mom_12_1=(px.shift(21) / px.shift(252) - 1.0).over("symbol")
    )
    for frame in (features, features.filter(pl.col("symbol") != "S0005"), features.sample(fraction=0.5, seed=1)):
        data = AgentData(bars=sim_data.bars, features=frame, universe=sim_data.universe)
        assert_frame_equal(MomentumAgent().signals(data, decision_dates), sim_signals["momentum"])
    scrambled = AgentData(
        bars=sim_data.bars,
        universe=sim_data.universe,
        features=features.with_columns(mom_12_1=pl.col("mom_12_1").shuffle(seed=2)),
    )
    assert not MomentumAgent().signals(scrambled, decision_dates).equals(sim_signals["momentum"])
    assert_frame_equal(MomentumAgent(feature=None).signals(scrambled, decision_dates), sim_signals["momentum"])
    assert_frame_equal(
        MomentumAgent(lookback=126).signals(scrambled, decision_dates),
        MomentumAgent(lookback=126).signals(sim_data, decision_dates),
    )


def test_momentum_matches_features_module(
    sim_data: AgentData, sim_signals: dict[str, pl.DataFrame], decision_dates: list[dt.date]
) -> None:
    """The features module's ``mom_12_1`` (when it is importable) ranks names exactly as we do."""
    features_module = pytest.importorskip("mqf_pipeline.features")
    features = features_module.compute_features(sim_data.bars)
    if "mom_12_1" not in features.columns:
        pytest.skip("mqf_pipeline.features has no mom_12_1")
    data = AgentData(bars=sim_data.bars, features=features, universe=sim_data.universe)
    assert_frame_equal(MomentumAgent().signals(data, decision_dates), sim_signals["momentum"])


def test_trend_prefers_stored_features(
    sim_data: AgentData, sim_signals: dict[str, pl.DataFrame], decision_dates: list[dt.date]
) -> None:
    """The features module's sma_50, sma_200, trend_strength and hvol_63 are the trend agent's own columns:
    signals from them equal the local ones to 1e-9 relative (the t-statistic's window sums; 1e-12 absolute);
    holes are filled locally; a scrambled stored feature moves the signals; other windows ignore it."""
    features = pytest.importorskip("mqf_pipeline.features").compute_features(sim_data.bars)
    for frame in (features, features.sample(fraction=0.5, seed=1)):
        data = AgentData(bars=sim_data.bars, features=frame, universe=sim_data.universe)
        assert_frame_equal(
            TrendAgent().signals(data, decision_dates), sim_signals["trend"], rel_tol=1e-9, abs_tol=1e-12
        )
    for column in ("sma_50", "sma_200", "trend_strength", "hvol_63"):
        scrambled = AgentData(
            bars=sim_data.bars,
            universe=sim_data.universe,
            features=features.with_columns(pl.col(column).shuffle(seed=2)),
        )
        assert not TrendAgent().signals(scrambled, decision_dates).equals(sim_signals["trend"]), column
    assert set(TrendAgent(fast=40, slope_window=42, vol_window=30).stored_columns(features)) == {"sma_s"}
    assert set(TrendAgent().stored_columns(features.drop("trend_strength"))) == {"sma_f", "sma_s", "vol"}


def test_momentum_mu_scale(sim_signals: dict[str, pl.DataFrame], sim_data: AgentData) -> None:
    """mu = ic * z * sd63 * sqrt(21), z = sqrt(3) * signal."""
    out = sim_signals["momentum"]
    z = out.get_column("signal") * math.sqrt(3)
    np.testing.assert_allclose(out.get_column("mu"), 0.05 * z * out.get_column("sigma"), rtol=1e-12)
    sym, day = "S0007", dt.date(2022, 5, 2)
    px = sim_data.bars.filter((pl.col("symbol") == sym) & (pl.col("date") <= day)).sort("date")
    r = np.diff(np.log(px.get_column("adjusted_close").to_numpy()))[-63:]
    sigma = out.filter((pl.col("symbol") == sym) & (pl.col("date") == day)).get_column("sigma").item()
    assert sigma == pytest.approx(r.std(ddof=1) * math.sqrt(21), rel=1e-9)


# ---- properties on synthetic panels --------------------------------------------------------------
def synthetic_bars(seed: int, n_symbols: int, n_sessions: int, gap_rate: float, flat_rate: float) -> pl.DataFrame:
    """Random-walk bars: per-symbol vol in [0, 5%], some flat stretches, some missing rows, one late starter."""
    rng = np.random.default_rng(seed)
    days = calendar.sessions(dt.date(2020, 1, 2), dt.date(2020, 12, 31))[:n_sessions]
    frames = []
    for i in range(n_symbols):
        vol = rng.uniform(0.0, 0.05)
        r = rng.standard_t(4, len(days)) * vol * np.where(rng.random(len(days)) < flat_rate, 0.0, 1.0)
        px = 20.0 * np.exp(np.cumsum(r))
        keep = rng.random(len(days)) >= gap_rate
        if i == 0:
            keep[: n_sessions // 3] = False
        frames.append(pl.DataFrame({"date": days, "symbol": f"X{i:02d}", "adjusted_close": px}).filter(pl.Series(keep)))
    bars = pl.concat(frames)
    return bars.with_columns(
        open=pl.col("adjusted_close"),
        high=pl.col("adjusted_close"),
        low=pl.col("adjusted_close"),
        close=pl.col("adjusted_close"),
        volume=pl.lit(1000, pl.Int64),
        spread_bps=pl.lit(5.0),
    )


@pytest.mark.parametrize("name", list(PRICE_AGENTS))
@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_symbols=st.integers(1, 12),
    n_sessions=st.integers(25, 70),
    gap_rate=st.sampled_from([0.0, 0.05, 0.3]),
    flat_rate=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_signal_properties(
    name: str, seed: int, n_symbols: int, n_sessions: int, gap_rate: float, flat_rate: float
) -> None:
    bars = synthetic_bars(seed, n_symbols, n_sessions, gap_rate, flat_rate)
    data = AgentData(bars=bars, features=pl.DataFrame(), universe=pl.DataFrame({"symbol": [], "sector": []}))
    dates = sorted(set(bars.get_column("date").to_list()))
    out = PRICE_AGENTS[name](**SMALL_PARAMS[name]).signals(data, dates)
    validate_signals(name, out)
    assert out.schema == pl.Schema(SIGNAL_SCHEMA)
    if flat_rate == 0 and gap_rate == 0 and n_symbols >= 3 and n_sessions >= 50:
        assert out.height > 0, "clean panel with enough history gave no rows"
    if out.height:
        assert out.get_column("confidence").is_between(0.0, 1.0).all()
        assert out.get_column("signal").is_between(-1.0, 1.0).all()
        assert (out.get_column("sigma") > 0).all()
        assert (out.get_column("signal").sign() == out.get_column("mu").sign()).all()
        known = bars.select("date", "symbol").with_columns(ok=pl.lit(True))
        assert out.join(known, on=["date", "symbol"], how="left").get_column("ok").is_not_null().all()


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.floats(-1e6, 1e6) | st.none(), min_size=1, max_size=30))
def test_cross_score_properties(values: list[float | None]) -> None:
    frame = pl.DataFrame(
        {"date": [dt.date(2024, 1, 2)] * len(values), "x": values}, schema={"date": pl.Date, "x": pl.Float64}
    )
    z = frame.select(z=cross_score(pl.col("x"))).get_column("z")
    assert z.null_count() == frame.get_column("x").null_count()
    valid = z.drop_nulls().to_numpy()
    assert np.all(np.abs(valid) <= math.sqrt(3) + 1e-12)
    assert abs(valid.sum()) < 1e-9
    if valid.size > 1 and np.unique(frame.get_column("x").drop_nulls().to_numpy()).size == valid.size:
        assert valid.std(ddof=0) == pytest.approx(math.sqrt(1 - 1 / valid.size**2), rel=1e-9)


# ---- agent-specific numerics --------------------------------------------------------------------
def test_trailing_tail_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    px = 50 * np.exp(np.cumsum(rng.standard_t(3, 300) * 0.02))
    bars = pl.DataFrame(
        {
            "date": calendar.sessions(dt.date(2019, 1, 2), dt.date(2020, 12, 31))[:300],
            "symbol": "A",
            "adjusted_close": px,
        }
    )
    out = trailing_tail(price_panel(bars), 252, 0.05)
    r = np.diff(np.log(px))
    assert out.get_column("var").head(252).null_count() == 252
    for end in (252, 270, 299):
        window = r[end - 252 : end]
        q = np.quantile(window, 0.05, method="inverted_cdf")
        assert out.get_column("var")[end] == pytest.approx(-q, abs=1e-15)
        assert out.get_column("es")[end] == pytest.approx(-np.sort(window)[:13].mean(), rel=1e-12)


def test_sma_weights_identity() -> None:
    """P - SMA_n = sum_j c_j e[t-j] on a random walk (levels), and the trend normalisers follow."""
    rng = np.random.default_rng(2)
    e = rng.normal(size=400)
    p = np.cumsum(e)
    for n in (5, 50, 200):
        c = sma_weights(n, 250)
        assert p[-1] - p[-n:].mean() == pytest.approx(float(np.dot(c, e[::-1][:250])), abs=1e-9)


def test_trend_sign_on_clean_trends() -> None:
    days = calendar.sessions(dt.date(2020, 1, 2), dt.date(2021, 6, 30))
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.01, len(days))
    bars = pl.concat(
        [
            pl.DataFrame({"date": days, "symbol": "UP", "adjusted_close": 10 * np.exp(np.cumsum(0.004 + noise))}),
            pl.DataFrame({"date": days, "symbol": "DOWN", "adjusted_close": 10 * np.exp(np.cumsum(-0.004 + noise))}),
        ]
    )
    data = AgentData(bars=bars, features=pl.DataFrame(), universe=pl.DataFrame())
    out = TrendAgent().signals(data, days[-5:])
    assert (out.filter(pl.col("symbol") == "UP").get_column("signal") > 0.5).all()
    assert (out.filter(pl.col("symbol") == "DOWN").get_column("signal") < -0.5).all()
    ts = TimeSeriesMomentumAgent().signals(data, days[-5:])
    assert ts.filter(pl.col("symbol") == "UP").get_column("mu").min() > 0
    assert ts.filter(pl.col("symbol") == "DOWN").get_column("mu").max() < 0


def test_cash_return_and_excess() -> None:
    macro = pl.DataFrame(
        {"date": [dt.date(2024, 1, 2), dt.date(2024, 1, 3)], "series_id": ["SHORT_RATE"] * 2, "value": [0.04, 0.06]}
    )
    rf = cash_return(macro, 252)
    assert rf.get_column("rf").to_list() == pytest.approx([0.04, 0.05])
    assert cash_return(pl.DataFrame(), 252).height == 0


def test_risk_stress_pushes_signals_down(sim_signals: dict[str, pl.DataFrame]) -> None:
    out = sim_signals["risk"]
    stressed = out.filter(pl.col("reason_codes").str.contains("MARKET_CORR_STRESS"))
    calm = out.filter(~pl.col("reason_codes").str.contains("MARKET_CORR_STRESS"))
    if stressed.height and calm.height:
        assert stressed.get_column("mu").mean() < calm.get_column("mu").mean()
    fat = out.filter(pl.col("reason_codes").str.contains("TAIL_ES_Q5"))
    thin = out.filter(pl.col("reason_codes").str.contains("TAIL_ES_Q1"))
    assert fat.get_column("signal").mean() < thin.get_column("signal").mean()


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (MomentumAgent, {"skip": 300}),
        (MomentumAgent, {"ic": -0.1}),
        (VolatilityAgent, {"short": 50, "long": 20}),
        (TrendAgent, {"fast": 200, "slow": 50}),
        (RiskAgent, {"alpha": 0.7}),
        (MeanReversionAgent, {"window": 0}),
    ],
)
def test_bad_parameters(cls: type, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        cls(**kwargs)


# ---- registry and presets ------------------------------------------------------------------------
def test_unknown_agent_names_known() -> None:
    with pytest.raises(registry.UnknownAgentError) as err:
        registry.build_agents(["momentum", "astrology"], {})
    message = str(err.value)
    assert "'astrology'" in message
    for name in registry.AGENTS:
        assert name in message
    with pytest.raises(registry.UnknownAgentError, match="astrology"):
        registry.agent_class("astrology")


def test_presets_are_consistent() -> None:
    assert set(registry.PRESETS) == {"institutional", "momentum", "mean_reversion", "sentiment", "hybrid"}
    for preset in registry.PRESETS.values():
        assert math.fsum(preset.weights.values()) == pytest.approx(1.0, abs=1e-12)
        assert set(preset.agents) <= set(registry.AGENTS), preset.name
        assert all(registry.WEIGHT_FLOOR <= w <= registry.WEIGHT_CAP for w in preset.weights.values())
    # every agent but technical, registered without a preset weight: its IC on the simulator is ~0
    # (bench/agents.py: +0.0023 [-0.0076, +0.0122])
    assert set(registry.AGENTS) - set(registry.PRESETS["institutional"].agents) == {"technical"}
    for name in ("sentiment", "valuation", "fundamental", "stat_arb", "ml"):
        assert name in registry.AGENTS
    with pytest.raises(ValueError, match="sum to"):
        registry.Preset("bad", "", {"momentum": 0.4, "trend": 0.4})
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        registry.preset("nope")


def test_build_agents_with_params() -> None:
    agents = registry.build_agents(list(PRICE_AGENTS), {"momentum": {"lookback": 126, "ic": 0.02}})
    assert [a.name for a in agents] == list(PRICE_AGENTS)
    assert isinstance(agents[0], MomentumAgent)
    assert agents[0].lookback == 126
    assert agents[0].ic == 0.02
    with pytest.raises(ValueError, match="not being built"):
        registry.build_agents(["momentum"], {"trend": {}})
    with pytest.raises(ValueError, match="bad parameters"):
        registry.build_agents(["momentum"], {"momentum": {"lookbak": 10}})
    with pytest.raises(ValueError, match="duplicate"):
        registry.build_agents(["momentum", "momentum"])


def test_lazy_spec_by_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """A module-only spec finds the agent class by its ``name``; bad specs fail with the agent named."""
    monkeypatch.setitem(registry.AGENTS, "trend", "mqf_pipeline.agents.trend")
    assert registry.agent_class("trend") is TrendAgent
    monkeypatch.setitem(registry.AGENTS, "ghost", "mqf_pipeline.agents.no_such_module")
    with pytest.raises(registry.AgentImportError, match="'ghost'"):
        registry.agent_class("ghost")
    monkeypatch.setitem(registry.AGENTS, "ghost", "mqf_pipeline.agents.trend:Nope")
    with pytest.raises(registry.AgentImportError, match="no class 'Nope'"):
        registry.agent_class("ghost")
    registry.register("momentum", MomentumAgent)
    assert registry.AGENTS["momentum"] == "mqf_pipeline.agents.momentum:MomentumAgent"
    with pytest.raises(ValueError, match="has name"):
        registry.register("trend", MomentumAgent)


def test_run_agents_and_coverage(
    sim_data: AgentData,
    sim_signals: dict[str, pl.DataFrame],
    decision_dates: list[dt.date],
    caplog: pytest.LogCaptureFixture,
) -> None:
    agents = registry.build_agents(["momentum", "risk"])
    with caplog.at_level("INFO", logger="mqf_pipeline.agents.registry"):
        out = registry.run_agents(agents, sim_data, decision_dates)
    assert_frame_equal(out.filter(pl.col("agent") == "risk"), sim_signals["risk"])
    assert "agent momentum:" in caplog.text and "coverage" in caplog.text
    cov = registry.coverage(out, sim_data, decision_dates)
    assert cov.get_column("agent").to_list() == ["momentum", "risk"]
    assert cov.get_column("coverage").is_between(0.9, 1.0).all()

    class Broken:
        name = "momentum"
        horizon_days = 21

        def signals(self, data: AgentData, dates: list[dt.date]) -> pl.DataFrame:
            return sim_signals["momentum"].with_columns(signal=pl.lit(2.0))

    with pytest.raises(ValueError, match="invalid signal"):
        registry.run_agents([Broken()], sim_data, decision_dates)


# ---- evaluation -----------------------------------------------------------------------------------
def test_forward_returns(sim_data: AgentData) -> None:
    fwd = forward_returns(sim_data.bars, horizon=3)
    px = sim_data.bars.filter(pl.col("symbol") == "S0003").sort("date").get_column("adjusted_close").to_numpy()
    got = fwd.filter(pl.col("symbol") == "S0003").get_column("fwd_return").to_numpy()
    np.testing.assert_allclose(got, px[3:] / px[:-3] - 1, rtol=1e-14)
    assert fwd.get_column("date").max() < sim_data.bars.get_column("date").max()


def test_daily_ic_and_summary(sim_data: AgentData, sim_signals: dict[str, pl.DataFrame]) -> None:
    fwd = forward_returns(sim_data.bars)
    ic = daily_ic(sim_signals["momentum"], fwd)
    day = ic.get_column("date")[10]
    joined = sim_signals["momentum"].filter(pl.col("date") == day).join(fwd, on=["date", "symbol"])
    rho = stats.spearmanr(joined.get_column("signal"), joined.get_column("fwd_return")).statistic
    assert ic.filter(pl.col("date") == day).get_column("ic").item() == pytest.approx(rho, abs=1e-12)
    assert ic.filter(pl.col("date") == day).get_column("n").item() == joined.height
    summary = ic_summary(ic)
    values = ic.get_column("ic").to_numpy()
    assert summary["n_days"] == values.size
    assert summary["mean_ic"] == pytest.approx(values.mean(), rel=1e-12)
    assert summary["t_stat"] == pytest.approx(values.mean() / (values.std(ddof=1) / math.sqrt(values.size)), rel=1e-12)
    assert summary["hit_rate"] == pytest.approx((values > 0).mean())
    with pytest.raises(ValueError, match="one agent"):
        daily_ic(pl.concat([sim_signals["momentum"], sim_signals["risk"]]), fwd)
    assert math.isnan(ic_summary(ic.head(0))["t_stat"])


def test_shuffled_control(sim_data: AgentData) -> None:
    fwd = forward_returns(sim_data.bars)
    a, b = shuffled_control(fwd, 1), shuffled_control(fwd, 1)
    assert_frame_equal(a, b)
    assert not a.equals(fwd.sort("date", "symbol"))
    assert_frame_equal(a.select("date", "symbol"), fwd.sort("date", "symbol").select("date", "symbol"))
    same = a.group_by("date").agg(pl.col("fwd_return").sort()).sort("date")
    orig = fwd.group_by("date").agg(pl.col("fwd_return").sort()).sort("date")
    assert_frame_equal(same, orig)
