"""Agent signals over the lake: point-in-time inputs, block-anchored runs, model_outputs rows.

Agents that learn (ML, pairs) refit on schedules counted from the first session of the data they
are given, so, as for features (:mod:`mqf_pipeline.stages.features`), each session's signals are
computed from a window that starts ``history`` sessions before the first session of its fixed
block: a session gets the same signals alone or in a backfill, from data at or before it only.

The agents read the stored ``features`` (long rows, pivoted once to wide by :func:`load_features`) over the
same window as the bars; the features of a session are themselves block-anchored and fixed once stored.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import ClassVar

import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.agents.base import SIGNAL_SCHEMA, Agent, AgentData
from mqf_pipeline.agents.evaluation import daily_ic, forward_returns, ic_summary
from mqf_pipeline.agents.registry import build_agents, run_agents
from mqf_pipeline.features import feature_names
from mqf_pipeline.stages.base import RunContext, Stage, StepOutput, split_by_day
from mqf_pipeline.stages.features import block_start, usable_bars
from mqf_pipeline.storage.lake import Lake
from mqf_pipeline.storage.schema import table_spec

ProgressFn = Callable[[str], None]


def load_features(lake: Lake, start: dt.date, end: dt.date) -> pl.DataFrame:
    """Stored features of sessions ``start``..``end`` pivoted once to wide: (date, symbol, <feature>...).

    Values keep their stored units (:mod:`mqf_pipeline.features`); a feature not stored for a row is null.
    Every name of :func:`~mqf_pipeline.features.feature_names` is a Float64 column (all null when none is
    stored), in that order, then any other stored name sorted; rows sorted by (date, symbol).
    """
    span = [p for p in lake.partitions("features") if start.isoformat() <= p <= end.isoformat()]
    long = lake.scan("features", span).select("date", "symbol", "feature", "value").collect()
    known = feature_names()
    if long.height == 0:
        return pl.DataFrame(schema={"date": pl.Date, "symbol": pl.String, **dict.fromkeys(known, pl.Float64)})
    wide = long.pivot(on="feature", index=["date", "symbol"], values="value")
    extra = sorted(set(wide.columns) - {"date", "symbol", *known})
    return wide.select(
        "date",
        "symbol",
        *[pl.col(n).cast(pl.Float64) if n in wide.columns else pl.lit(None, pl.Float64).alias(n) for n in known],
        *extra,
    ).sort("date", "symbol")


def load_agent_data(lake: Lake, universe: pl.DataFrame, start: dt.date, end: dt.date) -> AgentData:
    """Everything the agents may read for sessions ``start``..``end`` (fundamentals: all reported by end;
    features: the stored ones of those sessions, wide, see :func:`load_features`)."""
    stored = lake.partitions("fundamentals")
    fundamentals = (
        lake.read("fundamentals", [p for p in stored if p <= end.isoformat()]).drop("raw_hash")
        if stored
        else pl.DataFrame()
    )
    headlines = lake.read_range("news_headlines", start, end).select("date", "symbol", "headline")
    macro = lake.read_range("macro_series", start, end).select("date", "series_id", "value")
    return AgentData(
        bars=usable_bars(lake, start, end),
        features=load_features(lake, start, end),
        universe=universe,
        fundamentals=fundamentals,
        headlines=headlines,
        macro=macro,
    )


def _window(data: AgentData, lo: dt.date, hi: dt.date) -> AgentData:
    def between(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(pl.col("date").is_between(lo, hi)) if "date" in frame.columns else frame

    return AgentData(
        bars=between(data.bars),
        features=between(data.features),
        universe=data.universe,
        fundamentals=data.fundamentals.filter(pl.col("report_date") <= hi)
        if data.fundamentals.height
        else data.fundamentals,
        headlines=between(data.headlines),
        macro=between(data.macro),
    )


def agent_signals_for_dates(
    lake: Lake,
    universe: pl.DataFrame,
    dates: Sequence[dt.date],
    agents: Sequence[Agent],
    *,
    block_sessions: int,
    history: int,
    progress: ProgressFn = lambda _m: None,
) -> pl.DataFrame:
    """Validated signals (:data:`SIGNAL_SCHEMA`) of ``agents`` for ``dates``, block-anchored."""
    dates = sorted(dates)
    blocks: dict[dt.date, list[dt.date]] = {}
    for day in dates:
        blocks.setdefault(block_start(day, block_sessions), []).append(day)
    first = calendar.session_offset(min(blocks), -history)
    data = load_agent_data(lake, universe, first, dates[-1])
    parts = []
    for i, (start, days) in enumerate(sorted(blocks.items()), start=1):
        lo = calendar.session_offset(start, -history)
        parts.append(run_agents(agents, _window(data, lo, days[-1]), days))
        progress(f"agents: block {i}/{len(blocks)} ({start} .. {days[-1]}), {sum(p.height for p in parts)} signals")
    return pl.concat(parts).sort("date", "symbol", "agent") if parts else pl.DataFrame(schema=SIGNAL_SCHEMA)


def model_output_rows(signals: pl.DataFrame, strategy: str, model_version: str) -> pl.DataFrame:
    """model_outputs rows: cycle_id = strategy + session (ARCHITECTURE: identity of a cycle)."""
    cols = list(table_spec("model_outputs").columns)
    return signals.select(
        "date",
        pl.format("{}-{}", pl.lit(strategy), pl.col("date").cast(pl.String)).alias("cycle_id"),
        "symbol",
        "agent",
        "mu",
        "sigma",
        "confidence",
        "signal",
        "horizon_days",
        pl.col("reason_codes").alias("reason_codes_json"),
        pl.lit(model_version).alias("model_version"),
    ).select(cols)


def ic_to_date(lake: Lake, end: dt.date, lookback: int = 63) -> dict[str, dict[str, float]]:
    """Per agent: rank IC of ``signal`` at t against the return t -> t+1, over the ``lookback`` sessions
    before ``end`` whose next-session return is known at ``end`` (from stored model_outputs)."""
    start = calendar.session_offset(end, -lookback)
    outputs = lake.read_range("model_outputs", start, end)
    if outputs.height == 0:
        return {}
    bars = lake.read_range("price_history", start, end)
    fwd = forward_returns(bars, 1)  # only pairs with both closes <= end
    out: dict[str, dict[str, float]] = {}
    for (agent,), part in outputs.group_by("agent"):
        summary = ic_summary(daily_ic(part.select("date", "symbol", "signal"), fwd))
        out[str(agent)] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary.items()}
    return out


#: The lake table an agent cannot score without (the others need only bars and features) and how to name it.
AGENT_INPUTS: dict[str, tuple[str, str]] = {
    "valuation": ("fundamentals", "fundamentals"),
    "fundamental": ("fundamentals", "fundamentals"),
    "sentiment": ("news_headlines", "news headlines"),
}


def agents_without_data(
    lake: Lake, day: dt.date, present: Collection[str], weights: Mapping[str, float]
) -> list[dict[str, object]]:
    """The agents of ``weights`` (agent -> ensemble weight) without a signal on ``day``: agent, weight, reason.

    The reason names the input missing from the lake (:data:`AGENT_INPUTS`: nothing stored at or before
    ``day``, i.e. no provider served it) or else says the agent scored no symbol that day.
    """
    out: list[dict[str, object]] = []
    for agent in sorted(set(weights) - set(present)):
        table, label = AGENT_INPUTS.get(agent, ("", ""))
        stored = bool(table) and any(p <= day.isoformat() for p in lake.partitions(table))
        reason = (
            f"no {label} in the lake up to {day}: no provider served them (none configured for this mode, or all "
            "failed)"
            if table and not stored
            else f"scored no symbol on {day}"
        )
        out.append({"agent": agent, "weight": round(float(weights[agent]), 4), "reason": reason})
    return out


def no_data_note(missing: Sequence[Mapping[str, object]]) -> str | None:
    """One sentence on the agents of :func:`agents_without_data`, or None when every agent had data.

    The ensemble (:func:`~mqf_pipeline.decisions.ensemble.ensemble`) normalises weight x confidence over
    the agents that scored a symbol, so a silent agent's weight goes to the others pro rata.
    """
    if not missing:
        return None
    lost = sum(float(m["weight"]) for m in missing)  # type: ignore[arg-type]
    parts = "; ".join(f"{m['agent']} ({m['reason']})" for m in missing)
    return (
        f"no data: {parts}. Their ensemble weight ({100 * lost:.1f}%) went to the other agents pro rata (the "
        "ensemble normalises weight x confidence over the agents that scored each symbol)"
    )


def coverage_table(
    signals: pl.DataFrame,
    eligible_last: int,
    last: dt.date,
    missing: Sequence[Mapping[str, object]] = (),
) -> list[dict[str, object]]:
    """Per agent on the last session: symbols covered, share of eligible symbols, mean confidence, and
    ``status`` ("ok", or "no data" with its ``reason`` for the rows of ``missing`` from
    :func:`agents_without_data`)."""
    rows = (
        signals.filter(pl.col("date") == last)
        .group_by("agent")
        .agg(symbols=pl.len(), mean_confidence=pl.col("confidence").mean(), mean_signal=pl.col("signal").mean())
        .sort("agent")
    )
    table: list[dict[str, object]] = [
        {
            **r,
            "coverage": round(r["symbols"] / max(eligible_last, 1), 4),
            "mean_confidence": round(r["mean_confidence"], 4),
            "mean_signal": round(r["mean_signal"], 4),
            "status": "ok",
            "reason": "",
        }
        for r in rows.iter_rows(named=True)
    ]
    table += [
        {
            "agent": m["agent"],
            "symbols": 0,
            "mean_confidence": None,
            "mean_signal": None,
            "coverage": 0.0,
            "status": "no data",
            "reason": m["reason"],
        }
        for m in missing
    ]
    return sorted(table, key=lambda r: str(r["agent"]))


def as_json(value: object) -> str:
    return json.dumps(value, default=str, sort_keys=True)


class SignalStage(Stage):
    """Signals of every enabled alpha agent per symbol and session (the model_outputs table)."""

    NAME = "signals"
    READS = (
        "price_history",
        "data_quality",
        "features",
        "fundamentals",
        "news_headlines",
        "macro_series",
        "trading_eligibility",
    )
    WRITES = ("model_outputs",)
    ASSET_KEYS: ClassVar[dict[str, str]] = {"model_outputs": "agent_signals"}
    CODE_VERSION = "2"

    def load_inputs(self, ctx: RunContext, days: Sequence[dt.date]) -> dict[dt.date, pl.DataFrame]:
        cfg = ctx.settings
        agents = build_agents(cfg.signals.enabled_agents(), cfg.signals.agent_params)
        signals = agent_signals_for_dates(
            ctx.lake,
            ctx.universe,
            days,
            agents,
            block_sessions=cfg.signals.feature_block_sessions,
            history=cfg.signals.agent_history_sessions,
            progress=ctx.log.info,
        )
        return split_by_day(signals)

    def step(self, day: dt.date, inputs: dict[dt.date, pl.DataFrame], carried: None, ctx: RunContext) -> StepOutput:
        signals = inputs.get(day, pl.DataFrame(schema=SIGNAL_SCHEMA))
        rows = model_output_rows(signals, ctx.settings.fund.strategy, self.CODE_VERSION)
        return StepOutput(day, {"model_outputs": rows}, None, signals)


def signal_report(ctx: RunContext, steps: Sequence[StepOutput]) -> tuple[list[dict[str, object]], dict, int]:
    """After a run: per agent coverage on the last session (enabled agents without a signal included, with
    status "no data"), rank IC to date, and eligible symbols then."""
    last = steps[-1]
    eligible = ctx.lake.read("trading_eligibility", [last.day])
    n_eligible = int(eligible.get_column("eligible").sum()) if eligible.height else 0
    missing = silent_agents(ctx, last)
    return coverage_table(last.detail, n_eligible, last.day, missing), ic_to_date(ctx.lake, last.day), n_eligible


def silent_agents(ctx: RunContext, last: StepOutput) -> list[dict[str, object]]:
    """:func:`agents_without_data` for the enabled agents (preset weights) on the step's session."""
    signals = last.detail if last.detail is not None else pl.DataFrame(schema=SIGNAL_SCHEMA)
    present = set(signals.filter(pl.col("date") == last.day).get_column("agent").to_list())
    weights = ctx.settings.signals.starting_weights()
    return agents_without_data(ctx.lake, last.day, present, weights)
