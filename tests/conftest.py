"""Shared fixtures: synthetic clean bars for fast unit tests (the simulator has its own tests)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from mqf_pipeline import calendar


def clean_raw_bars(symbols: list[str], start: dt.date, end: dt.date, seed: int = 0) -> pl.DataFrame:
    """Well-formed raw bars (canonical names and types) on XNYS sessions: a lognormal walk."""
    days = calendar.sessions(start, end)
    rng = np.random.default_rng(seed)
    frames = []
    for i, sym in enumerate(symbols):
        rets = rng.normal(0.0003, 0.015, len(days))
        close = 50.0 * (1 + i * 0.1) * np.exp(np.cumsum(rets))
        open_ = close * np.exp(rng.normal(0, 0.004, len(days)))
        high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.005, len(days))))
        low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.005, len(days))))
        vol = rng.integers(200_000, 400_000, len(days))
        frames.append(
            pl.DataFrame(
                {
                    "date": days,
                    "symbol": sym,
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "adjusted_close": close,
                    "volume": vol.astype(np.int64),
                    "spread_bps": 5.0,
                }
            )
        )
    return pl.concat(frames).sort("date", "symbol")


@pytest.fixture
def raw_bars() -> pl.DataFrame:
    return clean_raw_bars(["AAA", "BBB", "CCC", "DDD", "EEE"], dt.date(2024, 1, 2), dt.date(2024, 3, 28))
