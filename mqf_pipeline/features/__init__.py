"""Feature engineering (seed 000 §4.4): technical, volatility, volume and trend features.

All features are polars expressions evaluated per symbol on split/dividend-adjusted bars
(:func:`adjust_ohlc`). The TA-Lib indicators (SMA, EMA, RSI, MACD, Bollinger, ATR, OBV, ADX)
replicate TA-Lib's seeding and agree with the TA-Lib 0.8 C library to ~1e-12 relative (values of
MACD near zero to ~1e-14 of the price level), and are null exactly where TA-Lib returns NaN; see
:mod:`.indicators` for every definition and unit.

History requirement: EMA, MACD, RSI, ATR, ADX and OBV are recursive, so their values depend on the
first bar of the history they are computed from. :func:`compute_features` must be given the full
stored history of each symbol (or at least :func:`warmup_sessions` bars before the first date whose
features are used); its output is then deterministic for a given start, bit for bit, and does not
depend on which other symbols are in the frame. Every feature at a date uses only bars at or
before that date.

Bars are expected complete (quality-gated). A null price makes every window that covers it null
and the recursive features step over it with polars' EWM null rule (TA-Lib would return NaN from
there on); a missing or zero price never produces NaN or infinity in the output (it becomes null).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable

import polars as pl

from mqf_pipeline.features.adjust import adjust_ohlc
from mqf_pipeline.features.indicators import GROUP, INPUTS, LOOKBACK, RECURSIVE, evaluate, indicator_exprs

__all__ = [
    "FEATURE_VERSION",
    "WARMUP_TOLERANCE",
    "adjust_ohlc",
    "compute_features",
    "feature_names",
    "indicator_exprs",
    "to_long",
    "warmup_sessions",
]

#: Version stamped on stored feature rows; bump when any definition or parameter changes.
FEATURE_VERSION = "ta1.0"
#: Relative weight left on the seed of a recursive feature after :func:`warmup_sessions` bars.
WARMUP_TOLERANCE = 1e-6

_KEYS = ("date", "symbol")


def feature_names() -> list[str]:
    """Names of the wide feature columns, in output order."""
    return list(LOOKBACK)


def warmup_sessions() -> int:
    """Sessions of history needed before a date for its features to be usable.

    The maximum of the longest lookback (252 sessions for ``ret_252d`` and ``mom_12_1``) and, for
    each recursive feature, its seed index plus the sessions after which the seed's weight
    (1 - alpha)^m falls below :data:`WARMUP_TOLERANCE` (EMA-50 dominates: 49 + 346 = 395).
    With that much history every feature is defined and EMA/MACD/RSI/ATR/ADX computed from a later
    start agree with the full-history values to about that tolerance; OBV is a level that never
    converges (compare its changes only).
    """
    converge = max(at + math.ceil(math.log(WARMUP_TOLERANCE) / math.log1p(-alpha)) for alpha, at in RECURSIVE.values())
    return max(*LOOKBACK.values(), converge)


def compute_features(bars: pl.DataFrame, splits: pl.DataFrame | None = None) -> pl.DataFrame:
    """Wide features (date, symbol, <one Float64 column per feature>) for every input row.

    ``bars`` are canonical bars (raw OHLC, ``adjusted_close``, volume); indicators are computed on
    :func:`adjust_ohlc` prices (``splits`` optionally adjusts volume). Output is sorted by
    (symbol, date); non-finite results (e.g. from zero prices) are null. Raises ``ValueError`` on a
    duplicated (symbol, date).
    """
    adjusted = adjust_ohlc(bars, splits).select(*_KEYS, *INPUTS)
    if not _strictly_sorted(adjusted):
        adjusted = adjusted.sort(GROUP, "date")
        if not _strictly_sorted(adjusted):
            raise ValueError("bars hold duplicated (symbol, date) rows; deduplicate before computing features")
    adjusted = adjusted.with_columns(pl.col(GROUP).set_sorted())
    names = feature_names()
    wide = evaluate(adjusted).select(*_KEYS, *[pl.col(n).cast(pl.Float64) for n in names])
    clean = adjusted.select(
        pl.all_horizontal(pl.col(c).is_not_null() & pl.col(c).is_finite() for c in INPUTS).all()
        & (pl.col("close") > 0).all()
    ).item()
    if clean:  # every division and log is guarded or has a positive denominator: all finite
        return wide
    return wide.with_columns(pl.when(pl.col(n).is_finite()).then(pl.col(n)).alias(n) for n in names)


def _strictly_sorted(frame: pl.DataFrame) -> bool:
    """Whether rows are in strictly increasing (symbol, date) order (sorted, no duplicates)."""
    sym, date = pl.col(GROUP), pl.col("date")
    prev_sym = sym.shift(1)
    ok = (sym > prev_sym) | ((sym == prev_sym) & (date > date.shift(1)))
    return bool(frame.select(ok.fill_null(True).all()).item())


def to_long(wide: pl.DataFrame, dates: Iterable[dt.date] | None = None) -> pl.DataFrame:
    """Long rows for the ``features`` table: date, symbol, feature, value, feature_version.

    Keeps only ``dates`` when given and drops null values (features not yet defined).
    """
    if dates is not None:
        wide = wide.filter(pl.col("date").is_in(pl.Series(list(dates), dtype=pl.Date).implode()))
    names = [c for c in wide.columns if c not in _KEYS]
    return (
        wide.unpivot(on=names, index=list(_KEYS), variable_name="feature", value_name="value")
        .drop_nulls("value")
        .with_columns(
            pl.col("value").cast(pl.Float64), pl.lit(FEATURE_VERSION, dtype=pl.String).alias("feature_version")
        )
        .select("date", "symbol", "feature", "value", "feature_version")
    )
