"""Technical indicators as polars expressions that replicate TA-Lib's seeding exactly.

The indicators are a plan of stages (:mod:`.engine`) over the input columns ``open``, ``high``,
``low``, ``close``, ``volume`` (already adjusted, see :func:`.adjust.adjust_ohlc`) and ``symbol``.
:func:`indicator_exprs` inlines the plan into one self-contained expression per feature;
:func:`evaluate` (used by ``compute_features``) materialises it stage by stage, evaluating shared
intermediates once. Both give identical values.

The frame must be sorted by (symbol, date), one row per session, each symbol's rows contiguous.
``k = 0, 1, ...`` is the bar index from the symbol's first row. Shifts and window sums run on the
whole column and are masked where they would reach into the previous symbol; EWM recursions and
cumulative sums run inside ``.over("symbol")``. A symbol's values therefore never depend on other
symbols' rows, and a feature is null exactly where TA-Lib returns NaN (``k`` below its lookback).

TA-Lib conventions replicated (TA-Lib 0.8 C library, default compatibility, unstable period 0):

* EMA(n), alpha = 2 / (n + 1), seeded at ``k = n - 1`` with the SMA of the first n values.
* Wilder smoothing (RSI, ATR, ADX), alpha = 1 / n: RSI and ATR seeded at ``k = n`` with the plain
  mean of bars 1..n (the first true range / price change needs a previous close; TA-Lib's TRANGE
  is undefined at k = 0); ADX smooths Wilder *sums* seeded with the sum of bars 1..n-1 and seeds
  itself with the mean of the first n DX (k = n..2n-1).
* MACD(12, 26, 9): the fast EMA is seeded at ``k = 25`` with the mean of bars 14..25 (the same
  index as the slow EMA), the signal with the mean of the first 9 MACD values; all three outputs
  start at ``k = 33``.
* Bollinger deviation: population (ddof = 0) standard deviation computed accurately (polars'
  rolling variance), as TA-Lib 0.8 does; older TA-Lib used mean(x^2) - mean(x)^2 and zeroed
  variances below an absolute 1e-8, which loses all precision for low-priced or quiet series.
* Zero tests are exact, as in TA-Lib 0.8 (whose absolute 1e-8 bands are gone): RSI is 0 when the
  average gain + loss is 0 (flat prices give 0, not 50); ADX keeps its previous value when the
  smoothed true range or the DI sum is 0.

Verified against the TA-Lib C library 0.8.1 bundled with the ``ta-lib`` 0.8.2 wheel: SMA, EMA, RSI,
ATR, ADX and OBV agree to ~1e-14 relative (sums here are per window, TA-Lib's running); Bollinger
bands to ~1e-12 and their width to ~1e-10 in rare quiet windows, where TA-Lib's own variance is
that far from the exact (two-pass) value this module computes.
Recursive features (EMA, MACD, RSI, ATR, ADX) and OBV depend on where the symbol's history starts;
given the same start they are deterministic.
"""

from __future__ import annotations

import polars as pl

from mqf_pipeline.features.engine import (
    GROUP,
    PREFIX,
    Env,
    K,
    Recursion,
    Stage,
    doubling_stages,
    inline,
    lag,
    materialise,
    over,
    recurse,
    seeded_inputs,
    window_sum,
)

INPUTS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
#: Trading sessions per year, used to annualise volatility.
SESSIONS_PER_YEAR = 252

SMA_PERIODS: tuple[int, ...] = (5, 10, 20, 50, 200)
EMA_PERIODS: tuple[int, ...] = (12, 26, 50)
RSI_N = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
MACD_START = MACD_SLOW + MACD_SIGNAL - 2
BB_N, BB_NBDEV = 20, 2.0
ATR_N = 14
ADX_N = 14
ADX_START = 2 * ADX_N - 1
HVOL_PERIODS: tuple[int, ...] = (21, 63)
VOLUME_RATIO_PERIODS: tuple[int, ...] = (20, 50)
TREND_N = 63
RETURN_HORIZONS: tuple[int, ...] = (1, 5, 21, 63, 252)
MOMENTUM_LONG, MOMENTUM_SKIP = 252, 21

_P = PREFIX

