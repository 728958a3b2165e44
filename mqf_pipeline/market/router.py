"""The data router (seed 000 §4.1): provider priority, fallback, retries, rate limits, cache, bandit.

For each request the router takes the available providers that have the capability, orders them
by the bandit (if enabled) or by ``settings.priority``, and asks them in turn for the symbols
(or macro series) still missing. A retryable error (rate limit, timeout, 5xx) is retried with
exponential backoff ``min(max_delay_s, base_delay_s * 2**(k-1) * (1 + jitter * U[0, 1)))`` before
retry ``k``; a non-retryable error falls back at once. A symbol for which a provider returned no
rows counts as missing. Every requested unit ends up either in the data or in ``failures``.

Each provider has a token bucket (tokens/s, capacity). Providers that send HTTP requests
(:class:`~mqf_pipeline.market.providers.base.TransportControl`) call it before every HTTP request;
for the others the router takes one token per call. Clock and sleep are injected (seconds), so
tests run without real waiting. Latencies are milliseconds, timeouts and delays seconds.

``settings.timeout_s`` is the per-HTTP-request timeout; the router hands it (with the bucket) to every
TransportControl provider, replacing the timeout the provider was built with.

Complete results (no failures) are kept in an LRU cache keyed by the provider set and the request;
:meth:`DataRouter.cache_stats` reports hits, misses and mean wall time of each (ms). A router is
not thread-safe: use one per thread (or process).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import polars as pl

from mqf_pipeline.market.bandit import Outcome, ProviderBandit
from mqf_pipeline.market.bars import BarsSchemaError
from mqf_pipeline.market.providers.base import (
    CORPORATE_ACTIONS_SCHEMA,
    FUNDAMENTALS_SCHEMA,
    HEADLINES_SCHEMA,
    MACRO_SCHEMA,
    BarsRequest,
    MarketDataProvider,
    ProviderError,
    RequestLog,
    TransportControl,
    describe_symbols,
)
from mqf_pipeline.market.ratelimit import TokenBucket
from mqf_pipeline.market.router_frames import (
    _assemble,
    _conform,
    _copy_result,
    _failed_call_logs,
    _failures_frame,
    _rows,
    _shape_bars,
)
from mqf_pipeline.market.router_types import (
    CacheStats,
    Kind,
    RoutedBars,
    RoutedFrame,
    RouterSettings,
    TokenBucketSettings,
    _Attempted,
    _Job,
    _Served,
)

logger = logging.getLogger(__name__)


class DataRouter:
    """Routes bars, corporate actions and macro requests over ``providers`` (see module docstring)."""

    def __init__(
        self,
        providers: Sequence[MarketDataProvider],
        settings: RouterSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng_seed: int = 0,
    ) -> None:
        names = [p.name for p in providers]
        if len(set(names)) != len(names):
            raise ValueError(f"provider names must be unique, got {names}")
        self.settings = settings or RouterSettings()
        self._clock = clock
        self._sleep = sleep
        self._rng = random.Random(rng_seed)
        b = self.settings.bandit
        self.bandit = ProviderBandit(
            algorithm=b.algorithm,
            exploration=b.exploration,
            discount=b.discount,
            latency_scale_ms=b.latency_scale_ms,
            weights=b.reward_weights,
            rng_seed=rng_seed,
        )
        rank = {n: i for i, n in enumerate(self.settings.priority)}
        order = sorted(range(len(providers)), key=lambda i: (rank.get(names[i], len(rank)), i))
        self.providers: list[MarketDataProvider] = [providers[i] for i in order]
        self.buckets: dict[str, TokenBucket] = {}
        for p in self.providers:
            limit = self.settings.rate_limits.get(p.name, TokenBucketSettings())
            self.buckets[p.name] = TokenBucket(limit.rate_per_s, limit.capacity, clock=clock, sleep=sleep)
            if isinstance(p, TransportControl):
                p.bind_transport(self.buckets[p.name].acquire, self.settings.timeout_s)
        self._cache: OrderedDict[tuple[object, ...], RoutedBars | RoutedFrame] = OrderedDict()
        self._hits = self._misses = self._evictions = 0
        self._hit_ms = self._miss_ms = 0.0

    # ----------------------------------------------------------------- public API
    def get_bars(self, req: BarsRequest) -> RoutedBars:
        """Raw daily bars for every symbol of ``req`` that some provider can serve."""
        out = self._route(_Job("bars", req.symbols, req.start, req.end, self._call_bars, "symbol"))
        assert isinstance(out, RoutedBars)
        return out

    def get_corporate_actions(self, req: BarsRequest) -> RoutedFrame:
        """Splits and dividends (date, symbol, action_type, value, provider) for ``req``."""
        job = _Job("corporate_actions", req.symbols, req.start, req.end, self._call_actions, "symbol")
        out = self._route(job)
        assert isinstance(out, RoutedFrame)
        return out

    def get_fundamentals(self, req: BarsRequest) -> RoutedFrame:
        """Quarterly fundamentals reported between ``req.start`` and ``req.end`` (by report_date)."""
        out = self._route(_Job("fundamentals", req.symbols, req.start, req.end, self._call_fundamentals, "symbol"))
        assert isinstance(out, RoutedFrame)
        return out

    def get_headlines(self, req: BarsRequest) -> RoutedFrame:
        """News headlines (date, symbol, headline, provider) dated in ``req``'s range."""
        out = self._route(_Job("headlines", req.symbols, req.start, req.end, self._call_headlines, "symbol"))
        assert isinstance(out, RoutedFrame)
        return out

    def get_macro(self, series: Sequence[str], start: dt.date, end: dt.date) -> RoutedFrame:
        """Macro observations (date, series_id, value, provider) for canonical ``series`` ids."""
        if isinstance(series, str) or not series:
            raise ValueError("series must be a non-empty sequence of series ids")
        if end < start:
            raise ValueError(f"macro range is empty: end {end} is before start {start}")
        units = tuple(dict.fromkeys(series))
        out = self._route(_Job("macro", units, start, end, self._call_macro, "series_id"))
        assert isinstance(out, RoutedFrame)
        return out

    def metrics_frame(self) -> pl.DataFrame:
        """Per (provider, capability) counters and bandit state (``provider_metrics``)."""
        return self.bandit.to_frame()

    def load_metrics(self, frame: pl.DataFrame) -> None:
        """Restore counters and bandit state from a ``provider_metrics`` frame."""
        self.bandit.load_frame(frame)

    def cache_stats(self) -> CacheStats:
        """Hits, misses, size and mean wall time (ms) of cached vs uncached calls."""
        return CacheStats(
            hits=self._hits,
            misses=self._misses,
            entries=len(self._cache),
            max_entries=self.settings.cache.max_entries,
            evictions=self._evictions,
            mean_hit_ms=self._hit_ms / self._hits if self._hits else 0.0,
            mean_miss_ms=self._miss_ms / self._misses if self._misses else 0.0,
        )

    def clear_cache(self) -> None:
        """Drop every cached result (counters are kept)."""
        self._cache.clear()

    def candidates(self, capability: Kind) -> tuple[list[MarketDataProvider], dict[str, str]]:
        """Available providers with ``capability`` in priority order, and why the others were skipped."""
        usable: list[MarketDataProvider] = []
        skipped: dict[str, str] = {}
        allowed = self.settings.routes.get(capability)
        for p in self.providers:
            if capability not in p.capabilities() or (allowed is not None and p.name not in allowed):
                continue
            ok, why = p.available()
            if ok:
                usable.append(p)
            else:
                skipped[p.name] = why
        return usable, skipped

    # ----------------------------------------------------------------- per-kind calls
    def _call_bars(self, p: MarketDataProvider, units: tuple[str, ...], start: dt.date, end: dt.date) -> _Served:
        result = p.fetch_bars(BarsRequest(units, start, end))
        return _shape_bars(p.name, result.raw, units, start, end, logs=list(result.requests))

    def _call_actions(self, p: MarketDataProvider, units: tuple[str, ...], start: dt.date, end: dt.date) -> _Served:
        df = p.fetch_corporate_actions(BarsRequest(units, start, end))
        df = _conform(df, CORPORATE_ACTIONS_SCHEMA, p.name, units=units, start=start, end=end)
        df = df.filter(pl.col("symbol").is_in(list(units)))
        return _Served(df, set(units), [], 1.0)

    def _call_symbol_frame(
        self,
        kind: str,
        df: pl.DataFrame,
        schema: dict[str, pl.DataType],
        p: MarketDataProvider,
        units: tuple[str, ...],
        start: dt.date,
        end: dt.date,
    ) -> _Served:
        """Rows keyed by symbol where an empty answer is normal (no news, no report): all units served."""
        df = _conform(df, schema, p.name, units=units, start=start, end=end)
        return _Served(df.filter(pl.col("symbol").is_in(list(units))), set(units), [], 1.0)

    def _call_fundamentals(
        self, p: MarketDataProvider, units: tuple[str, ...], start: dt.date, end: dt.date
    ) -> _Served:
        df = p.fetch_fundamentals(BarsRequest(units, start, end))
        return self._call_symbol_frame("fundamentals", df, FUNDAMENTALS_SCHEMA, p, units, start, end)

    def _call_headlines(self, p: MarketDataProvider, units: tuple[str, ...], start: dt.date, end: dt.date) -> _Served:
        df = p.fetch_headlines(BarsRequest(units, start, end))
        return self._call_symbol_frame("headlines", df, HEADLINES_SCHEMA, p, units, start, end)

    def _call_macro(self, p: MarketDataProvider, units: tuple[str, ...], start: dt.date, end: dt.date) -> _Served:
        df = _conform(p.fetch_macro(units, start, end), MACRO_SCHEMA, p.name, units=units, start=start, end=end)
        df = df.filter(pl.col("series_id").is_in(list(units)))
        served = set(df.filter(pl.col("value").is_not_null()).get_column("series_id").unique().to_list())
        return _Served(df, served, [], len(served) / len(units))

    # ----------------------------------------------------------------- routing core
    def _route(self, job: _Job) -> RoutedBars | RoutedFrame:
        t_wall = time.perf_counter()
        usable, skipped = self.candidates(job.kind)
        key = (job.kind, tuple(sorted(p.name for p in usable)), job.units, job.start, job.end)
        if self.settings.cache.enabled and key in self._cache:
            self._cache.move_to_end(key)
            out = _copy_result(self._cache[key])
            self._hits += 1
            self._hit_ms += (time.perf_counter() - t_wall) * 1000.0
            return out

        if self.settings.bandit.enabled and len(usable) > 1:
            by_name = {p.name: p for p in usable}
            usable = [by_name[n] for n in self.bandit.order(job.kind, [p.name for p in usable])]
        missing = list(job.units)
        frames: list[pl.DataFrame] = []
        logs: list[RequestLog] = []
        trail: dict[str, list[str]] = {u: [] for u in job.units}
        last_error: dict[str, str] = {}
        for p in usable:
            if not missing:
                break
            size = self.settings.max_symbols(p.name)
            served_now: set[str] = set()
            for i in range(0, len(missing), size):
                chunk = tuple(missing[i : i + size])
                res = self._attempt(p, job, chunk, trail)
                logs.extend(res.logs)
                if res.frame is not None and res.frame.height:
                    frames.append(res.frame)
                served_now |= res.served
                for u in set(chunk) - res.served:
                    last_error[u] = res.error.reason_for(u) if res.error else f"{p.name}: returned no rows for {u}"
            missing = [u for u in missing if u not in served_now]

        why = "; ".join(f"{n}: {r}" for n, r in skipped.items())
        no_provider = f"no available provider for {job.kind}" + (f" ({why})" if why else "")
        failures = _failures_frame(
            job.unit_col,
            [
                {
                    job.unit_col: u,
                    "start": job.start,
                    "end": job.end,
                    "provider_attempts": trail[u],
                    "error": last_error.get(u, no_provider),
                }
                for u in missing
            ],
        )
        if missing:
            logger.warning(
                "router: no provider served %s for %s %s..%s",
                job.kind,
                describe_symbols(missing),
                job.start,
                job.end,
            )
        out = _assemble(job.kind, frames, logs, failures)
        if self.settings.cache.enabled and not missing:
            self._store(key, out)
        self._misses += 1
        self._miss_ms += (time.perf_counter() - t_wall) * 1000.0
        return out

    def _store(self, key: tuple[object, ...], out: RoutedBars | RoutedFrame) -> None:
        """Cache ``out``; evict least recently used entries beyond the entry and row limits."""
        limits = self.settings.cache
        if _rows(out) > limits.max_rows:
            return
        self._cache[key] = _copy_result(out)
        while len(self._cache) > limits.max_entries or sum(map(_rows, self._cache.values())) > limits.max_rows:
            self._cache.popitem(last=False)
            self._evictions += 1

    def _backoff_s(self, retry: int) -> float:
        """Delay before retry number ``retry`` (1-based), seconds."""
        r = self.settings.retries
        base = r.base_delay_s * (2.0 ** (retry - 1))
        return min(r.max_delay_s, base * (1.0 + r.jitter * self._rng.random()))

    def _call(self, p: MarketDataProvider, job: _Job, units: tuple[str, ...]) -> _Served | ProviderError:
        """One provider call; every failure comes back as a :class:`ProviderError`."""
        try:
            return job.call(p, units, job.start, job.end)
        except ProviderError as e:
            return e
        except BarsSchemaError as e:
            return ProviderError(p.name, units, str(e), retryable=False, start=job.start, end=job.end)
        except Exception as e:  # a provider bug must not cost the other providers their turn
            logger.exception("router: provider %s raised an unexpected error", p.name)
            reason = f"unexpected {type(e).__name__}: {e}"
            return ProviderError(p.name, units, reason, retryable=False, start=job.start, end=job.end)

    def _attempt(
        self, p: MarketDataProvider, job: _Job, chunk: tuple[str, ...], trail: dict[str, list[str]]
    ) -> _Attempted:
        """Call ``p`` for ``chunk`` with retries; rows a failed call fetched before failing are kept."""
        out = _Attempted()
        frames: list[pl.DataFrame] = []
        remaining = chunk
        max_attempts = self.settings.retries.max_attempts
        for attempt in range(1, max_attempts + 1):
            if not isinstance(p, TransportControl):
                self.buckets[p.name].acquire()
            t0 = self._clock()
            res = self._call(p, job, remaining)
            latency = (self._clock() - t0) * 1000.0
            if isinstance(res, _Served):
                n = res.frame.height
                logs = res.logs or [
                    RequestLog(p.name, job.kind, remaining, job.start, job.end, "ok", None, 1, latency, n, None)
                ]
                retries = sum(max(0, log.attempts - 1) for log in logs) + (attempt > 1)
                self.bandit.record(p.name, job.kind, Outcome("ok", latency, res.quality, n, retries))
                out.logs.extend(logs)
                frames.append(res.frame)
                out.served |= res.served
                for u in remaining:
                    trail[u].append(f"{p.name}:{'ok' if u in res.served else 'no_rows'}")
                break
            err = res
            part = self._partial(p, job, err, remaining)
            if part is not None:
                frames.append(part.frame)
                out.served |= part.served
            rows = part.frame.height if part is not None else 0
            retries = (sum(max(0, log.attempts - 1) for log in err.requests) or max(0, err.attempts - 1)) + (
                attempt > 1
            )
            self.bandit.record(p.name, job.kind, Outcome(err.status, latency, 0.0, rows, retries))
            out.logs.extend(_failed_call_logs(p.name, job, remaining, err, latency, rows))
            for u in remaining:
                if u not in out.served:
                    trail[u].append(f"{p.name}:{err.status}")
            remaining = tuple(u for u in remaining if u not in out.served)
            out.error = err
            logger.info("router: %s attempt %d/%d failed: %s", p.name, attempt, max_attempts, err)
            if not remaining or not err.retryable or attempt == max_attempts:
                break
            self._sleep(self._backoff_s(attempt))
        if frames:
            out.frame = pl.concat(frames, how="diagonal_relaxed")
        return out

    def _partial(self, p: MarketDataProvider, job: _Job, err: ProviderError, units: tuple[str, ...]) -> _Served | None:
        """Usable bars a failed call fetched before failing (None if there are none or they are unusable)."""
        if job.kind != "bars" or err.partial is None or err.partial.raw.is_empty():
            return None
        try:
            return _shape_bars(p.name, err.partial.raw, units, job.start, job.end, logs=[])
        except (BarsSchemaError, pl.exceptions.PolarsError):
            return None
