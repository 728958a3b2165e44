"""The spread of a session whose bars quote none: EDGE (Ardia, Guidotti & Kroencke 2024, via ``bidask``) from
the OHLC strictly before the session, else the default; quoted spreads kept; every row says which."""

from __future__ import annotations

import datetime as dt

import bidask
import numpy as np
import polars as pl
import pytest

from mqf_pipeline import calendar
from mqf_pipeline.execution.spread_estimate import (
    DEFAULT,
    EDGE_WINDOW_SESSIONS,
    ESTIMATED_EDGE,
    QUOTED,
    SPREAD_SOURCES,
    with_spreads,
)
from mqf_pipeline.stages.execution_inputs import session_market

DAYS = calendar.sessions(dt.date(2020, 1, 2), dt.date(2023, 12, 29))[:500]
W = EDGE_WINDOW_SESSIONS


def _simulated(
    symbol: str, spread: float, rng: np.random.Generator, steps: int = 390, vol: float = 0.01
) -> pl.DataFrame:
    """Daily OHLC of trades at the bid or the ask (each with probability 1/2) around an efficient log-price
    random walk of ``steps`` steps a session (daily volatility ``vol``); the bid-ask spread is ``spread`` (a
    fraction of the mid) throughout. No quoted spread."""
    n = len(DAYS)
    log_mid = np.log(50.0) + np.cumsum(rng.normal(0.0, vol / np.sqrt(steps), n * steps)).reshape(n, steps)
    trades = np.exp(log_mid) * (1.0 + rng.choice([-1.0, 1.0], size=log_mid.shape) * spread / 2.0)
    close = trades[:, -1]
    return pl.DataFrame(
        {
            "date": DAYS,
            "symbol": symbol,
            "open": trades[:, 0],
            "high": trades.max(axis=1),
            "low": trades.min(axis=1),
            "close": close,
            "adjusted_close": close,
            "volume": np.full(n, 1_000_000, dtype=np.int64),
            "spread_bps": pl.Series([None] * n, dtype=pl.Float64),
        }
    )