#: Recursions on inputs and first differences (first round).
RECURSIONS: dict[str, Recursion] = {
    **{f"ema_{n}": Recursion("close", 0, n - 1, 2.0 / (n + 1)) for n in EMA_PERIODS},
    # MACD's fast EMA is seeded at the slow EMA's seed index (TA-Lib)
    f"{_P}fast": Recursion("close", MACD_SLOW - MACD_FAST, MACD_SLOW - 1, 2.0 / (MACD_FAST + 1)),
    f"{_P}ag": Recursion(f"{_P}gain", 1, RSI_N, 1.0 / RSI_N),
    f"{_P}al": Recursion(f"{_P}loss", 1, RSI_N, 1.0 / RSI_N),
    f"atr_{ATR_N}": Recursion(f"{_P}tr", 1, ATR_N, 1.0 / ATR_N),
    # ADX's Wilder sums S[n-1] = sum x[1..n-1], S[k] = S[k-1] - S[k-1]/n + x[k], tracked as S / n
    **{
        f"{_P}s{x}": Recursion(f"{_P}{x}", 1, ADX_N - 1, 1.0 / ADX_N, scale=(ADX_N - 1) / ADX_N)
        for x in ("tr", "pdm", "mdm")
    },
}
#: Recursions on the MACD line and DX (second round).
RECURSIONS_2: dict[str, Recursion] = {
    f"{_P}sig": Recursion(f"{_P}line", MACD_SLOW - 1, MACD_START, 2.0 / (MACD_SIGNAL + 1)),
    # seeded with the mean of the first n DX (an undefined DX counts as 0); holds where DX is undefined
    f"{_P}adx": Recursion(f"{_P}dx", ADX_N, ADX_START, 1.0 / ADX_N, skip_nulls=True),
}

#: Window sums needed, by series.
WINDOWS: dict[str, list[int]] = {
    "close": list(SMA_PERIODS),
    "volume": list(VOLUME_RATIO_PERIODS),
    f"{_P}lr": list(HVOL_PERIODS),
    f"{_P}lr2": list(HVOL_PERIODS),
    f"{_P}y": [TREND_N],
    f"{_P}y2": [TREND_N],
    f"{_P}ky": [TREND_N],
}


def _mean(e: Env, series: str, n: int) -> pl.Expr:
    """Mean of ``series`` over the last n bars of the symbol (null for k < n - 1)."""
    return pl.when(e[K] >= n - 1).then(window_sum(e, series, n) / n)


def _stage_index(e: Env) -> Env:
    return {K: over(pl.col(GROUP).cum_count()) - 1}


def _stage_lags(e: Env) -> Env:
    """Previous bar (masked at each symbol's first row), OBV step, returns."""
    k, c, v = e[K], e["close"], e["volume"]
    prev = c.shift(1)
    obv_step = pl.when(k == 0).then(v).when(c > prev).then(v).when(c < prev).then(-v).otherwise(0.0)
    out: Env = {
        f"{_P}pc": lag(k, c, 1),
        f"{_P}ph": lag(k, e["high"], 1),
        f"{_P}pl": lag(k, e["low"], 1),
        f"{_P}y": (c / over(c.first())).log(),
        f"{_P}obv_step": obv_step,
        "mom_12_1": lag(k, c, MOMENTUM_SKIP) / lag(k, c, MOMENTUM_LONG) - 1.0,
    }
    out |= {f"ret_{h}d": c / lag(k, c, h) - 1.0 for h in RETURN_HORIZONS}
    return out


