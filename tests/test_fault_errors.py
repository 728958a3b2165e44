"""The error taxonomy: only transient failures reach the retry policy; permanent ones fail at once with one
line naming the stage, the partitions and the root cause."""

from __future__ import annotations

import dagster as dg
import pytest

from assets.common import describe_days, retry_only_transient
from mqf_pipeline.config import ConfigError
from mqf_pipeline.execution.brokers.base import BrokerError, LiveTradingRefusedError, OrderRejectedError
from mqf_pipeline.kill_switch import KillSwitchEngagedError
from mqf_pipeline.market.providers.base import ProviderTimeoutError, RateLimitedError
from mqf_pipeline.stages import errors
from mqf_pipeline.stages.base import StageStateError
from mqf_pipeline.storage.catalog import CatalogLockedError
from mqf_pipeline.storage.lake import LakeReadError
from mqf_pipeline.storage.schema import SchemaError


@pytest.mark.parametrize(
    ("error", "kind", "category"),
    [
        (ConfigError("risk.yaml: risk.limits.x: unknown key"), errors.Kind.PERMANENT, "config"),
        (SchemaError("bars: column close is missing"), errors.Kind.PERMANENT, "schema"),
        (
            LakeReadError("bars", "2026-12-03", "/lake/bars/2026-12-03.parquet", OSError("bad footer")),
            errors.Kind.PERMANENT,
            "data contract",
        ),
        (StageStateError("orders of 2026-12-02 missing"), errors.Kind.PERMANENT, "missing state"),
        (KillSwitchEngagedError("engaged"), errors.Kind.PERMANENT, "guard refusal"),
        (LiveTradingRefusedError("keys missing"), errors.Kind.PERMANENT, "guard refusal"),
        (RateLimitedError("yahoo", ["AAPL"], "HTTP 429"), errors.Kind.TRANSIENT, "network"),
        (ProviderTimeoutError("alpaca", ["AAPL"], "timed out"), errors.Kind.TRANSIENT, "network"),
        (BrokerError("503 from broker", retryable=True), errors.Kind.TRANSIENT, "network"),
        (OrderRejectedError("buying power"), errors.Kind.PERMANENT, "refused"),
        (CatalogLockedError("runtime/mqf.duckdb is open in process 12"), errors.Kind.TRANSIENT, "lock timeout"),
        (ConnectionResetError("reset by peer"), errors.Kind.TRANSIENT, "network"),
        (TimeoutError("read timed out"), errors.Kind.TRANSIENT, "network"),
        (ZeroDivisionError("division by zero"), errors.Kind.PERMANENT, "unexpected"),
    ],
)
def test_fault_errors_are_classified(error: BaseException, kind: errors.Kind, category: str) -> None:
    found = errors.classify(error)
    assert (found.kind, found.category) == (kind, category)
    assert found.retryable is (kind is errors.Kind.TRANSIENT)


def test_fault_classification_follows_the_cause_chain() -> None:
    try:
        try:
            raise ConfigError("configs/risk.yaml: risk.initial_nav: must be > 0\n(second line)")
        except ConfigError as inner:
            raise RuntimeError("while building the stage") from inner
    except RuntimeError as outer:
        found = errors.classify(outer)
    assert found.kind is errors.Kind.PERMANENT and isinstance(found.error, ConfigError)
    assert found.one_line() == "config: ConfigError: configs/risk.yaml: risk.initial_nav: must be > 0 (second line)"


def test_fault_unexpected_error_is_reported_by_its_innermost_exception() -> None:
    try:
        try:
            _ = {}["close"]
        except KeyError as inner:
            raise ValueError("step failed") from inner
    except ValueError as outer:
        found = errors.classify(outer)
    assert found.category == "unexpected" and found.one_line() == "unexpected: KeyError: 'close'"


def test_fault_permanent_failure_bypasses_retries_and_names_stage_and_partition() -> None:
    with pytest.raises(dg.Failure) as caught, retry_only_transient("features 2026-12-03"):
        raise SchemaError("features: column rsi_14 is Utf8, expected Float64")
    failure = caught.value
    assert failure.allow_retries is False
    assert (
        failure.description
        == "features 2026-12-03: schema: SchemaError: features: column rsi_14 is Utf8, expected Float64"
    )


def test_fault_transient_failure_is_left_to_the_retry_policy() -> None:
    with pytest.raises(ConnectionRefusedError), retry_only_transient("ingest 2026-12-03"):
        raise ConnectionRefusedError("127.0.0.1:9 refused")


def test_fault_retry_policy_retries_transients_only() -> None:
    """In a real run: a transient failure is retried (and then succeeds), a permanent one is not retried."""
    attempts = {"transient": 0, "permanent": 0}

    @dg.op(retry_policy=dg.RetryPolicy(max_retries=2))
    def flaky():
        attempts["transient"] += 1
        with retry_only_transient("ingest 2026-12-03"):
            if attempts["transient"] == 1:
                raise TimeoutError("provider read timed out")

    @dg.op(retry_policy=dg.RetryPolicy(max_retries=2))
    def broken():
        attempts["permanent"] += 1
        with retry_only_transient("quality 2026-12-03"):
            raise ConfigError("configs/quality.yaml: quality.min_score: must be in [0, 1]")

    assert dg.GraphDefinition("g1", node_defs=[flaky]).to_job().execute_in_process().success
    result = dg.GraphDefinition("g2", node_defs=[broken]).to_job().execute_in_process(raise_on_error=False)
    assert not result.success
    assert attempts == {"transient": 2, "permanent": 1}


def test_fault_partitions_in_failure_lines() -> None:
    import datetime as dt

    assert describe_days([dt.date(2026, 12, 3)]) == "2026-12-03"
    assert describe_days([dt.date(2026, 12, 3), dt.date(2026, 11, 2)]) == "2026-11-02..2026-12-03"