def _bars(spread: float = 0.005, symbols: int = 1, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.concat([_simulated(f"S{i}", spread, rng) for i in range(symbols)])


@pytest.mark.parametrize("true_bps", [50.0, 100.0])
def test_edge_recovers_a_known_spread(true_bps: float) -> None:
    """Oracle by simulation: 4 symbols x 479 estimated sessions with a constant spread S. The mean and the
    median of the 21-bar EDGE estimates are within 20% of S (measured, seed 0: mean -6.3% / -4.7% and median
    -3.2% / -3.3% at S = 50 / 100 bps; seeds 1-2: mean -4.8% to -5.5%. With 390 trades a session the observed
    range falls short of the true one, and a mean of square roots is below the root of the mean), and at
    least 90% of the sessions get an estimate (measured 96.8% / 100%; the rest are non-positive: the default)."""
    out = with_spreads(_bars(true_bps / 1e4, symbols=4, seed=0), default_bps=10.0)
    est = out.filter(pl.col("spread_source") == ESTIMATED_EDGE)["spread_bps"]
    assert est.len() >= 0.9 * 4 * (len(DAYS) - W)
    assert est.mean() == pytest.approx(true_bps, rel=0.20)
    assert est.median() == pytest.approx(true_bps, rel=0.20)
    first = out.filter(pl.int_range(pl.len()).over("symbol") < W)  # fewer than W bars before: the default
    assert set(first["spread_source"]) == {DEFAULT} and set(first["spread_bps"]) == {10.0}


def test_no_lookahead_and_the_same_estimate_whatever_history_was_loaded() -> None:
    """Bars on and after D changed: D's estimate (and every earlier one) is bit-identical; loading less
    history before D (but at least the window) changes nothing either."""
    bars = _bars(symbols=2)
    d = DAYS[200]
    shocked = bars.with_columns(
        pl.when(pl.col("date") >= d).then(pl.col(c) * f).otherwise(pl.col(c)).alias(c)
        for c, f in (("open", 1.7), ("high", 1.9), ("low", 1.5), ("close", 1.6))
    )
    base, other = with_spreads(bars, 10.0), with_spreads(shocked, 10.0)
    upto = pl.col("date") <= d
    assert (
        base.filter(upto)
        .select("symbol", "date", "spread_bps", "spread_source")
        .equals(other.filter(upto).select("symbol", "date", "spread_bps", "spread_source"))
    )
    assert not base.filter(pl.col("date") > d)["spread_bps"].equals(other.filter(pl.col("date") > d)["spread_bps"])
    short = with_spreads(bars.filter(pl.col("date") >= DAYS[150]), 10.0).filter(pl.col("date") >= DAYS[150 + W])
    long = base.filter(pl.col("date") >= DAYS[150 + W])
    assert short.select("symbol", "date", "spread_bps").equals(long.select("symbol", "date", "spread_bps"))
    assert set(short["spread_source"]) <= {ESTIMATED_EDGE, DEFAULT}


def test_each_estimate_is_edge_rolling_on_its_window_alone() -> None:
    """Every estimate equals ``bidask.edge_rolling`` run on just the 21 bars before the session, to the bit
    (the vectorised windows carry nothing from one window, or one symbol, to the next); a non-positive EDGE
    is the default."""
    bars = _bars(0.004, symbols=3, seed=4)
    out = with_spreads(bars, 10.0)
    rng = np.random.default_rng(0)
    for symbol in ("S0", "S1", "S2"):
        mine, est = bars.filter(pl.col("symbol") == symbol), out.filter(pl.col("symbol") == symbol)
        for i in rng.choice(np.arange(W, len(DAYS)), 40, replace=False):
            window = mine[int(i) - W : int(i)].select("open", "high", "low", "close").to_pandas()
            alone = float(bidask.edge_rolling(window, W, sign=True).iloc[-1])
            row = est.row(int(i), named=True)
            if alone > 0:
                assert (row["spread_source"], row["spread_bps"]) == (ESTIMATED_EDGE, alone * 1e4)
            else:
                assert (row["spread_source"], row["spread_bps"]) == (DEFAULT, 10.0)
    without_s0 = with_spreads(bars.filter(pl.col("symbol") != "S0"), 10.0)
    assert without_s0.equals(out.filter(pl.col("symbol") != "S0"))  # other symbols change nothing


def test_quoted_spreads_are_kept_and_close_only_rows_get_the_default() -> None:
    bars = _bars(symbols=2)
    quoted_days = pl.col("date").is_in(DAYS[100:110])
    mixed = bars.with_columns(
        spread_bps=pl.when((pl.col("symbol") == "S0") & quoted_days).then(7.5).otherwise(pl.col("spread_bps"))
    ).with_columns(  # a NaN quote is no quote
        spread_bps=pl.when((pl.col("symbol") == "S0") & (pl.col("date") == DAYS[120]))
        .then(float("nan"))
        .otherwise(pl.col("spread_bps"))
    )
    close_only = mixed.with_columns(
        pl.when(pl.col("symbol") == "S1").then(None).otherwise(pl.col(c)).alias(c) for c in ("open", "high", "low")
    )
    out = with_spreads(close_only, default_bps=12.5)
    s0 = out.filter((pl.col("symbol") == "S0") & quoted_days)
    assert set(s0["spread_source"]) == {QUOTED} and set(s0["spread_bps"]) == {7.5}
    nan_quote = out.filter((pl.col("symbol") == "S0") & (pl.col("date") == DAYS[120])).row(0, named=True)
    assert nan_quote["spread_source"] == ESTIMATED_EDGE and nan_quote["spread_bps"] > 0
    s1 = out.filter(pl.col("symbol") == "S1")
    assert set(s1["spread_source"]) == {DEFAULT} and set(s1["spread_bps"]) == {12.5}
    assert out["spread_bps"].null_count() == 0 and set(out["spread_source"]) <= set(SPREAD_SOURCES)
    with pytest.raises(ValueError, match="default_spread_bps"):
        with_spreads(bars, default_bps=-1.0)


def test_session_market_carries_the_spread_and_its_source() -> None:
    """The execution inputs price every session's spread (bps of mid) and say where it came from."""
    bars = _bars(symbols=2).with_columns(
        spread_bps=pl.when(pl.col("symbol") == "S0").then(4.0).otherwise(pl.col("spread_bps"))
    )
    market = session_market(bars, 20, 20, default_spread_bps=9.0)
    assert {"spread_bps", "spread_source", "adv", "sigma"} <= set(market.columns)
    assert market.height == bars.height and market["spread_bps"].null_count() == 0
    s0, s1 = market.filter(pl.col("symbol") == "S0"), market.filter(pl.col("symbol") == "S1")
    assert set(s0["spread_source"]) == {QUOTED} and set(s0["spread_bps"]) == {4.0}
    assert set(s1["spread_source"]) == {ESTIMATED_EDGE, DEFAULT}
    assert set(s1.filter(pl.col("spread_source") == DEFAULT)["spread_bps"]) == {9.0}
    expected = with_spreads(bars, 9.0).select("symbol", "date", "spread_bps", "spread_source")
    assert market.select("symbol", "date", "spread_bps", "spread_source").equals(expected)
    empty = session_market(bars.clear(), 20, 20)
    assert empty.schema["spread_source"] == pl.String and empty.height == 0