def _stage_moves(e: Env) -> Env:
    """Gain/loss, log return, true range (TA-Lib TRANGE), directional movement, squares, OBV, BB variance."""
    c, h, lo, pc = e["close"], e["high"], e["low"], e[f"{_P}pc"]
    up, down = h - e[f"{_P}ph"], e[f"{_P}pl"] - lo
    minus = (down > 0) & (up < down)
    y = e[f"{_P}y"]
    lr = y - lag(e[K], y, 1)  # log(close / previous close), to ~1e-15 absolute
    # TA-Lib's TRUE_RANGE macro, comparison by comparison (null at k = 0)
    hl, hc, lc = h - lo, (h - pc).abs(), (lo - pc).abs()
    tr = pl.when(hc > hl).then(hc).otherwise(hl)
    tr = pl.when(lc > tr).then(lc).otherwise(tr)
    return {
        f"{_P}gain": (c - pc).clip(lower_bound=0.0),
        f"{_P}loss": (pc - c).clip(lower_bound=0.0),
        f"{_P}lr": lr,
        f"{_P}lr2": lr * lr,
        f"{_P}tr": pl.when(pc.is_not_null()).then(tr),
        f"{_P}mdm": pl.when(minus).then(down).otherwise(0.0),
        f"{_P}pdm": pl.when(minus).then(0.0).when((up > 0) & (up > down)).then(up).otherwise(0.0),
        f"{_P}y2": y * y,
        f"{_P}ky": e[K].cast(pl.Float64) * y,
        "obv": over(e[f"{_P}obv_step"].cum_sum()),
        f"{_P}var": over(c.rolling_var(BB_N, ddof=0)).clip(lower_bound=0.0),
    }


def _stage_windows(e: Env) -> Env:
    """SMAs, Bollinger parts, volatility, trend regression sums, volume ratios, recursion inputs.

    Volatility uses var = (sum r^2 - (sum r)^2 / n) / (n - 1) of log returns r. The trend
    regression is of y = log(close / first close) on the bar index k over the last n bars:
    Sxy = sum(k y) - (k - (n - 1) / 2) sum(y), Syy = sum(y^2) - sum(y)^2 / n.
    """
    k, v = e[K], e["volume"]
    out: Env = {f"sma_{n}": _mean(e, "close", n) for n in SMA_PERIODS}
    out[f"{_P}dev"] = BB_NBDEV * e[f"{_P}var"].sqrt()
    for n in HVOL_PERIODS:
        sr, srr = window_sum(e, f"{_P}lr", n), window_sum(e, f"{_P}lr2", n)
        var_r = ((srr - sr * sr / n) / (n - 1)).clip(lower_bound=0.0)
        out[f"hvol_{n}"] = pl.when(k >= n).then((var_r * SESSIONS_PER_YEAR).sqrt())
    out[f"{_P}sy"] = pl.when(k >= TREND_N - 1).then(window_sum(e, f"{_P}y", TREND_N))
    out[f"{_P}sy2"] = window_sum(e, f"{_P}y2", TREND_N)
    out[f"{_P}sky"] = window_sum(e, f"{_P}ky", TREND_N)
    for n in VOLUME_RATIO_PERIODS:
        avg = _mean(e, "volume", n)
        out[f"volume_ratio_{n}"] = pl.when(avg != 0).then(v / avg)
    return out | seeded_inputs(e, RECURSIONS)


def _stage_recurse(e: Env) -> Env:
    """First-round recursions; Bollinger outputs and the trend t-statistic from their parts."""
    c, k, mid, dev = e["close"], e[K], e[f"sma_{BB_N}"], e[f"{_P}dev"]
    upper, lower = mid + dev, mid - dev
    sxx = TREND_N * (TREND_N * TREND_N - 1) / 12.0
    sy = e[f"{_P}sy"]
    sxy = e[f"{_P}sky"] - (k.cast(pl.Float64) - (TREND_N - 1) / 2.0) * sy
    syy = e[f"{_P}sy2"] - sy * sy / TREND_N
    ssr = syy - sxy * sxy / sxx
    se = (ssr / ((TREND_N - 2) * sxx)).sqrt()
    # null for a numerically flat window or a numerically perfect fit
    fit = (syy > 1e-12 * e[f"{_P}sy2"]) & (ssr > 1e-14 * syy)
    return recurse(e, RECURSIONS) | {
        "bb_upper": upper,
        "bb_middle": mid,
        "bb_lower": lower,
        "bb_pctb": pl.when(dev > 0).then((c - lower) / (upper - lower)),
        "bb_bandwidth": pl.when(mid != 0).then((upper - lower) / mid),
        "trend_strength": pl.when(fit).then((sxy / sxx) / se),
    }


