"""Features (seed 000 §4.4) against TA-Lib, numpy and scipy, plus no-lookahead and properties.

Tolerances (stated per check):

* TA-Lib indicators (SMA, EMA, RSI, MACD, BBANDS, ATR, OBV, ADX): ``rtol = 1e-10`` where TA-Lib is
  finite and null exactly where TA-Lib returns NaN. Outputs that are differences of price-level
  quantities and can cross zero (the MACD line, signal and histogram) also get an absolute
  tolerance of 1e-12 x the symbol's largest price, and %B (a ratio of such differences) 1e-10;
  without it a value within ~1e-4 of zero fails on rounding alone.
* Historical volatility, returns, momentum and volume ratios vs numpy: ``rtol = 1e-10``.
* Trend t-statistic vs ``scipy.stats.linregress``: ``rtol = 1e-8``, ``atol = 1e-8`` (different but
  exact formulas; the t-statistic is a ratio of differences).
* No-lookahead and symbol independence: exact equality.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from scipy import stats

from mqf_pipeline.features import (
    FEATURE_VERSION,
    adjust_ohlc,
    compute_features,
    feature_names,
    indicator_exprs,
    to_long,
    warmup_sessions,
)
from mqf_pipeline.features.indicators import INPUTS, LOOKBACK
from mqf_pipeline.storage.schema import table_spec

RTOL = 1e-10
START = dt.date(2015, 1, 2)


def _walk(rng: np.random.Generator, n: int, price: float, vol: float, drift: float = 2e-4) -> dict[str, np.ndarray]:
    """Random-walk OHLCV with consistent high/low and integer volumes (float64 prices)."""
    close = price * np.exp(np.cumsum(rng.normal(drift, vol, n)))
    open_ = close * np.exp(rng.normal(0.0, vol / 3, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, vol / 2, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, vol / 2, n)))
    volume = rng.integers(100_000, 2_000_000, n).astype(np.float64)
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def _series() -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(20240611)
    out = {f"RW{i}": _walk(rng, 600, 30.0 + 40 * i, 0.01 + 0.01 * i) for i in range(3)}
    gaps = _walk(rng, 400, 80.0, 0.015)
    gaps["volume"][rng.random(400) < 0.1] = 0.0  # scattered sessions without trades
    gaps["volume"][200:260] = 0.0  # a long halt: SMA(volume) reaches 0
    out["GAPV"] = gaps
    flat = np.full(300, 25.0)
    out["FLAT"] = {"open": flat, "high": flat, "low": flat, "close": flat, "volume": np.full(300, 5e5)}
    pause = _walk(rng, 400, 60.0, 0.02)
    for col in ("open", "high", "low", "close"):
        pause[col][150:230] = pause["close"][149]  # 80 sessions with no price change
    out["PAUSE"] = pause
    late = _walk(rng, 300, 45.0, 0.02)
    for col in ("open", "high", "low", "close"):
        late[col][:40] = late["close"][40]  # flat start: ADX seeded from undefined DX, then moves
    out["LATE"] = late
    out["PENNY"] = _walk(rng, 300, 0.002, 0.003)  # variances far below the old absolute 1e-8 band
    out["QUIET"] = _walk(rng, 300, 100.0, 2e-5, drift=0.0)  # var / mean^2 ~ 1e-9: mean(x^2) - mean^2 would fail
    out["SHORT"] = _walk(rng, 20, 40.0, 0.02)
    out["TINY"] = _walk(rng, 1, 40.0, 0.02)
    return out


SERIES = _series()


def _bars() -> pl.DataFrame:
    """Canonical bars; raw OHLC differs from adjusted by a dividend-like factor on the RW symbols."""
    frames = []
    for i, (sym, s) in enumerate(SERIES.items()):
        n = s["close"].size
        factor = np.where(np.arange(n) < n // 2, 1.25, 1.0) if sym.startswith("RW") else np.ones(n)
        start = START + dt.timedelta(days=7 * i)  # symbols start on different dates
        frames.append(
            pl.DataFrame(
                {
                    "date": pl.date_range(start, start + dt.timedelta(days=n - 1), eager=True),
                    "symbol": sym,
                    "open": s["open"] * factor,
                    "high": s["high"] * factor,
                    "low": s["low"] * factor,
                    "close": s["close"] * factor,
                    "adjusted_close": s["close"],
                    "volume": s["volume"].astype(np.int64),
                    "spread_bps": 5.0,
                }
            )
        )
    return pl.concat(frames)


BARS = _bars()


@pytest.fixture(scope="module")
def wide() -> pl.DataFrame:
    shuffled = BARS.sample(fraction=1.0, shuffle=True, seed=3)
    return compute_features(shuffled)


def _adjusted(sym: str) -> dict[str, np.ndarray]:
    """Adjusted inputs as TA-Lib sees them: raw OHLC x (adjusted_close / close), float64."""
    b = BARS.filter(pl.col("symbol") == sym).sort("date")
    factor = (b["adjusted_close"] / b["close"]).to_numpy()
    out = {c: b[c].to_numpy() * factor for c in ("open", "high", "low")}
    out["close"] = b["adjusted_close"].to_numpy()
    out["volume"] = b["volume"].to_numpy().astype(np.float64)
    return out


def _got(wide: pl.DataFrame, sym: str, name: str) -> np.ndarray:
    col = wide.filter(pl.col("symbol") == sym).sort("date")[name]
    assert col.is_nan().sum() == 0, f"{name}: NaN instead of null"
    return col.to_numpy().astype(np.float64)  # null -> nan


def _assert_matches(got: np.ndarray, ref: np.ndarray, label: str, rtol: float = RTOL, atol: float = 0.0) -> None:
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref), err_msg=f"{label}: null pattern")
    defined = ~np.isnan(ref)
    np.testing.assert_allclose(got[defined], ref[defined], rtol=rtol, atol=atol, err_msg=label)


def _talib_reference(x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    h, lo, c, v = (x[k] for k in ("high", "low", "close", "volume"))
    ref = {f"sma_{n}": talib.SMA(c, n) for n in (5, 10, 20, 50, 200)}
    ref |= {f"ema_{n}": talib.EMA(c, n) for n in (12, 26, 50)}
    ref["rsi_14"] = talib.RSI(c, 14)
    ref["macd"], ref["macd_signal"], ref["macd_hist"] = talib.MACD(c, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    width = upper - lower
    with np.errstate(invalid="ignore", divide="ignore"):
        ref |= {
            "bb_upper": upper,
            "bb_middle": middle,
            "bb_lower": lower,
            "bb_pctb": np.where(width > 0, (c - lower) / width, np.nan),
            "bb_bandwidth": width / middle,
        }
    ref["atr_14"] = talib.ATR(h, lo, c, 14)
    ref["obv"] = talib.OBV(c, v)
    ref["adx_14"] = talib.ADX(h, lo, c, 14)
    return ref


TALIB_FEATURES = [
    *(f"sma_{n}" for n in (5, 10, 20, 50, 200)),
    *(f"ema_{n}" for n in (12, 26, 50)),
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "bb_pctb",
    "bb_bandwidth",
    "atr_14",
    "obv",
    "adx_14",
]


@pytest.mark.parametrize("name", TALIB_FEATURES)
def test_agrees_with_talib(wide: pl.DataFrame, name: str) -> None:
    """rtol 1e-10 where TA-Lib is finite (atol only for zero-crossing MACD outputs and %B); null where NaN."""
    for sym in SERIES:
        x = _adjusted(sym)
        ref = _talib_reference(x)[name]
        atol = 0.0
        if name.startswith("macd"):
            atol = 1e-12 * float(np.max(x["close"]))
        elif name == "bb_pctb":
            atol = 1e-10
        _assert_matches(_got(wide, sym, name), ref, f"{sym} {name}", atol=atol)


def test_talib_edge_cases_are_exercised(wide: pl.DataFrame) -> None:
    """The special series hit the branches they are there for (so agreement above means something)."""
    assert np.all(_got(wide, "FLAT", "rsi_14")[14:] == 0.0)  # TA-Lib: RSI 0 when gain + loss is 0
    assert np.all(_got(wide, "FLAT", "adx_14")[27:] == 0.0)
    assert np.all(_got(wide, "FLAT", "bb_bandwidth")[19:] == 0.0)
    assert np.all(np.isnan(_got(wide, "FLAT", "bb_pctb")))  # bands coincide: %B undefined
    assert np.all(np.isnan(_got(wide, "PAUSE", "bb_pctb")[170:230]))
    # TA-Lib 0.8 has no absolute 1e-8 zero bands: sub-cent and very quiet series keep their bands
    assert np.all(_got(wide, "PENNY", "bb_bandwidth")[19:] > 0.0)
    assert np.all(_got(wide, "QUIET", "bb_bandwidth")[19:] < 1e-3)
    ratio = _got(wide, "GAPV", "volume_ratio_20")
    assert np.isnan(ratio[240]) and np.isfinite(ratio[100])
    assert np.all(np.isnan(_got(wide, "SHORT", "sma_50"))) and np.isfinite(_got(wide, "SHORT", "sma_20")[19])
    tiny = wide.filter(pl.col("symbol") == "TINY")
    assert tiny.height == 1 and tiny["obv"].item() == SERIES["TINY"]["volume"][0]


def _rolling(x: np.ndarray, n: int, fn) -> np.ndarray:
    out = np.full(x.size, np.nan)
    if x.size >= n:
        out[n - 1 :] = [fn(w) for w in np.lib.stride_tricks.sliding_window_view(x, n)]
    return out


def test_volatility_returns_and_volume_ratio_vs_numpy(wide: pl.DataFrame) -> None:
    """hvol = std(ddof=1) of log returns x sqrt(252); simple returns; 12-1 momentum; volume / SMA: rtol 1e-10."""
    for sym in SERIES:
        x = _adjusted(sym)
        c, v = x["close"], x["volume"]
        log_ret = np.concatenate(([np.nan], np.log(c[1:] / c[:-1])))
        for n in (21, 63):
            ref = _rolling(log_ret, n, lambda w: np.std(w, ddof=1) * math.sqrt(252))
            _assert_matches(_got(wide, sym, f"hvol_{n}"), ref, f"{sym} hvol_{n}", atol=1e-12)
        for h in (1, 5, 21, 63, 252):
            ref = np.full(c.size, np.nan)
            ref[h:] = c[h:] / c[:-h] - 1.0
            _assert_matches(_got(wide, sym, f"ret_{h}d"), ref, f"{sym} ret_{h}d")
        ref = np.full(c.size, np.nan)
        ref[252:] = c[231:-21] / c[:-252] - 1.0
        _assert_matches(_got(wide, sym, "mom_12_1"), ref, f"{sym} mom_12_1")
        for n in (20, 50):
            avg = _rolling(v, n, np.mean)
            with np.errstate(invalid="ignore", divide="ignore"):
                ref = np.where(avg != 0, v / avg, np.nan)
            _assert_matches(_got(wide, sym, f"volume_ratio_{n}"), ref, f"{sym} volume_ratio_{n}")


def _tstat(window: np.ndarray) -> float:
    if np.ptp(window) == 0:
        return math.nan
    fit = stats.linregress(np.arange(window.size, dtype=np.float64), window)
    return fit.slope / fit.stderr


def test_trend_strength_vs_scipy(wide: pl.DataFrame) -> None:
    """trend_strength = slope / stderr of linregress(arange(63), log close): rtol 1e-8, atol 1e-8."""
    for sym in SERIES:
        logc = np.log(_adjusted(sym)["close"])
        ref = _rolling(logc, 63, _tstat)
        _assert_matches(_got(wide, sym, "trend_strength"), ref, f"{sym} trend_strength", rtol=1e-8, atol=1e-8)


def test_lookback_table_matches_first_defined_row(wide: pl.DataFrame) -> None:
    rw = wide.filter(pl.col("symbol") == "RW0").sort("date")
    for name, first in LOOKBACK.items():
        col = rw[name]
        assert col[first] is not None and (first == 0 or col[first - 1] is None), name
        assert col[first:].null_count() == 0, name


def test_no_lookahead() -> None:
    """Perturbing every bar after D leaves every feature at dates <= D unchanged (exactly)."""
    cut = START + dt.timedelta(days=250)
    rng = np.random.default_rng(5)
    after = pl.col("date") > cut
    noise = pl.Series(rng.lognormal(0.0, 0.05, BARS.height))
    perturbed = BARS.with_columns(
        *(pl.when(after).then(pl.col(c) * noise).otherwise(pl.col(c)).alias(c) for c in ("open", "close")),
        pl.when(after).then(pl.col("high") * 1.07).otherwise(pl.col("high")).alias("high"),
        pl.when(after).then(pl.col("low") * 0.93).otherwise(pl.col("low")).alias("low"),
        pl.when(after).then(pl.col("adjusted_close") * noise * 1.01).otherwise(pl.col("adjusted_close")),
        pl.when(after).then(pl.col("volume") * 3 + 7).otherwise(pl.col("volume")).alias("volume"),
    )
    base = compute_features(BARS).filter(pl.col("date") <= cut)
    moved = compute_features(perturbed).filter(pl.col("date") <= cut)
    assert base.height > 1000
    assert_frame_equal(base, moved, check_exact=True)


def test_symbols_are_independent(wide: pl.DataFrame) -> None:
    """A symbol's features do not depend on which other symbols are in the frame (exactly)."""
    alone = compute_features(BARS.filter(pl.col("symbol") == "RW1"))
    assert_frame_equal(alone, wide.filter(pl.col("symbol") == "RW1"), check_exact=True)


