"""One execution cycle per session D, in order: settle, book, reconcile, then order.

1. The broker trades the orders of D-1 during D (the paper broker through the simulator, on D's bar).
2. Corporate actions of D, then the fills of D-1's orders, go into the positions ledger; positions are
   marked at D's close -> ``positions(D)``, ``account(D)``, ``execution_outcomes(D)`` and
   ``execution_feedback(D)`` (keyed by the session the orders traded in).
3. The ledger is reconciled with the broker's positions; a difference stops the cycle before anything
   is submitted.
4. Orders for D move the positions to ``portfolio_targets(D)`` x NAV(D); each gets its schedule from
   the policy (a LIMIT schedule goes out as a limit order at ``limit_offset_bps`` through the close).
   Reconciliation first: an order whose deterministic ``client_order_id`` the broker already knows is
   never submitted again (a retry or a rerun after a crash finds it there). The kill switch (checked
   before every submission) blocks every order; a failed Phase 3 or 4 gate, a FREEZE breaker or a
   BEAR_CRISIS regime block the orders that add risk, reductions and closes still go
   (:mod:`execution_gates`); blocked orders are stored REJECTED with the reason. When the session's risk
   state breaches, the orders are the emergency rebalance's instead (:mod:`mqf_pipeline.portfolio.emergency`:
   the held book cut greedily, MARKET, cycle id ``<cycle>-EMG`` so their client order ids are their own).
   ``orders(D)`` records each order's state when the cycle made it (SUBMITTED or REJECTED); its final
   state is in ``execution_outcomes(D+1)``. On a broker that works child orders (Alpaca), a TWAP, VWAP,
   POV or WAIT order is not sent whole: the intraday step sends its children during D+1
   (:mod:`mqf_pipeline.stages.child_work`) and booking D+1 books their fills as the parent's.

Steps 1-3 are :meth:`ExecutionStage.book` and step 4 :meth:`ExecutionStage.order`: the trading cycle
(:mod:`mqf_pipeline.stages.trading_cycle`) runs the decisions and the portfolio between them.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.decisions.audit import cycle_id as make_cycle_id
from mqf_pipeline.execution.brokers.base import Broker
from mqf_pipeline.execution.ledger import Ledger
from mqf_pipeline.execution.orders import Fill
from mqf_pipeline.portfolio.emergency import EmergencyParams, emergency_targets, gross
from mqf_pipeline.portfolio.rebalance import risk_breaches
from mqf_pipeline.stages.base import KillSwitch, RunContext, Stage, StepOutput
from mqf_pipeline.stages.child_work import settle_children
from mqf_pipeline.stages.execution_costs import session_costs
from mqf_pipeline.stages.execution_gates import order_blocker
from mqf_pipeline.stages.execution_inputs import (
    Carried,
    ExecutionInputs,
    ExecutionStateError,
    ReconciliationError,
    load_carried,
    load_inputs,
    session_market,
)
from mqf_pipeline.stages.execution_orders import frame, plan_orders, submit_orders
from mqf_pipeline.stages.execution_outcomes import account_row, outcome_rows
from mqf_pipeline.stages.params import emergency_params, policy_params
from mqf_pipeline.storage.lake import Lake

CODE_VERSION = "execution-3"
#: Suffix of the cycle id of an emergency rebalance's orders (their client order ids differ from the cycle's).
EMERGENCY_SUFFIX = "EMG"
logger = logging.getLogger(__name__)

__all__ = [
    "CODE_VERSION",
    "Carried",
    "ExecutionInputs",
    "ExecutionStage",
    "ExecutionStateError",
    "ReconciliationError",
    "SessionResult",
    "load_carried",
    "load_inputs",
    "session_market",
]


@dataclass
class SessionResult:
    """One session's summary for progress lines and materialization metadata."""

    day: dt.date
    outcomes: pl.DataFrame
    feedback: pl.DataFrame
    positions: pl.DataFrame
    account: dict
    orders: pl.DataFrame
    decisions: pl.DataFrame
    blocked_reason: str | None = None
    submitted: int = 0
    already_at_broker: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class Booked:
    """Steps 1-3 of a session: the ledger after D's fills marked at D's close, with its rows."""

    day: dt.date
    ledger: Ledger
    nav: float
    quotes: dict[str, dict]
    regime: str | None
    outcomes: pl.DataFrame
    feedback: pl.DataFrame
    positions: pl.DataFrame
    account: dict
    spike_sessions_left: int
    fills: pl.DataFrame  # every fill up to D's (execution_feedback): the slippage model of D learns from them

    def rows(self) -> dict[str, pl.DataFrame]:
        """The booking tables of the session."""
        return {
            "execution_outcomes": self.outcomes,
            "execution_feedback": self.feedback,
            "positions": self.positions,
            "account": frame("account", [self.account]),
        }

    def weights(self) -> dict[str, float]:
        """The positions as fractions of the account NAV at D's close (signed)."""
        if not self.nav:
            return {}
        return {r["symbol"]: float(r["market_value"]) / self.nav for r in self.positions.iter_rows(named=True)}


