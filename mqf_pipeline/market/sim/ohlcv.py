"""Daily bars derived from the simulated path: open/high/low, volume and quoted spread.

Close and the total return come from the engine; the intraday shape, volume noise and spread
noise are drawn from their own per-block stream, so bars are computed on demand for the
requested range only (nothing per cell beyond the core path is kept in memory).
"""

from __future__ import annotations

import numpy as np

from mqf_pipeline.market.sim.engine import Engine
from mqf_pipeline.market.sim.rng import BLOCK, Stream, generator

#: Share of the session's log return that happens overnight (close to open).
_OVERNIGHT_SHARE = 0.35
_OPEN_NOISE, _WICK = 0.25, 0.6  # in conditional daily sigmas
_VOL_ABS_RET, _VOL_SIGMA, _VOL_NEWS, _VOL_NOISE = 0.35, 0.8, 0.35, 0.3
_SPREAD_NOISE = 0.15
#: Minimum quoted spread: one cent.
TICK_USD = 0.01


def shares_path(engine: Engine, t0: int, t1: int) -> np.ndarray:
    """Shares outstanding at each session t0..t1 (rows) for every symbol (columns)."""
    shares = np.tile(engine.u.shares0, (t1 - t0 + 1, 1))
    for blk in engine.blocks[: t1 // BLOCK + 1]:
        for t, i, _ratio, after in blk.splits:
            if t <= t1:
                shares[max(t - t0, 0) :, i] = after
    return shares


def _intraday_draws(engine: Engine, t0: int, t1: int) -> np.ndarray:
    """(5, T, n) standard normals for sessions t0..t1: open, high, low, volume, spread."""
    parts = []
    for b in range(t0 // BLOCK, t1 // BLOCK + 1):
        z = generator(engine.p.seed, Stream.INTRADAY, b).standard_normal((5, BLOCK, engine.u.n))
        lo, hi = max(t0 - b * BLOCK, 0), min(t1 - b * BLOCK, BLOCK - 1)
        parts.append(z[:, lo : hi + 1])
    return np.concatenate(parts, axis=1)


def ohlcv(engine: Engine, t0: int, t1: int, cols: np.ndarray) -> dict[str, np.ndarray]:
    """Arrays (T, len(cols)) of open, high, low, close, adjusted_close, volume, spread_bps."""
    close = engine.cells("close", t0, t1)[:, cols]
    ret = engine.cells("ret", t0, t1)[:, cols]
    sigma = engine.cells("sigma", t0, t1)[:, cols].astype(np.float64)
    news = engine.cells("news", t0, t1)[:, cols]
    adj = engine.cells("adj", t0, t1)[:, cols]
    shares = shares_path(engine, t0, t1)[:, cols]
    z = _intraday_draws(engine, t0, t1)[:, :, cols]
    u = engine.u

    log_r = np.log1p(ret)
    ref = close / (1.0 + ret)  # previous close adjusted for the session's actions
    open_ = ref * np.exp(_OVERNIGHT_SHARE * log_r + _OPEN_NOISE * sigma * z[0])
    high = np.maximum(open_, close) * np.exp(_WICK * sigma * np.abs(z[1]))
    low = np.minimum(open_, close) * np.exp(-_WICK * sigma * np.abs(z[2]))

    rel_sigma = sigma / engine.sigma_base[cols]
    log_vol = (
        np.log(shares * u.turnover[cols])
        + _VOL_ABS_RET * (np.abs(ret) / sigma - 0.8)
        + _VOL_SIGMA * np.log(rel_sigma)
        + _VOL_NEWS * news
        + _VOL_NOISE * z[3]
        - 0.5 * _VOL_NOISE**2
    )
    volume = np.maximum(np.round(np.exp(log_vol)), 100).astype(np.int64)

    cap_bn = close * shares / 1e9
    spread = (1.0 + 20.0 / np.sqrt(cap_bn)) * rel_sigma**0.8 * np.exp(_SPREAD_NOISE * z[4])
    spread = np.clip(np.maximum(spread, 1e4 * TICK_USD / close), 0.5, 1000.0)
    return {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "adjusted_close": adj,
        "volume": volume,
        "spread_bps": spread,
    }
