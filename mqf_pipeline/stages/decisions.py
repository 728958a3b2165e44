"""One decision cycle per session: gates, meta-brain decisions, risk validation, breakers, audit rows.

For session D (everything known at D's close, nothing after):

1. The book held at D's close: where execution has booked session D, the positions after D's fills as
   fractions of the account NAV (cash, positions, costs, dividends), and that NAV; where it has not
   (research), the previous decided book marked with D's close-to-close returns. NAV, peak, drawdown
   follow it; ``risk_state.book_source`` says which ("positions" or "decided").
2. Measure the held book (VaR of the configured model, vol) and step the circuit-breaker state machine
   of D-1; the 18%/25% drawdown rules act on that NAV.
3. Gates 0-2 (history, quality, signals); a failing gate stops the cycle (audited, book held).
4. Meta-brain, from the held book: ensemble of the enabled agents' signals (learned weights when stored, else the
   preset's), disagreement penalty, robust z, Kelly sized by regime x breaker x drawdown
   multipliers, then the CVaR-first rules with the book's EVT CVaR.
5. Risk validation of the decided book against seed 000 section 7.4: SCALE limits shrink the
   increases (largest fraction that satisfies them, by bisection), REJECT limits reject them.
6. Gates 3-4, the risk state row (persisted: it seeds D+1) and the per-position contributions.

The carried state (book, NAV, peak, breaker) continues the stored state of the previous session,
so a session's rows are the same whether it runs alone or inside a backfill.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from mqf_pipeline.decisions import audit
from mqf_pipeline.decisions.audit import write_audit
from mqf_pipeline.governance import phases as governance
from mqf_pipeline.regimes.mapping import RISK_MULTIPLIERS
from mqf_pipeline.risk import breakers
from mqf_pipeline.risk.book import BookRisk, ReturnsWindow, RiskParams, book_risk, limit_checks, returns_window
from mqf_pipeline.stages.base import (
    RunContext,
    Stage,
    StageStateError,
    StepOutput,
    Written,
    concat_rows,
    previous_partition,
    read_previous,
)
from mqf_pipeline.stages.decision_inputs import CycleInputs, load_inputs
from mqf_pipeline.stages.decision_rows import audit_and_decision_rows, meta_brain_decisions, risk_state_row
from mqf_pipeline.stages.execution_costs import FeedbackMultipliers, feedback_multipliers
from mqf_pipeline.stages.held_book import Held
from mqf_pipeline.stages.params import breaker_params, meta_brain_params, risk_params
from mqf_pipeline.stages.risk_validation import validate_limits
from mqf_pipeline.storage.lake import Lake

CODE_VERSION = "decisions-1"
_NO_SIGNALS = pl.DataFrame(schema={"date": pl.Date, "symbol": pl.String, "agent": pl.String})


class CycleStateError(StageStateError):
    """The state a session continues (the previous session's risk_state) is missing."""


@dataclass(frozen=True)
class Carried:
    """What one cycle hands to the next: the book, NAV path and the breaker state."""

    book: dict[str, float]
    nav: float
    peak_nav: float
    breaker: breakers.BreakerState


@dataclass
class CycleDetail:
    """One session's summary: its gates, risk_state row, decision counts and decision rows."""

    gates: list[governance.Gate]
    risk_state: dict[str, object]
    decisions: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    #: agents with an ensemble weight but no signal for an eligible symbol: their weight went to the others
    agents_without_signals: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Marked:
    """Steps 1-2: the book marked to market and the breaker stepped on it, with the sizing they imply."""

    book: dict[str, float]
    book_source: str
    nav: float
    peak: float
    drawdown: float
    held: BookRisk
    state: breakers.BreakerState
    regime: str | None
    regime_mult: float
    dd_mult: float
    sizing: float
    frozen: bool
    block_reason: str | None


def load_carried(lake: Lake, day: dt.date, initial_nav: float) -> Carried:
    """The state session ``day`` continues: the stored risk_state and decisions of the previous session.

    With no risk_state stored before ``day`` the fund starts fresh (initial NAV, empty book). A gap
    (state stored for an earlier session but not the previous one) is an error naming what to run.
    """
    prev = previous_partition(lake, "risk_state", day, error=CycleStateError, what="decisions", state="the risk state")
    if prev is None:
        return Carried({}, initial_nav, initial_nav, breakers.BreakerState.initial())
    state = read_previous(lake, "risk_state", prev, error=CycleStateError, what="decisions").row(0, named=True)
    return Carried(
        book={s: float(w) for s, w in json.loads(state["book_json"]).items()},
        nav=float(state["nav"]),
        peak_nav=float(state["peak_nav"]),
        breaker=breakers.BreakerState.from_row(json.loads(state["breaker_state_json"])),
    )


def mark_and_step_breaker(
    day: dt.date,
    inputs: CycleInputs,
    carried: Carried,
    window: ReturnsWindow,
    risk: RiskParams,
    settings,
    positions: Held | None,
) -> Marked:
    """Steps 1-2: the held book (the booked ``positions`` and account NAV when execution ran, else the
    decided book marked with the session's returns), then the circuit breaker stepped on it."""
    if positions is not None:
        book, nav, source = dict(positions.book), positions.nav, "positions"
    else:
        today = dict(zip(window.symbols, window.returns[-1], strict=True))
        pnl = sum(w * today.get(s, 0.0) for s, w in carried.book.items())
        book, nav, source = dict(carried.book), carried.nav * (1.0 + pnl), "decided"
    peak = max(carried.peak_nav, nav)
    drawdown = 1.0 - nav / peak if peak > 0 else 0.0
    bparams = breaker_params(settings)
    held = book_risk(book, window, inputs.sectors, risk)
    obs = breakers.RiskObservation(var=held.var_for_limits, vol_ann=held.vol_ann or 0.0, drawdown=drawdown)
    state = breakers.step(carried.breaker, obs, bparams)
    regime_row = inputs.regimes.filter(pl.col("date") == day)
    regime = regime_row["regime"][0] if regime_row.height else None
    regime_mult = float(RISK_MULTIPLIERS.get(regime, 1.0)) if regime else 1.0
    dd_mult = breakers.drawdown_multiplier(drawdown, bparams)
    sizing = regime_mult * breakers.sizing_multiplier(state, obs, bparams) * dd_mult
    frozen = breakers.blocks_new_risk(state)
    block_reason = "RISK_OVERRIDE_FREEZE" if frozen else ("RISK_OVERRIDE_REGIME_BLOCK" if regime_mult == 0 else None)
    return Marked(
        book, source, nav, peak, drawdown, held, state, regime, regime_mult, dd_mult, sizing, frozen, block_reason
    )


@dataclass(frozen=True)
class GatedSignals:
    """Step 3: the session's eligibility and the eligible symbols' signals of weighted agents, gates 0-2."""

    eligibility: pl.DataFrame
    signals: pl.DataFrame
    weights: dict[str, float]
    weight_source: str
    gates: list[governance.Gate]
    stopped: governance.Gate | None


def session_window(day: dt.date, inputs: CycleInputs, window_sessions: int) -> ReturnsWindow:
    """The ``window_sessions`` returns ending at ``day`` (an error when ``day`` has no accepted bars)."""
    dates = inputs.returns.get_column("date")
    idx = dates.search_sorted(day)
    if idx >= len(dates) or dates[idx] != day:
        raise ValueError(f"no returns for session {day}: price_history has no accepted bars that day")
    return returns_window(inputs.returns, idx, window_sessions)


def gate_signals(day: dt.date, inputs: CycleInputs, min_history_rows: int) -> GatedSignals:
    """Step 3: gates 0-2 on the eligible symbols' signals of the agents with a positive weight."""
    elig = inputs.eligibility.filter(pl.col("date") == day)
    eligible_syms = set(elig.filter(pl.col("eligible"))["symbol"].to_list())
    sig = inputs.signals.get(day, _NO_SIGNALS).filter(pl.col("symbol").is_in(sorted(eligible_syms)))
    weights, weight_source = inputs.agent_weights_for(day)
    sig = sig.filter(pl.col("agent").is_in([a for a, w in weights.items() if w > 0]))
    gates = governance.data_gates(elig, sig, min_history_rows)
    stopped = next((g for g in gates if not g.passed), None)
    return GatedSignals(elig, sig, weights, weight_source, gates, stopped)


def decide_and_validate(
    day: dt.date,
    gated: GatedSignals,
    book: dict[str, float],
    inputs: CycleInputs,
    window: ReturnsWindow,
    m: Marked,
    kill: str | None,
    risk: RiskParams,
    settings,
    feedback: FeedbackMultipliers | None = None,
) -> tuple[pl.DataFrame, list[dict[str, object]], BookRisk]:
    """Steps 4-5: the meta-brain's decisions (with the slippage feedback's per-symbol multipliers), then the risk
    validation of the decided book."""
    decided = meta_brain_decisions(
        day,
        gated.signals,
        gated.weights,
        dict(book),
        gated.eligibility,
        inputs,
        window,
        meta_brain_params(settings),
        risk,
        sizing=m.sizing,
        block_reason=m.block_reason,
        kill_switch=kill,
        score=feedback.score if feedback else None,
        symbol_sizing=feedback.kelly if feedback else None,
    )
    return validate_limits(
        decided,
        dict(book),
        window,
        inputs.sectors,
        m.drawdown,
        risk,
        max_drawdown=settings.risk.limits.max_drawdown,
        min_trade=settings.risk.meta_brain.min_trade,
    )


class DecisionStage(Stage):
    """Gates, meta-brain decisions with their audit, risk validation, breakers and the risk state."""

    NAME = "decisions"
    READS = (
        "model_outputs",
        "trading_eligibility",
        "data_quality",
        "regime_history",
        "features",
        "price_history",
        "agent_weights",
        "positions",
        "account",
        "execution_feedback",
    )
    WRITES = ("audit_log", "decisions", "governance_gates", "risk_contributions", "risk_state")
    CARRIES = ("risk_state",)
    CODE_VERSION = CODE_VERSION

    def load_inputs(self, ctx: RunContext, days: Sequence[dt.date]) -> CycleInputs:
        settings = ctx.settings
        return load_inputs(
            ctx.lake,
            settings.risk.var.window_sessions,
            days,
            ctx.universe,
            settings.signals.starting_weights(),
        )

    def load_carried(self, ctx: RunContext, first_day: dt.date) -> Carried:
        return load_carried(ctx.lake, first_day, ctx.settings.risk.initial_nav)

    def step(self, day: dt.date, inputs: CycleInputs, carried: Carried, ctx: RunContext) -> StepOutput:
        """Decide session ``day`` from ``carried`` and the positions stored for it, if any (steps 1-6)."""
        return self.decide(day, inputs, carried, ctx, inputs.held.get(day))

    def decide(
        self,
        day: dt.date,
        inputs: CycleInputs,
        carried: Carried,
        ctx: RunContext,
        positions: Held | None,
        fills: pl.DataFrame | None = None,
    ) -> StepOutput:
        """Session ``day`` from ``carried`` and the book held at its close (``positions``: None in research);
        ``fills``: the execution feedback up to ``day`` as execution just booked it (else as stored)."""
        settings = ctx.settings
        kill = ctx.kill_switch.reason()
        if kill:
            ctx.log.warning(f"{kill}: every decision is REJECT (KILL_SWITCH), no order may be created")
        strategy = settings.fund.strategy
        window = session_window(day, inputs, settings.risk.var.window_sessions)
        risk = risk_params(settings)
        m = mark_and_step_breaker(day, inputs, carried, window, risk, settings, positions)
        gated = gate_signals(day, inputs, settings.fund.history.min_history_rows)
        feedback = feedback_multipliers(fills if fills is not None else inputs.fills, day, settings)
        gates, stopped = gated.gates, gated.stopped
        if stopped is None:
            decided, checks, final_risk = decide_and_validate(
                day, gated, m.book, inputs, window, m, kill, risk, settings, feedback
            )
            book = {r["symbol"]: r["position_size"] for r in decided.iter_rows(named=True) if r["position_size"]}
        else:
            book = dict(m.book)
            decided = pl.DataFrame()
            final_risk = m.held
            checks = limit_checks(m.held, m.drawdown, risk)

        # 6. gates 3-4, audit and decision rows, the risk state
        gates.append(governance.risk_gate(checks))
        gates.append(governance.orders_gate(gates, kill, m.frozen))
        extra = {
            "regime": m.regime,
            "regime_multiplier": m.regime_mult,
            "breaker_status": str(m.state.status),
            "sizing_multiplier": m.sizing,
            "weights_source": gated.weight_source,
            "slippage_feedback": feedback.summary,
            "code_version": CODE_VERSION,
        }
        audit_rows, decision_rows = audit_and_decision_rows(decided, day, strategy, inputs, gates, stopped, extra)
        cid = audit.cycle_id(strategy, day)
        risk_row = risk_state_row(
            day,
            cid,
            m.nav,
            m.peak,
            m.drawdown,
            final_risk,
            checks,
            settings.risk.breakers.vol_target_ann,
            m.regime,
            m.regime_mult,
            m.dd_mult,
            m.state,
            m.sizing,
            kill,
            book,
            m.book_source,
        )
        counts = _decision_counts(decision_rows)
        rows = {
            "audit_log": audit_rows,
            "decisions": decision_rows,
            "governance_gates": governance.gate_rows(gates, day, cid),
            "risk_contributions": final_risk.contributions.with_columns(pl.lit(day).alias("date")),
            "risk_state": pl.DataFrame([risk_row], infer_schema_length=None),
        }
        signalled = set(gated.signals["agent"].to_list()) if gated.signals.height else set()
        silent = sorted(a for a, w in gated.weights.items() if w > 0 and a not in signalled)
        detail = CycleDetail(gates, risk_row, decision_rows, counts, silent)
        return StepOutput(day, rows, Carried(book, m.nav, m.peak, m.state), detail)

    def progress_line(self, step: StepOutput, i: int, n: int) -> str:
        return f"decisions: {i}/{n} sessions ({step.day}: {step.detail.counts or 'no decisions'})"

    def write(self, ctx: RunContext, steps: Sequence[StepOutput], days: Sequence[dt.date]) -> Written:
        """The audit first: if it cannot be written (AuditWriteError) no decision of the run is stored."""
        written = {"audit_log": write_audit(ctx.lake, concat_rows(steps, "audit_log"), days, ctx.now)}
        for table in self.WRITES[1:]:
            written[table] = ctx.lake.write_many(table, concat_rows(steps, table), days, now=ctx.now)
        return written


def gate_summary(steps: Sequence[StepOutput], phase: int) -> int:
    """Sessions of ``steps`` whose gate ``phase`` failed."""
    return sum(not g.passed for s in steps for g in s.detail.gates if g.phase == phase)


def _decision_counts(decision_rows: pl.DataFrame) -> dict[str, int]:
    """How many decisions of each kind a session made (BUY, SELL, HOLD, REJECT)."""
    if not decision_rows.height:
        return {}
    return {str(k): int(v) for k, v in decision_rows.group_by("final_decision").len().iter_rows()}