def kill_switch_reason(switch: KillSwitch) -> str | None:
    """``KILL_SWITCH: ...`` while engaged. Read at the cycle's start and again before every submission,
    so engaging it mid-cycle stops the rest."""
    reason = switch.reason()
    return f"KILL_SWITCH: {reason}" if reason else None


class ExecutionStage(Stage):
    """Settle, book, reconcile and order, session by session, at ``broker``.

    ``latest_session``: the newest closed session; a broker that cannot trade the past (a real one) is
    sent orders only for it (default: the latest closed XNYS session when the run starts).
    """

    NAME = "execution"
    READS = (
        "portfolio_targets",
        "risk_state",
        "governance_gates",
        "price_history",
        "data_quality",
        "corporate_actions",
        "regime_history",
    )
    #: Booking D (fills of D-1's orders, corporate actions, marks) reads only market data: the decisions
    #: and targets of D come after it (they read the positions it books).
    TABLE_READS: ClassVar[dict[str, tuple[str, ...]]] = {
        table: ("price_history", "data_quality", "corporate_actions", "regime_history")
        for table in ("execution_outcomes", "execution_feedback", "positions", "account")
    }
    WRITES = ("execution_outcomes", "execution_feedback", "positions", "account", "orders", "execution_decisions")
    CARRIES = ("positions", "account", "orders", "execution_decisions")
    CODE_VERSION = CODE_VERSION

    def __init__(self, broker: Broker, latest_session: dt.date | None = None) -> None:
        self.broker = broker
        self.latest_session = latest_session or calendar.latest_closed_session()

    def load_inputs(self, ctx: RunContext, days: Sequence[dt.date]) -> ExecutionInputs:
        cfg = ctx.settings.execution
        return load_inputs(
            ctx.lake, days, cfg.adv_window_sessions, cfg.vol_window_sessions, default_spread_bps=cfg.default_spread_bps
        )

    def load_carried(self, ctx: RunContext, first_day: dt.date) -> Carried:
        return load_carried(ctx.lake, first_day, ctx.settings.risk.initial_nav)

    def step(self, day: dt.date, inputs: ExecutionInputs, carried: Carried, ctx: RunContext) -> StepOutput:
        """Session ``day`` (module docstring, steps 1-4) with the session's targets, risk state and gates as
        stored (the trading cycle calls :meth:`book` and :meth:`order` itself, with the rows it just made)."""
        booked = self.book(day, inputs, carried, ctx)
        return self.order(
            day,
            inputs,
            booked,
            ctx,
            targets=inputs.on("targets", day),
            risk=inputs.on("risk", day),
            gates=inputs.on("gates", day),
        )

    def book(self, day: dt.date, inputs: ExecutionInputs, carried: Carried, ctx: RunContext) -> Booked:
        """Steps 1-3: D-1's orders as traded during D, booked with D's corporate actions, marked at D's
        close and reconciled with the broker. Reads nothing of session D's decisions."""
        cfg = ctx.settings.execution
        market = inputs.on("market", day)
        quotes = {r["symbol"]: r for r in market.iter_rows(named=True)}
        sent, broker_orders, fills = self._settle(day, inputs, market, carried, ctx.lake)
        ledger = carried.ledger.copy()
        dividends = ledger.apply_corporate_actions(inputs.on("actions", day))
        for f in sorted(fills, key=lambda f: (f.timestamp, f.fill_id)):
            ledger.apply_fill(f)
        closes = {s: q["close"] for s, q in quotes.items() if q["close"] is not None}
        _carry_missing_marks(ledger, closes, carried, day)
        positions = ledger.position_rows(day, closes)
        nav = ledger.nav(closes)
        regime = inputs.on("regimes", day)
        regime_name = regime["regime"][0] if regime.height else None
        outcomes, feedback, spike = outcome_rows(
            day,
            sent,
            carried.decisions,
            broker_orders,
            fills,
            quotes,
            regime_name,
            inputs.regimes,
            cfg.slippage_spike_bps,
        )
        spike_left = cfg.spike_cooldown_sessions if spike else max(carried.spike_sessions_left - 1, 0)
        if spike and cfg.slippage_spike_action == "halt":
            ctx.kill_switch.engage(
                f"slippage spike: a fill of {calendar.session_offset(day, -1)}'s orders cost more than "
                f"{cfg.slippage_spike_bps:g} bps vs the mid on {day}",
                "execution",
            )
        _reconcile(day, ledger, self.broker, self.latest_session)
        account = account_row(day, ledger, positions, nav, fills, dividends, self.broker.name, spike_left)
        history = carried.fills if carried.fills is not None else pl.DataFrame()
        fills = pl.concat([history, feedback], how="diagonal_relaxed") if feedback.height else history
        return Booked(day, ledger, nav, quotes, regime_name, outcomes, feedback, positions, account, spike_left, fills)

    def order(
        self,
        day: dt.date,
        inputs: ExecutionInputs,
        booked: Booked,
        ctx: RunContext,
        *,
        targets: pl.DataFrame,
        risk: pl.DataFrame,
        gates: pl.DataFrame,
    ) -> StepOutput:
        """Step 4: orders moving the booked positions to ``targets``, each submitted unless a gate blocks it
        (:func:`execution_gates.order_blocker`: the kill switch blocks all; Phase 3/4, FREEZE and BEAR_CRISIS
        block orders that add risk, reductions and closes go)."""
        settings, broker = ctx.settings, self.broker
        blocker = order_blocker(risk, gates, booked.regime, booked.ledger.open_positions())
        derisk_on_kill = False
        if not getattr(broker, "accepts_historical", False) and day < self.latest_session:
            planned: list[dict] = []
            latest = self.latest_session
            notes = [f"{day} is before the latest session {latest}: broker {broker.name} is not sent past orders"]
        else:
            cid = make_cycle_id(settings.fund.strategy, day)
            kill = kill_switch_reason(ctx.kill_switch) if settings.execution.kill_switch_action == "derisk" else None
            emergency = _emergency(day, booked, targets, risk, emergency_params(settings), kill)
            derisk_on_kill = emergency is not None and kill is not None
            notes = []
            if emergency is not None:
                targets, note = emergency
                cid, notes = f"{cid}-{EMERGENCY_SUFFIX}", [note]
            planned = plan_orders(
                day,
                cid,
                booked.ledger,
                booked.nav,
                targets,
                booked.quotes,
                settings.execution,
                policy_params(settings),
                booked.spike_sessions_left > 0 or emergency is not None,
                session_costs(booked.fills, day, settings, booked.regime),
            )
        # kill_switch_action "derisk": the switch is a breach; its cut (reductions only) goes, nothing else
        kill_check = (lambda: None) if derisk_on_kill else (lambda: kill_switch_reason(ctx.kill_switch))
        orders, decisions, submitted, known = submit_orders(day, planned, broker, blocker, kill_check)
        result = SessionResult(
            day,
            booked.outcomes,
            booked.feedback,
            booked.positions,
            booked.account,
            orders,
            decisions,
            blocker.session_reason,
            submitted,
            known,
            notes,
        )
        rows = {**booked.rows(), "orders": orders, "execution_decisions": decisions}
        nxt = Carried(booked.ledger, orders, decisions, booked.spike_sessions_left, booked.fills)
        return StepOutput(day, rows, nxt, result)

    def _settle(
        self, day: dt.date, inputs: ExecutionInputs, market: pl.DataFrame, carried: Carried, lake: Lake
    ) -> tuple[pl.DataFrame, dict, list[Fill]]:
        """Step 1: D-1's submitted orders as the broker traded them during D (the paper broker settles them on
        D's bar first), and their fills; a submitted order the broker does not know stops the cycle. A parent
        worked by children (``work_children``) is its children's aggregate (:func:`child_work.settle_children`)."""
        broker = self.broker
        settle = getattr(broker, "settle", None)
        if settle is not None:
            actions = inputs.on("actions", day)
            splits = actions.filter(pl.col("action_type") == "SPLIT").select(
                "symbol", pl.col("value").alias("split_ratio")
            )
            settle(day, market.join(splits, on="symbol", how="left").with_columns(pl.col("split_ratio").fill_null(1.0)))
        sent = carried.orders.filter(pl.col("broker_order_id").is_not_null()).sort("order_id")
        ids = sent["order_id"].to_list()
        broker_orders = broker.get_orders(ids) if ids else {}
        missing = sorted(set(ids) - set(broker_orders))
        if missing:
            raise ReconciliationError(
                f"{day}: {len(missing)} order(s) of {calendar.session_offset(day, -1)} that were submitted are "
                f"unknown to broker {broker.name}: {missing[:5]}"
            )
        fills = broker.fills(ids) if ids else []
        if getattr(broker, "work_children", None) is not None:
            worked, parents, child_fills = settle_children(broker, lake, carried.orders, day)
            sent, fills = pl.concat([sent, worked]).sort("order_id"), fills + child_fills
            broker_orders = {**broker_orders, **parents}
        return sent, broker_orders, fills

    def progress_line(self, step: StepOutput, i: int, n: int) -> str:
        r: SessionResult = step.detail
        return (
            f"execution {step.day}: NAV {r.account['nav']:,.0f}, {r.orders.height} orders, "
            f"{r.account['n_fills']} fills, {r.positions.height} positions"
        )


