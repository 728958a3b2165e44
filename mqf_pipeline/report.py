"""Run summaries read back from the lake (what the CLI prints after a cycle)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import polars as pl

from mqf_pipeline.attribution import PARTS
from mqf_pipeline.storage.lake import Lake


def market_data_summary(
    lake: Lake, latest: dt.date, agent_weights: Mapping[str, float] | None = None
) -> dict[str, object]:
    """Key figures of the cycle at session ``latest``: data layer, features, regime, agent signals.

    ``agent_weights``: the enabled agents' ensemble weights (``settings.signals.starting_weights()``); when
    None, the newest learned ``agent_weights`` stored at or before ``latest`` are used, if any. Agents among
    them without a signal at ``latest`` are named in ``agents_without_data``.
    """
    sessions = lake.partitions("price_history")
    key = latest.isoformat()
    quality = lake.read("data_quality", [key])
    elig = lake.read("trading_eligibility", [key])
    bars_rows = lake.query("price_history", build=lambda f: f.select(pl.len())).item() if sessions else 0
    macro = lake.read("macro_series", [key])
    vix = macro.filter(pl.col("series_id") == "VIX").get_column("value").to_list()
    rate = macro.filter(pl.col("series_id") == "SHORT_RATE").get_column("value").to_list()
    regime = lake.read("regime_history", [key])
    outputs = lake.read("model_outputs", [key])
    return {
        "latest_session": key,
        "sessions_stored": len(sessions),
        "first_session": sessions[0] if sessions else None,
        "bars_stored": int(bars_rows),
        "symbols_scored": quality.height,
        "mean_quality": round(float(quality.get_column("quality_score").mean()), 4) if quality.height else None,
        "rejected": int((quality.get_column("status") == "REJECT").sum()) if quality.height else None,
        "eligible": int(elig.get_column("eligible").sum()) if elig.height else None,
        "vix_points": round(vix[0], 2) if vix and vix[0] is not None else "absent (no provider served it)",
        "short_rate_pct": round(100 * rate[0], 3) if rate and rate[0] is not None else "absent (no provider served it)",
        "symbols_not_served": _failures_note(lake, key),
        "features": lake.read("features", [key]).height,
        "regime": (
            f"{regime.item(0, 'regime')} (p={regime.item(0, 'regime_prob'):.2f}, x{regime.item(0, 'risk_multiplier')})"
            if regime.height
            else None
        ),
        "agent_signals": (
            f"{outputs.height} from {outputs.get_column('agent').n_unique()} agents" if outputs.height else None
        ),
        "agents_without_data": _agents_without_data(lake, latest, outputs, agent_weights),
        **decision_summary(lake, latest),
        **learning_summary(lake, latest),
    }


def _failures_note(lake: Lake, key: str) -> str | None:
    """The symbols no provider served at session ``key`` (backfill_failures), with the first one's reason."""
    failures = lake.read("backfill_failures", [key]) if lake.exists("backfill_failures", key) else pl.DataFrame()
    if failures.height == 0:
        return None
    first = failures.row(0, named=True)
    names = ", ".join(failures.get_column("symbol").unique(maintain_order=True).head(5).to_list())
    more = f" and {failures.height - 5} more" if failures.height > 5 else ""
    return f"{failures.height}: {names}{more} ({first['symbol']}: {first['error']})"


def _agents_without_data(
    lake: Lake, latest: dt.date, outputs: pl.DataFrame, weights: Mapping[str, float] | None
) -> str | None:
    """The sentence of :func:`~mqf_pipeline.stages.signals.no_data_note` for agents silent at ``latest``."""
    from mqf_pipeline.stages.signals import agents_without_data, no_data_note

    if weights is None:
        stored = [p for p in lake.partitions("agent_weights") if p <= latest.isoformat()]
        learned = lake.read("agent_weights", stored[-1:]) if stored else pl.DataFrame()
        weights = dict(learned.select("agent_name", "weight").iter_rows()) if learned.height else {}
    present = set(outputs.get_column("agent").to_list()) if outputs.height else set()
    return no_data_note(agents_without_data(lake, latest, present, weights)) if weights else None


def _limit_var(row: dict[str, object]) -> object:
    """The VaR the var_95 limit checked in a risk_state row: the hybrid, or the conditional one (var_model)."""
    model = row.get("var_model") or "hybrid"
    return row["var_hybrid"] if model == "hybrid" else row.get("var_conditional")


