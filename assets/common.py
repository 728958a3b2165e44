"""Small helpers shared by asset modules: partition dates, metadata, the combined content hash."""

from __future__ import annotations

import datetime as dt
import hashlib
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import polars as pl

from mqf_pipeline.config import Settings
from mqf_pipeline.execution.brokers.base import LiveTradingRefusedError
from mqf_pipeline.execution.live_guard import check_trading_allowed
from mqf_pipeline.stages import errors
from mqf_pipeline.stages.base import RunContext, Stage, StageRun, materialize
from mqf_pipeline.stages.context import run_context
from mqf_pipeline.stages.registry import asset_key, upstream_assets
from mqf_pipeline.storage.lake import Lake, WriteResult

# BackfillPolicy is marked beta in Dagster 1.13; single-run backfills are a deliberate choice here
# (DAGSTER_NOTES: 10 partitions as one run 39 s vs 114 s as ten runs), so its warning is noise.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

RETRY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def partition_dates(context: dg.AssetExecutionContext) -> list[dt.date]:
    """The sessions this run materializes (one, or a range in a single-run backfill)."""
    return [dt.date.fromisoformat(k) for k in context.partition_keys]


def combined_hash(results: Iterable[WriteResult]) -> str:
    """One hash over the partitions written: equal to the partition's own hash for a single one."""
    results = list(results)
    if len(results) == 1:
        return results[0].content_hash
    h = hashlib.sha256()
    for r in sorted(results, key=lambda r: r.partition):
        h.update(f"{r.partition}:{r.content_hash}\n".encode())
    return h.hexdigest()


def write_metadata(results: list[WriteResult], **extra: object) -> dict[str, object]:
    """Standard materialization metadata: rows, content hash, files written vs unchanged."""
    rows = sum(r.rows for r in results)
    meta: dict[str, object] = {
        "dagster/row_count": rows,
        "content_hash": combined_hash(results),
        "partitions": len(results),
        "files_written": sum(r.written for r in results),
        "files_unchanged": sum(not r.written for r in results),
    }
    if results:
        meta["first_partition"] = results[0].partition
        meta["last_partition"] = results[-1].partition
    meta.update(extra)
    return meta


def md_table(frame: pl.DataFrame, max_rows: int = 20) -> str:
    """A small Markdown table for metadata previews in the UI."""
    head = frame.head(max_rows)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in head.iter_rows()]
    if frame.height > max_rows:
        lines.append(f"| ... {frame.height - max_rows} more rows |" + " |" * (len(head.columns) - 1))
    return "\n".join(lines)


#: A carried table depends on its own previous partition (its state continues the session before).
PREVIOUS = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)


def stage_specs(
    stage: type[Stage],
    *,
    descriptions: dict[str, str],
    group: str,
    kinds: set[str],
    groups: dict[str, str] | None = None,
) -> list[dg.AssetSpec]:
    """One spec per table ``stage`` writes; deps derived from its ``READS`` (and ``CARRIES``: the previous
    partition of the table itself) through the stage registry, never listed by hand."""
    specs = []
    for table in stage.WRITES:
        upstream = upstream_assets(stage, table)
        key = stage.asset_key(table)
        carried = [dg.AssetDep(key, partition_mapping=PREVIOUS)] if table in stage.CARRIES else []
        specs.append(
            dg.AssetSpec(
                key,
                group_name=(groups or {}).get(table, group),
                deps=[*upstream, *carried],
                code_version=stage.CODE_VERSION,
                kinds=kinds,
                description=descriptions[table],
            )
        )
    return specs


def refuse_untradeable_run(context: dg.AssetExecutionContext, settings: Settings) -> None:
    """Fail (no retry) a run that materializes the orders when its mode may not trade (paper or live without
    keys, live without its opt-in: :func:`~mqf_pipeline.execution.live_guard.check_trading_allowed`), before
    any of its stages ran rather than at the execution step after all of them."""
    selected = context.run.asset_selection or context.job_def.asset_layer.selected_asset_keys
    if dg.AssetKey(asset_key("orders")) not in selected:
        return
    mode = settings.fund.mode
    try:
        check_trading_allowed(mode, settings.providers.priority.get(mode, []), broker=settings.broker_kind)
    except LiveTradingRefusedError as exc:
        raise dg.Failure(description=f"run refused before its first stage: {exc}", allow_retries=False) from exc


def stage_context(
    context: dg.AssetExecutionContext, settings: Settings, lake: Lake, kill_switch_path: Path | None = None
) -> RunContext:
    """The run context of a stage asset: Dagster's log, the run id, the kill switch (when the stage obeys it).
    A run that will create orders checks the live guard here, so its first stage refuses it."""
    refuse_untradeable_run(context, settings)
    return run_context(lake, settings, kill_switch_path=kill_switch_path, log=context.log, run_id=context.run.run_id)


def describe_days(days: Sequence[dt.date]) -> str:
    """``2026-12-03`` or ``2026-11-02..2026-12-03``: the partitions of a step, for failure lines."""
    if not days:
        return "(no partition)"
    return days[0].isoformat() if len(days) == 1 else f"{min(days)}..{max(days)}"


@contextmanager
def retry_only_transient(what: str) -> Iterator[None]:
    """Let transient failures (network, rate limit, lock timeout) through to the retry policy; turn every
    other one into a ``dg.Failure`` that bypasses it, with one line saying ``what`` failed and why
    (``mqf_pipeline.stages.errors``: a bad config or schema cannot succeed on a retry)."""
    try:
        yield
    except dg.Failure:
        raise
    except Exception as exc:
        found = errors.classify(exc)
        if found.retryable:
            raise
        raise dg.Failure(
            description=f"{what}: {found.one_line()}",
            metadata={"error_kind": found.kind.value, "error_category": found.category},
            allow_retries=False,
        ) from exc


def materialize_stage(context: dg.AssetExecutionContext, stage: Stage, ctx: RunContext) -> StageRun:
    """Run the stage over the run's partitions and write its tables; only transient failures are retried."""
    days = partition_dates(context)
    with retry_only_transient(f"{stage.NAME} {describe_days(days)}"):
        return materialize(stage, ctx, days)
