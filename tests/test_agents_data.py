"""Data-driven agents (sentiment, valuation, fundamental, stat_arb, ml) on simulator data.

Covers the Signal contract, determinism, no lookahead (everything dated or reported after D is
perturbed: signals up to D must not move by a bit), walk-forward hygiene of the ML and pairs
refits, hypothesis properties, and recovery of the simulator's planted truth.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mqf_pipeline.agents.base import Agent, AgentData, validate_signals
from mqf_pipeline.agents.fundamental import FundamentalAgent, revenue_trend
from mqf_pipeline.agents.ml import MLAgent
from mqf_pipeline.agents.sentiment import SentimentAgent, daily_sentiment, vader_compound
from mqf_pipeline.agents.stat_arb import StatArbAgent, refit_schedule
from mqf_pipeline.agents.valuation import ValuationAgent, quarterly_accounts, split_index
from mqf_pipeline.market.sim import MarketSimulator
from tests.conftest import clean_raw_bars

N_SYMBOLS = 80
HIST_START = dt.date(2021, 6, 1)
END = dt.date(2023, 12, 29)
DECISION_START = dt.date(2023, 10, 2)
#: A date inside the decision window with a stat-arb and several ML refits before it (checked below).
CUT = dt.date(2023, 11, 15)


def _fast_ml() -> MLAgent:
    return MLAgent(train_sessions=126, refit_every=21, max_iter=40, min_samples_leaf=100, min_train_rows=1000)


def _agents() -> dict[str, Agent]:
    return {
        "sentiment": SentimentAgent(),
        "valuation": ValuationAgent(),
        "fundamental": FundamentalAgent(),
        "stat_arb": StatArbAgent(formation_sessions=126, refit_every=21),
        "ml": _fast_ml(),
    }


AGENT_NAMES = ["sentiment", "valuation", "fundamental", "stat_arb", "ml"]


@pytest.fixture(scope="module")
def sim() -> MarketSimulator:
    return MarketSimulator()


@pytest.fixture(scope="module")
def symbols() -> list[str]:
    return [f"S{i:04d}" for i in range(N_SYMBOLS)]


@pytest.fixture(scope="module")
def data(sim: MarketSimulator, symbols: list[str]) -> AgentData:
    universe = sim.universe().filter(pl.col("symbol").is_in(symbols)).select("symbol", "sector")
    return AgentData(
        bars=sim.bars(HIST_START, END, symbols),
        features=pl.DataFrame(),
        universe=universe,
        fundamentals=sim.fundamentals(dt.date(2020, 1, 2), END, symbols),
        headlines=sim.headlines(HIST_START, END, symbols),
    )


@pytest.fixture(scope="module")
def dates(data: AgentData) -> list[dt.date]:
    return data.bars.filter(pl.col("date") >= DECISION_START).get_column("date").unique().sort().to_list()


@pytest.fixture(scope="module")
def signals(data: AgentData, dates: list[dt.date]) -> dict[str, pl.DataFrame]:
    return {name: agent.signals(data, dates) for name, agent in _agents().items()}


def perturb_after(data: AgentData, day: dt.date, seed: int = 7) -> AgentData:
    """Everything dated (bars, headlines) or reported (fundamentals) after ``day`` scrambled, plus extra rows."""
    rng = np.random.default_rng(seed)
    bars = data.bars
    late = pl.col("date") > day
    n = bars.height
    f_raw = pl.Series(np.exp(rng.normal(0.0, 0.4, n)))
    f_adj = pl.Series(np.exp(rng.normal(0.0, 0.4, n)))
    bars = bars.with_columns(
        [pl.when(late).then(pl.col(c) * f_raw).otherwise(pl.col(c)).alias(c) for c in ("open", "high", "low", "close")]
        + [
            pl.when(late).then(pl.col("adjusted_close") * f_adj).otherwise(pl.col("adjusted_close")),
            pl.when(late).then(pl.col("volume") * 3 + 1).otherwise(pl.col("volume")),
        ]
    )
    texts = ["Company soars after record profit and great outlook", "Company plunges after fraud lawsuit and losses"]
    heads = data.headlines
    late_heads = heads.filter(pl.col("date") > day)
    picks = rng.choice(texts, late_heads.height).tolist()
    flipped = late_heads.with_columns(headline=pl.Series(picks, dtype=pl.String))
    extra = flipped.head(50).with_columns(headline=pl.lit(texts[0]))
    heads = pl.concat([heads.filter(pl.col("date") <= day), flipped, extra])
    fund = data.fundamentals
    flate = pl.col("report_date") > day
    fund = fund.with_columns(
        pl.when(flate).then(pl.col("eps") * -3.0).otherwise(pl.col("eps")).alias("eps"),
        pl.when(flate).then(pl.col("book_value_per_share") * 5.0).otherwise(pl.col("book_value_per_share")),
        pl.when(flate).then(pl.col("revenue") * 0.1).otherwise(pl.col("revenue")),
        pl.when(flate).then(-pl.col("operating_cash_flow")).otherwise(pl.col("operating_cash_flow")),
        pl.when(flate).then(pl.col("dividend_per_share") + 1.0).otherwise(pl.col("dividend_per_share")),
    )
    return replace(data, bars=bars, headlines=heads, fundamentals=fund)


# ---- contract ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", AGENT_NAMES)
def test_contract(name: str, signals: dict[str, pl.DataFrame], data: AgentData, dates: list[dt.date]) -> None:
    agent = _agents()[name]
    assert isinstance(agent, Agent)
    assert agent.name == name
    frame = signals[name]
    assert frame.height > 0
    checked = validate_signals(name, frame)
    assert checked.equals(frame)
    assert set(frame.get_column("date").unique().to_list()) <= set(dates)
    assert set(frame.get_column("symbol").unique().to_list()) <= set(data.universe.get_column("symbol").to_list())
    assert (frame.get_column("horizon_days") == agent.horizon_days).all()
    # sign of signal agrees with mu
    bad = frame.filter((pl.col("mu") * pl.col("signal") < 0) | ((pl.col("mu") == 0) != (pl.col("signal") == 0)))
    assert bad.height == 0


def test_horizons() -> None:
    agents = _agents()
    assert {n: a.horizon_days for n, a in agents.items()} == {
        "sentiment": 1,
        "valuation": 21,
        "fundamental": 63,
        "stat_arb": 5,
        "ml": 1,
    }


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_empty_requests(name: str, data: AgentData) -> None:
    agent = _agents()[name]
    assert agent.signals(data, []).height == 0
    assert agent.signals(data, [dt.date(2023, 12, 30)]).height == 0  # a Saturday: no bars
    out = agent.signals(replace(data, bars=data.bars.clear()), [CUT])
    assert out.height == 0
    assert out.schema == validate_signals(name, out).schema


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_deterministic(name: str, data: AgentData, dates: list[dt.date], signals: dict[str, pl.DataFrame]) -> None:
    again = _agents()[name].signals(data, dates)
    assert again.equals(signals[name])


@pytest.mark.parametrize("name", ["stat_arb", "ml", "sentiment"])
def test_single_date_matches_batch(name: str, data: AgentData, signals: dict[str, pl.DataFrame]) -> None:
    one = _agents()[name].signals(data, [CUT])
    assert one.height > 0
    assert one.equals(signals[name].filter(pl.col("date") == CUT))


# ---- no lookahead ------------------------------------------------------------------------------
def test_cut_spans_refits(data: AgentData, dates: list[dt.date]) -> None:
    sessions = data.bars.get_column("date").unique().sort()
    early = [d for d in dates if d <= CUT]
    stat = refit_schedule(sessions, early, 21).get_column("refit_date").unique()
    assert stat.len() >= 2  # the no-lookahead checks cross at least one refit


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_no_lookahead(name: str, data: AgentData, dates: list[dt.date], signals: dict[str, pl.DataFrame]) -> None:
    early = [d for d in dates if d <= CUT]
    expected = signals[name].filter(pl.col("date") <= CUT)
    assert expected.height > 0
    agent = _agents()[name]
    perturbed = agent.signals(perturb_after(data, CUT), early)
    assert perturbed.equals(expected)
    truncated = agent.signals(data.until(CUT), early)
    assert truncated.equals(expected)


def test_perturbation_moves_later_signals(data: AgentData, dates: list[dt.date]) -> None:
    """Sanity check of the test itself: the perturbation does change signals after the cut."""
    late = [d for d in dates if d > CUT][:5]
    for name in ("sentiment", "valuation"):
        agent = _agents()[name]
        assert not agent.signals(perturb_after(data, CUT), late).equals(agent.signals(data, late))


def test_ml_trains_only_on_labels_before_refit(data: AgentData) -> None:
    agent = _fast_ml()
    design = agent.design(data, END)
    refit = refit_schedule(design.get_column("date").unique(), [CUT], agent.refit_every).item(0, "refit_date")
    rows = agent.training_rows(design, refit)
    assert rows.height > 0
    assert rows.get_column("label_end").max() < refit
    features = agent.feature_names(data)
    assert set(features) >= {"ret_1", "mom_12_1", "book_to_price", "news_score"}
    clean = agent.train(design, refit, features)
    # poison every label that ends on or after the refit date: the fitted model must not change
    poisoned = design.with_columns(
        target=pl.when(pl.col("label_end") >= refit).then(pl.lit(agent.target_clip)).otherwise(pl.col("target"))
    )
    dirty = agent.train(poisoned, refit, features)
    assert clean is not None and dirty is not None
    probe = design.filter(pl.col("date") == CUT)
    np.testing.assert_array_equal(agent.predict(clean, probe), agent.predict(dirty, probe))
    assert clean.last_label_end < refit


def test_stat_arb_refit_uses_only_pre_refit_data(data: AgentData, dates: list[dt.date]) -> None:
    agent = StatArbAgent(formation_sessions=126, refit_every=21)
    schedule = refit_schedule(data.bars.get_column("date").unique(), dates, agent.refit_every)
    assert (schedule.get_column("refit_date") <= schedule.get_column("date")).all()
    refit = schedule.filter(pl.col("date") == CUT).item(0, "refit_date")
    pairs = agent.fit_pairs(data, refit)
    assert pairs.height > 0
    # scramble the refit day itself and everything after: the pairs must not change
    day_before = data.bars.filter(pl.col("date") < refit).get_column("date").max()
    assert isinstance(day_before, dt.date)
    assert agent.fit_pairs(perturb_after(data, day_before), refit).equals(pairs)
    # same-sector legs, positive hedge ratios, significant
    sector = dict(data.universe.iter_rows())
    assert all(sector[a] == sector[b] for a, b in pairs.select("leg_a", "leg_b").iter_rows())
    assert (pairs.get_column("beta") > 0).all()
    assert (pairs.get_column("pvalue") < agent.max_pvalue).all()


def test_refit_schedule_is_anchored() -> None:
    days = (dt.date(2024, 1, 2) + dt.timedelta(days=i) for i in range(200))
    sessions = pl.Series([d for d in days if d.weekday() < 5])
    full = refit_schedule(sessions, sessions.to_list(), 21)
    late = refit_schedule(sessions.tail(100), sessions.tail(60).to_list(), 21)
    # same refit dates whatever the data start (except for the block cut by the start)
    joined = late.join(full, on="date", suffix="_full")
    starts = set(sessions.tail(100).head(1).to_list())
    mismatch = joined.filter(pl.col("refit_date") != pl.col("refit_date_full"))
    assert set(mismatch.get_column("refit_date").to_list()) <= starts


# ---- hypothesis properties ---------------------------------------------------------------------
SMALL_BARS = clean_raw_bars(["AAA", "BBB", "CCC", "DDD", "EEE"], dt.date(2024, 1, 2), dt.date(2024, 6, 28))
SMALL_SESSIONS = SMALL_BARS.get_column("date").unique().sort().to_list()
SMALL_UNIVERSE = pl.DataFrame({"symbol": ["AAA", "BBB", "CCC", "DDD", "EEE"], "sector": ["X", "X", "Y", "Y", "Y"]})


def _in_range(frame: pl.DataFrame) -> None:
    assert frame.get_column("confidence").is_between(0.0, 1.0).all()
    assert frame.get_column("signal").is_between(-1.0, 1.0).all()
    assert (frame.get_column("sigma") > 0).all()
    assert (frame.get_column("mu") * frame.get_column("signal") >= 0).all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.integers(60, len(SMALL_SESSIONS) - 1), st.text(max_size=80)),
        min_size=1,
        max_size=40,
    ),
    st.floats(0.1, 5.0),
    st.integers(1, 6),
)
def test_sentiment_properties(heads: list[tuple[int, int, str]], half_life: float, lookback: int) -> None:
    syms = ["AAA", "BBB", "CCC", "DDD", "EEE"]
    frame = pl.DataFrame(
        {
            "date": [SMALL_SESSIONS[k] for _, k, _ in heads],
            "symbol": [syms[i] for i, _, _ in heads],
            "headline": [t for _, _, t in heads],
        },
        schema={"date": pl.Date, "symbol": pl.String, "headline": pl.String},
    )
    data = AgentData(bars=SMALL_BARS, features=pl.DataFrame(), universe=SMALL_UNIVERSE, headlines=frame)
    agent = SentimentAgent(half_life_sessions=half_life, lookback_sessions=lookback)
    out = agent.signals(data, SMALL_SESSIONS[60:])
    validate_signals("sentiment", out)
    _in_range(out)
    assert out.height >= frame.select("date", "symbol").unique().height


def _fundamentals(values: list[tuple[float, float, float, float, float]]) -> pl.DataFrame:
    rows = []
    quarter_ends = [
        dt.date(2023, 3, 31),
        dt.date(2023, 6, 30),
        dt.date(2023, 9, 30),
        dt.date(2023, 12, 31),
        dt.date(2024, 3, 31),
    ]
    for k, sym in enumerate(["AAA", "BBB", "CCC", "DDD", "EEE"]):
        for q, fpe in enumerate(quarter_ends):
            eps, bvps, rev, ocf, dps = values[(k * 5 + q) % len(values)]
            rows.append(
                (sym, fpe, min(fpe + dt.timedelta(days=40), dt.date(2024, 6, 1)), eps, bvps, rev, ocf, dps, 1_000_000)
            )
    return pl.DataFrame(
        rows,
        schema={
            "symbol": pl.String,
            "fiscal_period_end": pl.Date,
            "report_date": pl.Date,
            "eps": pl.Float64,
            "book_value_per_share": pl.Float64,
            "revenue": pl.Float64,
            "operating_cash_flow": pl.Float64,
            "dividend_per_share": pl.Float64,
            "shares_outstanding": pl.Int64,
        },
        orient="row",
    )


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(finite, finite, finite, finite, st.floats(0, 100)), min_size=1, max_size=25))
def test_fundamental_agents_properties(values: list[tuple[float, float, float, float, float]]) -> None:
    data = AgentData(
        bars=SMALL_BARS, features=pl.DataFrame(), universe=SMALL_UNIVERSE, fundamentals=_fundamentals(values)
    )
    for agent in (ValuationAgent(min_names=2), FundamentalAgent(min_names=2, trend_quarters=4)):
        out = agent.signals(data, SMALL_SESSIONS[-30:])
        validate_signals(agent.name, out)
        _in_range(out)
        assert out.height > 0


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(st.floats(0.05, 1.0), st.floats(0.01, 2.0), st.floats(1.0, 6.0))
def test_stat_arb_properties(data: AgentData, shrink: float, scale: float, z_stop: float) -> None:
    agent = StatArbAgent(formation_sessions=126, refit_every=21, shrink=shrink, signal_scale=scale, z_stop=z_stop)
    out = agent.signals(data, [CUT, END])
    validate_signals("stat_arb", out)
    _in_range(out)


# ---- units and planted truth -------------------------------------------------------------------
def test_vader_scores_once_and_orders_tone() -> None:
    assert vader_compound("Acme shares soar after record profit") > 0.3
    assert vader_compound("Acme plunges after fraud lawsuit") < -0.3
    assert vader_compound.cache_info().currsize >= 2


def test_sentiment_tracks_true_tone(sim: MarketSimulator, symbols: list[str], data: AgentData) -> None:
    sessions = data.bars.get_column("date").unique().sort()
    daily = daily_sentiment(data.headlines.filter(pl.col("date") >= dt.date(2023, 1, 1)), sessions)
    tone = sim.truth(dt.date(2023, 1, 1), END, symbols).news_tone
    joined = daily.join(tone, on=["date", "symbol"], how="inner")
    assert joined.height > 0.95 * tone.height  # every news day has headlines
    assert joined.select(pl.corr("mean_compound", "tone")).item() > 0.7


def test_sentiment_uses_only_headlines_up_to_date(data: AgentData) -> None:
    agent = SentimentAgent(lookback_sessions=3)
    scores = agent.scores(data, [CUT])
    sessions = data.bars.get_column("date").unique().sort()
    window = sessions.filter(sessions <= CUT).tail(3)
    expected = data.headlines.filter(pl.col("date").is_in(window.implode())).get_column("symbol").unique().sort()
    assert scores.get_column("symbol").sort().to_list() == expected.to_list()


def test_valuation_book_to_price_matches_truth(
    sim: MarketSimulator, symbols: list[str], data: AgentData, dates: list[dt.date]
) -> None:
    ratios = ValuationAgent().ratios(data, dates)
    truth = sim.truth(DECISION_START, END, symbols).alphas.select("date", "symbol", truth_bp="book_to_price")
    joined = ratios.join(truth, on=["date", "symbol"]).drop_nulls(["book_to_price", "truth_bp"])
    assert joined.height > 0.9 * ratios.height
    per_day = joined.group_by("date").agg(rho=pl.corr("book_to_price", "truth_bp", method="spearman"))
    assert per_day.get_column("rho").min() > 0.8
    np.testing.assert_allclose(joined.get_column("book_to_price"), joined.get_column("truth_bp"), rtol=1e-5)
    ok = ratios.filter(pl.col("pe").is_not_null())
    np.testing.assert_allclose(ok.get_column("pe") * ok.get_column("earnings_yield"), 1.0, rtol=1e-12)


def test_valuation_restates_per_share_data_across_a_split() -> None:
    bars = clean_raw_bars(["AAA", "BBB"], dt.date(2024, 1, 2), dt.date(2024, 6, 28))
    split_day = dt.date(2024, 5, 1)
    bars = bars.with_columns(  # AAA splits 2:1: raw prices halve, the adjusted series does not move
        pl.when((pl.col("symbol") == "AAA") & (pl.col("date") >= split_day)).then(pl.col(c) / 2).otherwise(pl.col(c))
        for c in ("open", "high", "low", "close")
    )
    idx = split_index(bars).filter(pl.col("symbol") == "AAA")
    assert idx.filter(pl.col("date") < split_day).get_column("split_index").unique().to_list() == [1.0]
    assert idx.filter(pl.col("date") >= split_day).get_column("split_index").unique().to_list() == [2.0]
    fund = pl.DataFrame(
        {
            "symbol": ["AAA", "BBB"],
            "fiscal_period_end": [dt.date(2024, 3, 31)] * 2,
            "report_date": [dt.date(2024, 4, 15)] * 2,
            "eps": [1.0, 1.0],
            "book_value_per_share": [20.0, 20.0],
            "revenue": [1e8, 1e8],
            "operating_cash_flow": [1e7, 1e7],
            "dividend_per_share": [0.5, 0.5],
            "shares_outstanding": [1_000_000, 1_000_000],
        }
    )
    data = AgentData(bars=bars, features=pl.DataFrame(), universe=pl.DataFrame(), fundamentals=fund)
    before, after = dt.date(2024, 4, 30), split_day
    ratios = ValuationAgent().ratios(data, [before, after]).filter(pl.col("symbol") == "AAA").sort("date")
    close = bars.filter(pl.col("symbol") == "AAA", pl.col("date").is_in([before, after])).sort("date")
    bp = ratios.get_column("book_to_price").to_list()
    raw = close.get_column("close").to_list()
    assert bp[0] == pytest.approx(20.0 / raw[0])
    assert bp[1] == pytest.approx(10.0 / raw[1])  # book per share halves with the split


def test_quarterly_ttm_needs_four_consecutive_quarters() -> None:
    ends = [
        dt.date(2023, 3, 31),
        dt.date(2023, 6, 30),
        dt.date(2023, 9, 30),
        dt.date(2024, 3, 31),
        dt.date(2024, 6, 30),
    ]
    fund = pl.DataFrame(
        {
            "symbol": "AAA",
            "fiscal_period_end": ends,
            "report_date": [e + dt.timedelta(days=30) for e in ends],
            "eps": [1.0] * 5,
            "book_value_per_share": [10.0] * 5,
            "revenue": [1e8] * 5,
            "operating_cash_flow": [1e7] * 5,
            "dividend_per_share": [0.1] * 5,
            "shares_outstanding": [10] * 5,
        }
    )
    splits = pl.DataFrame(schema={"date": pl.Date, "symbol": pl.String, "split_index": pl.Float64})
    q = quarterly_accounts(fund, splits).sort("fiscal_period_end")
    assert q.get_column("ttm_eps_o").to_list() == [None, None, None, None, None]  # 2023Q4 is missing
    full = quarterly_accounts(
        fund.with_columns(
            fiscal_period_end=pl.date_range(dt.date(2023, 3, 31), dt.date(2024, 3, 31), "1q", eager=True).dt.month_end()
        ),
        splits,
    )
    assert full.sort("fiscal_period_end").get_column("ttm_eps_o").to_list()[-2:] == [4.0, 4.0]


def test_revenue_trend_recovers_growth() -> None:
    ends = pl.date_range(dt.date(2022, 1, 1), dt.date(2023, 12, 31), "1q", eager=True).dt.month_end()
    ends = ends.dt.offset_by("2mo").dt.month_end()
    q = pl.DataFrame(
        {"symbol": "AAA", "fiscal_period_end": ends, "revenue": [1e8 * math.exp(0.02 * i) for i in range(len(ends))]}
    )
    out = revenue_trend(q, 8)
    assert out.get_column("revenue_trend").to_list()[-1] == pytest.approx(0.08)
    assert out.get_column("revenue_trend").null_count() == 7


def test_stat_arb_trades_a_planted_pair() -> None:
    rng = np.random.default_rng(3)
    days = [d for d in (dt.date(2022, 1, 3) + dt.timedelta(days=i) for i in range(600)) if d.weekday() < 5][:320]
    n = len(days)
    common = np.cumsum(rng.normal(0, 0.015, n))
    spread = np.zeros(n)
    for t in range(1, n):
        spread[t] = 0.8 * spread[t - 1] + rng.normal(0, 0.01)
    spread[-1] = 4 * spread.std()  # wide at the last date: A rich, B cheap
    noise = np.cumsum(rng.normal(0, 0.015, (n, 2)), axis=0)
    logs = {"AAA": 4.0 + common + spread, "BBB": 4.0 + common, "CCC": 3.0 + noise[:, 0], "DDD": 3.5 + noise[:, 1]}
    bars = pl.concat(
        pl.DataFrame({"date": days, "symbol": s, "close": np.exp(v), "adjusted_close": np.exp(v)})
        for s, v in logs.items()
    )
    universe = pl.DataFrame({"symbol": list(logs), "sector": "X"})
    data = AgentData(bars=bars, features=pl.DataFrame(), universe=universe)
    agent = StatArbAgent(formation_sessions=250, refit_every=1000, z_stop=10.0)
    out = agent.signals(data, [days[-1]])
    by = {r["symbol"]: r for r in out.iter_rows(named=True)}
    assert by["AAA"]["mu"] < 0 < by["BBB"]["mu"]
    assert by["AAA"]["signal"] < 0 < by["BBB"]["signal"]
    assert by["AAA"]["mu"] == pytest.approx(-by["BBB"]["mu"])


@pytest.mark.slow
def test_aligned_agents_carry_planted_alpha(sim: MarketSimulator) -> None:
    """Sentiment and valuation rank IC against the simulator's planted alpha (100 symbols, 2023)."""
    syms = [f"S{i:04d}" for i in range(100)]
    start, end = dt.date(2023, 1, 3), dt.date(2023, 12, 29)
    data = AgentData(
        bars=sim.bars(dt.date(2022, 6, 1), end, syms),
        features=pl.DataFrame(),
        universe=sim.universe().filter(pl.col("symbol").is_in(syms)).select("symbol", "sector"),
        fundamentals=sim.fundamentals(dt.date(2021, 6, 1), end, syms),
        headlines=sim.headlines(dt.date(2022, 6, 1), end, syms),
    )
    dates = data.bars.filter(pl.col("date") >= start).get_column("date").unique().sort().to_list()
    alphas = sim.truth(start, end, syms).alphas
    for agent, column in ((SentimentAgent(), "alpha_news"), (ValuationAgent(sector_neutral=False), "alpha_value")):
        out = agent.signals(data, dates).join(alphas, on=["date", "symbol"])
        ic = out.group_by("date").agg(ic=pl.corr("signal", column, method="spearman")).get_column("ic").mean()
        assert ic > 0.5, (agent.name, ic)


