"""Daily attribution, Carino linking and agent PnL: the identity (hypothesis), each part's formula, a linked
year on the simulator, the risk statistics, no lookahead, bad inputs."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqf_pipeline.attribution import (
    EXPOSURE_FACTORS,
    PARTS,
    AttributionParams,
    ExposureParams,
    agent_pnl,
    attribute_day,
    carino_factors,
    carino_link,
    characteristics,
    exposures,
    factor_returns_from_characteristics,
)
from mqf_pipeline.decisions.ensemble import ensemble
from mqf_pipeline.market.sim import MarketSimulator, SimulatorParams

DAY = dt.date(2021, 3, 3)
PREV = dt.date(2021, 3, 2)
SECTORS = ("s0", "s1", "s2")
BETAS = [f"beta_{f}" for f in (*EXPOSURE_FACTORS, "sector")]


def _synthetic(n: int, seed: int, missing_factor: bool):
    """A book of n symbols with returns, exposures of the previous session (one without), factor returns."""
    rng = np.random.default_rng(seed)
    syms = [f"Z{i:03d}" for i in range(n)]
    weights = pl.DataFrame({"symbol": syms, "weight": rng.normal(0.0, 0.05, n)})
    rets = pl.DataFrame({"date": [DAY] * n, "symbol": syms, "ret": rng.normal(0.0, 0.02, n)})
    exp = pl.DataFrame({"symbol": syms, "date": [PREV] * n, "alpha": rng.normal(0, 1e-3, n)}).with_columns(
        **{b: pl.Series(rng.normal(1.0 if b == "beta_market" else 0.0, 0.5, n)) for b in BETAS}
    )
    exp = exp.with_columns(
        pl.when(pl.col("symbol") == syms[0]).then(None).otherwise(pl.col(c)).alias(c) for c in ["alpha", *BETAS]
    )
    later = exp.with_columns(date=pl.lit(DAY), beta_market=pl.lit(50.0))  # known only at DAY's close: unused
    names = [*EXPOSURE_FACTORS, *(f"sector:{s}" for s in SECTORS)]
    if missing_factor:
        names.remove("value")
    frs = pl.DataFrame(
        {"date": [DAY] * len(names), "factor_name": names, "factor_return": rng.normal(0, 0.01, len(names))}
    )
    sectors = pl.DataFrame({"symbol": syms, "sector": [SECTORS[i % 3] for i in range(n)]})
    return weights, rets, pl.concat([exp, later]), frs, sectors


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 100_000), missing_factor=st.booleans())
def test_parts_sum_to_the_total_and_each_is_its_formula(n: int, seed: int, missing_factor: bool):
    """total = sum w r; market + styles + sector + alpha + idiosyncratic = total (1e-10, and ~1e-17 here);
    each part = sum_i w_i beta_i f (a numpy loop oracle, 1e-14); idiosyncratic = sum w (r - alpha - beta'f)
    (1e-12); exposures dated the attributed day are not used; the unexposed symbol's return is idiosyncratic."""
    weights, rets, exp, frs, sectors = _synthetic(n, seed, missing_factor)
    out = attribute_day(DAY, weights, rets, exp, frs, sectors)
    row = out.row.row(0, named=True)
    w, r = weights["weight"].to_numpy(), rets["ret"].to_numpy()
    e = exp.filter(pl.col("date") == PREV).fill_null(0.0)
    f = dict(frs.select("factor_name", "factor_return").iter_rows())
    sec_f = np.array([f[f"sector:{s}"] for s in sectors["sector"]])
    assert row["total_portfolio_return"] == pytest.approx(float(np.dot(w, r)), abs=1e-15)
    parts = sum(row[f"{p}_contribution"] for p in PARTS)
    assert abs(parts - row["total_portfolio_return"]) <= 1e-10
    for name in EXPOSURE_FACTORS:
        expected = float(np.dot(w, e[f"beta_{name}"].to_numpy())) * f.get(name, 0.0)
        assert row[f"{name}_contribution"] == pytest.approx(expected, abs=1e-14)
    assert row["sector_contribution"] == pytest.approx(
        float(np.sum(w * e["beta_sector"].to_numpy() * sec_f)), abs=1e-14
    )
    assert row["alpha_contribution"] == pytest.approx(float(np.dot(w, e["alpha"].to_numpy())), abs=1e-15)
    systematic = sum(e[f"beta_{k}"].to_numpy() * f.get(k, 0.0) for k in EXPOSURE_FACTORS)
    eps = r - e["alpha"].to_numpy() - systematic - e["beta_sector"].to_numpy() * sec_f
    assert row["idiosyncratic_contribution"] == pytest.approx(float(np.dot(w, eps)), abs=1e-12)
    assert row["portfolio_beta"] == pytest.approx(float(np.dot(w, e["beta_market"].to_numpy())), abs=1e-14)
    first = out.contributions.filter(pl.col("symbol") == "Z000").row(0, named=True)
    assert not first["has_exposure"] and first["idiosyncratic"] == pytest.approx(first["pnl"], abs=1e-18)
    assert ("Z000" in out.diagnostics["symbol"].to_list()) and (
        any("value" in s for s in out.diagnostics["reason"]) == missing_factor
    )
    pnl = out.contributions["pnl"].to_numpy()
    assert row["top_contributor_pnl"] == pnl.max() and row["worst_detractor_pnl"] == pnl.min()


def _linked_oracle(daily: pl.DataFrame, names: list[str]) -> dict[str, float]:
    """Carino's closed form, element by element with math.log (independent of numpy's log1p)."""
    totals = daily["total_portfolio_return"].to_list()
    period = math.prod(1.0 + x for x in totals) - 1.0
    big_k = math.log(1.0 + period) / period
    k = [math.log(1.0 + x) / x if x != 0 else 1.0 for x in totals]
    return {n: sum(c * kt for c, kt in zip(daily[n].to_list(), k, strict=True)) / big_k for n in names}


def test_carino_links_to_the_compounded_return():
    """Random daily parts summing to each day's total, one zero day: linked parts sum to prod(1 + R) - 1
    (1e-10) and equal the closed form (1e-12)."""
    rng = np.random.default_rng(8)
    parts = rng.normal(0.0003, 0.006, (252, len(PARTS)))
    parts[17] = 0.0
    names = [f"{p}_contribution" for p in PARTS]
    daily = pl.DataFrame({n: parts[:, j] for j, n in enumerate(names)}).with_columns(
        total_portfolio_return=pl.sum_horizontal(names)
    )
    linked = carino_link(daily).row(0, named=True)
    compounded = float(np.prod(1.0 + daily["total_portfolio_return"].to_numpy()) - 1.0)
    assert linked["total_portfolio_return"] == pytest.approx(compounded, abs=1e-12)
    assert abs(sum(linked[n] for n in names) - compounded) <= 1e-10
    for name, value in _linked_oracle(daily, names).items():
        assert linked[name] == pytest.approx(value, abs=1e-12)
    assert carino_factors(np.array([0.0]))[0] == 1.0
    with pytest.raises(ValueError, match="> -1"):
        carino_factors(np.array([0.01, -1.0]))


@pytest.fixture(scope="module")
def fund():
    """The simulator (100 names), its factor returns and exposures; a book of 30 names rebalanced monthly."""
    sim = MarketSimulator(SimulatorParams(n_symbols=100))
    start, end = dt.date(2017, 1, 3), dt.date(2020, 12, 31)
    chars = characteristics(
        sim.bars(start, end),
        sim.fundamentals(dt.date(2006, 1, 3), end),
        sim.corporate_actions(dt.date(2006, 1, 3), end),
    )
    sectors = sim.universe().select("symbol", "sector")
    frs = factor_returns_from_characteristics(chars, sectors).returns
    rets = chars.select("date", "symbol", "ret")
    year = rets.filter(pl.col("date") >= dt.date(2020, 1, 1))["date"].unique().sort()
    exp = exposures(rets, frs, sectors, ExposureParams(hac=False), start=dt.date(2019, 12, 1))
    return {"rets": rets, "frs": frs, "exp": exp, "sectors": sectors, "year": year}


def _book(day: dt.date) -> pl.DataFrame:
    rng = np.random.default_rng(day.month)
    syms = sorted(rng.choice(100, 30, replace=False))
    return pl.DataFrame({"symbol": [f"S{i:04d}" for i in syms], "weight": rng.dirichlet(np.ones(30)) * 1.2 - 0.02})


def test_a_linked_year_of_simulated_attributions_sums_to_the_compounded_return(fund):
    """252 sessions of 2020 attributed one by one, then linked: the linked parts sum to the book's
    compounded return (1e-10) and equal Carino's closed form (1e-12)."""
    rows = [
        attribute_day(d, _book(d), fund["rets"], fund["exp"], fund["frs"], fund["sectors"]).row
        for d in fund["year"].to_list()
    ]
    daily = pl.concat(rows)
    assert daily.height == 253 and daily["idiosyncratic_contribution"].is_finite().all()
    names = [f"{p}_contribution" for p in PARTS]
    linked = carino_link(daily).row(0, named=True)
    compounded = float(np.prod(1.0 + daily["total_portfolio_return"].to_numpy()) - 1.0)
    assert abs(sum(linked[n] for n in names) - compounded) <= 1e-10
    for name, value in _linked_oracle(daily, names).items():
        assert linked[name] == pytest.approx(value, abs=1e-12)


def test_risk_statistics_follow_their_stated_conventions(fund):
    """Volatility, tracking error and information ratio of the held weights over the 63 sessions ending at D,
    annualised with 252 (numpy oracle, 1e-12); top contributor and worst detractor by w r."""
    day = fund["year"][100]
    book = _book(day)
    out = attribute_day(day, book, fund["rets"], fund["exp"], fund["frs"], fund["sectors"], AttributionParams())
    row = out.row.row(0, named=True)
    sessions = fund["rets"].filter(pl.col("date") <= day)["date"].unique().sort().tail(63)
    wide = (
        fund["rets"]
        .filter(pl.col("date").is_in(sessions.implode()))
        .pivot(on="symbol", index="date", values="ret")
        .sort("date")
    )
    rp = wide.select(book["symbol"].to_list()).fill_null(0.0).to_numpy() @ book["weight"].to_numpy()
    mkt = wide.select("date").join(fund["frs"].filter(pl.col("factor_name") == "market"), on="date", how="left")
    active = rp - mkt["factor_return"].to_numpy()
    assert row["portfolio_volatility"] == pytest.approx(np.std(rp, ddof=1) * np.sqrt(252), rel=1e-12)
    assert row["tracking_error"] == pytest.approx(np.std(active, ddof=1) * np.sqrt(252), rel=1e-12)
    assert row["information_ratio"] == pytest.approx(active.mean() * 252 / row["tracking_error"], rel=1e-12)
    pnl = out.contributions.select("symbol", "pnl").sort("pnl")
    assert (row["worst_detractor_symbol"], row["worst_detractor_pnl"]) == pnl.row(0)
    assert (row["top_contributor_symbol"], row["top_contributor_pnl"]) == pnl.row(-1)


def test_no_lookahead(fund):
    """Returns after D, factor returns after D and exposures dated D or later change nothing for D."""
    day = fund["year"][50]
    base = attribute_day(day, _book(day), fund["rets"], fund["exp"], fund["frs"], fund["sectors"])
    rets = fund["rets"].with_columns(ret=pl.when(pl.col("date") > day).then(0.5).otherwise(pl.col("ret")))
    frs = fund["frs"].with_columns(
        factor_return=pl.when(pl.col("date") > day).then(-0.3).otherwise(pl.col("factor_return"))
    )
    exp = fund["exp"].with_columns(
        beta_market=pl.when(pl.col("date") >= day).then(9.0).otherwise(pl.col("beta_market"))
    )
    moved = attribute_day(day, _book(day), rets, exp, frs, fund["sectors"])
    assert base.row.equals(moved.row) and base.contributions.equals(moved.contributions)


def test_bad_inputs_are_reported_or_refused(fund):
    day = fund["year"][10]
    book = pl.concat([_book(day), pl.DataFrame({"symbol": ["NOPE"], "weight": [0.05]})])
    out = attribute_day(day, book, fund["rets"], fund["exp"], fund["frs"], fund["sectors"])
    assert "NOPE" not in out.contributions["symbol"].to_list()
    assert out.diagnostics.filter(pl.col("symbol") == "NOPE")["reason"].item().startswith("no return on")
    with pytest.raises(ValueError, match="duplicated"):
        attribute_day(day, pl.concat([book, book]), fund["rets"], fund["exp"], fund["frs"], fund["sectors"])
    empty = attribute_day(day, book.clear(), fund["rets"], fund["exp"], fund["frs"], fund["sectors"]).row
    assert empty["total_portfolio_return"].item() == 0.0 and empty["top_contributor_symbol"].item() is None


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 100_000), n_agents=st.integers(1, 6), n_symbols=st.integers(1, 8))
def test_agent_shares_sum_to_the_position_pnl_with_the_ensemble_weights(seed, n_agents, n_symbols):
    """Each position's agent shares sum to its PnL (1e-16 absolute on PnLs ~1e-3); the weights are the
    meta-brain ensemble's own (decisions.ensemble agent_results, 1e-15); factor-adjusted return = r - beta'f."""
    rng = np.random.default_rng(seed)
    agents = [f"agent{k}" for k in range(n_agents)]
    syms = [f"Q{i}" for i in range(n_symbols)]
    grid = [(s, a) for s in syms for a in agents]
    conf = rng.uniform(0.0, 1.0, len(grid))
    conf[0] = 0.0
    weights = dict(zip(agents, rng.uniform(0.05, 0.4, n_agents), strict=True))
    signals = pl.DataFrame(
        {
            "symbol": [s for s, _ in grid],
            "agent_name": [a for _, a in grid],
            "mu_hat": rng.normal(0, 0.001, len(grid)),
            "sigma_hat": rng.uniform(0.01, 0.03, len(grid)),
            "confidence": conf,
            "agent_weight": [weights[a] for _, a in grid],
        }
    )
    positions = pl.DataFrame(
        {
            "symbol": syms,
            "ret": rng.normal(0, 0.02, n_symbols),
            "pnl": rng.normal(0, 1e-3, n_symbols),
            "factor_part": rng.normal(0, 0.01, n_symbols),
        }
    )
    out = agent_pnl(signals, positions, cycle_id="c1")
    sums = out.rows.group_by("symbol").agg(pl.col("pnl_contribution").sum()).join(positions, on="symbol")
    attributed = sums.join(out.unattributed, on="symbol", how="anti")
    if attributed.height:
        assert (attributed["pnl_contribution"] - attributed["pnl"]).abs().max() <= 1e-16
    if n_agents == 1:  # Q0's only agent has confidence 0: nobody to attribute its PnL to
        assert out.unattributed["symbol"].to_list() == ["Q0"]
        assert out.rows.filter(pl.col("symbol") == "Q0")["pnl_contribution"].is_null().all()
    oracle_in = signals.rename({"agent_name": "agent", "mu_hat": "mu", "sigma_hat": "sigma"}).with_columns(
        signal=pl.lit(0.0), horizon_days=pl.lit(1)
    )
    for row in ensemble(oracle_in, weights).iter_rows(named=True):
        for agent, res in json.loads(row["agent_results"]).items():
            mine = out.rows.filter((pl.col("symbol") == row["symbol"]) & (pl.col("agent_name") == agent))
            assert mine["ensemble_weight"].item() == pytest.approx(res["weight"], abs=1e-15)
    joined = out.rows.join(positions, on="symbol")
    np.testing.assert_allclose(joined["factor_adjusted_return"], joined["ret"] - joined["factor_part"], atol=0)
    assert out.rows["cycle_id"].unique().to_list() == ["c1"]
