"""The mandatory audit record of every decision (seed 000 section 10.1) and its halt-on-failure writer.

Each decision yields one record with the 15 fields of :data:`AUDIT_FIELDS`. The seed lists fourteen
names under "15 fields"; the fifteenth here is ``metadata`` (the Decision class's metadata of seed
000 section 6.1: robust z, Kelly fraction, disagreement penalty, score, target weight, regime and
code version). Records become ``audit_log`` rows (component ``meta_brain``, the whole record as
``payload_json``) and ``decisions`` rows. The audit is written first: if it cannot be written,
:func:`write_audit` raises :class:`AuditWriteError` and the caller must halt (CRITICAL) before any
decision is stored, so nothing is ever decided without its audit.

Timestamps are the session's close (16:00 New York, in UTC), the time the decision is as of, so a
rerun of a cycle writes identical rows.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from zoneinfo import ZoneInfo

import polars as pl

from mqf_pipeline.storage.lake import Lake, WriteResult
from mqf_pipeline.storage.schema import table_spec

AUDIT_FIELDS: tuple[str, ...] = (
    "cycle_id",
    "timestamp",
    "symbol",
    "final_decision",
    "mu_hat",
    "sigma_hat",
    "conviction",
    "position_size",
    "stop_loss",
    "reason_codes",
    "data_quality_score",
    "provider_confidence",
    "agent_results",
    "risk_checks",
    "metadata",
)
COMPONENT = "meta_brain"
_NY = ZoneInfo("America/New_York")
#: Decision outcome -> audit_log level.
LEVELS = {"EXECUTE_BUY": "INFO", "EXECUTE_SELL": "INFO", "HOLD": "INFO", "REJECT": "WARNING"}


class AuditWriteError(RuntimeError):
    """The audit could not be written: the cycle must halt (seed 000 section 10.1, no silent failures)."""


def cycle_id(strategy: str, day: dt.date) -> str:
    """The identity of a cycle: strategy + session (ARCHITECTURE)."""
    return f"{strategy}-{day.isoformat()}"


def decision_time(day: dt.date) -> dt.datetime:
    """The instant a session's decisions are as of: its 16:00 New York close, in UTC."""
    return dt.datetime.combine(day, dt.time(16, 0), tzinfo=_NY).astimezone(dt.UTC)


def audit_records(decisions: pl.DataFrame, *, day: dt.date, strategy: str) -> pl.DataFrame:
    """The 15-field audit record per decision row.

    ``decisions`` holds the meta-brain's output (symbol, final_decision, mu_hat, sigma_hat,
    conviction, position_size, stop_loss, reason_codes, risk_checks, agent_results, metadata) plus
    data_quality_score and provider_confidence joined by the caller.
    """
    missing = [f for f in AUDIT_FIELDS if f not in ("cycle_id", "timestamp") and f not in decisions.columns]
    if missing:
        raise ValueError(f"audit record for {day}: decision rows lack field(s) {missing}")
    return decisions.select(
        pl.lit(cycle_id(strategy, day)).alias("cycle_id"),
        pl.lit(decision_time(day)).cast(pl.Datetime("us", "UTC")).alias("timestamp"),
        *[pl.col(f) for f in AUDIT_FIELDS[2:]],
    ).sort("symbol")


def audit_log_rows(records: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    """audit_log rows: one per record, the whole record as JSON in ``payload_json``."""
    payloads = [json.dumps(_jsonable(r), sort_keys=True) for r in records.iter_rows(named=True)]
    return records.select(
        "cycle_id",
        "timestamp",
        pl.lit(COMPONENT).alias("component"),
        pl.col("final_decision").replace_strict(LEVELS, default="INFO").alias("level"),
        pl.format(
            "{} {} weight {} -> {} {}",
            "final_decision",
            "symbol",
            pl.col("metadata").str.json_path_match("$.current_weight").fill_null("0"),
            pl.col("position_size").round(6).cast(pl.String),
            "reason_codes",
        ).alias("message"),
        pl.Series("payload_json", payloads, dtype=pl.String),
        pl.col("symbol").alias("event_key"),
        pl.lit(day).alias("date"),
    ).select([c for c in table_spec("audit_log").columns if c != "id"])


def cycle_event_row(
    *, day: dt.date, strategy: str, event_key: str, level: str, message: str, payload: dict[str, object]
) -> pl.DataFrame:
    """One cycle-level audit_log row (a gate that stopped the cycle, the kill switch, ...)."""
    return pl.DataFrame(
        {
            "cycle_id": [cycle_id(strategy, day)],
            "timestamp": [decision_time(day)],
            "component": [COMPONENT],
            "level": [level],
            "message": [message],
            "payload_json": [json.dumps(_jsonable(payload), sort_keys=True)],
            "event_key": [event_key],
            "date": [day],
        },
        schema_overrides={"timestamp": pl.Datetime("us", "UTC")},
    )


def decision_rows(records: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    """``decisions`` table rows from audit records."""
    return records.select(
        "cycle_id",
        "symbol",
        "timestamp",
        "final_decision",
        "position_size",
        "stop_loss",
        pl.col("reason_codes").alias("reason_codes_json"),
        "mu_hat",
        "sigma_hat",
        "conviction",
        "data_quality_score",
        "provider_confidence",
        pl.col("metadata").alias("metadata_json"),
        pl.lit(day).alias("date"),
        pl.col("agent_results").alias("agent_results_json"),
        pl.col("risk_checks").alias("risk_checks_json"),
    )


def write_audit(lake: Lake, rows: pl.DataFrame, days: Sequence[dt.date], now: dt.datetime) -> list[WriteResult]:
    """Write audit_log partitions; any failure becomes :class:`AuditWriteError` naming the sessions."""
    try:
        return lake.write_many("audit_log", rows, list(days), now=now)
    except Exception as exc:  # every failure halts the cycle: re-raised, never swallowed
        span = f"{min(days)}..{max(days)}" if days else "no sessions"
        raise AuditWriteError(f"audit_log for {span} could not be written: {type(exc).__name__}: {exc}") from exc


def _jsonable(record: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in record.items():
        if isinstance(value, dt.datetime | dt.date):
            out[key] = value.isoformat()
        elif isinstance(value, str) and value[:1] in "[{":
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError:
                out[key] = value
        else:
            out[key] = value
    return out