def test_indicator_exprs_match_compute_features(wide: pl.DataFrame) -> None:
    """The inlined expressions (running window sums) agree with the staged evaluation: rtol 1e-8, atol 1e-9.

    Running sums lose a little more than per-window sums on the trend t-statistic and on values
    near zero (MACD histogram, %B); everything else agrees to ~1e-13.
    """
    adjusted = adjust_ohlc(BARS).select("date", "symbol", *INPUTS).sort("symbol", "date")
    exprs = indicator_exprs()
    assert list(exprs) == feature_names()
    inline = adjusted.select("date", "symbol", *(e.alias(n) for n, e in exprs.items()))
    assert_frame_equal(inline, wide, check_exact=False, rel_tol=1e-8, abs_tol=1e-9)


def test_adjust_ohlc_scales_by_row_factor_and_splits_volume() -> None:
    bars = pl.DataFrame(
        {
            "date": [dt.date(2024, 1, d) for d in (2, 3, 4, 5)],
            "symbol": ["A"] * 4,
            "open": [10.0, 20.0, 10.0, 10.0],
            "high": [11.0, 22.0, 11.0, 11.0],
            "low": [9.0, 18.0, 9.0, 9.0],
            "close": [10.0, 20.0, 10.0, 10.0],
            "adjusted_close": [4.0, 8.0, 9.0, 10.0],
            "volume": [100, 100, 200, 200],
        }
    )
    splits = pl.DataFrame(
        {
            "date": [dt.date(2024, 1, 4), dt.date(2024, 1, 3), dt.date(2024, 1, 4)],
            "symbol": ["A", "A", "B"],
            "action_type": ["SPLIT", "DIVIDEND", "SPLIT"],
            "value": [2.0, 0.5, 3.0],
        }
    )
    out = adjust_ohlc(bars, splits)
    assert out["close"].to_list() == [4.0, 8.0, 9.0, 10.0]
    assert out["high"].to_list() == pytest.approx([4.4, 8.8, 9.9, 11.0])
    assert out["low"].to_list() == pytest.approx([3.6, 7.2, 8.1, 9.0])
    assert out["volume"].to_list() == [200.0, 200.0, 200.0, 200.0]  # pre-split volume in today's shares
    assert adjust_ohlc(bars)["volume"].to_list() == [100.0, 100.0, 200.0, 200.0]
    assert adjust_ohlc(bars.with_columns(pl.lit(0.0).alias("close")))["open"].null_count() == 4


