"""The fund's loop for one session, in one step: book, decide, optimise, order.

Positions are the book: for session D,

1. execution books D-1's orders as traded during D (fills, costs, corporate actions) and marks the
   positions at D's close: ``positions(D)``, ``account(D)``;
2. decisions measure risk, step the breakers and decide from those positions and the account NAV;
3. the portfolio optimiser starts from the positions' weights;
4. execution orders the difference to the targets, through the governance gates of step 2.

Step 1 of D+1 continues step 4 of D, so the three stages cannot run one after another over a range
(decisions of D+1 need the fills of D's orders): they run interleaved, session by session, here. Each
part is the stage it always was (:class:`DecisionStage`, :class:`PortfolioStage`,
:class:`ExecutionStage`); a run may select some of them:

* all three: the loop above;
* decisions and portfolio without execution (research): decisions use the positions stored for the
  session when execution has booked it, else the decided book marked with returns;
* one part alone, or portfolio with execution: the parts not run are read from the lake.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import polars as pl

from mqf_pipeline.execution.brokers.base import Broker
from mqf_pipeline.stages.base import RunContext, Stage, StepOutput, Written
from mqf_pipeline.stages.decisions import DecisionStage
from mqf_pipeline.stages.execution import Booked, ExecutionStage
from mqf_pipeline.stages.held_book import Held
from mqf_pipeline.stages.portfolio import PortfolioStage
from mqf_pipeline.storage.schema import row_schema

PARTS: tuple[str, ...] = ("decisions", "portfolio", "execution")


class TradingCycleStage(Stage):
    """Decisions, portfolio and execution of each session in turn (module docstring)."""

    NAME = "trading_cycle"
    #: about 1.3 s a session on 2 cores: a progress line every 5 keeps the display moving
    PROGRESS_EVERY = 5
    READS = tuple(
        dict.fromkeys(
            t
            for s in (DecisionStage, PortfolioStage, ExecutionStage)
            for t in s.READS
            if t not in DecisionStage.WRITES + PortfolioStage.WRITES + ExecutionStage.WRITES
        )
    )
    WRITES = DecisionStage.WRITES + PortfolioStage.WRITES + ExecutionStage.WRITES
    CARRIES = DecisionStage.CARRIES + PortfolioStage.CARRIES + ExecutionStage.CARRIES
    CODE_VERSION = "trading-cycle-1"

    def __init__(
        self,
        broker: Broker | None = None,
        parts: Sequence[str] = PARTS,
        latest_session: dt.date | None = None,
    ) -> None:
        unknown = sorted(set(parts) - set(PARTS))
        if unknown or not parts:
            raise ValueError(f"trading cycle parts must be a non-empty subset of {PARTS}; got {list(parts)}")
        if "execution" in parts and broker is None:
            raise ValueError("the trading cycle's execution part needs a broker")
        self.parts = tuple(p for p in PARTS if p in parts)
        self.stages: dict[str, Stage] = {}
        if "decisions" in self.parts:
            self.stages["decisions"] = DecisionStage()
        if "portfolio" in self.parts:
            self.stages["portfolio"] = PortfolioStage()
        if "execution" in self.parts:
            self.stages["execution"] = ExecutionStage(broker, latest_session)  # type: ignore[arg-type]

    @property
    def tables(self) -> tuple[str, ...]:
        """The tables this cycle's parts write."""
        return tuple(t for s in self.stages.values() for t in s.WRITES)

    def load_inputs(self, ctx: RunContext, days: Sequence[dt.date]) -> dict[str, Any]:
        return {name: stage.load_inputs(ctx, days) for name, stage in self.stages.items()}

    def load_carried(self, ctx: RunContext, first_day: dt.date) -> dict[str, Any]:
        return {name: stage.load_carried(ctx, first_day) for name, stage in self.stages.items()}

    def step(self, day: dt.date, inputs: dict[str, Any], carried: dict[str, Any], ctx: RunContext) -> StepOutput:
        """Book, decide, optimise and order session ``day`` (module docstring), each part that runs handing
        its rows to the next."""
        rows: dict[str, pl.DataFrame] = {}
        nxt: dict[str, Any] = {}
        detail: dict[str, Any] = {}
        booked: Booked | None = None
        execution = self.stages.get("execution")
        if isinstance(execution, ExecutionStage):
            booked = execution.book(day, inputs["execution"], carried["execution"], ctx)
            rows |= booked.rows()
        positions = Held(booked.weights(), booked.nav) if booked is not None else self._stored_positions(inputs, day)

        decisions = self.stages.get("decisions")
        if isinstance(decisions, DecisionStage):
            fills = booked.fills if booked is not None else None
            out = decisions.decide(day, inputs["decisions"], carried["decisions"], ctx, positions, fills)
            rows |= out.rows
            nxt["decisions"], detail["decisions"] = out.carried, out.detail

        portfolio = self.stages.get("portfolio")
        if isinstance(portfolio, PortfolioStage):
            p_inputs = inputs["portfolio"]
            decided, risk = self._session(rows, "decisions", p_inputs.decisions, day), None
            risk_rows = self._session(rows, "risk_state", p_inputs.risk, day)
            risk = risk_rows.row(0, named=True) if risk_rows.height else None
            out = portfolio.optimise(
                day,
                p_inputs,
                carried["portfolio"],
                ctx,
                decided=decided,
                risk_row=risk,
                held=positions.book if positions is not None else None,
            )
            rows |= out.rows
            nxt["portfolio"], detail["portfolio"] = out.carried, out.detail

        if isinstance(execution, ExecutionStage) and booked is not None:
            e_inputs = inputs["execution"]
            out = execution.order(
                day,
                e_inputs,
                booked,
                ctx,
                targets=self._session(rows, "portfolio_targets", e_inputs.targets, day),
                risk=self._session(rows, "risk_state", e_inputs.risk, day),
                gates=self._session(rows, "governance_gates", e_inputs.gates, day),
            )
            rows |= out.rows
            nxt["execution"], detail["execution"] = out.carried, out.detail
        return StepOutput(day, rows, nxt, detail)

    @staticmethod
    def _session(rows: dict[str, pl.DataFrame], table: str, stored: pl.DataFrame, day: dt.date) -> pl.DataFrame:
        """Session ``day``'s rows of ``table``: made by an earlier part of this step, else as stored."""
        fresh = rows.get(table)
        if fresh is not None:
            return fresh if fresh.width else pl.DataFrame(schema=row_schema(table))
        return stored.filter(pl.col("date") == day)

    @staticmethod
    def _stored_positions(inputs: dict[str, Any], day: dt.date) -> Held | None:
        """Without the execution part: the positions stored for ``day``, if execution has booked it."""
        for part in ("decisions", "portfolio"):
            if part in inputs:
                return inputs[part].held.get(day)
        return None

    def progress_line(self, step: StepOutput, i: int, n: int) -> str:
        lines = [
            stage.progress_line(StepOutput(step.day, {}, step.carried[name], step.detail[name]), i, n)
            for name, stage in self.stages.items()
            if name in step.detail
        ]
        return "; ".join(lines)

    def write(self, ctx: RunContext, steps: Sequence[StepOutput], days: Sequence[dt.date]) -> Written:
        """Each part's tables as the part writes them, in pipeline order (the decisions' audit first)."""
        written: Written = {}
        for stage in self.stages.values():
            written |= stage.write(ctx, steps, days)
        return written
