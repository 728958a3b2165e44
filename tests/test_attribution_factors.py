"""Factor returns (seed 002 §1.2): characteristics vs the simulator's truth, each factor's formula and its
cross-sectional statistics vs scipy / statsmodels oracles, invariants, no lookahead, too few names."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mqf_pipeline.attribution import (
    STYLES,
    FactorParams,
    characteristics,
    factor_returns,
    factor_returns_from_characteristics,
)
from mqf_pipeline.market.sim import MarketSimulator, SimulatorParams

EPOCH = dt.date(2006, 1, 3)
START, END = dt.date(2016, 1, 4), dt.date(2018, 12, 31)  # factor windows used by these tests only
PARAMS = FactorParams()
SCORE = {
    "momentum": "momentum",
    "value": "book_to_market",
    "volatility": "volatility",
    "size": "market_cap",
    "liquidity": "liquidity",
}
SIGN = {"momentum": 1.0, "value": 1.0, "volatility": -1.0, "size": -1.0, "liquidity": 1.0}


@pytest.fixture(scope="module")
def market() -> dict[str, pl.DataFrame]:
    sim = MarketSimulator(SimulatorParams(n_symbols=100))
    return {
        "bars": sim.bars(START, END),
        "fundamentals": sim.fundamentals(EPOCH, END),
        "splits": sim.corporate_actions(EPOCH, END),
        "sectors": sim.universe().select("symbol", "sector"),
        "truth": sim.truth(START, END).alphas.select("date", "symbol", "momentum_12_1", "book_to_price"),
    }


@pytest.fixture(scope="module")
def chars(market: dict[str, pl.DataFrame]) -> pl.DataFrame:
    return characteristics(market["bars"], market["fundamentals"], market["splits"], PARAMS)


@pytest.fixture(scope="module")
def factors(chars: pl.DataFrame, market: dict[str, pl.DataFrame]):
    return factor_returns_from_characteristics(chars, market["sectors"], PARAMS)


def _cross_section(chars: pl.DataFrame, day: dt.date, column: str) -> pl.DataFrame:
    """symbol, x (characteristic at the previous session's close), r (return of ``day``)."""
    dates = chars["date"].unique().sort()
    prev = dates.filter(dates < day).max()
    x = chars.filter(pl.col("date") == prev).select("symbol", x=pl.col(column))
    r = chars.filter(pl.col("date") == day).select("symbol", r=pl.col("ret"))
    return x.join(r, on="symbol").drop_nulls().filter(pl.col("x").is_finite()).sort("symbol")


def test_characteristics_equal_the_simulators_planted_ones(chars: pl.DataFrame, market: dict[str, pl.DataFrame]):
    """Book-to-market from the public reports + splits equals the truth's reported book / market cap
    (rtol 1e-6: the truth is stored as float32); log(1 + momentum) equals its 12-1 log return (1e-6)."""
    joined = chars.join(market["truth"], on=["date", "symbol"]).drop_nulls(["book_to_market", "book_to_price"])
    assert joined.height > 50_000
    np.testing.assert_allclose(joined["book_to_market"], joined["book_to_price"], rtol=1e-6)
    mom = joined.drop_nulls(["momentum", "momentum_12_1"])
    np.testing.assert_allclose(np.log1p(mom["momentum"].to_numpy()), mom["momentum_12_1"], atol=1e-6)
    # without the splits, book-to-market is wrong for every symbol that split since its last report
    no_splits = characteristics(market["bars"], market["fundamentals"], None, PARAMS)
    both = chars.join(no_splits, on=["date", "symbol"], suffix="_raw").drop_nulls(["book_to_market"])
    assert (both["book_to_market"] != both["book_to_market_raw"]).sum() > 0


@pytest.mark.parametrize("style", STYLES)
def test_style_factor_is_top_minus_bottom_and_its_stats_are_linregress(chars, factors, style: str):
    """On sampled dates: factor_return = mean return of the top 30% minus the bottom 30% by the score at
    t-1 (1e-14); t_stat, p_value, r_squared = scipy.stats.linregress of r on the rank score (1e-10)."""
    rows = factors.returns.filter(pl.col("factor_name") == style)
    for day in rows["date"].gather([0, rows.height // 2, rows.height - 1]).to_list():
        cs = _cross_section(chars, day, SCORE[style]).with_columns(s=SIGN[style] * pl.col("x"))
        cs = cs.sort("s", "symbol")  # ordinal ranks, ties broken by symbol
        n = cs.height
        k = int(np.floor(0.3 * n + 1e-9))
        r = cs["r"].to_numpy()
        expected = r[n - k :].mean() - r[:k].mean()
        oracle = stats.linregress((np.arange(1, n + 1) - 0.5) / n, r)
        row = rows.filter(pl.col("date") == day).row(0, named=True)
        assert row["n_observations"] == n
        assert row["factor_return"] == pytest.approx(expected, abs=1e-14)
        assert row["t_stat"] == pytest.approx(oracle.slope / oracle.stderr, rel=1e-10)
        assert row["p_value"] == pytest.approx(oracle.pvalue, rel=1e-10, abs=1e-14)
        assert row["r_squared"] == pytest.approx(oracle.rvalue**2, rel=1e-10)


def test_market_is_the_cap_weighted_return_with_a_wls_t_test(chars, factors):
    """market = sum(cap_{t-1} r) / sum(cap_{t-1}) (1e-14); t and p = statsmodels WLS on a constant (1e-10)."""
    rows = factors.returns.filter(pl.col("factor_name") == "market")
    for day in rows["date"].gather([0, rows.height - 1]).to_list():
        cs = _cross_section(chars, day, "market_cap")
        fit = sm.WLS(cs["r"].to_numpy(), np.ones(cs.height), weights=cs["x"].to_numpy()).fit()
        row = rows.filter(pl.col("date") == day).row(0, named=True)
        assert row["factor_return"] == pytest.approx(fit.params[0], abs=1e-14)
        assert row["t_stat"] == pytest.approx(fit.tvalues[0], rel=1e-10)
        assert row["p_value"] == pytest.approx(fit.pvalues[0], rel=1e-10, abs=1e-14)
        assert row["r_squared"] is None


def test_equal_weighted_market_is_the_one_sample_t_test(chars, market):
    eq = factor_returns_from_characteristics(chars, None, FactorParams(market_weighting="equal"))
    row = eq.returns.filter(pl.col("factor_name") == "market").row(-1, named=True)
    r = chars.filter(pl.col("date") == row["date"])["ret"].drop_nulls().to_numpy()
    oracle = stats.ttest_1samp(r, 0.0)
    assert row["factor_return"] == pytest.approx(r.mean(), abs=1e-14)
    assert row["t_stat"] == pytest.approx(oracle.statistic, rel=1e-10)
    assert row["p_value"] == pytest.approx(oracle.pvalue, rel=1e-10)


def test_sector_factor_is_sector_minus_rest_and_the_dummy_regression(chars, factors, market):
    """sector:<s> = mean return in s - mean return elsewhere = linregress slope on the dummy (1e-14);
    t_stat, p_value, r_squared as linregress (1e-10)."""
    sectors = market["sectors"]
    day = factors.returns["date"].max()
    cs = chars.filter(pl.col("date") == day).select("symbol", "ret").drop_nulls().join(sectors, on="symbol")
    for name in sorted(sectors["sector"].unique().to_list())[:4]:
        d = (cs["sector"] == name).to_numpy().astype(float)
        r = cs["ret"].to_numpy()
        oracle = stats.linregress(d, r)
        row = factors.returns.filter((pl.col("date") == day) & (pl.col("factor_name") == f"sector:{name}")).row(
            0, named=True
        )
        assert row["factor_return"] == pytest.approx(r[d == 1].mean() - r[d == 0].mean(), abs=1e-14)
        assert row["factor_return"] == pytest.approx(oracle.slope, abs=1e-14)
        assert row["t_stat"] == pytest.approx(oracle.slope / oracle.stderr, rel=1e-10)
        assert row["p_value"] == pytest.approx(oracle.pvalue, rel=1e-10, abs=1e-14)
        assert row["r_squared"] == pytest.approx(oracle.rvalue**2, rel=1e-10)


def test_rows_fit_the_schema_and_every_missing_pair_has_a_reason(factors):
    """factor_return is never null (NOT NULL column); every (date, factor) is either a row or a diagnostic."""
    rows, diag = factors.returns, factors.diagnostics
    assert rows["factor_return"].null_count() == 0 and rows["factor_return"].is_finite().all()
    assert rows.select(pl.struct("date", "factor_name").is_duplicated().any()).item() is False
    both = rows.select("date", "factor_name").join(diag.select("date", "factor_name"), on=["date", "factor_name"])
    assert both.height == 0
    everything = pl.concat([rows.select("date", "factor_name"), diag.select("date", "factor_name")])
    assert everything.height == everything["date"].n_unique() * everything["factor_name"].n_unique()
    first_mom = diag.filter(pl.col("factor_name") == "momentum")
    assert first_mom.height >= 252 and first_mom["reason"].str.starts_with("no names").all()


def test_too_few_names_omits_the_rows_with_the_reason(market):
    """8 symbols < min_names 10: no market or style row at all, each (date, factor) diagnosed."""
    few = market["bars"].filter(pl.col("symbol").is_in([f"S{i:04d}" for i in range(8)]))
    out = factor_returns(few, market["sectors"], market["fundamentals"], market["splits"], PARAMS)
    assert out.returns.filter(~pl.col("factor_name").str.starts_with("sector:")).height == 0
    reasons = out.diagnostics.filter(pl.col("factor_name") == "size")["reason"]
    assert reasons.str.contains("too few names: 8 < min_names 10").sum() > 200
    no_fund = factor_returns(market["bars"], None, None, None, PARAMS)
    assert no_fund.returns.filter(pl.col("factor_name").is_in(["value", "size", "market"])).height == 0
    assert no_fund.returns.filter(pl.col("factor_name") == "momentum").height > 0
    assert no_fund.diagnostics.filter(pl.col("factor_name") == "value")["reason"].str.starts_with("no names").all()


def test_no_lookahead(market, factors):
    """Changing every bar, report and split after D leaves every factor row and diagnostic dated <= D as is."""
    cut = dt.date(2017, 6, 30)
    rng = np.random.default_rng(3)
    bars = (
        market["bars"]
        .with_columns(
            pl.when(pl.col("date") > cut)
            .then(pl.col(c) * pl.Series(np.exp(rng.normal(0, 0.05, market["bars"].height))))
            .otherwise(pl.col(c))
            for c in ("close", "adjusted_close")
        )
        .with_columns(volume=pl.when(pl.col("date") > cut).then(pl.col("volume") * 3).otherwise(pl.col("volume")))
    )
    fund = market["fundamentals"].with_columns(
        book_value_per_share=pl.when(pl.col("report_date") > cut).then(0.1).otherwise(pl.col("book_value_per_share"))
    )
    moved = factor_returns(bars, market["sectors"], fund, market["splits"].filter(pl.col("date") <= cut), PARAMS)
    for a, b in ((factors.returns, moved.returns), (factors.diagnostics, moved.diagnostics)):
        before = a.filter(pl.col("date") <= cut)
        assert before.equals(b.filter(pl.col("date") <= cut))
    assert not factors.returns.filter(pl.col("date") > cut).equals(moved.returns.filter(pl.col("date") > cut))


def _synthetic(n: int, seed: int, shift: float) -> pl.DataFrame:
    """Two sessions of characteristics; the second session's returns are shifted by ``shift``."""
    rng = np.random.default_rng(seed)
    d0, d1 = dt.date(2020, 1, 2), dt.date(2020, 1, 3)
    sym = [f"X{i:03d}" for i in range(n)]
    base = {
        c: rng.lognormal(0, 1, n)
        for c in ("momentum", "book_to_market", "volatility", "market_cap", "dollar_volume", "liquidity")
    }
    r1 = rng.normal(0, 0.02, n) + shift
    return pl.DataFrame(
        {
            "symbol": sym * 2,
            "date": [d0] * n + [d1] * n,
            "ret": np.r_[np.full(n, np.nan), r1],
            **{c: np.r_[v, v] for c, v in base.items()},
        }
    ).with_columns(pl.col("ret").fill_nan(None))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(10, 80), seed=st.integers(0, 10_000), shift=st.floats(-0.05, 0.05))
def test_long_short_factors_ignore_a_common_move(n: int, seed: int, shift: float):
    """Adding c to every return moves the market factor by c and leaves styles and sectors as they were
    (1e-12), t-statistics of the long-short regressions included."""
    sectors = pl.DataFrame({"symbol": [f"X{i:03d}" for i in range(n)], "sector": [f"s{i % 3}" for i in range(n)]})
    p = FactorParams(min_sector_names=2)
    a = factor_returns_from_characteristics(_synthetic(n, seed, 0.0), sectors, p).returns
    b = factor_returns_from_characteristics(_synthetic(n, seed, shift), sectors, p).returns
    joined = a.join(b, on=["date", "factor_name"], suffix="_b")
    assert joined.height == a.height == b.height == 1 + len(STYLES) + 3
    for row in joined.iter_rows(named=True):
        delta = shift if row["factor_name"] == "market" else 0.0
        assert row["factor_return_b"] == pytest.approx(row["factor_return"] + delta, abs=1e-12)
        if row["factor_name"] != "market":
            assert row["t_stat_b"] == pytest.approx(row["t_stat"], rel=1e-9, abs=1e-9)
