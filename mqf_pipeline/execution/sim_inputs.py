"""The cost model's inputs: its parameters, the session's market per order, the seeded intraday draws,
the bucket clock and the mid path (a log-price Brownian bridge from the open to the close)."""

from __future__ import annotations

import datetime as dt
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mqf_pipeline.execution.strategies import N_BUCKETS, u_shaped_profile

#: Regular session open, New York (minutes after midnight) and its length in minutes.
OPEN_MINUTE = 9 * 60 + 30
SESSION_MINUTES = 390


@dataclass(frozen=True)
class CostParams:
    """The cost model and the intraday guards.

    ``impact_coef`` Y (dimensionless) in ``Y sigma sqrt(q/V)``; ``commission_per_share`` dollars;
    ``max_participation`` / ``limit_max_participation``: the largest share of a bucket's volume an
    aggressive / passive child may take; ``price_away_cancel`` decimal move of the mid from arrival that
    cancels the rest; ``volume_anomaly_ratio`` session volume / (ADV x expected profile) that aborts the
    rest. ``math.inf`` disables a guard.
    """

    impact_coef: float = 0.7
    commission_per_share: float = 0.0035
    max_participation: float = 0.25
    limit_max_participation: float = 0.10
    price_away_cancel: float = 0.05
    volume_anomaly_ratio: float = 3.0

    def __post_init__(self) -> None:
        checks = {
            "impact_coef": (math.isfinite(self.impact_coef) and self.impact_coef >= 0, "a finite number >= 0"),
            "commission_per_share": (
                math.isfinite(self.commission_per_share) and self.commission_per_share >= 0,
                "a finite number of dollars >= 0",
            ),
            "max_participation": (0 < self.max_participation <= 1, "in (0, 1]"),
            "limit_max_participation": (0 < self.limit_max_participation <= 1, "in (0, 1]"),
            "price_away_cancel": (self.price_away_cancel > 0, "> 0 (decimal; inf disables it)"),
            "volume_anomaly_ratio": (self.volume_anomaly_ratio > 1, "> 1 (inf disables it)"),
        }
        for name, (ok, want) in checks.items():
            if not ok:
                raise ValueError(f"CostParams.{name} must be {want}, got {getattr(self, name)}")


def as_rows(name: str, values: object, n: int | None) -> np.ndarray:
    """``values`` as a 1-d float array (``n`` rows when given); a wrong shape is an error naming ``name``."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        want = f"({n},)" if n is not None else "1-d"
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    return arr


@dataclass(frozen=True)
class SessionMarket:
    """One session's market, one row per order: ``arrival`` the mid at the open and ``close`` the close
    (dollars, > 0), ``sigma`` daily volatility (decimal, >= 0), ``spread_bps`` the quoted spread (bps of
    the mid, in [0, 1e4); half of it is paid on aggressive fills), ``volume`` the session's actual volume
    (shares, >= 0), ``adv`` average daily volume before the session (shares, > 0). ``symbols`` (optional)
    name the rows in error messages."""

    arrival: np.ndarray
    close: np.ndarray
    sigma: np.ndarray
    spread_bps: np.ndarray
    volume: np.ndarray
    adv: np.ndarray
    symbols: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        n = None
        rules = {
            "arrival": (lambda x: x > 0, "> 0 dollars"),
            "close": (lambda x: x > 0, "> 0 dollars"),
            "sigma": (lambda x: x >= 0, ">= 0 (decimal)"),
            "spread_bps": (lambda x: (x >= 0) & (x < 1e4), "in [0, 1e4) bps"),
            "volume": (lambda x: x >= 0, ">= 0 shares"),
            "adv": (lambda x: x > 0, "> 0 shares"),
        }
        for name, (rule, want) in rules.items():
            arr = as_rows(f"SessionMarket.{name}", getattr(self, name), n)
            n = arr.shape[0]
            object.__setattr__(self, name, arr)
            bad = np.flatnonzero(~(np.isfinite(arr) & rule(arr)))
            if bad.size:
                i = int(bad[0])
                raise ValueError(f"SessionMarket.{name}: {self.row_name(i)} must be finite and {want}, got {arr[i]}")
        if self.symbols is not None:
            object.__setattr__(self, "symbols", tuple(self.symbols))
            if len(self.symbols) != n:
                raise ValueError(f"SessionMarket.symbols names {len(self.symbols)} rows, the arrays have {n}")

    def __len__(self) -> int:
        return int(self.arrival.shape[0])

    def row_name(self, i: int) -> str:
        """``row i`` and, when known, its symbol (for error messages)."""
        return f"row {i} ({self.symbols[i]})" if self.symbols is not None else f"row {i}"


@dataclass(frozen=True)
class Draws:
    """The random numbers of one session, one row per order: ``z`` standard normals (n, N) that build
    the mid path, ``u`` uniforms in [0, 1) (n, N) that decide whether a limit order's bucket crossed."""

    z: np.ndarray
    u: np.ndarray

    def __post_init__(self) -> None:
        z, u = np.asarray(self.z, dtype=float), np.asarray(self.u, dtype=float)
        if z.ndim != 2 or z.shape[1] == 0 or z.shape != u.shape:
            raise ValueError(f"Draws.z and Draws.u must share one (n, n_buckets >= 1) shape, got {z.shape}, {u.shape}")
        if not np.isfinite(z).all():
            raise ValueError(f"Draws.z: row {int(np.flatnonzero(~np.isfinite(z).all(axis=1))[0])} is not finite")
        if not ((u >= 0) & (u < 1)).all():
            raise ValueError(f"Draws.u: row {int(np.flatnonzero(~((u >= 0) & (u < 1)).all(axis=1))[0])} not in [0, 1)")
        object.__setattr__(self, "z", z)
        object.__setattr__(self, "u", u)


