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
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.agents.base import SIGNAL_SCHEMA, Agent, AgentData
from mqf_pipeline.agents.evaluation import daily_ic, forward_returns, ic_summary
from mqf_pipeline.agents.registry import build_agents, coverage, log_agent_coverage, run_agents
from mqf_pipeline.features import feature_names
from mqf_pipeline.regimes.features import SMALL_UNIVERSE, small_universe_warning, universe_size
from mqf_pipeline.stages.base import RunContext, Stage, StepOutput, split_by_day
from mqf_pipeline.stages.features import block_start, usable_bars
from mqf_pipeline.storage.lake import Lake
from mqf_pipeline.storage.schema import table_spec

ProgressFn = Callable[[str], None]
log = logging.getLogger(__name__)


class AgentInput(NamedTuple):
    """A lake table an agent needs, its name in a sentence, its :class:`AgentData` field, the reason if missing."""

    table: str
    label: str
    field: str
    code: str


#: The inputs an agent cannot score without (the others need only bars and features): what each reads.
AGENT_INPUTS: dict[str, AgentInput] = {
    "valuation": AgentInput("fundamentals", "fundamentals", "fundamentals", "no fundamentals"),
    "fundamental": AgentInput("fundamentals", "fundamentals", "fundamentals", "no fundamentals"),
    "sentiment": AgentInput("news_headlines", "news headlines", "headlines", "no headlines"),
}


@dataclass(frozen=True)
class SignalNotes:
    """What a signal run found about its data: symbols with usable bars in its window, and the agents
    whose input (:data:`AGENT_INPUTS`) is empty for every symbol."""

    universe_size: int
    missing: Mapping[str, AgentInput]

    @property
    def small_universe(self) -> bool:
        return self.universe_size < SMALL_UNIVERSE


@dataclass(frozen=True)
class SignalDetail:
    """A session's signals and the run's :class:`SignalNotes`."""

    signals: pl.DataFrame
    notes: SignalNotes


def load_features(lake: Lake, start: dt.date, end: dt.date) -> pl.DataFrame:
    """Stored features of sessions ``start``..``end`` pivoted once to wide: (date, symbol, <feature>...).

    Values keep their stored units (:mod:`mqf_pipeline.features`); a feature not stored for a row is null.
    Every name of :func:`~mqf_pipeline.features.feature_names` is a Float64 column (all null when none is
    stored), in that order, then any other stored name sorted; rows sorted by (date, symbol).
    """
    span = [p for p in lake.partitions("features") if start.isoformat() <= p <= end.isoformat()]
    long = lake.query("features", span, lambda f: f.select("date", "symbol", "feature", "value"))
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


def note_data(data: AgentData, names: Iterable[str], end: dt.date, warn: ProgressFn) -> SignalNotes:
    """The run's :class:`SignalNotes` (agents of ``names`` whose input holds no row for any symbol in ``data``),
    warning once each: a universe below :data:`SMALL_UNIVERSE` symbols, and every agent without its input."""
    needs = {n: AGENT_INPUTS[n] for n in names if n in AGENT_INPUTS}
    notes = SignalNotes(universe_size(data.bars), {n: i for n, i in needs.items() if not getattr(data, i.field).height})
    small = small_universe_warning(notes.universe_size)
    if small:
        warn(f"signals: {small}")
    bars_only = data.fundamentals.height == 0 and data.headlines.height == 0
    for name, need in notes.missing.items():
        warn(
            f"agent {name}: no {need.label} in the lake for any symbol up to {end}"
            f"{' (bars-only data)' if bars_only else ''}: no signals"
        )
    return notes


def signal_run(
    lake: Lake,
    universe: pl.DataFrame,
    dates: Sequence[dt.date],
    agents: Sequence[Agent],
    *,
    block_sessions: int,
    history: int,
    progress: ProgressFn = lambda _m: None,
    warn: ProgressFn = log.warning,
) -> tuple[pl.DataFrame, SignalNotes]:
    """Validated signals (:data:`SIGNAL_SCHEMA`) of ``agents`` for ``dates``, block-anchored, and the run's
    :class:`SignalNotes`. Warnings (``warn``) and per-agent coverage lines come once per run, not per block."""
    dates = sorted(dates)
    blocks: dict[dt.date, list[dt.date]] = {}
    for day in dates:
        blocks.setdefault(block_start(day, block_sessions), []).append(day)
    first = calendar.session_offset(min(blocks), -history)
    data = load_agent_data(lake, universe, first, dates[-1])
    names = [a.name for a in agents]
    notes = note_data(data, names, dates[-1], warn)
    parts = []
    for i, (start, days) in enumerate(sorted(blocks.items()), start=1):
        lo = calendar.session_offset(start, -history)
        parts.append(run_agents(agents, _window(data, lo, days[-1]), days, log_coverage=False))
        progress(f"agents: block {i}/{len(blocks)} ({start} .. {days[-1]}), {sum(p.height for p in parts)} signals")
    signals = pl.concat(parts).sort("date", "symbol", "agent") if parts else pl.DataFrame(schema=SIGNAL_SCHEMA)
    log_agent_coverage(names, coverage(signals, data, dates), len(dates), explained=notes.missing)
    return signals, notes


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
    """Validated signals (:data:`SIGNAL_SCHEMA`) of ``agents`` for ``dates``, block-anchored (:func:`signal_run`)."""
    signals, _ = signal_run(
        lake, universe, dates, agents, block_sessions=block_sessions, history=history, progress=progress
    )
    return signals


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


