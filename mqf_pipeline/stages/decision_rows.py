"""The rows a decision cycle writes: the meta-brain's inputs and call, the audit metadata of each
decision, the audit and decision rows, and the session's risk_state row."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping

import polars as pl

from mqf_pipeline.decisions import audit
from mqf_pipeline.decisions import meta_brain as mb
from mqf_pipeline.governance.phases import Gate
from mqf_pipeline.risk import breakers
from mqf_pipeline.risk.book import BookRisk, ReturnsWindow, RiskParams, cvar_function
from mqf_pipeline.stages.decision_inputs import CycleInputs


def meta_brain_decisions(
    day: dt.date,
    signals: pl.DataFrame,
    weights: dict[str, float],
    book: dict[str, float],
    eligibility: pl.DataFrame,
    inputs: CycleInputs,
    window: ReturnsWindow,
    params: mb.MetaBrainParams,
    risk: RiskParams,
    *,
    sizing: float,
    block_reason: str | None,
    kill_switch: str | None,
    score: Mapping[str, float] | None = None,
    symbol_sizing: Mapping[str, float] | None = None,
) -> pl.DataFrame:
    """The meta-brain's decisions for the eligible symbols and every held one; ``score`` and ``symbol_sizing``:
    seed 002 section 5.5's per-symbol multipliers of the agents' expected returns and of the Kelly size."""
    if score:
        factor = pl.col("symbol").replace_strict(dict(score), default=1.0, return_dtype=pl.Float64)
        signals = signals.with_columns(pl.col("mu") * factor)
    ens = mb.penalised_ensemble(signals, weights, params.beta)
    eligible = {r["symbol"]: bool(r["eligible"]) for r in eligibility.iter_rows(named=True)}
    reasons = {
        r["symbol"]: [str(x) for x in json.loads(r["reasons_json"] or "[]")]
        for r in eligibility.iter_rows(named=True)
        if not r["eligible"]
    }
    symbols = sorted(set(ens.get_column("symbol").to_list()) | {s for s, w in book.items() if w})
    prices = inputs.closes.filter(pl.col("date") == day)
    close = dict(zip(prices["symbol"].to_list(), prices["close"].to_list(), strict=True))
    factor = dict(zip(prices["symbol"].to_list(), (prices["adjusted_close"] / prices["close"]).to_list(), strict=True))
    atr_rows = inputs.atr.filter(pl.col("date") == day)
    # ATR is on adjusted prices: back to the raw price scale the stop is quoted in
    atr = {
        s: a / factor[s]
        for s, a in zip(atr_rows["symbol"].to_list(), atr_rows["atr"].to_list(), strict=True)
        if a is not None and factor.get(s)
    }
    return mb.decide(
        ens,
        params,
        symbols=symbols,
        cvar_fn=cvar_function(window, symbols, risk),
        current=book,
        eligible=eligible,
        override_reasons=reasons,
        sizing_multiplier=min(max(sizing, 0.0), 1.0),
        block_new_risk=block_reason is not None,
        block_reason=block_reason or "RISK_OVERRIDE_FREEZE",
        kill_switch=kill_switch is not None,
        close=close,
        atr=atr,
        symbol_sizing=symbol_sizing,
    )


def with_audit_inputs(
    decided: pl.DataFrame, day: dt.date, inputs: CycleInputs, extra: dict[str, object]
) -> pl.DataFrame:
    """Join the session's data-quality score and provider confidence; build the metadata field."""
    quality = inputs.quality.filter(pl.col("date") == day).select("symbol", "quality_score", "provider")
    conf = inputs.provider_confidence.filter(pl.col("date") == day).drop("date")
    frame = decided.join(quality, on="symbol", how="left").join(conf, on="provider", how="left")
    metadata = [
        json.dumps(
            {
                **extra,
                "current_weight": r["current_weight"],
                "target_weight": r["target_weight"],
                "z": r["z"],
                "score": r["score"],
                "kelly": r["kelly"],
                "penalty": r["penalty"],
            },
            sort_keys=True,
            default=float,
        )
        for r in frame.iter_rows(named=True)
    ]
    return frame.with_columns(
        pl.col("quality_score").alias("data_quality_score"),
        pl.Series("metadata", metadata, dtype=pl.String),
    )


def risk_state_row(
    day: dt.date,
    cid: str,
    nav: float,
    peak: float,
    drawdown: float,
    final_risk: BookRisk,
    checks: list[dict[str, object]],
    vol_target_ann: float,
    regime: str | None,
    regime_mult: float,
    dd_mult: float,
    state: breakers.BreakerState,
    sizing: float,
    kill_switch: str | None,
    book: dict[str, float],
    book_source: str,
) -> dict[str, object]:
    """The session's risk_state row (step 6): the final book's risk, limits, breaker and the book itself."""
    name, value = final_risk.max_sector
    worst, worst_loss = final_risk.stress_worst
    return {
        "date": day,
        "cycle_id": cid,
        "nav": nav,
        "peak_nav": peak,
        "drawdown": drawdown,
        "gross_exposure": final_risk.gross,
        "net_exposure": final_risk.net,
        "n_positions": final_risk.n_positions,
        "var_historical": final_risk.var_historical,
        "var_parametric": final_risk.var_parametric,
        "var_hybrid": final_risk.var_hybrid,
        "var_conditional": final_risk.var_conditional,
        "var_model": final_risk.var_model,
        "cvar_evt": final_risk.cvar_evt,
        "cvar_historical": final_risk.cvar_historical,
        "vol_ann": final_risk.vol_ann,
        "vol_target_ann": vol_target_ann,
        "avg_correlation": final_risk.avg_correlation,
        "correlation_shock_vol_ann": final_risk.correlation_shock_vol_ann,
        "max_sector": name,
        "max_sector_exposure": value,
        "stress_worst_scenario": worst,
        "stress_worst_loss": worst_loss,
        "stress_json": final_risk.stress_json(),
        "limits_json": json.dumps(checks, sort_keys=True),
        "regime": regime,
        "regime_multiplier": regime_mult,
        "drawdown_multiplier": dd_mult,
        "breaker_status": str(state.status),
        "breaker_tier": int(state.tier),
        "breaker_state_json": json.dumps(state.to_row(), sort_keys=True),
        "sizing_multiplier": sizing,
        "kill_switch": kill_switch is not None,
        "book_json": json.dumps({s: book[s] for s in sorted(book)}),
        "book_source": book_source,
    }


def audit_and_decision_rows(
    decided: pl.DataFrame,
    day: dt.date,
    strategy: str,
    inputs: CycleInputs,
    gates: list[Gate],
    stopped: Gate | None,
    extra: dict[str, object],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(audit_log rows, decisions rows): one audit record per decision, or one cycle event when the cycle
    stopped at a gate or decided nothing."""
    if decided.height:
        records = audit.audit_records(with_audit_inputs(decided, day, inputs, extra), day=day, strategy=strategy)
        return audit.audit_log_rows(records, day), audit.decision_rows(records, day)
    audit_rows = audit.cycle_event_row(
        day=day,
        strategy=strategy,
        event_key=f"GATE_PHASE{stopped.phase}" if stopped else "NO_DECISIONS",
        level="WARNING",
        message=f"cycle stopped at gate {stopped.phase} ({stopped.name}): {stopped.detail}"
        if stopped
        else "no decisions",
        payload={"gates": [g.__dict__ for g in gates], **extra},
    )
    return audit_rows, pl.DataFrame()
