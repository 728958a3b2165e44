"""Execution assets (group ``execution``): fills of the previous session's orders, positions, cash, and
the session's orders with their execution decisions.

One step walks the sessions in order: session D books the fills of D-1's orders (traded during D),
marks positions at D's close, reconciles with the broker, then makes D's orders. The five seed tables
plus ``account`` (cash, NAV) depend on their own previous partition.
"""

import dagster as dg

from assets.common import md_table, write_metadata
from mqf_pipeline.stages.base import StageRun

DESCRIPTIONS = {
    "execution_outcomes": "Per order of the previous cycle, as it traded during this session (seed 002 section 3.5): "
    "arrival and fill price, slippage, impact and total cost in bps, commission, ADV, spread, "
    "the model's expected cost and its error, the final status and filled quantity.",
    "execution_feedback": "Per filled order (seed 002 section 5.4): costs with the market conditions they met "
    "(size/ADV, volatility, spread, time of day, regime), the input of the slippage model "
    "refit.",
    "positions": "Positions after the session: shares (sum of fills, split-adjusted), average cost, close, "
    "market value, weight of NAV, unrealised and realised PnL.",
    "account": "Cash, positions value, NAV, exposures, commissions and dividends of the session.",
    "orders": "Orders the cycle made to move positions to the portfolio targets (seed 000 section 11), "
    "with the deterministic client order id, schedule, and state as made: SUBMITTED, or "
    "REJECTED with the reason (kill switch, FREEZE breaker, broker refusal).",
    "execution_decisions": "Per order, the execution policy's state (size/ADV, volatility, spread, time remaining), "
    "the chosen schedule, its expected cost and any fallback (seed 002 section 3.5).",
}


def results(run: StageRun, tables: tuple[str, ...]):
    """The execution part's MaterializeResults of ``tables`` for a trading-cycle run."""
    last = run.last.detail
    for key, meta in _metadata(last).items():
        if key in tables:
            yield dg.MaterializeResult(asset_key=key, metadata=write_metadata(run.written[key], **meta))


def _metadata(last) -> dict[str, dict[str, object]]:
    """Per table, the last session's summary."""
    acct = last.account
    out = last.outcomes
    extra: dict[str, dict[str, object]] = {
        "execution_outcomes": {
            "session": str(last.day),
            "orders_traded": out.height,
            "filled": int((out["status"] == "FILLED").sum()) if out.height else 0,
            "mean_cost_bps": round(float(out["total_cost_bps"].mean() or 0.0), 3) if out.height else 0.0,
        },
        "execution_feedback": {"session": str(last.day), "fills": last.feedback.height},
        "positions": {
            "session": str(last.day),
            "positions": last.positions.height,
            "positions_preview": dg.MetadataValue.md(
                md_table(
                    last.positions.sort("market_value", descending=True).select(
                        "symbol", "qty", "market_value", "weight"
                    ),
                    15,
                )
            )
            if last.positions.height
            else "none",
        },
        "account": {
            "session": str(last.day),
            "nav": round(acct["nav"], 2),
            "cash": round(acct["cash"], 2),
            "gross_exposure": round(acct["gross_exposure"], 6),
            "broker": acct["broker"],
        },
        "orders": {
            "session": str(last.day),
            "orders": last.orders.height,
            "submitted": last.submitted,
            "already_at_broker": last.already_at_broker,
            "blocked": last.blocked_reason or "no",
        },
        "execution_decisions": {
            "session": str(last.day),
            "fallbacks": int(last.decisions["used_fallback"].sum()) if last.decisions.height else 0,
        },
    }
    return extra