def draws_for(seed: int, session: dt.date, symbols: Sequence[str], n_buckets: int = N_BUCKETS) -> Draws:
    """Deterministic draws for ``symbols`` on ``session``: one Generator per symbol seeded with
    ``[seed, session.toordinal(), crc32(symbol)]``, so a symbol gets the same path whatever else is in the
    batch and two orders on one symbol share it."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    z, u = np.empty((len(symbols), n_buckets)), np.empty((len(symbols), n_buckets))
    for i, sym in enumerate(symbols):
        rng = np.random.default_rng([seed, session.toordinal(), zlib.crc32(sym.encode())])
        z[i] = rng.standard_normal(n_buckets)
        u[i] = rng.random(n_buckets)
    return Draws(z, u)


def bucket_times(n_buckets: int = N_BUCKETS) -> tuple[dt.time, ...]:
    """New York clock time at the start of each bucket (09:30, 10:00, ... for 13 buckets)."""
    start = dt.datetime(2000, 1, 1) + dt.timedelta(minutes=OPEN_MINUTE)
    return tuple((start + dt.timedelta(minutes=SESSION_MINUTES * k / n_buckets)).time() for k in range(n_buckets))


def volume_profile(profile: np.ndarray | None, n_buckets: int) -> np.ndarray:
    """The expected volume share per bucket: ``profile`` checked (positive, finite, one per bucket) and
    normalised, or the U-shaped default."""
    if profile is None:
        return u_shaped_profile(n_buckets)
    p = np.asarray(profile, dtype=float)
    if p.shape != (n_buckets,) or not (np.isfinite(p).all() and (p > 0).all()):
        raise ValueError(f"profile must be {n_buckets} finite shares > 0 (one per bucket), got {p}")
    return p / p.sum()


def mid_path(market: SessionMarket, z: np.ndarray) -> np.ndarray:
    """Log-price Brownian bridge from ``arrival`` to ``close`` at the bucket edges, (n, N + 1) dollars.

    A free Brownian motion with bucket variance ``sigma^2 / N`` is built from ``z`` and pinned to the
    close: ``X_j = W_j - (j / N) (W_N - log(close / arrival))``."""
    n_buckets = z.shape[1]
    s = market.sigma / math.sqrt(n_buckets)
    w = np.concatenate([np.zeros((len(market), 1)), s[:, None] * np.cumsum(z, axis=1)], axis=1)
    t = np.arange(n_buckets + 1) / n_buckets
    x = w + t * (np.log(market.close / market.arrival) - w[:, -1])[:, None]
    return market.arrival[:, None] * np.exp(x)