def test_to_long_schema_nulls_and_dates(wide: pl.DataFrame) -> None:
    long = to_long(wide)
    assert long.schema == pl.Schema(table_spec("features").columns)
    assert long["value"].null_count() == 0
    assert long.height == sum(wide[n].count() for n in feature_names())
    assert set(long["feature_version"].unique()) == {FEATURE_VERSION}
    assert long.select(pl.struct("date", "symbol", "feature").is_duplicated().any()).item() is False
    day = START + dt.timedelta(days=400)
    one_day = to_long(wide, dates=[day])
    assert set(one_day["date"].unique()) == {day}
    rw0 = one_day.filter(pl.col("symbol") == "RW0")
    assert rw0.height == len(feature_names())


def test_compute_features_rejects_duplicates_and_nulls_non_finite() -> None:
    with pytest.raises(ValueError, match="duplicated"):
        compute_features(pl.concat([BARS.head(5), BARS.head(1)]))
    rw = BARS.filter(pl.col("symbol") == "RW0")
    broken = rw.with_columns(
        pl.when(pl.int_range(pl.len()) == 300).then(0.0).otherwise(pl.col("adjusted_close")).alias("adjusted_close")
    )
    out = compute_features(broken)
    values = out.select(feature_names())
    assert not values.select(pl.any_horizontal(pl.all().is_nan() | pl.all().is_infinite()).any()).item()
    assert out["ret_1d"][301] is None and out["sma_5"][299] is not None
    gap = rw.with_columns(
        pl.when(pl.int_range(pl.len()) == 300).then(None).otherwise(pl.col("adjusted_close")).alias("adjusted_close")
    )
    out = compute_features(gap)
    assert not out.select(feature_names()).select(pl.any_horizontal(pl.all().is_nan()).any()).item()
    sma5 = out["sma_5"]
    assert sma5[299] is not None and sma5[300:305].null_count() == 5 and sma5[305] is not None


