"""Features bench: every feature via polars expressions vs a TA-Lib per-symbol loop, same run.

Builds random-walk bars (default 500 symbols x 1,260 sessions, with a dividend-style adjustment
factor), then times :func:`mqf_pipeline.features.compute_features` against a loop over symbols
calling TA-Lib (SMA, EMA, RSI, MACD, BBANDS, ATR, OBV, ADX, STDDEV, LINEARREG_SLOPE, VAR) plus
numpy for returns, which produces the same wide frame. Repetitions alternate between the two so
machine load affects both alike; the best and median of each are reported, and the two outputs are
compared (max relative difference). Wall and process CPU time are both recorded (CPU time is less
sensitive to other load on the machine). Goal: polars <= 1.5x TA-Lib (wall, best of the reps).
Writes bench/results/features.json.

    .venv/bin/python bench/features.py [--symbols 500] [--sessions 1260] [--reps 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import talib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import report  # noqa: E402
from mqf_pipeline.features import compute_features, feature_names  # noqa: E402
from mqf_pipeline.features import indicators as ind  # noqa: E402

GOAL_RATIO = 1.5


def random_bars(n_symbols: int, n_sessions: int, seed: int = 7) -> pl.DataFrame:
    """Random-walk OHLCV bars in the canonical layout, sorted by (symbol, date)."""
    rng = np.random.default_rng(seed)
    shape = (n_symbols, n_sessions)
    adj = 50.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.02, shape), axis=1))
    factor = np.exp(np.cumsum(np.where(rng.random(shape) < 0.016, -0.005, 0.0)[:, ::-1], axis=1)[:, ::-1])
    close = adj / factor
    open_ = close * np.exp(rng.normal(0.0, 0.006, shape))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.008, shape)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.008, shape)))
    volume = np.round(np.exp(rng.normal(13.0, 0.5, shape))).astype(np.int64)
    dates = np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-01-01") + n_sessions)
    return pl.DataFrame(
        {
            "date": np.tile(dates, n_symbols),
            "symbol": np.repeat([f"S{i:04d}" for i in range(n_symbols)], n_sessions),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "adjusted_close": adj.ravel(),
            "volume": volume.ravel(),
        }
    ).with_columns(pl.col("date").cast(pl.Date))


def _lag_return(c: np.ndarray, num: int, den: int) -> np.ndarray:
    """c[t - num] / c[t - den] - 1 with NaN where t < den."""
    out = np.full(c.size, np.nan)
    if c.size > den:
        out[den:] = c[den - num : c.size - num] / c[: c.size - den] - 1.0
    return out


def talib_symbol(h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray) -> dict[str, np.ndarray]:
    """The feature set for one symbol from TA-Lib (plus numpy for returns)."""
    out: dict[str, np.ndarray] = {f"sma_{n}": talib.SMA(c, n) for n in ind.SMA_PERIODS}
    out |= {f"ema_{n}": talib.EMA(c, n) for n in ind.EMA_PERIODS}
    out[f"rsi_{ind.RSI_N}"] = talib.RSI(c, ind.RSI_N)
    out["macd"], out["macd_signal"], out["macd_hist"] = talib.MACD(c, ind.MACD_FAST, ind.MACD_SLOW, ind.MACD_SIGNAL)
    upper, mid, lower = talib.BBANDS(c, ind.BB_N, ind.BB_NBDEV, ind.BB_NBDEV, 0)
    width = upper - lower
    with np.errstate(divide="ignore", invalid="ignore"):
        out |= {
            "bb_upper": upper,
            "bb_middle": mid,
            "bb_lower": lower,
            "bb_pctb": np.where(width > 0, (c - lower) / width, np.nan),
            "bb_bandwidth": width / mid,
        }
        out[f"atr_{ind.ATR_N}"] = talib.ATR(h, lo, c, ind.ATR_N)
        out["obv"] = talib.OBV(c, v)
        log_ret = np.log(c[1:] / c[:-1])  # TA-Lib running sums would carry a leading NaN forever
        for n in ind.HVOL_PERIODS:
            pop_std = talib.STDDEV(log_ret, n, 1.0) if log_ret.size else log_ret
            out[f"hvol_{n}"] = np.concatenate(([np.nan], pop_std * math.sqrt(n / (n - 1) * ind.SESSIONS_PER_YEAR)))
        for n in ind.VOLUME_RATIO_PERIODS:
            out[f"volume_ratio_{n}"] = v / talib.SMA(v, n)
        out[f"adx_{ind.ADX_N}"] = talib.ADX(h, lo, c, ind.ADX_N)
        n = ind.TREND_N
        logc = np.log(c)
        slope = talib.LINEARREG_SLOPE(logc, n)
        sxx = n * (n * n - 1) / 12.0
        ssr = n * talib.VAR(logc, n, 1.0) - slope * slope * sxx
        out["trend_strength"] = slope / np.sqrt(ssr / ((n - 2) * sxx))
    out |= {f"ret_{k}d": _lag_return(c, 0, k) for k in ind.RETURN_HORIZONS}
    out["mom_12_1"] = _lag_return(c, ind.MOMENTUM_SKIP, ind.MOMENTUM_LONG)
    return out


def talib_features(bars: pl.DataFrame) -> pl.DataFrame:
    """Wide features by a per-symbol TA-Lib loop on adjusted prices (bars sorted by symbol, date)."""
    factor = bars["adjusted_close"].to_numpy() / bars["close"].to_numpy()
    h = bars["high"].to_numpy() * factor
    lo = bars["low"].to_numpy() * factor
    c = bars["adjusted_close"].to_numpy()
    v = bars["volume"].to_numpy().astype(np.float64)
    sizes = bars.group_by("symbol", maintain_order=True).len()["len"].to_numpy().astype(np.int64)
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    parts = [talib_symbol(*(x[a:b] for x in (h, lo, c, v))) for a, b in itertools.pairwise(bounds)]
    names = feature_names()
    data = {name: np.concatenate([p[name] for p in parts]) for name in names}
    return bars.select("date", "symbol").with_columns(pl.Series(n, data[n]).fill_nan(None) for n in names)


def rel_diffs(a: pl.DataFrame, b: pl.DataFrame) -> tuple[dict[str, float], int]:
    """Per feature, the largest |a - b| / |b| where both are finite; total count of null mismatches."""
    worst: dict[str, float] = {}
    mismatched = 0
    for name in feature_names():
        x, y = a[name].to_numpy(), b[name].to_numpy()
        fx, fy = np.isfinite(x), np.isfinite(y)
        mismatched += int((fx != fy).sum())
        both = fx & fy
        scale = np.maximum(np.abs(y[both]), 1e-300)
        worst[name] = float(np.max(np.abs(x[both] - y[both]) / scale)) if both.any() else 0.0
    return worst, mismatched


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=1260)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    bars = random_bars(args.symbols, args.sessions).sort("symbol", "date")
    times: dict[str, list[float]] = {"polars": [], "talib": []}
    cpu: dict[str, list[float]] = {"polars": [], "talib": []}
    results: dict[str, pl.DataFrame] = {}
    runners = {"polars": compute_features, "talib": talib_features}
    for _ in range(args.reps):
        for name, run in runners.items():
            t0, c0 = time.perf_counter(), time.process_time()
            results[name] = run(bars)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    diffs, mismatched = rel_diffs(results["polars"], results["talib"])
    worst = max(diffs.values())
    rows_n = bars.height
    best = {k: min(v) for k, v in times.items()}
    median = {k: statistics.median(v) for k, v in times.items()}
    rows = [
        {
            "engine": name,
            "best_s": best[name],
            "median_s": median[name],
            "best_cpu_s": min(cpu[name]),
            "rows_per_s": rows_n / best[name],
            "features": len(feature_names()),
        }
        for name in runners
    ]
    ratio_best = best["polars"] / best["talib"]
    ratio_median = median["polars"] / median["talib"]
    ratio_cpu = min(cpu["polars"]) / min(cpu["talib"])
    extra = {
        "symbols": args.symbols,
        "sessions": args.sessions,
        "n_rows": rows_n,
        "reps": args.reps,
        "times_s": times,
        "cpu_s": cpu,
        "polars_threads": pl.thread_pool_size(),
        "ratio_cpu": ratio_cpu,
        "ratio_best": ratio_best,
        "ratio_median": ratio_median,
        "goal_ratio": GOAL_RATIO,
        "goal_met": ratio_best <= GOAL_RATIO,
        "max_rel_diff_vs_talib": worst,
        "rel_diff_by_feature": diffs,
        "null_mismatches_vs_talib": mismatched,
        "stamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    path = report("features", f"features: polars vs TA-Lib loop, {args.symbols} x {args.sessions}", rows, extra)
    print(
        f"polars / TA-Lib wall: best {ratio_best:.2f}x, median {ratio_median:.2f}x, cpu {ratio_cpu:.2f}x "
        f"(goal <= {GOAL_RATIO}x); "
        f"max rel diff {worst:.2e}, null mismatches {mismatched}; wrote {path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
