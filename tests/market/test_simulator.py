"""The market simulator: determinism, schema, stylized facts, actions, planted truth."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from scipy import stats
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from mqf_pipeline import calendar
from mqf_pipeline.market.bars import BARS_SCHEMA
from mqf_pipeline.market.sim import REGIMES, MarketSimulator, SimulatorParams

D = dt.date
FACTS = SimulatorParams(n_symbols=150)  # stylized facts: 150 symbols x 5 years
LONG = SimulatorParams(n_symbols=100)  # 20-year checks (regimes, actions)
ALPHA = SimulatorParams(n_symbols=300)  # planted-alpha detection over 2 years


def _wide(frame: pl.DataFrame, value: str) -> tuple[list[str], np.ndarray]:
    w = frame.pivot(on="symbol", index="date", values=value).sort("date")
    return w.columns[1:], w.drop("date").to_numpy()


def _returns(bars: pl.DataFrame) -> tuple[list[str], np.ndarray]:
    cols, px = _wide(bars, "adjusted_close")
    return cols, px[1:] / px[:-1] - 1.0


def _acf(x: np.ndarray, lag: int) -> np.ndarray:
    x = x - x.mean(axis=0)
    return (x[lag:] * x[:-lag]).sum(axis=0) / (x * x).sum(axis=0)


@pytest.fixture(scope="module")
def facts_bars() -> pl.DataFrame:
    return MarketSimulator(FACTS).bars(D(2019, 1, 1), D(2023, 12, 31))


# ---- determinism ---------------------------------------------------------------------------
def test_same_params_give_identical_frames_from_fresh_paths() -> None:
    params = SimulatorParams(n_symbols=40, seed=11)
    start, end = D(2012, 1, 1), D(2013, 6, 30)

    def frames() -> list[pl.DataFrame]:
        sim = MarketSimulator(params, shared=False)  # a fresh simulation from the epoch
        tr = sim.truth(start, end)
        return [
            sim.bars(start, end),
            sim.corporate_actions(start, end),
            sim.fundamentals(start, end),
            sim.headlines(start, end),
            sim.macro(start, end),
            tr.alphas,
            tr.regimes,
            tr.factor_returns,
        ]

    for a, b in zip(frames(), frames(), strict=True):
        assert a.height > 0
        assert a.equals(b)


def test_extending_the_end_date_leaves_earlier_rows_identical() -> None:
    params = SimulatorParams(n_symbols=30, seed=5)
    first = MarketSimulator(params, shared=False)
    short = first.bars(D(2020, 1, 1), D(2024, 12, 31))
    short_ca = first.corporate_actions(D(2020, 1, 1), D(2024, 12, 31))
    sim = MarketSimulator(params, shared=False)
    long = sim.bars(D(2020, 1, 1), D(2025, 12, 31))
    long_ca = sim.corporate_actions(D(2020, 1, 1), D(2025, 12, 31))
    assert long.filter(pl.col("date") <= D(2024, 12, 31)).equals(short)
    assert long_ca.filter(pl.col("date") <= D(2024, 12, 31)).equals(short_ca)
    # a symbol subset and a sub-range are exact slices of the full frame
    sub = sim.bars(D(2022, 3, 1), D(2022, 3, 31), symbols=["S0007", "S0003"])
    full = long.filter(
        pl.col("date").is_between(D(2022, 3, 1), D(2022, 3, 31)), pl.col("symbol").is_in(["S0003", "S0007"])
    )
    assert sub.equals(full)


def test_different_seed_gives_different_data() -> None:
    a = MarketSimulator(SimulatorParams(n_symbols=20, seed=1)).bars(D(2010, 1, 1), D(2010, 3, 31))
    b = MarketSimulator(SimulatorParams(n_symbols=20, seed=2)).bars(D(2010, 1, 1), D(2010, 3, 31))
    assert a.select("date", "symbol").equals(b.select("date", "symbol"))
    assert not a.equals(b)
    assert (a["close"] - b["close"]).abs().max() > 1.0


def test_ranges_before_epoch_and_unknown_symbols_raise() -> None:
    sim = MarketSimulator(SimulatorParams(n_symbols=20))
    with pytest.raises(ValueError, match="2005-12-30"):
        sim.bars(D(2005, 12, 30), D(2006, 2, 1))
    with pytest.raises(ValueError, match="2001-01-01"):
        sim.headlines(D(2001, 1, 1), D(2006, 2, 1))
    with pytest.raises(ValueError, match="S9999"):
        sim.bars(D(2006, 2, 1), D(2006, 3, 1), symbols=["S9999"])
    assert sim.bars(D(2010, 1, 2), D(2010, 1, 3)).schema == pl.Schema(BARS_SCHEMA)  # a weekend


# ---- schema and OHLCV ----------------------------------------------------------------------
def test_bars_schema_grid_and_ohlc_invariants(facts_bars: pl.DataFrame) -> None:
    bars = facts_bars
    assert bars.schema == pl.Schema(BARS_SCHEMA)
    days = calendar.sessions(D(2019, 1, 1), D(2023, 12, 31))
    assert bars.height == len(days) * FACTS.n_symbols
    assert bars.select("date", "symbol").is_unique().all()
    assert bars.select("date", "symbol").equals(bars.select("date", "symbol").sort("date", "symbol"))
    assert set(bars["date"].unique().to_list()) == set(days)
    assert bars.null_count().sum_horizontal().item() == 0
    ok = bars.select(
        (pl.col("high") >= pl.max_horizontal("open", "close")).all().alias("high"),
        (pl.col("low") <= pl.min_horizontal("open", "close")).all().alias("low"),
        (pl.col("low") > 0).all().alias("positive"),
        (pl.col("volume") > 0).all().alias("volume"),
        (pl.col("spread_bps") > 0).all().alias("spread"),
    )
    assert all(ok.row(0)), ok


def test_spreads_wider_for_small_caps_and_in_volatile_times() -> None:
    sim = MarketSimulator(FACTS)
    bars = sim.bars(D(2019, 1, 1), D(2023, 12, 31))
    cap = sim.universe().select("symbol", "market_cap_usd")
    per_symbol = bars.group_by("symbol").agg(pl.col("spread_bps").median()).join(cap, on="symbol")
    rho = stats.spearmanr(per_symbol["market_cap_usd"], per_symbol["spread_bps"])[0]
    assert rho < -0.5  # tolerance: spreads fall steeply with cap (base ~ cap^-1/2)
    tr = sim.truth(D(2019, 1, 1), D(2023, 12, 31))
    joined = bars.join(tr.returns, on=["date", "symbol"])
    within = joined.group_by("symbol").agg(pl.corr(pl.col("spread_bps").log(), pl.col("total_vol_daily").log()))
    assert within["spread_bps"].mean() > 0.3  # spreads widen with conditional volatility


# ---- stylized facts ------------------------------------------------------------------------
def test_stylized_facts(facts_bars: pl.DataFrame) -> None:
    cols, r = _returns(facts_bars)
    z = (r - r.mean(axis=0)) / r.std(axis=0)
    assert stats.kurtosis(z.ravel()) > 1.0  # pooled excess kurtosis (Gaussian: 0); measured ~2
    for lag in range(1, 11):
        assert _acf(np.abs(r), lag).mean() > 0.01, lag  # volatility clustering; measured 0.03-0.06
    assert abs(_acf(r, 1).mean()) < 0.05  # returns themselves ~uncorrelated
    vol = r.std(axis=0) * np.sqrt(252)
    assert 0.22 < vol.mean() < 0.38  # average stock: ~30% a year
    assert 0.08 < r.mean(axis=1).std() * np.sqrt(252) < 0.30  # equal-weight index

    sector = dict(MarketSimulator(FACTS).universe().select("symbol", "sector").iter_rows())
    s = np.array([sector[c] for c in cols])
    corr = np.corrcoef(r.T)
    same = (s[:, None] == s[None, :]) & ~np.eye(len(cols), dtype=bool)
    cross = s[:, None] != s[None, :]
    assert corr[same].mean() > corr[cross].mean() + 0.05  # measured ~0.35 vs ~0.20

    _, volume = _wide(facts_bars, "volume")
    per_symbol = [np.corrcoef(np.log(volume[1:, j]), np.abs(r[:, j]))[0, 1] for j in range(r.shape[1])]
    assert np.mean(per_symbol) > 0.1  # volume rises with |r|; measured ~0.5


def test_volume_scales_with_size() -> None:
    sim = MarketSimulator(FACTS)
    bars = sim.bars(D(2019, 1, 1), D(2019, 12, 31))
    adv = bars.group_by("symbol").agg((pl.col("volume") * pl.col("close")).mean().alias("adv_usd"))
    adv = adv.join(sim.universe().select("symbol", "market_cap_usd"), on="symbol")
    assert stats.spearmanr(adv["adv_usd"], adv["market_cap_usd"])[0] > 0.6


# ---- corporate actions and adjusted close --------------------------------------------------
def test_adjusted_close_compounds_the_simulated_total_return() -> None:
    sim = MarketSimulator(LONG)
    start, end = D(2006, 1, 3), D(2025, 12, 31)
    bars = sim.bars(start, end)
    tr = sim.truth(start, end)
    ret = bars.sort("symbol", "date").with_columns(
        (pl.col("adjusted_close") / pl.col("adjusted_close").shift(1).over("symbol") - 1).alias("r_adj")
    )
    joined = ret.join(tr.returns, on=["date", "symbol"]).drop_nulls("r_adj")
    assert joined.height == bars.height - LONG.n_symbols
    assert (joined["r_adj"] - joined["total_return"]).abs().max() < 1e-12


def test_splits_and_dividends_move_the_raw_close_only() -> None:
    sim = MarketSimulator(LONG)
    start, end = D(2006, 1, 3), D(2025, 12, 31)
    actions = sim.corporate_actions(start, end)
    splits = actions.filter(pl.col("action_type") == "SPLIT")
    assert splits.filter(pl.col("value") >= 2).height >= 5
    assert set(splits["value"].unique().to_list()) <= {2.0, 3.0, 0.1}
    bars = sim.bars(start, end).sort("symbol", "date")
    bars = bars.with_columns(pl.col("close").shift(1).over("symbol").alias("prev_close"))
    tr = sim.truth(start, end).returns
    div = actions.filter(pl.col("action_type") == "DIVIDEND").select("date", "symbol", pl.col("value").alias("div"))
    ratio = splits.select("date", "symbol", pl.col("value").alias("ratio"))
    x = (
        bars.join(tr, on=["date", "symbol"])
        .join(div, on=["date", "symbol"], how="left")
        .join(ratio, on=["date", "symbol"], how="left")
        .with_columns(pl.col("div").fill_null(0.0), pl.col("ratio").fill_null(1.0))
        .drop_nulls("prev_close")
    )
    # raw identity: (close + dividend) x ratio / previous close - 1 = total return, every day
    implied = (x["close"] + x["div"]) * x["ratio"] / x["prev_close"] - 1
    assert (implied - x["total_return"]).abs().max() < 1e-9
    on_split = x.filter(pl.col("ratio") >= 2)
    drop = on_split["prev_close"] / on_split["close"]
    assert ((drop / on_split["ratio"]) - 1).abs().max() < 0.35  # close falls by ~the ratio
    assert (on_split["close"] < on_split["prev_close"] / 1.3).all()
    # payers go ex roughly quarterly; non-payers never
    uni = sim.universe()
    per_year = div.group_by("symbol").len().with_columns(pl.col("len") / 20.0)
    payers = set(uni.filter(pl.col("dividend_payer"))["symbol"].to_list())
    assert set(per_year["symbol"].to_list()) <= payers
    assert per_year["len"].min() >= 3.8


def test_adjusted_close_never_changes_for_past_dates() -> None:
    params = SimulatorParams(n_symbols=100, seed=3)
    early = MarketSimulator(params, shared=False).bars(D(2006, 1, 3), D(2012, 12, 31))
    sim = MarketSimulator(params, shared=False)
    late = sim.bars(D(2006, 1, 3), D(2025, 12, 31))
    later_actions = sim.corporate_actions(D(2013, 1, 1), D(2025, 12, 31))
    assert later_actions.filter(pl.col("action_type") == "SPLIT").height > 0
    past = late.filter(pl.col("date") <= D(2012, 12, 31))
    assert past["adjusted_close"].equals(early["adjusted_close"])


# ---- fundamentals --------------------------------------------------------------------------
def test_fundamentals_are_point_in_time_and_value_consistent() -> None:
    sim = MarketSimulator(FACTS)
    start, end = D(2015, 1, 1), D(2019, 12, 31)
    f = sim.fundamentals(start, end)
    assert f.height > 0
    assert f["report_date"].is_between(start, end).all()
    # lag between fiscal period end and report: 25-45 sessions
    cal = {d: i for i, d in enumerate(calendar.sessions(D(2014, 1, 1), D(2020, 6, 30)))}
    period_idx = [max(i for d, i in cal.items() if d <= pe) for pe in f["fiscal_period_end"].unique().to_list()]
    lag_map = dict(zip(f["fiscal_period_end"].unique().to_list(), period_idx, strict=True))
    lags = [cal[r] - lag_map[p] for p, r in zip(f["fiscal_period_end"], f["report_date"], strict=True)]
    assert min(lags) >= 25 and max(lags) <= 45
    assert (f.group_by("symbol").len()["len"] == 20).all()  # 20 quarters in 5 years
    # cheap names (high value loading) have high B/P and E/P at the report date
    close = sim.bars(start, end).select("date", "symbol", "close")
    x = (
        f.join(close, left_on=["report_date", "symbol"], right_on=["date", "symbol"])
        .join(sim.truth(start, end).betas.select("symbol", "beta_value"), on="symbol")
        .with_columns(
            (pl.col("book_value_per_share") / pl.col("close")).alias("bp"),
            (pl.col("eps") / pl.col("close")).alias("ep"),
        )
    )
    assert stats.spearmanr(x["beta_value"], x["bp"])[0] > 0.3
    assert stats.spearmanr(x["beta_value"], x["ep"])[0] > 0.2
    assert (f["revenue"] > 0).all() and (f["shares_outstanding"] > 0).all()


# ---- planted alpha -------------------------------------------------------------------------
def _ic_t(signal: np.ndarray, nxt: np.ndarray) -> float:
    ics = np.array([stats.spearmanr(signal[t], nxt[t])[0] for t in range(signal.shape[0])])
    return float(ics.mean() / ics.std(ddof=1) * np.sqrt(ics.size))


def test_planted_alpha_is_detectable_and_a_shuffled_control_is_not() -> None:
    sim = MarketSimulator(ALPHA)
    start, end = D(2022, 1, 1), D(2023, 12, 31)  # two years, ~500 sessions
    _, r = _returns(sim.bars(start, end))
    alphas = sim.truth(start, end).alphas
    rng = np.random.default_rng(0)
    for name in ("alpha_momentum", "alpha_value", "alpha_news"):
        _, a = _wide(alphas, name)
        a = a[:-1]  # alpha dated D predicts the return from D to the next session
        assert _ic_t(a, r) > 2.0, name
        shuffled = np.array([rng.permutation(row) for row in a])
        assert abs(_ic_t(shuffled, r)) < 2.0, name


def test_characteristics_recompute_from_public_data() -> None:
    sim = MarketSimulator(FACTS)
    start, end = D(2012, 1, 1), D(2013, 12, 31)
    alphas = sim.truth(start, end).alphas
    bars = sim.bars(D(2010, 6, 1), end)
    _, adj = _wide(bars, "adjusted_close")
    _, mom = _wide(alphas, "momentum_12_1")
    n = mom.shape[0]
    expected = np.log(adj[-n - 21 : -21] / adj[-n - 252 : -252])
    assert np.allclose(mom, expected, rtol=0, atol=1e-5)


# ---- regimes, macro ------------------------------------------------------------------------
def test_regimes_all_occur_persist_and_separate_by_volatility() -> None:
    sim = MarketSimulator(LONG)
    start, end = D(2006, 1, 3), D(2025, 12, 31)
    regimes = sim.truth(start, end).regimes
    assert set(regimes["regime"].unique().to_list()) == set(REGIMES)
    runs = regimes.with_columns((pl.col("regime") != pl.col("regime").shift(1)).cum_sum().alias("run"))
    assert runs.group_by("run").len()["len"].mean() > 30  # persistent: long stays
    _, r = _returns(sim.bars(start, end))
    index = r.mean(axis=1)
    lab = regimes["regime"].to_numpy()[1:]
    vol = {g: index[lab == g].std() * np.sqrt(252) for g in REGIMES}
    drift = {g: index[lab == g].mean() * 252 for g in REGIMES}
    assert max(vol["BULL_QUIET"], vol["BEAR_QUIET"]) < vol["BULL_VOLATILE"] < vol["BEAR_CRISIS"]
    assert min(drift["BULL_QUIET"], drift["BULL_VOLATILE"]) > max(drift["BEAR_QUIET"], drift["BEAR_CRISIS"])


def test_macro_series_track_volatility_and_stay_in_range() -> None:
    sim = MarketSimulator(LONG)
    start, end = D(2006, 1, 3), D(2025, 12, 31)
    macro = sim.macro(start, end)
    assert set(macro["series_id"].unique().to_list()) == {"VIX", "SHORT_RATE"}
    vix = macro.filter(pl.col("series_id") == "VIX")
    rate = macro.filter(pl.col("series_id") == "SHORT_RATE")
    assert vix["value"].is_between(10, 80).all() and rate["value"].is_between(0, 0.08).all()
    market = sim.truth(start, end).market.join(vix.select("date", pl.col("value").alias("vix")), on="date")
    assert np.corrcoef(market["vix"], market["market_vol_annual"])[0, 1] > 0.8
    by_regime = market.group_by("regime").agg(pl.col("vix").mean()).sort("vix")
    assert by_regime["regime"][0] == "BULL_QUIET" and by_regime["regime"][-1] == "BEAR_CRISIS"


# ---- headlines and recovery of betas -------------------------------------------------------
def test_headline_sentiment_tracks_true_tone() -> None:
    sim = MarketSimulator(FACTS)
    start, end = D(2018, 1, 1), D(2018, 6, 30)
    heads = sim.headlines(start, end)
    per_symbol_day = heads.height / (len(calendar.sessions(start, end)) * FACTS.n_symbols)
    assert 0.05 < per_symbol_day < 0.5
    analyzer = SentimentIntensityAnalyzer()
    scored = heads.with_columns(
        pl.col("headline").map_elements(lambda h: analyzer.polarity_scores(h)["compound"], return_dtype=pl.Float64)
    )
    daily = scored.group_by("date", "symbol").agg(pl.col("headline").mean().alias("vader"))
    joined = daily.join(sim.truth(start, end).news_tone, on=["date", "symbol"])
    assert joined.height == daily.height
    assert np.corrcoef(joined["vader"], joined["tone"])[0, 1] > 0.3  # measured ~0.85


def test_true_betas_are_recovered_by_time_series_regression() -> None:
    sim = MarketSimulator(FACTS)
    start, end = D(2016, 1, 1), D(2020, 12, 31)
    tr = sim.truth(start, end)
    factors = tr.factor_returns.pivot(on="factor", index="date", values="return").sort("date")
    names = ["market", "momentum", "value", "size", "low_volatility", "liquidity"]
    _, ret = _wide(tr.returns, "total_return")
    betas = tr.betas
    X = np.column_stack([np.ones(factors.height), factors.select(names).to_numpy()])
    sector_cols = {s: factors[f"sector:{s}"].to_numpy() for s in betas["sector"].unique().to_list()}
    est = []
    for j, sector in enumerate(betas["sector"].to_list()):
        coef, *_ = np.linalg.lstsq(np.column_stack([X, sector_cols[sector]]), ret[:, j], rcond=None)
        est.append(coef[1:7])
    est_arr = np.array(est)
    for k, name in enumerate(names):
        assert np.corrcoef(est_arr[:, k], betas[f"beta_{name}"])[0, 1] > 0.8, name


def test_universe_facts() -> None:
    uni = MarketSimulator(FACTS).universe()
    assert uni["symbol"].to_list() == [f"S{i:04d}" for i in range(FACTS.n_symbols)]
    assert uni["sector"].n_unique() == 11
    assert uni["price_usd"].is_between(10, 200).all()
    log_cap = np.log(uni["market_cap_usd"].to_numpy())
    assert abs(stats.skew(log_cap)) < 0.5 and stats.skew(uni["market_cap_usd"].to_numpy()) > 1.0  # log-normal
    assert uni["dividend_payer"].dtype == pl.Boolean and 0.3 < uni["dividend_payer"].mean() < 0.8
