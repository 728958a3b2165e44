"""FRED provider against a local fake of FRED's series/observations endpoint (real fredapi code path)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

import pytest

from mqf_pipeline.market.providers.base import (
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailable,
    RateLimitedError,
)
from mqf_pipeline.market.providers.fred import FredProvider
from mqf_pipeline.market.router import DataRouter
from mqf_pipeline.market.router_types import RetrySettings, RouterSettings, TokenBucketSettings
from tests.market.fakes import FakeFred, FakeResponse

pytestmark = pytest.mark.network_local

API_KEY = "fredkey0123456789abcdef"
START, END = dt.date(2024, 1, 2), dt.date(2024, 1, 5)
SERIES = {
    "VIXCLS": [
        ("2023-12-29", "12.45"),
        ("2024-01-02", "13.20"),
        ("2024-01-03", "14.04"),
        ("2024-01-04", "."),
        ("2024-01-05", "13.35"),
    ],
    "DTB3": [
        ("2024-01-02", "5.24"),
        ("2024-01-03", "5.23"),
        ("2024-01-04", "5.22"),
        ("2024-01-05", "5.25"),
        ("2024-01-08", "5.24"),
    ],
}


@pytest.fixture(autouse=True)
def fred_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRED_API_KEY", API_KEY)


@pytest.fixture
def server() -> Iterator[FakeFred]:
    with FakeFred(SERIES, API_KEY) as srv:
        yield srv  # type: ignore[misc]


def _provider(srv: FakeFred, timeout_s: float = 5.0) -> FredProvider:
    return FredProvider(root_url=srv.root_url, timeout_s=timeout_s)


def test_series_mapping_units_and_captured_params(server: FakeFred) -> None:
    df = _provider(server).fetch_macro(("VIX", "SHORT_RATE"), START, END)
    vix = df.filter(df["series_id"] == "VIX").sort("date")
    rate = df.filter(df["series_id"] == "SHORT_RATE").sort("date")
    assert vix["date"].to_list() == [dt.date(2024, 1, d) for d in (2, 3, 4, 5)]
    assert vix["value"].to_list() == [13.20, 14.04, None, 13.35]  # index points; "." kept as null
    assert rate["value"].to_list() == pytest.approx([0.0524, 0.0523, 0.0522, 0.0525], abs=1e-12)  # decimal
    assert set(df["provider"]) == {"fred"}
    reqs = server.requests_to(FakeFred.PATH)
    assert [r.param("series_id") for r in reqs] == ["VIXCLS", "DTB3"]
    assert all(r.param("observation_start") == "2024-01-02" for r in reqs)
    assert all(r.param("observation_end") == "2024-01-05" for r in reqs)
    assert all(r.param("api_key") == API_KEY for r in reqs)


def test_other_ids_pass_through_unscaled(server: FakeFred) -> None:
    df = _provider(server).fetch_macro(("DTB3",), START, END)
    assert df["series_id"].unique().to_list() == ["DTB3"]
    assert df["value"].to_list() == [5.24, 5.23, 5.22, 5.25]


def test_429_is_rate_limited_and_500_is_retryable(server: FakeFred) -> None:
    server.script(FakeFred.PATH, FakeFred.error(429, "Too Many Requests.  Exceeded Rate Limit"))
    with pytest.raises(RateLimitedError) as info:
        _provider(server).fetch_macro(("VIX",), START, END)
    assert info.value.retryable and info.value.http_status == 429
    assert "Exceeded Rate Limit" in str(info.value) and "VIX" in str(info.value)

    server.script(FakeFred.PATH, FakeResponse(500, "<html>Internal Server Error</html>"))
    with pytest.raises(ProviderError) as info:
        _provider(server).fetch_macro(("VIX",), START, END)
    assert type(info.value) is ProviderError and info.value.retryable and info.value.http_status == 500


def test_unknown_series_is_not_retryable(server: FakeFred) -> None:
    with pytest.raises(ProviderError, match="series does not exist") as info:
        _provider(server).fetch_macro(("NOSUCH",), START, END)
    assert not info.value.retryable and info.value.http_status == 400


def test_timeout(server: FakeFred) -> None:
    server.script(FakeFred.PATH, FakeResponse(200, "<observations/>", delay_s=3.0))
    with pytest.raises(ProviderTimeoutError, match=r"0\.2 s"):
        _provider(server, timeout_s=0.2).fetch_macro(("VIX",), START, END)


def test_router_retries_a_429_with_backoff(server: FakeFred) -> None:
    server.script(FakeFred.PATH, FakeFred.error(429, "Too Many Requests"), FakeFred.error(429, "Too Many"))
    sleeps: list[float] = []
    settings = RouterSettings(
        retries=RetrySettings(max_attempts=4, base_delay_s=0.5, jitter=0.0),
        rate_limits={"fred": TokenBucketSettings(rate_per_s=100, capacity=100)},  # sleeps are backoffs only
    )
    router = DataRouter([_provider(server)], settings, sleep=sleeps.append)
    routed = router.get_macro(["VIX", "SHORT_RATE"], START, END)
    assert routed.failures.is_empty()
    assert sleeps == [0.5, 1.0]
    assert routed.data.height == 8
    m = router.metrics_frame().row(0, named=True)
    # one call per series (chunk size 1): VIX took three tries, SHORT_RATE one
    assert (m["capability"], m["requests"], m["rate_limited"], m["successes"], m["retries"]) == (
        "macro",
        4,
        2,
        2,
        2,
    )


def test_missing_key_and_key_never_logged(
    monkeypatch: pytest.MonkeyPatch, server: FakeFred, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.script(FakeFred.PATH, FakeFred.error(429, "Too Many Requests"), FakeResponse(500, "oops"))
    provider = _provider(server)
    texts = [repr(provider)]
    for _ in range(2):
        with pytest.raises(ProviderError) as info:
            provider.fetch_macro(("VIX",), START, END)
        texts += [str(info.value), str(info.value.requests)]
    routed = DataRouter([provider]).get_macro(["NOSUCH"], START, END)
    texts += [str(routed.failures.to_dicts()), caplog.text]
    assert API_KEY not in "\n".join(texts)

    monkeypatch.delenv("FRED_API_KEY")
    fresh = _provider(server)
    assert fresh.available() == (False, "FRED_API_KEY is not set")
    with pytest.raises(ProviderUnavailable, match="FRED_API_KEY"):
        fresh.fetch_macro(("VIX",), START, END)