def test_warmup_sessions_history_suffices() -> None:
    """With warmup_sessions() bars before a date every feature is defined; recursive ones agree ~1e-6."""
    n_warm = warmup_sessions()
    assert n_warm >= 252
    rng = np.random.default_rng(11)
    s = _walk(rng, 1000, 50.0, 0.02)
    n = s["close"].size
    bars = pl.DataFrame(
        {
            "date": pl.date_range(START, START + dt.timedelta(days=n - 1), eager=True),
            "symbol": "W",
            **{c: s[c] for c in ("open", "high", "low", "close")},
            "adjusted_close": s["close"],
            "volume": s["volume"].astype(np.int64),
        }
    )
    full = compute_features(bars).tail(1)
    short = compute_features(bars.tail(n_warm + 1)).tail(1)
    for name in feature_names():
        assert short[name].item() is not None, name
        if name == "obv":  # a level relative to the first bar: never converges
            continue
        assert short[name].item() == pytest.approx(full[name].item(), rel=1e-5, abs=1e-9), name


prices = st.lists(st.floats(0.5, 2.0), min_size=2, max_size=60).map(lambda r: 20.0 * np.cumprod(r))


@settings(max_examples=40, deadline=None)
@given(closes=prices, data=st.data())
def test_properties(closes: np.ndarray, data: st.DataObject) -> None:
    """RSI in [0, 100]; %B finite where defined; OBV changes by +volume, -volume or 0."""
    n = closes.size
    flat = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    closes = np.where(flat, np.round(closes, 0), closes)  # ties exercise the "unchanged" branch
    volume = np.array(data.draw(st.lists(st.integers(0, 10**7), min_size=n, max_size=n)), dtype=np.int64)
    bars = pl.DataFrame(
        {
            "date": pl.date_range(START, START + dt.timedelta(days=n - 1), eager=True),
            "symbol": "H",
            "open": closes,
            "high": closes * 1.01,
            "low": closes * 0.99,
            "close": closes,
            "adjusted_close": closes,
            "volume": volume,
        }
    )
    out = compute_features(bars)
    rsi = out["rsi_14"].drop_nulls()
    assert ((rsi >= 0) & (rsi <= 100)).all()
    pctb = out["bb_pctb"].drop_nulls()
    assert pctb.is_finite().all()
    obv = out["obv"].to_numpy()
    assert obv[0] == volume[0]
    step = np.diff(obv)
    v = volume[1:].astype(np.float64)
    assert np.all((step == v) | (step == -v) | (step == 0))
    up, down = np.diff(closes) > 0, np.diff(closes) < 0
    np.testing.assert_array_equal(step[up], v[up])
    np.testing.assert_array_equal(step[down], -v[down])