def learning_summary(lake: Lake, latest: dt.date) -> dict[str, object]:
    """The loop back at session ``latest``: the agent weights in force and how they were set, and the slippage
    model refitted on the fills (None where not materialized)."""
    key = latest.isoformat()
    out: dict[str, object] = {}
    if lake.exists("agent_weights", key):
        weights = lake.read("agent_weights", [key]).sort("weight", descending=True)
        shown = ", ".join(f"{a} {w:.2f}" for a, w in weights.select("agent_name", "weight").iter_rows())
        out["agent_weights"] = f"{shown} ({weights['algorithm_used'][0]})" if weights.height else None
    if lake.exists("portfolio_attribution", key):
        att = lake.read("portfolio_attribution", [key])
        if att.height:
            r = att.row(0, named=True)
            split = ", ".join(f"{p} {100 * (r[f'{p}_contribution'] or 0):+.3f}" for p in PARTS)
            out["attribution_pct"] = (
                f"{100 * r['total_portfolio_return']:+.3f} = {split}; top {r['top_contributor_symbol']}, "
                f"worst {r['worst_detractor_symbol']}"
            )
    if lake.exists("slippage_model_coeffs", key):
        pooled = lake.read("slippage_model_coeffs", [key]).filter(pl.col("symbol") == "*")
        if pooled.height:
            r = pooled.row(0, named=True)
            fit = f"R^2 {r['r_squared']:.2f}, " if r["r_squared"] is not None else ""
            out["slippage_model"] = f"{r['status']} ({fit}{r['n_observations']} fills)"
    return out


def decision_summary(lake: Lake, latest: dt.date) -> dict[str, object]:
    """The meta-brain's decisions and the risk state of session ``latest`` (None where not materialized)."""
    key = latest.isoformat()
    decisions = lake.read("decisions", [key]) if lake.exists("decisions", key) else pl.DataFrame()
    counts = (
        dict(decisions.group_by("final_decision").len().sort("final_decision").iter_rows()) if decisions.height else {}
    )
    gates = lake.read("governance_gates", [key]) if lake.exists("governance_gates", key) else pl.DataFrame()
    risk = lake.read("risk_state", [key]) if lake.exists("risk_state", key) else pl.DataFrame()
    out: dict[str, object] = {
        "decisions": ", ".join(f"{k} {v}" for k, v in counts.items()) if counts else None,
        "gates": (
            " ".join(f"P{p}:{'ok' if ok else 'FAIL'}" for p, ok in gates.sort("phase").select("phase", "passed").rows())
            if gates.height
            else None
        ),
    }
    if risk.height:
        r = risk.row(0, named=True)
        out |= {
            "nav": f"{r['nav']:,.2f} (drawdown {100 * r['drawdown']:.2f}%)",
            "book": f"{r['n_positions']} positions, gross {100 * r['gross_exposure']:.1f}%",
            "var95_cvar95_pct": f"{100 * (_limit_var(r) or 0):.3f} ({r.get('var_model') or 'hybrid'}) / "
            f"{100 * (r['cvar_evt'] or 0):.3f}",
            "stress_worst": f"{r['stress_worst_scenario']} {100 * (r['stress_worst_loss'] or 0):.2f}%",
            "breaker": f"{r['breaker_status']} (tier {r['breaker_tier']}), sizing x{r['sizing_multiplier']:.2f}",
            "kill_switch": "ENGAGED" if r["kill_switch"] else "off",
        }
    if lake.exists("optimization_results", key):
        res = lake.read("optimization_results", [key]).row(0, named=True)
        targets = lake.read("portfolio_targets", [key]).filter(pl.col("target_weight") != 0)
        top = targets.sort("target_weight", descending=True).head(3)
        out |= {
            "rebalance": f"{res['rebalance']} via {res['allocator']}: {res['optimizer_status']} ({res['method']})",
            "targets": f"{targets.height} names, gross {100 * float(targets['target_weight'].abs().sum()):.1f}%"
            + (
                ", top " + ", ".join(f"{s} {100 * w:.1f}%" for s, w in top.select("symbol", "target_weight").rows())
                if top.height
                else ""
            ),
        }
    if lake.exists("account", key):
        acct = lake.read("account", [key]).row(0, named=True)
        orders = lake.read("orders", [key])
        outcomes = lake.read("execution_outcomes", [key])
        by_status = dict(orders.group_by("status").len().sort("status").iter_rows()) if orders.height else {}
        filled = outcomes.filter(pl.col("filled_qty") > 0)
        out |= {
            "account": f"NAV {acct['nav']:,.2f}, cash {acct['cash']:,.2f}, {acct['n_positions']} positions, "
            f"gross {100 * acct['gross_exposure']:.1f}% ({acct['broker']} broker)",
            "fills": f"{acct['n_fills']} fills on {filled.height} of {outcomes.height} orders of the previous session"
            + (
                f", mean cost {float(filled['total_cost_bps'].mean()):.1f} bps"
                if filled.height and filled["total_cost_bps"].mean() is not None
                else ""
            ),
            "orders": ", ".join(f"{k} {v}" for k, v in by_status.items()) if by_status else "none",
        }
    return out
