"""Router: priority and fallback, backoff schedule, token buckets, cache, bandit, and no symbol lost."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mqf_pipeline import calendar
from mqf_pipeline.market.bandit import METRICS_SCHEMA, Outcome, ProviderBandit
from mqf_pipeline.market.providers.base import (
    BarsRequest,
    ProviderError,
    ProviderResult,
    RequestLog,
)
from mqf_pipeline.market.ratelimit import TokenBucket
from mqf_pipeline.market.router import DataRouter
from mqf_pipeline.market.router_types import (
    BanditSettings,
    CacheSettings,
    RetrySettings,
    RouterSettings,
    TokenBucketSettings,
)
from tests.market.fakes import FakeClock, ScriptedProvider, synthetic_bars

START, END = dt.date(2024, 5, 1), dt.date(2024, 5, 31)
SESSIONS = calendar.sessions(START, END)
SYMBOLS = tuple(f"S{i:02d}" for i in range(12))
BARS = synthetic_bars(SYMBOLS, SESSIONS)
REQ = BarsRequest(SYMBOLS[:4], START, END)


def _settings(**kw: Any) -> RouterSettings:
    base: dict[str, Any] = {"retries": RetrySettings(max_attempts=3, base_delay_s=0.5, jitter=0.0)}
    return RouterSettings(**{**base, **kw})


def _router(providers: list[Any], clock: FakeClock | None = None, **kw: Any) -> DataRouter:
    clock = clock or FakeClock()
    return DataRouter(providers, _settings(**kw), clock=clock, sleep=clock.sleep)


# ---------------------------------------------------------------- priority and fallback
def test_priority_order_and_fallback_for_missing_symbols() -> None:
    a = ScriptedProvider("a", BARS, {"S01": "no_rows"})
    b = ScriptedProvider("b", BARS, {"S00": "no_rows", "S01": "no_rows"})
    c = ScriptedProvider("c", BARS)
    routed = _router([a, b, c], priority=("b", "a", "c")).get_bars(REQ)
    assert b.calls == [REQ.symbols] and a.calls == [("S00", "S01")] and c.calls == [("S01",)]
    src = dict(routed.raw.group_by("symbol").agg(pl.col("provider").unique()).iter_rows())
    assert src == {"S00": ["a"], "S01": ["c"], "S02": ["b"], "S03": ["b"]}
    assert routed.failures.is_empty() and not routed.cache_hit
    assert routed.canonical().height == 4 * len(SESSIONS)


def test_non_retryable_error_falls_back_at_once() -> None:
    clock = FakeClock()
    a = ScriptedProvider("a", BARS, {"S02": "fatal"})
    b = ScriptedProvider("b", BARS)
    routed = _router([a, b], clock, priority=("a", "b")).get_bars(REQ)
    assert clock.sleeps == [] and len(a.calls) == 1 and b.calls == [REQ.symbols]
    assert set(routed.raw["provider"]) == {"b"}
    assert [log.status for log in routed.requests] == ["error", "ok"]


def test_unavailable_and_incapable_providers_are_skipped_with_reasons() -> None:
    a = ScriptedProvider("a", BARS)
    a.is_available = False
    macro_only = ScriptedProvider("m", BARS, capabilities=("macro",))
    routed = _router([a, macro_only]).get_bars(REQ)
    assert a.calls == [] and macro_only.calls == []
    assert routed.failures["symbol"].to_list() == list(REQ.symbols)
    assert all("A_KEY is not set" in e for e in routed.failures["error"])


def test_unexpected_exception_is_recorded_and_falls_back() -> None:
    class Broken(ScriptedProvider):
        def fetch_bars(self, req: BarsRequest) -> ProviderResult:
            raise KeyError("bug")

    routed = _router([Broken("x", BARS), ScriptedProvider("y", BARS)], priority=("x", "y")).get_bars(REQ)
    assert routed.failures.is_empty() and set(routed.raw["provider"]) == {"y"}
    assert "unexpected KeyError" in (routed.requests[0].error or "")


def test_partial_rows_of_a_failed_call_are_kept() -> None:
    class Partial(ScriptedProvider):
        def fetch_bars(self, req: BarsRequest) -> ProviderResult:
            self.calls.append(req.symbols)
            got = self.bars.filter(pl.col("symbol") == req.symbols[0])
            raise ProviderError(
                self.name,
                req.symbols[1:],
                "died mid-way",
                retryable=False,
                partial=ProviderResult(self.name, got),
            )

    p, q = Partial("p", BARS), ScriptedProvider("q", BARS)
    routed = _router([p, q], priority=("p", "q")).get_bars(REQ)
    assert q.calls == [REQ.symbols[1:]]
    src = dict(routed.raw.group_by("symbol").agg(pl.col("provider").first()).iter_rows())
    assert src == {"S00": "p", "S01": "q", "S02": "q", "S03": "q"}


def test_failures_name_every_attempt() -> None:
    a = ScriptedProvider("a", BARS, {"S03": "rate_limited"})
    b = ScriptedProvider("b", BARS, {"S03": "no_rows"})
    routed = _router([a, b], priority=("a", "b"), max_symbols_per_request={"a": 1}).get_bars(REQ)
    fail = routed.failures.row(0, named=True)
    assert fail["symbol"] == "S03" and routed.failures.height == 1
    assert fail["provider_attempts"] == ["a:rate_limited"] * 3 + ["b:no_rows"]
    assert "b: returned no rows for S03" in fail["error"]
    assert (fail["start"], fail["end"]) == (START, END)
    assert set(routed.raw["symbol"]) == set(REQ.symbols) - {"S03"}


# ---------------------------------------------------------------- retries and backoff
def test_backoff_follows_the_exponential_schedule() -> None:
    clock = FakeClock()
    a = ScriptedProvider("a", BARS, fail_calls=10)
    settings = RouterSettings(retries=RetrySettings(max_attempts=6, base_delay_s=0.5, max_delay_s=4.0, jitter=0.0))
    routed = DataRouter([a], settings, clock=clock, sleep=clock.sleep).get_bars(REQ)
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0]  # capped at max_delay_s
    assert len(a.calls) == 6 and routed.failures.height == 4


def test_jitter_is_bounded_and_seeded() -> None:
    def sleeps(seed: int) -> list[float]:
        clock = FakeClock()
        settings = RouterSettings(retries=RetrySettings(max_attempts=4, base_delay_s=0.5, jitter=0.2))
        router = DataRouter([ScriptedProvider("a", BARS, fail_calls=3)], settings, clock, clock.sleep, rng_seed=seed)
        router.get_bars(REQ)
        return clock.sleeps

    first = sleeps(1)
    for got, base in zip(first, [0.5, 1.0, 2.0], strict=True):
        assert base <= got <= base * 1.2
    assert first == sleeps(1) and first != sleeps(2)


def test_retry_then_success_counts_retries() -> None:
    a = ScriptedProvider("a", BARS, fail_calls=2)
    router = _router([a])
    routed = router.get_bars(REQ)
    assert routed.failures.is_empty() and len(a.calls) == 3
    m = router.metrics_frame().row(0, named=True)
    assert (m["requests"], m["successes"], m["failures"], m["rate_limited"], m["retries"]) == (3, 1, 2, 2, 2)
    assert m["rows"] == 4 * len(SESSIONS)


# ---------------------------------------------------------------- token buckets
def test_token_bucket_honours_rate_with_a_fake_clock() -> None:
    clock = FakeClock(start=0.0)
    bucket = TokenBucket(5, 5, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(25):
        bucket.acquire()
        times.append(clock.now)
    assert times[:5] == [0.0] * 5  # the burst
    assert times[-1] == pytest.approx(4.0)  # then 5 per second
    for i in range(5, 25):  # never more than capacity + rate * t tokens by time t
        assert i + 1 <= 5 + 5 * times[i] + 1e-9
    assert bucket.stats().acquired == 25 and bucket.stats().waited_s == pytest.approx(4.0)
    clock.advance(10)
    assert bucket.try_acquire(5) and not bucket.try_acquire()
    assert bucket.wait_time_s() == pytest.approx(0.2)
    with pytest.raises(ValueError, match="capacity"):
        bucket.acquire(6)


def test_bucket_refuses_a_clock_that_never_moves() -> None:
    bucket = TokenBucket(1, 1, clock=lambda: 0.0, sleep=lambda s: None)
    bucket.acquire()
    with pytest.raises(RuntimeError, match="clock does not advance"):
        bucket.acquire()


def test_router_gates_each_call_with_the_providers_bucket() -> None:
    clock = FakeClock(start=0.0)
    yahoo = ScriptedProvider("yahoo", BARS)  # default limit 5/s, capacity 5; one symbol per call
    files = ScriptedProvider("files", BARS)  # not listed: unlimited
    router = _router([yahoo], clock)
    router.get_bars(BarsRequest(SYMBOLS, START, END))
    assert len(yahoo.calls) == 12 and clock.now == pytest.approx((12 - 5) / 5)
    clock2 = FakeClock(start=0.0)
    _router([files], clock2, max_symbols_per_request={"files": 1}).get_bars(BarsRequest(SYMBOLS, START, END))
    assert len(files.calls) == 12 and clock2.now == 0.0


def test_http_providers_get_the_throttle_and_timeout() -> None:
    class Http(ScriptedProvider):
        def bind_transport(self, throttle: Any, timeout_s: float | None) -> None:
            self.throttle, self.timeout_s = throttle, timeout_s

        def fetch_bars(self, req: BarsRequest) -> ProviderResult:
            for _ in range(3):  # e.g. three pages
                self.throttle()
            return super().fetch_bars(req)

    clock = FakeClock(start=0.0)
    p = Http("alpaca", BARS)  # 10/s, capacity 10
    router = _router([p], clock, timeout_s=7.5)
    assert p.timeout_s == 7.5
    for i in range(5):
        router.get_bars(BarsRequest((SYMBOLS[i],), START, END))
    assert clock.now == pytest.approx((15 - 10) / 10)  # 15 HTTP requests, not 5 calls


# ---------------------------------------------------------------- cache
def test_cache_hit_returns_an_equal_frame_and_counts() -> None:
    a = ScriptedProvider("a", BARS)
    router = _router([a])
    first = router.get_bars(REQ)
    second = router.get_bars(REQ)
    assert len(a.calls) == 1 and not first.cache_hit and second.cache_hit
    assert second.raw.equals(first.raw) and second.failures.equals(first.failures) and second.requests == []
    stats = router.cache_stats()
    assert (stats.hits, stats.misses, stats.entries) == (1, 1, 1)
    assert stats.mean_hit_ms >= 0 and stats.mean_miss_ms > 0


def test_cache_skips_incomplete_results_evicts_lru_and_keys_on_provider_set() -> None:
    a = ScriptedProvider("a", BARS, {"S03": "no_rows"})
    b = ScriptedProvider("b", BARS)
    router = _router([a], cache=CacheSettings(max_entries=2))
    router.get_bars(REQ)
    router.get_bars(REQ)
    assert len(a.calls) == 2 and router.cache_stats().entries == 0  # S03 failed: not cached
    reqs = [BarsRequest((s,), START, END) for s in SYMBOLS[:3]]
    for r in reqs:
        router.get_bars(r)
    assert router.get_bars(reqs[2]).cache_hit and router.get_bars(reqs[1]).cache_hit
    assert not router.get_bars(reqs[0]).cache_hit  # evicted (least recently used)
    assert router.cache_stats().evictions == 2
    r2 = _router([a, b], priority=("a", "b"))
    r2.get_bars(BarsRequest(("S00",), START, END))
    b.is_available = False
    assert not r2.get_bars(BarsRequest(("S00",), START, END)).cache_hit  # provider set changed
    r2.clear_cache()
    assert r2.cache_stats().entries == 0


def test_cache_can_be_disabled() -> None:
    a = ScriptedProvider("a", BARS)
    router = _router([a], cache=CacheSettings(enabled=False))
    router.get_bars(REQ)
    assert not router.get_bars(REQ).cache_hit and len(a.calls) == 2


# ---------------------------------------------------------------- bandit and metrics
def _bandit_race(
    seed: int, rounds: int = 60, algorithm: str = "thompson", exploration: float = 1.0
) -> tuple[list[str], DataRouter]:
    """Who went first in each round: "good" serves everything fast, "bad" misses S01 and is slow."""
    clock = FakeClock()
    good = ScriptedProvider("good", BARS, clock=clock, latency_s=0.05)
    bad = ScriptedProvider("bad", BARS, {"S01": "no_rows"}, clock=clock, latency_s=2.0)
    router = DataRouter(
        [bad, good],
        _settings(
            priority=("bad", "good"),
            bandit=BanditSettings(enabled=True, algorithm=algorithm, exploration=exploration),  # type: ignore[arg-type]
            cache=CacheSettings(enabled=False),
        ),
        clock=clock,
        sleep=clock.sleep,
        rng_seed=seed,
    )
    firsts = []
    for _ in range(rounds):
        n_bad = len(bad.calls)
        router.get_bars(BarsRequest(SYMBOLS[:2], START, END))
        firsts.append("bad" if len(bad.calls) > n_bad else "good")  # bad first => good fills S01 after
    return firsts, router


@pytest.mark.parametrize(("algorithm", "exploration"), [("thompson", 1.0), ("ucb1", 0.3)])
def test_bandit_learns_to_prefer_the_better_provider(algorithm: str, exploration: float) -> None:
    firsts, router = _bandit_race(seed=0, algorithm=algorithm, exploration=exploration)
    assert firsts.count("bad") >= 1  # it explored
    assert firsts[-20:].count("good") >= 18, firsts
    m = {r["provider"]: r for r in router.metrics_frame().iter_rows(named=True)}
    assert m["good"]["mean_reward"] > m["bad"]["mean_reward"]
    assert m["good"]["mean_quality"] == pytest.approx(1.0) and m["bad"]["mean_quality"] == pytest.approx(0.5)
    assert m["good"]["mean_latency_ms"] == pytest.approx(50.0)
    assert m["bad"]["mean_latency_ms"] == pytest.approx(2000.0)
    again, _ = _bandit_race(seed=0, algorithm=algorithm, exploration=exploration)
    assert again == firsts  # deterministic for a seed


def test_without_bandit_priority_decides() -> None:
    clock = FakeClock()
    bad = ScriptedProvider("bad", BARS, {"S01": "no_rows"}, clock=clock, latency_s=2.0)
    router = _router([ScriptedProvider("good", BARS), bad], clock, priority=("bad", "good"))
    for s in SYMBOLS[2:7]:
        router.get_bars(BarsRequest((s, "S01"), START, END))
    assert len(bad.calls) == 5


def test_thompson_posterior_is_beta_of_successes_and_failures() -> None:
    bandit = ProviderBandit(rng_seed=3)
    for ok in [True, True, False, True, False, True]:
        bandit.record("p", "bars", Outcome("ok" if ok else "error", latency_ms=0.0, quality=1.0))
    arm = bandit.arm("p", "bars")
    assert (arm.alpha, arm.beta) == (1 + 4, 1 + 2)  # binary rewards: Beta(1 + s, 1 + f)
    draws = [bandit.scores("bars", ["p"])[0] for _ in range(4000)]
    mean = sum(draws) / len(draws)
    assert mean == pytest.approx(5 / 8, abs=0.02)  # Beta(5, 3)


def test_metrics_round_trip_and_restore_preferences() -> None:
    a = ScriptedProvider("a", BARS, fail_calls=2)
    b = ScriptedProvider("b", BARS)
    router = _router([a, b], priority=("a", "b"), cache=CacheSettings(enabled=False))
    for s in SYMBOLS[:6]:
        router.get_bars(BarsRequest((s,), START, END))
    frame = router.metrics_frame()
    assert frame.schema == pl.Schema(METRICS_SCHEMA)
    assert frame.columns == list(METRICS_SCHEMA)
    assert frame["updated_at"].dtype == pl.Datetime("us", "UTC") and frame["updated_at"].null_count() == 0
    restored = _router([a, b], priority=("a", "b"))
    restored.load_metrics(frame)
    assert restored.metrics_frame().equals(frame)
    with pytest.raises(ValueError, match="mean_reward"):
        restored.load_metrics(frame.drop("mean_reward"))


# ---------------------------------------------------------------- macro and corporate actions
class MacroProvider(ScriptedProvider):
    def __init__(self, name: str, series: dict[str, float], fail: int = 0) -> None:
        super().__init__(name, BARS, capabilities=("macro", "corporate_actions"), fail_calls=fail)
        self.series = series

    def fetch_macro(self, series: tuple[str, ...], start: dt.date, end: dt.date) -> pl.DataFrame:
        self.calls.append(series)
        if len(self.calls) <= self.fail_calls:
            raise ProviderError(self.name, series, "HTTP 503", retryable=True)
        rows = [(d, s, self.series[s]) for s in series if s in self.series for d in SESSIONS]
        return pl.DataFrame(rows, schema={"date": pl.Date, "series_id": pl.String, "value": pl.Float64}, orient="row")

    def fetch_corporate_actions(self, req: BarsRequest) -> pl.DataFrame:
        self.calls.append(req.symbols)
        rows = [(START, s, "DIVIDEND", 0.5) for s in req.symbols if s == "S00"]
        schema = {"date": pl.Date, "symbol": pl.String, "action_type": pl.String, "value": pl.Float64}
        return pl.DataFrame(rows, schema=schema, orient="row")


def test_macro_retries_and_falls_back_per_series() -> None:
    clock = FakeClock()
    fred = MacroProvider("fred", {"VIX": 13.0}, fail=1)
    sim = MacroProvider("simulated", {"VIX": 99.0, "SHORT_RATE": 0.05})
    settings_ = _settings(priority=("fred", "simulated"), rate_limits={})  # sleeps are backoffs only
    router = DataRouter([sim, fred], settings_, clock=clock, sleep=clock.sleep)
    routed = router.get_macro(["VIX", "SHORT_RATE", "NOPE"], START, END)
    assert clock.sleeps == [0.5]
    got = dict(routed.data.group_by("series_id").agg(pl.col("provider").first()).iter_rows())
    assert got == {"VIX": "fred", "SHORT_RATE": "simulated"}
    assert routed.data.filter(pl.col("series_id") == "VIX")["value"].unique().to_list() == [13.0]
    assert routed.failures["series_id"].to_list() == ["NOPE"]
    assert routed.failures.columns == ["series_id", "start", "end", "provider_attempts", "error"]


def test_corporate_actions_success_serves_symbols_without_actions() -> None:
    p = MacroProvider("simulated", {})
    routed = _router([p]).get_corporate_actions(REQ)
    assert routed.failures.is_empty()
    assert routed.data.rows() == [(START, "S00", "DIVIDEND", 0.5, "simulated")]


# ---------------------------------------------------------------- settings
def test_settings_are_frozen_and_strict() -> None:
    s = RouterSettings()
    assert s.rate_limits["yahoo"] == TokenBucketSettings(rate_per_s=5, capacity=5)
    assert s.rate_limits["alpaca"].rate_per_s == 10 and s.rate_limits["polygon"].capacity == 20
    assert "simulated" not in s.rate_limits and "files" not in s.rate_limits
    assert (s.retries.max_attempts, s.retries.base_delay_s, s.retries.max_delay_s) == (4, 0.5, 8.0)
    with pytest.raises(ValidationError):
        RouterSettings(retry=RetrySettings())  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        s.timeout_s = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="unique"):
        DataRouter([ScriptedProvider("a", BARS), ScriptedProvider("a", BARS)])


# ---------------------------------------------------------------- property: nothing is dropped
behaviour = st.sampled_from(["ok", "ok", "no_rows", "error", "fatal", "rate_limited", "timeout"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_providers=st.integers(1, 3),
    data=st.data(),
    symbols=st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=8, unique=True),
    attempts=st.integers(1, 3),
    chunk=st.integers(1, 5),
)
def test_every_requested_symbol_is_served_or_reported(
    n_providers: int, data: st.DataObject, symbols: list[str], attempts: int, chunk: int
) -> None:
    providers = []
    for k in range(n_providers):
        script = data.draw(st.dictionaries(st.sampled_from(symbols), behaviour), label=f"p{k}")
        p = ScriptedProvider(f"p{k}", BARS, script, fail_calls=data.draw(st.integers(0, 2), label=f"fail{k}"))
        p.is_available = data.draw(st.booleans(), label=f"up{k}") or k == 0
        providers.append(p)
    clock = FakeClock()
    settings_ = RouterSettings(
        retries=RetrySettings(max_attempts=attempts, jitter=0.0),
        default_max_symbols_per_request=chunk,
        cache=CacheSettings(enabled=False),
    )
    routed = DataRouter(providers, settings_, clock=clock, sleep=clock.sleep).get_bars(
        BarsRequest(tuple(symbols), START, END)
    )
    served = set(routed.raw["symbol"].unique().to_list())
    failed = routed.failures["symbol"].to_list()
    assert served | set(failed) == set(symbols)
    assert not served & set(failed) and len(failed) == len(set(failed))
    for s in served:  # one provider per symbol, all of its sessions
        rows = routed.raw.filter(pl.col("symbol") == s)
        assert rows["provider"].n_unique() == 1 and rows.height == len(SESSIONS)
    for row in routed.failures.iter_rows(named=True):
        assert row["provider_attempts"] and row["error"]
    assert all(isinstance(log, RequestLog) for log in routed.requests)


def test_cache_row_limit() -> None:
    a = ScriptedProvider("a", BARS)
    router = _router([a], cache=CacheSettings(max_rows=2 * len(SESSIONS)))
    router.get_bars(REQ)  # 4 symbols: too many rows to cache
    assert router.cache_stats().entries == 0
    for s in SYMBOLS[:3]:
        router.get_bars(BarsRequest((s,), START, END))
    assert router.cache_stats().entries == 2 and router.cache_stats().evictions == 1


# ---------------------------------------------------------------- real providers behind the protocol
def test_every_provider_meets_the_protocol(tmp_path: Any) -> None:
    from mqf_pipeline.market.providers import (
        CAPABILITIES,
        MarketDataProvider,
        TransportControl,
        make_provider,
    )

    made = {
        "simulated": make_provider("simulated"),
        "files": make_provider("files", root=tmp_path),
        "yahoo": make_provider("yahoo"),
        "alpaca": make_provider("alpaca"),
        "fred": make_provider("fred"),
    }
    for name, p in made.items():
        assert isinstance(p, MarketDataProvider) and p.name == name
        assert p.capabilities() <= CAPABILITIES
        assert isinstance(p, TransportControl) == (name in {"yahoo", "alpaca", "fred"})
    with pytest.raises(KeyError, match="polygon"):
        make_provider("polygon")


def test_router_over_the_simulated_provider() -> None:
    from mqf_pipeline.market.providers.simulated import SimulatedProvider
    from mqf_pipeline.market.sim import SimulatorParams

    sim = SimulatedProvider(SimulatorParams(n_symbols=12, n_sectors=3))
    router = DataRouter([sim])
    req = BarsRequest(("S0001", "S0005", "AAPL"), START, END)
    routed = router.get_bars(req)
    canon = routed.canonical()
    assert not canon["cast_failed"].any() and canon.height == 2 * len(SESSIONS)
    assert routed.failures["symbol"].to_list() == ["AAPL"]
    assert routed.failures["provider_attempts"].to_list() == [["simulated:no_rows"]]
    macro = router.get_macro(["VIX", "SHORT_RATE"], START, END)
    assert macro.failures.is_empty() and macro.data.height == 2 * len(SESSIONS)
    vix = macro.data.filter(pl.col("series_id") == "VIX")["value"]
    rate = macro.data.filter(pl.col("series_id") == "SHORT_RATE")["value"]
    assert vix.min() > 5 and vix.max() < 100  # index points
    assert rate.min() >= 0 and rate.max() < 0.2  # decimal annual
    actions = router.get_corporate_actions(BarsRequest(("S0001",), dt.date(2015, 1, 2), END))
    assert actions.failures.is_empty() and set(actions.data["action_type"]) <= {"SPLIT", "DIVIDEND"}
    m = {r["capability"]: r for r in router.metrics_frame().iter_rows(named=True)}
    assert m["bars"]["mean_quality"] == pytest.approx(2 / 3)


def test_shipped_paper_providers_build_without_a_files_root(caplog: pytest.LogCaptureFixture) -> None:
    """The shipped paper list ends with the user's own files; unset, it is skipped with a warning instead of
    stopping paper mode (no network is touched: providers connect on first request)."""
    from pathlib import Path

    from mqf_pipeline.config import load_settings
    from mqf_pipeline.modes import Mode
    from mqf_pipeline.stages.providers import build_router

    shipped = load_settings(Path(__file__).resolve().parents[2] / "configs")
    assert shipped.providers.files_root is None and "files" in shipped.providers.priority["paper"]
    paper = shipped.model_copy(update={"fund": shipped.fund.model_copy(update={"mode": Mode.PAPER})})
    with caplog.at_level("WARNING"):
        router = build_router(paper)
    assert [p.name for p in router.providers] == ["yahoo", "alpaca", "fred"]
    assert "files_root is not set: skipped" in caplog.text