@pytest.mark.parametrize("name", ["sentiment", "valuation", "fundamental", "stat_arb", "ml"])
def test_short_history_with_headlines_gives_no_rows_not_an_error(name: str, data: AgentData) -> None:
    """Regression: a fresh lake holds a few sessions of bars and headlines but no 63-day history."""
    days = sorted(data.bars.get_column("date").unique().to_list())[:4]
    short = AgentData(
        bars=data.bars.filter(pl.col("date").is_in(days)),
        features=data.features,
        universe=data.universe,
        fundamentals=data.fundamentals.filter(pl.col("report_date") <= days[-1]),
        headlines=data.headlines.filter(pl.col("date").is_in(days)),
        macro=data.macro,
    )
    assert short.headlines.height > 0
    out = validate_signals(name, _agents()[name].signals(short, days))
    assert out.height == 0 or out.get_column("date").is_in(days).all()


def test_ml_fit_skips_a_feature_with_no_information(data: AgentData) -> None:
    """Regression: B/P is all-null before the first reports are known; sklearn's binning used to crash."""
    agent = _fast_ml()
    days = sorted(data.bars.get_column("date").unique().to_list())
    names = agent.feature_names(data)
    design = agent.design(data, days[-1]).with_columns(pl.lit(None, dtype=pl.Float64).alias(names[-1]))
    fitted = agent.train(design, days[-1], names)
    assert fitted is not None
    assert names[-1] not in fitted.features and len(fitted.features) == len(names) - 1