def agents_without_data(
    lake: Lake, day: dt.date, present: Collection[str], weights: Mapping[str, float]
) -> list[dict[str, object]]:
    """The agents of ``weights`` (agent -> ensemble weight) without a signal on ``day``: agent, weight, reason.

    The reason names the input missing from the lake (:data:`AGENT_INPUTS`: nothing stored at or before
    ``day``, i.e. no provider served it) or else says the agent scored no symbol that day.
    """
    out: list[dict[str, object]] = []
    for agent in sorted(set(weights) - set(present)):
        need = AGENT_INPUTS.get(agent)
        table, label = (need.table, need.label) if need else ("", "")
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


def reason_codes(
    lake: Lake, day: dt.date, missing: Sequence[Mapping[str, object]], notes: SignalNotes, scored: Collection[str]
) -> dict[str, str]:
    """The short reason of each agent of ``missing`` (:func:`agents_without_data`): its input's code ("no
    fundamentals", "no headlines") when neither the lake up to ``day`` nor the run's data holds any of it;
    "warm-up" when its input is there but it scored no symbol on any session of the run (``scored``: the
    agents that did), its look-back not yet filled; else "scored no symbol" (it did on earlier sessions)."""
    out: dict[str, str] = {}
    for m in missing:
        agent = str(m["agent"])
        need = AGENT_INPUTS.get(agent)
        absent = need is not None and (
            agent in notes.missing or not any(p <= day.isoformat() for p in lake.partitions(need.table))
        )
        out[agent] = need.code if need is not None and absent else "scored no symbol" if agent in scored else "warm-up"
    return out


def coverage_table(
    signals: pl.DataFrame,
    eligible_last: int,
    last: dt.date,
    missing: Sequence[Mapping[str, object]] = (),
    reasons: Mapping[str, str] | None = None,
) -> list[dict[str, object]]:
    """Per agent on the last session: symbols covered, share of eligible symbols, mean confidence, and
    ``status`` ("ok", or "no data" for the rows of ``missing`` from :func:`agents_without_data`) with a short
    ``reason`` (:func:`reason_codes`; "no data" when not given) and the sentence of ``missing`` as ``detail``."""
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
            "detail": "",
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
            "reason": (reasons or {}).get(str(m["agent"]), "no data"),
            "detail": m["reason"],
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

    def load_inputs(self, ctx: RunContext, days: Sequence[dt.date]) -> tuple[dict[dt.date, pl.DataFrame], SignalNotes]:
        cfg = ctx.settings
        agents = build_agents(cfg.signals.enabled_agents(), cfg.signals.agent_params)
        signals, notes = signal_run(
            ctx.lake,
            ctx.universe,
            days,
            agents,
            block_sessions=cfg.signals.feature_block_sessions,
            history=cfg.signals.agent_history_sessions,
            progress=ctx.log.info,
            warn=ctx.log.warning,
        )
        return split_by_day(signals), notes

    def step(
        self, day: dt.date, inputs: tuple[dict[dt.date, pl.DataFrame], SignalNotes], carried: None, ctx: RunContext
    ) -> StepOutput:
        by_day, notes = inputs
        signals = by_day.get(day, pl.DataFrame(schema=SIGNAL_SCHEMA))
        rows = model_output_rows(signals, ctx.settings.fund.strategy, self.CODE_VERSION)
        return StepOutput(day, {"model_outputs": rows}, None, SignalDetail(signals, notes))


def signal_report(ctx: RunContext, steps: Sequence[StepOutput]) -> tuple[list[dict[str, object]], dict, int]:
    """After a run: per agent coverage on the last session (enabled agents without a signal included, with
    status "no data" and a short reason, :func:`reason_codes`), rank IC to date, and eligible symbols then."""
    last = steps[-1]
    eligible = ctx.lake.read("trading_eligibility", [last.day])
    n_eligible = int(eligible.get_column("eligible").sum()) if eligible.height else 0
    missing = silent_agents(ctx, last)
    scored = {a for s in steps for a in s.detail.signals.get_column("agent").unique().to_list()}
    reasons = reason_codes(ctx.lake, last.day, missing, last.detail.notes, scored)
    cover = coverage_table(last.detail.signals, n_eligible, last.day, missing, reasons)
    return cover, ic_to_date(ctx.lake, last.day), n_eligible


def silent_agents(ctx: RunContext, last: StepOutput) -> list[dict[str, object]]:
    """:func:`agents_without_data` for the enabled agents (preset weights) on the step's session."""
    signals = last.detail.signals
    present = set(signals.filter(pl.col("date") == last.day).get_column("agent").to_list())
    weights = ctx.settings.signals.starting_weights()
    return agents_without_data(ctx.lake, last.day, present, weights)