def _emergency(
    day: dt.date,
    booked: Booked,
    targets: pl.DataFrame,
    risk: pl.DataFrame,
    params: EmergencyParams,
    kill: str | None = None,
) -> tuple[pl.DataFrame, str] | None:
    """The de-risking targets of a session whose risk state breaches, or whose kill switch ``kill`` de-risks
    (:mod:`mqf_pipeline.portfolio.emergency`), and a note saying why, else None."""
    risk_row = risk.row(0, named=True) if risk.height else None
    held = booked.weights()
    want = dict(zip(targets["symbol"].to_list(), targets["target_weight"].to_list(), strict=True))
    sigma = {s: float(q["sigma"]) for s, q in booked.quotes.items() if q["sigma"] is not None}
    cut = emergency_targets(held, want, risk_row, sigma, params, forced=kill is not None)
    if cut is None:
        return None
    symbols = sorted(cut)
    frame = pl.DataFrame(
        {"date": [day] * len(symbols), "symbol": symbols, "target_weight": [cut[s] for s in symbols]},
        schema={"date": pl.Date, "symbol": pl.String, "target_weight": pl.Float64},
    )
    reasons = "; ".join([*risk_breaches(risk_row), *([kill] if kill else [])])
    note = (
        f"EMERGENCY rebalance {day} ({reasons}): held gross {gross(held):.4f} cut to {gross(cut):.4f}, "
        "orders MARKET for the next session's open"
    )
    return frame, note


