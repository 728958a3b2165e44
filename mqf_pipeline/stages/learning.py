"""Agent-weight learning over the lake (seed 002 Part 2): per session D, each agent's outcome (its signal
portfolio of D-1 against the returns of D, known at D's close) and the ensemble weights learned from every
outcome up to D, which the meta-brain of D uses.

Outcomes are stored in ``agent_performance`` (one row per agent and session), so the learner replays them from
the fund's first outcome session: a session's weights are the same whether it runs alone or inside a backfill,
and depend on nothing after D. Before ``learning.min_sessions`` outcome sessions the weights are the preset's
(``algorithm_used`` says so). The learned set is the enabled agents with a preset weight; when their count is
outside what the floor and cap allow (3 to 20 with 0.05 / 0.40) the preset's weights stay, and the rows say why.
The maths is :mod:`mqf_pipeline.learning`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.learning import (
    OUTCOME_SCHEMA,
    WEIGHT_SCHEMA,
    WeightLearningParams,
    agent_outcomes,
    agent_performance_rows,
    kl_project,
    learn_weights,
    returns_from_bars,
)
from mqf_pipeline.learning.projection import feasible_range
from mqf_pipeline.stages.base import RunContext, Stage, StepOutput
from mqf_pipeline.stages.features import usable_bars
from mqf_pipeline.stages.params import learning_params


@dataclass(frozen=True)
class LearningInputs:
    signals: pl.DataFrame  # model_outputs of the run's sessions and the one before (date, symbol, agent, mu, ...)
    returns: pl.DataFrame  # date, symbol, ret over the same span (its dates are the outcomes' calendar)
    regimes: pl.DataFrame  # regime_history up to the last session
    history: pl.DataFrame  # outcomes (OUTCOME_SCHEMA) stored before the run's first session


@dataclass(frozen=True)
class LearningDetail:
    """The session's weights (agent -> weight), the algorithm that set them and the agents with an outcome."""

    weights: dict[str, float]
    algorithm: str
    agents_with_outcome: int


def learned_set(static: dict[str, float], params: WeightLearningParams) -> tuple[dict[str, float], str | None]:
    """The agents the learner weighs (preset weight > 0) with their starting weights inside the floor and cap
    (the KL projection of the preset's when it is outside), or the reason learning cannot run."""
    agents = {a: w for a, w in static.items() if w > 0}
    lo, hi = feasible_range(params.floor, params.cap)
    if not lo <= len(agents) <= hi:
        why = f"static ({len(agents)} agents: floor {params.floor} and cap {params.cap} need {lo} to {hi})"
        return agents, why
    projected = kl_project(list(agents.values()), params.floor, params.cap)
    return dict(zip(agents, (float(w) for w in projected), strict=True)), None


def history_outcomes(performance: pl.DataFrame) -> pl.DataFrame:
    """Outcome rows from stored ``agent_performance`` rows (the signal session is the session before each)."""
    if not performance.height:
        return pl.DataFrame(schema=OUTCOME_SCHEMA)
    days = sorted(set(performance["date"].to_list()))
    prev = pl.DataFrame({"date": days, "signal_date": [calendar.previous_session(d) for d in days]})
    return performance.join(prev, on="date").select(
        "date",
        pl.col("agent_name").alias("agent"),
        "signal_date",
        pl.lit(None, dtype=pl.Int64).alias("n_symbols"),
        "predicted_return",
        "actual_return",
        pl.col("hit").cast(pl.Int32),
    )


class LearningStage(Stage):
    """Agent outcomes and learned ensemble weights per session (module docstring)."""

    NAME: ClassVar[str] = "learning"
    READS: ClassVar[tuple[str, ...]] = ("model_outputs", "price_history", "regime_history", "agent_performance")
    WRITES: ClassVar[tuple[str, ...]] = ("agent_weights", "agent_performance")
    CODE_VERSION: ClassVar[str] = "1"

    def load_inputs(self, ctx: RunContext, days: Sequence[dt.date]) -> LearningInputs:
        first, last = min(days), max(days)
        before = calendar.previous_session(first)
        bars = usable_bars(ctx.lake, calendar.previous_session(before), last)
        signals = ctx.lake.read_range("model_outputs", before, last)
        signals = signals.select("date", "symbol", "agent", "mu", "horizon_days")
        stored = [p for p in ctx.lake.partitions("agent_performance") if p < first.isoformat()]
        return LearningInputs(
            signals=signals,
            # from the session before the first: agent_outcomes takes each outcome's signal session from the
            # returns' own calendar
            returns=returns_from_bars(bars).filter(pl.col("date") >= before),
            regimes=ctx.lake.read_range("regime_history", dt.date(1900, 1, 1), last),
            history=history_outcomes(ctx.lake.read("agent_performance", stored)),
        )

    def load_carried(self, ctx: RunContext, first_day: dt.date) -> pl.DataFrame:
        """The outcomes learned from so far: none beyond the stored history at the run's start."""
        return pl.DataFrame(schema=OUTCOME_SCHEMA)

    def step(self, day: dt.date, inputs: LearningInputs, carried: pl.DataFrame, ctx: RunContext) -> StepOutput:
        params = learning_params(ctx.settings)
        today = agent_outcomes(inputs.signals, inputs.returns.filter(pl.col("date") <= day))
        today = today.filter(pl.col("date") == day)
        outcomes = pl.concat([inputs.history, carried, today], how="vertical_relaxed")
        static, blocked = learned_set(ctx.settings.signals.starting_weights(), params)
        strategy = ctx.settings.fund.strategy
        if blocked is None:
            sessions = [calendar.previous_session(day), day]  # D-1's weights price today's outcomes
            weights = learn_weights(outcomes, inputs.regimes, static, params, day, strategy=strategy, sessions=sessions)
        else:
            weights = _static_rows(day, static, blocked, strategy)
        now = weights.filter(pl.col("date") == day)
        performance = agent_performance_rows(today, weights).filter(pl.col("date") == day)
        detail = LearningDetail(
            weights=dict(zip(now["agent_name"].to_list(), now["weight"].to_list(), strict=True)),
            algorithm=now["algorithm_used"][0] if now.height else blocked or "",
            agents_with_outcome=today.height,
        )
        rows = {"agent_weights": now, "agent_performance": performance}
        return StepOutput(day, rows, pl.concat([carried, today], how="vertical_relaxed"), detail)

    def progress_line(self, step: StepOutput, i: int, n: int) -> str:
        d: LearningDetail = step.detail
        return f"{self.NAME}: {i}/{n} sessions {step.day}: {d.algorithm}"


def _static_rows(day: dt.date, static: dict[str, float], why: str, strategy: str) -> pl.DataFrame:
    """The preset's weights for ``day`` when the learner cannot run (``why`` in ``algorithm_used``)."""
    base = dict.fromkeys(WEIGHT_SCHEMA)
    rows = [
        {**base, "date": day, "cycle_id": f"{strategy}-{day}", "agent_name": a, "weight": w, "algorithm_used": why}
        for a, w in static.items()
    ]
    return pl.DataFrame(rows, schema=WEIGHT_SCHEMA, orient="row")