def _stage_oscillators(e: Env) -> Env:
    """RSI, the raw MACD line and DX (null where TA-Lib's zero tests skip it)."""
    ag, al = e[f"{_P}ag"], e[f"{_P}al"]
    total = ag + al
    s_tr = e[f"{_P}str"]
    plus_di = 100.0 * (e[f"{_P}spdm"] / s_tr)
    minus_di = 100.0 * (e[f"{_P}smdm"] / s_tr)
    di_sum = plus_di + minus_di
    defined = (s_tr != 0) & (di_sum != 0)
    dx = pl.when(defined).then(100.0 * ((minus_di - plus_di).abs() / di_sum))
    return {
        f"rsi_{RSI_N}": pl.when(total == 0).then(0.0).otherwise(100.0 * (ag / total)),
        f"{_P}line": e[f"{_P}fast"] - e[f"ema_{MACD_SLOW}"],
        f"{_P}dx": dx,
    }


def _stage_inputs_2(e: Env) -> Env:
    return seeded_inputs(e, RECURSIONS_2)


def _stage_recurse_2(e: Env) -> Env:
    return recurse(e, RECURSIONS_2)


def _stage_final(e: Env) -> Env:
    k, line, sig = e[K], e[f"{_P}line"], e[f"{_P}sig"]
    return {
        "macd": pl.when(k >= MACD_START).then(line),
        "macd_signal": sig,
        "macd_hist": line - sig,
        # the seed at k == ADX_START is never null, so a whole-column forward fill masked to
        # k >= ADX_START only fills from the same symbol (ADX holds where DX is undefined)
        f"adx_{ADX_N}": pl.when(k >= ADX_START).then(e[f"{_P}adx"].forward_fill()),
    }


STAGES: tuple[Stage, ...] = (
    _stage_index,
    _stage_lags,
    _stage_moves,
    *doubling_stages(WINDOWS),
    _stage_windows,
    _stage_recurse,
    _stage_oscillators,
    _stage_inputs_2,
    _stage_recurse_2,
    _stage_final,
)

#: Output features in order, with the first bar index k at which each is defined (TA-Lib's lookback).
LOOKBACK: dict[str, int] = {
    **{f"sma_{n}": n - 1 for n in SMA_PERIODS},
    **{f"ema_{n}": n - 1 for n in EMA_PERIODS},
    f"rsi_{RSI_N}": RSI_N,
    "macd": MACD_START,
    "macd_signal": MACD_START,
    "macd_hist": MACD_START,
    **{f"bb_{s}": BB_N - 1 for s in ("upper", "middle", "lower", "pctb", "bandwidth")},
    f"atr_{ATR_N}": ATR_N,
    "obv": 0,
    **{f"hvol_{n}": n for n in HVOL_PERIODS},
    **{f"volume_ratio_{n}": n - 1 for n in VOLUME_RATIO_PERIODS},
    f"adx_{ADX_N}": ADX_START,
    "trend_strength": TREND_N - 1,
    **{f"ret_{h}d": h for h in RETURN_HORIZONS},
    "mom_12_1": MOMENTUM_LONG,
}

#: Smoothing constant and seed index of each recursive feature (for the warm-up bound).
RECURSIVE: dict[str, tuple[float, int]] = {
    **{f"ema_{n}": (2.0 / (n + 1), n - 1) for n in EMA_PERIODS},
    "macd": (2.0 / (MACD_SLOW + 1), MACD_START),
    f"rsi_{RSI_N}": (1.0 / RSI_N, RSI_N),
    f"atr_{ATR_N}": (1.0 / ATR_N, ATR_N),
    f"adx_{ADX_N}": (1.0 / ADX_N, ADX_START),
}


def indicator_exprs() -> dict[str, pl.Expr]:
    """Feature name -> self-contained expression over adjusted open/high/low/close/volume and symbol.

    The frame must be sorted by (symbol, date). Units: price levels for SMA/EMA/MACD/Bollinger
    bands/ATR, shares for OBV, [0, 100] for RSI/ADX, decimals for returns, %B, bandwidth and
    volatilities (volatility annualised, returns not). Much slower than :func:`evaluate`, which
    computes each shared intermediate once; use these for single features or small frames.
    """
    return inline(STAGES, (GROUP, *INPUTS), tuple(LOOKBACK))


def evaluate(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (sorted by symbol, date; adjusted inputs) with one column per feature added."""
    return materialise(frame, STAGES)