def _carry_missing_marks(ledger: Ledger, closes: dict[str, float], carried: Carried, day: dt.date) -> None:
    """A held symbol without a usable bar on ``day`` keeps its last mark (its average cost if never marked)."""
    for symbol, pos in ledger.positions.items():
        if symbol not in closes:
            logger.warning("%s: no usable close on %s; position marked at its last known price", symbol, day)
            closes[symbol] = pos.avg_price


def _reconcile(day: dt.date, ledger: Ledger, broker: Broker, latest: dt.date) -> None:
    """Ledger vs broker positions after ``day`` traded. A broker that can say what it held at a past
    session (the paper broker) is checked on every session; a real broker only on the latest one."""
    as_of = getattr(broker, "positions_as_of", None)
    if as_of is not None:
        theirs = as_of(day)
    elif day >= latest:
        theirs = broker.positions()
    else:
        return
    ours = ledger.open_positions()
    diffs = {
        s: (ours.get(s, 0.0), theirs.get(s, 0.0))
        for s in sorted(set(ours) | set(theirs))
        if not math.isclose(ours.get(s, 0.0), theirs.get(s, 0.0), rel_tol=1e-9, abs_tol=1e-6)
    }
    if diffs:
        shown = ", ".join(f"{s}: ledger {a:g} vs broker {b:g}" for s, (a, b) in list(diffs.items())[:5])
        raise ReconciliationError(
            f"{day}: positions differ from broker {broker.name} for {len(diffs)} symbol(s) ({shown}); "
            "nothing was submitted"
        )
