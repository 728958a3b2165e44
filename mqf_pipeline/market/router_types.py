"""Types of the data router (:mod:`mqf_pipeline.market.router`): settings, results and request records.

Units as in the router: delays and timeouts in seconds, latencies in milliseconds, rates in tokens per
second. The settings are frozen pydantic models (``extra="forbid"``); the results are what
:class:`~mqf_pipeline.market.router.DataRouter` returns; ``_Served``, ``_Job`` and ``_Attempted`` are the
records it passes between its steps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from mqf_pipeline.market.bars import BARS_SCHEMA, canonicalize
from mqf_pipeline.market.providers.base import MarketDataProvider, ProviderError, RequestLog

Kind = Literal["bars", "corporate_actions", "macro", "fundamentals", "headlines"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TokenBucketSettings(_Frozen):
    """``rate_per_s`` tokens per second sustained (None = unlimited), bursts up to ``capacity``."""

    rate_per_s: float | None = Field(default=None, gt=0)
    capacity: float | None = Field(default=None, gt=0)


class RetrySettings(_Frozen):
    """Attempts per provider (1 = no retry) and the backoff schedule in seconds; jitter is a fraction."""

    max_attempts: int = Field(default=4, ge=1)
    base_delay_s: float = Field(default=0.5, ge=0)
    max_delay_s: float = Field(default=8.0, ge=0)
    jitter: float = Field(default=0.1, ge=0, le=1)


class CacheSettings(_Frozen):
    """In-memory LRU cache of complete results, bounded by entries and by total rows held."""

    enabled: bool = True
    max_entries: int = Field(default=256, ge=1)
    max_rows: int = Field(default=5_000_000, ge=1)


class BanditSettings(_Frozen):
    """Provider selection by a bandit; when disabled the priority list decides (metrics still accrue)."""

    enabled: bool = False
    algorithm: Literal["thompson", "ucb1"] = "thompson"
    exploration: float = Field(default=1.0, gt=0)
    discount: float = Field(default=1.0, gt=0, le=1)
    latency_scale_ms: float = Field(default=1000.0, gt=0)
    reward_weights: tuple[float, float, float] = (0.4, 0.2, 0.4)


#: Seed 000 §4.2 throttles plus FRED; providers not listed (simulated, files) are unlimited.
DEFAULT_RATE_LIMITS: dict[str, TokenBucketSettings] = {
    "polygon": TokenBucketSettings(rate_per_s=20, capacity=20),
    "yahoo": TokenBucketSettings(rate_per_s=5, capacity=5),
    "alpaca": TokenBucketSettings(rate_per_s=10, capacity=10),
    "fred": TokenBucketSettings(rate_per_s=2, capacity=2),
}
#: Yahoo's chart API takes one symbol per request; Alpaca accepts a comma-separated list.
DEFAULT_MAX_SYMBOLS: dict[str, int] = {"yahoo": 1, "alpaca": 100, "polygon": 50, "fred": 1}


class RouterSettings(_Frozen):
    """Everything the router can be told; see the module docstring for units."""

    priority: tuple[str, ...] = ("yahoo", "alpaca", "polygon", "fred", "files", "simulated")
    #: Per capability, the only providers asked for it (e.g. macro only from the mode's macro list, so a
    #: bar provider never serves macro series and the simulator never serves a real-data run). A
    #: capability not listed may be asked of any provider that has it.
    routes: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    rate_limits: dict[str, TokenBucketSettings] = Field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    retries: RetrySettings = RetrySettings()
    timeout_s: float = Field(default=30.0, gt=0)
    cache: CacheSettings = CacheSettings()
    bandit: BanditSettings = BanditSettings()
    max_symbols_per_request: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_MAX_SYMBOLS))
    default_max_symbols_per_request: int = Field(default=500, ge=1)

    def max_symbols(self, provider: str) -> int:
        """Symbols per provider call (chunk size)."""
        return max(1, self.max_symbols_per_request.get(provider, self.default_max_symbols_per_request))


@dataclass
class RoutedBars:
    """Raw bars (canonical names, values as received, plus ``provider``) and what it took to get them.

    ``failures`` has one row per requested symbol no provider could serve:
    symbol, start, end, provider_attempts (``"provider:outcome"`` per call), error.
    """

    raw: pl.DataFrame
    requests: list[RequestLog]
    failures: pl.DataFrame
    cache_hit: bool = False

    def canonical(self) -> pl.DataFrame:
        """The raw rows canonicalized per provider (:func:`~mqf_pipeline.market.bars.canonicalize`)."""
        if self.raw.is_empty():
            return canonicalize(pl.DataFrame(schema=BARS_SCHEMA), "none").clear()
        parts = [
            canonicalize(self.raw.filter(pl.col("provider") == p).drop("provider"), p)
            for p in self.raw.get_column("provider").unique(maintain_order=True).to_list()
        ]
        return pl.concat(parts, how="vertical")


@dataclass
class RoutedFrame:
    """Corporate actions or macro observations, with request logs and unserved units in ``failures``."""

    data: pl.DataFrame
    requests: list[RequestLog]
    failures: pl.DataFrame
    cache_hit: bool = False


@dataclass(frozen=True)
class CacheStats:
    """Cache counters; ``mean_hit_ms``/``mean_miss_ms`` are wall times of whole router calls."""

    hits: int
    misses: int
    entries: int
    max_entries: int
    evictions: int
    mean_hit_ms: float
    mean_miss_ms: float

    @property
    def speedup(self) -> float:
        """Mean miss time over mean hit time (NaN until both were seen)."""
        if self.hits == 0 or self.misses == 0 or self.mean_hit_ms <= 0:
            return float("nan")
        return self.mean_miss_ms / self.mean_hit_ms


@dataclass
class _Served:
    """What one successful provider call gave: rows, the units it served, quality in [0, 1]."""

    frame: pl.DataFrame
    served: set[str]
    logs: list[RequestLog]
    quality: float


CallFn = Callable[[MarketDataProvider, tuple[str, ...], dt.date, dt.date], "_Served"]


@dataclass(frozen=True)
class _Job:
    """One router request: what kind, which units (symbols or series ids), the dates, how to call."""

    kind: Kind
    units: tuple[str, ...]
    start: dt.date
    end: dt.date
    call: CallFn
    unit_col: str


@dataclass
class _Attempted:
    frame: pl.DataFrame | None = None
    served: set[str] = field(default_factory=set)
    logs: list[RequestLog] = field(default_factory=list)
    error: ProviderError | None = None
