"""The bid-ask spread of a session whose bars carry none: quoted, estimated from OHLC, or a default.

Many daily files have no ``spread_bps`` column. Where a session's quoted spread is missing (null or NaN)
it is estimated with EDGE, the efficient estimator of Ardia, Guidotti & Kroencke (2024, JFE 103916), from
the open, high, low and close of the symbol's ``window`` bars *strictly before* the session (no
lookahead), through :func:`bidask.edge_rolling`. EDGE returns a fraction of the mid; here it is in bps of
mid (x 1e4). Where those bars lack OHLC (close-only data) or the estimate is unavailable, NaN or not
positive, the configured default applies. Every row says which it got in ``spread_source``:
``quoted``, ``estimated_edge`` or ``default``.

Each session's estimate is computed from its own window alone (:func:`_edge_windows`), so it is
bit-identical whatever range of history or other symbols were loaded with it, like the ADV and
volatility of :func:`mqf_pipeline.stages.execution_inputs.session_market`.
"""

from __future__ import annotations

import math

import bidask
import numpy as np
import pandas as pd
import polars as pl
from pandas.api.indexers import BaseIndexer

#: Bars behind an EDGE estimate: one month of sessions (the paper's monthly estimates).
EDGE_WINDOW_SESSIONS = 21
QUOTED = "quoted"
ESTIMATED_EDGE = "estimated_edge"
DEFAULT = "default"
SPREAD_SOURCES: tuple[str, ...] = (QUOTED, ESTIMATED_EDGE, DEFAULT)
OHLC: tuple[str, ...] = ("open", "high", "low", "close")


class _Bounds(BaseIndexer):
    """Fixed per-row window bounds ``[start, end)`` over the rows of a frame."""

    def __init__(self, start: np.ndarray, end: np.ndarray) -> None:
        super().__init__()
        self.start, self.end = start, end

    def get_window_bounds(
        self,
        num_values: int = 0,
        min_periods: int | None = None,
        center: bool | None = None,
        closed: str | None = None,
        step: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.start, self.end


def edge_spread_bps(
    bars: pl.DataFrame, wanted: np.ndarray | None = None, window: int = EDGE_WINDOW_SESSIONS
) -> np.ndarray:
    """Per row of ``bars`` (sorted by symbol, then date): the EDGE spread (bps of mid) from the ``window``
    bars of the same symbol strictly before the row; NaN where fewer bars precede it, any of them lacks a
    positive finite open, high, low or close, the estimate is not positive, or ``wanted`` is False."""
    if window < 3:
        raise ValueError(f"an EDGE window needs at least 3 bars, got {window}")
    n = bars.height
    position = bars.select(pl.int_range(pl.len()).over("symbol")).to_series().to_numpy()
    ok = position >= window if wanted is None else (position >= window) & np.asarray(wanted, bool)
    prices = {
        c: bars.select(pl.when(pl.col(c).is_finite() & (pl.col(c) > 0)).then(pl.col(c)).cast(pl.Float64))
        .to_series()
        .to_numpy()
        for c in OHLC
    }
    complete = np.all([np.isfinite(v) for v in prices.values()], axis=0)
    paired = np.flatnonzero((position >= 1) & complete & np.roll(complete, 1))  # a bar and the one before it
    targets = np.flatnonzero(ok)
    out = np.full(n, np.nan)
    if not targets.size or not paired.size:
        return out
    spread = _edge_windows(prices, targets, int(paired[0]), window)
    good = np.isfinite(spread) & (spread > 0)
    out[targets[good]] = spread[good] * 1e4
    return out


def _edge_windows(prices: dict[str, np.ndarray], targets: np.ndarray, anchor: int, window: int) -> np.ndarray:
    """:func:`bidask.edge_rolling` (signed, a fraction of the mid) over the ``window`` bars before each row of
    ``targets``, each window computed on its own values.

    EDGE pairs each bar with the one before, so the window of row i is pair rows i-window+1 .. i-1. pandas
    sums a window from scratch when the bounds are not monotonic (empty trailing windows ``[0, 0)`` make
    them so) but carries the previous window's Kahan compensation into the first value it adds; a one-row
    window on the complete pair ``anchor`` before each window returns it to exactly 0. Output row 2k is that
    reset, row 2k+1 the window of ``targets[k]``."""
    k = targets.size
    m = max(prices["open"].size, 2 * k) + 1
    frame = pd.DataFrame({c: np.pad(v, (0, m - v.size), constant_values=np.nan) for c, v in prices.items()})
    start, end = np.zeros(m, np.int64), np.zeros(m, np.int64)
    start[0 : 2 * k : 2], end[0 : 2 * k : 2] = anchor, anchor + 1
    start[1 : 2 * k : 2], end[1 : 2 * k : 2] = targets - window + 1, targets
    with np.errstate(all="ignore"):
        spread = bidask.edge_rolling(frame, _Bounds(start, end), sign=True, min_periods=window).to_numpy()
    return spread[1 : 2 * k : 2]


def with_spreads(bars: pl.DataFrame, default_bps: float, window: int = EDGE_WINDOW_SESSIONS) -> pl.DataFrame:
    """``bars`` sorted by (symbol, date) with ``spread_bps`` (bps of mid) where the quote is missing: the
    EDGE estimate from the bars before (:func:`edge_spread_bps`), else ``default_bps``; and ``spread_source``.

    Missing ``open``/``high``/``low``/``close``/``spread_bps`` columns count as null."""
    if not (math.isfinite(default_bps) and default_bps >= 0):
        raise ValueError(f"default_spread_bps must be a finite number of bps >= 0, got {default_bps}")
    absent = [c for c in (*OHLC, "spread_bps") if c not in bars.columns]
    frame = bars.with_columns(pl.lit(None, dtype=pl.Float64).alias(c) for c in absent).sort("symbol", "date")
    quoted = frame.select(pl.col("spread_bps").cast(pl.Float64).fill_nan(None)).to_series()
    estimate = pl.Series("estimate", edge_spread_bps(frame, quoted.is_null().to_numpy(), window)).fill_nan(None)
    return frame.with_columns(
        spread_bps=pl.coalesce(quoted, estimate, pl.lit(float(default_bps))),
        spread_source=pl.when(quoted.is_not_null())
        .then(pl.lit(QUOTED))
        .when(estimate.is_not_null())
        .then(pl.lit(ESTIMATED_EDGE))
        .otherwise(pl.lit(DEFAULT)),
    )
