"""One decision cycle per session: gates, meta-brain decisions, risk validation, breakers, audit rows.

For session D (everything known at D's close, nothing after):

1. Mark the previous book to market with D's returns: NAV, peak, drawdown (the book is held at its
   decided weights between cycles; with execution, positions replace it).
2. Measure the held book (hybrid VaR, vol) and step the circuit-breaker state machine of D-1.
3. Gates 0-2 (history, quality, signals); a failing gate stops the cycle (audited, book held).
4. Meta-brain: ensemble of the enabled agents' signals (learned weights when stored, else the
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.config import Settings
from mqf_pipeline.decisions import audit
from mqf_pipeline.decisions import meta_brain as mb
from mqf_pipeline.governance import phases as governance
from mqf_pipeline.regimes.mapping import RISK_MULTIPLIERS
from mqf_pipeline.risk import breakers
from mqf_pipeline.risk.book import (
    BookRisk,
    book_risk,
    cvar_function,
    daily_returns_wide,
    limit_checks,
    returns_window,
)
from mqf_pipeline.stages.base import previous_partition
from mqf_pipeline.stages.features import usable_bars
from mqf_pipeline.storage.lake import Lake

ProgressFn = Callable[[str], None]
CODE_VERSION = "decisions-1"
_NO_SIGNALS = pl.DataFrame(schema={"date": pl.Date, "symbol": pl.String, "agent": pl.String})
#: Sessions behind a provider's confidence (data_quality outcomes of its bars).
PROVIDER_WINDOW = 21
#: Bisection steps for the SCALE fraction of the increases (2^-30 resolution).
SCALE_STEPS = 30


class CycleStateError(RuntimeError):
    """The state a session continues (the previous session's risk_state) is missing."""


@dataclass(frozen=True)
class Carried:
    """What one cycle hands to the next: the book, NAV path and the breaker state."""

    book: dict[str, float]
    nav: float
    peak_nav: float
    breaker: breakers.BreakerState


@dataclass
class CycleResult:
    """Rows of one session for every table the cycle writes, and the state it hands on."""

    day: dt.date
    decisions: pl.DataFrame
    audit_log: pl.DataFrame
    gates: list[governance.Gate]
    risk_state: dict[str, object]
    contributions: pl.DataFrame
    carried: Carried
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CycleInputs:
    """Everything the cycles of a range read, loaded once (all dated at or before the last session)."""

    days: tuple[dt.date, ...]
    signals: dict[dt.date, pl.DataFrame]  # model_outputs rows by session (split once, not filtered per day)
    eligibility: pl.DataFrame
    quality: pl.DataFrame
    regimes: pl.DataFrame
    atr: pl.DataFrame
    closes: pl.DataFrame
    returns: pl.DataFrame  # wide: date, <symbol>... simple returns of adjusted closes
    sectors: dict[str, str]
    learned_weights: pl.DataFrame
    provider_confidence: pl.DataFrame  # date, provider, provider_confidence


def breaker_params(settings: Settings) -> breakers.BreakerParams:
    """Circuit-breaker parameters: configs/risk.yaml breakers + the VaR and drawdown limits."""
    b = settings.risk.breakers
    return breakers.BreakerParams(
        var_limit=settings.risk.limits.var_95,
        tier2_var_multiple=b.tier2_var_multiple,
        vol_target_ann=b.vol_target_ann,
        tier2_vol_multiple=b.tier2_vol_multiple,
        max_drawdown=settings.risk.limits.max_drawdown,
        kill_drawdown=b.kill_drawdown,
        tier3_vol_multiple=b.tier3_vol_multiple,
        defensive_sizing=b.defensive_sizing,
        cooldown_sessions=b.cooldown_sessions,
        recovery_steps=tuple(b.recovery_steps),
        recovery_step_sessions=b.recovery_step_sessions,
        recovery_vol_multiple=b.recovery_vol_multiple,
    )


def meta_brain_params(settings: Settings) -> mb.MetaBrainParams:
    """Meta-brain parameters: configs/risk.yaml meta_brain + the leverage and CVaR limits."""
    return mb.MetaBrainParams(
        **settings.risk.meta_brain.model_dump(),
        max_leverage=settings.risk.limits.max_gross_leverage,
        cvar_limit=settings.risk.limits.cvar_95,
    )


# ---------------------------------------------------------------------------------------------- loading
def load_inputs(lake: Lake, settings: Settings, days: Sequence[dt.date], universe: pl.DataFrame) -> CycleInputs:
    """Read the lake once for ``days`` (returns from ``window_sessions`` before the first day)."""
    days = sorted(days)
    first, last = days[0], days[-1]
    back = calendar.session_offset(first, -(settings.risk.var.window_sessions + 1))
    bars = usable_bars(lake, back, last).select("date", "symbol", "close", "adjusted_close")
    returns = daily_returns_wide(bars)
    outputs = lake.read_range("model_outputs", first, last)
    span = [p for p in lake.partitions("features") if first.isoformat() <= p <= last.isoformat()]
    # only ATR is needed: filter in the scan (one feature of 31) instead of reading every feature row
    atr = (
        lake.scan("features", span)
        .filter(pl.col("feature") == "atr_14")
        .select("date", "symbol", pl.col("value").alias("atr"))
        .collect()
    )
    quality = lake.read_range("data_quality", calendar.session_offset(first, -PROVIDER_WINDOW), last)
    stored_weights = lake.partitions("agent_weights")
    learned = lake.read("agent_weights", stored_weights) if stored_weights else pl.DataFrame()
    return CycleInputs(
        days=tuple(days),
        signals={key[0]: part for key, part in outputs.partition_by("date", as_dict=True).items()},
        eligibility=lake.read_range("trading_eligibility", first, last),
        quality=quality.filter(pl.col("date") >= first).select("date", "symbol", "quality_score", "provider"),
        regimes=lake.read_range("regime_history", first, last),
        atr=atr,
        closes=bars.filter(pl.col("date") >= first).select("date", "symbol", "close", "adjusted_close"),
        returns=returns,
        sectors=dict(zip(universe["symbol"].to_list(), universe["sector"].to_list(), strict=True)),
        learned_weights=learned,
        provider_confidence=provider_confidence(quality),
    )


def provider_confidence(quality: pl.DataFrame, window: int = PROVIDER_WINDOW) -> pl.DataFrame:
    """Per (date, provider): posterior mean (1 + accepted) / (2 + accepted + rejected) of the provider's
    bars over the ``window`` sessions ending at the date (data_quality rows; Beta(1, 1) prior).

    Point in time and deterministic: how trustworthy the provider's data has been lately, at D's close.
    """
    if quality.height == 0:
        return pl.DataFrame(schema={"date": pl.Date, "provider": pl.String, "provider_confidence": pl.Float64})
    daily = (
        quality.filter(pl.col("provider").is_not_null())
        .group_by("date", "provider")
        .agg(acc=(pl.col("status") == "ACCEPT").sum(), rej=(pl.col("status") != "ACCEPT").sum())
        .sort("provider", "date")
    )
    return daily.with_columns(
        acc=pl.col("acc").rolling_sum(window, min_samples=1).over("provider"),
        rej=pl.col("rej").rolling_sum(window, min_samples=1).over("provider"),
    ).select(
        "date",
        "provider",
        ((1 + pl.col("acc")) / (2 + pl.col("acc") + pl.col("rej"))).alias("provider_confidence"),
    )


def load_carried(lake: Lake, day: dt.date, initial_nav: float) -> Carried:
    """The state session ``day`` continues: the stored risk_state and decisions of the previous session.

    With no risk_state stored before ``day`` the fund starts fresh (initial NAV, empty book). A gap
    (state stored for an earlier session but not the previous one) is an error naming what to run.
    """
    prev = previous_partition(lake, "risk_state", day, error=CycleStateError, what="decisions", state="the risk state")
    if prev is None:
        return Carried({}, initial_nav, initial_nav, breakers.BreakerState.initial())
    state = lake.read("risk_state", [prev]).row(0, named=True)
    return Carried(
        book={s: float(w) for s, w in json.loads(state["book_json"]).items()},
        nav=float(state["nav"]),
        peak_nav=float(state["peak_nav"]),
        breaker=breakers.BreakerState.from_row(json.loads(state["breaker_state_json"])),
    )


# ---------------------------------------------------------------------------------------------- one cycle
def agent_weights_for(day: dt.date, inputs: CycleInputs, static: dict[str, float]) -> tuple[dict[str, float], str]:
    """Learned weights stored before ``day`` (newest date), else the preset's static weights."""
    learned = inputs.learned_weights
    if learned.height:
        prior = learned.filter(pl.col("date") < day)
        if prior.height:
            newest = prior.filter(pl.col("date") == prior["date"].max())
            weights = {r["agent_name"]: float(r["weight"]) for r in newest.iter_rows(named=True)}
            weights = {a: w for a, w in weights.items() if a in static}
            if sum(weights.values()) > 0:
                return weights, f"learned ({newest['date'][0]})"
    return dict(static), "static (preset)"


def run_cycle(
    day: dt.date,
    inputs: CycleInputs,
    carried: Carried,
    settings: Settings,
    *,
    kill_switch: str | None,
    static_weights: dict[str, float],
) -> CycleResult:
    """Decide session ``day`` from ``carried`` (module docstring, steps 1-6)."""
    risk_cfg = settings.risk
    strategy = settings.fund.strategy
    cid = audit.cycle_id(strategy, day)
    dates = inputs.returns.get_column("date")
    idx = dates.search_sorted(day)
    if idx >= len(dates) or dates[idx] != day:
        raise ValueError(f"no returns for session {day}: price_history has no accepted bars that day")
    window = returns_window(inputs.returns, idx, risk_cfg.var.window_sessions)
    today = dict(zip(window.symbols, window.returns[-1], strict=True))

    # 1. mark to market
    pnl = sum(w * today.get(s, 0.0) for s, w in carried.book.items())
    nav = carried.nav * (1.0 + pnl)
    peak = max(carried.peak_nav, nav)
    drawdown = 1.0 - nav / peak if peak > 0 else 0.0

    # 2. breaker step on the held book
    bparams = breaker_params(settings)
    held = book_risk(carried.book, window, inputs.sectors, risk_cfg)
    obs = breakers.RiskObservation(var=held.var_hybrid or 0.0, vol_ann=held.vol_ann or 0.0, drawdown=drawdown)
    state = breakers.step(carried.breaker, obs, bparams)
    regime_row = inputs.regimes.filter(pl.col("date") == day)
    regime = regime_row["regime"][0] if regime_row.height else None
    regime_mult = float(RISK_MULTIPLIERS.get(regime, 1.0)) if regime else 1.0
    dd_mult = breakers.drawdown_multiplier(drawdown, bparams)
    sizing = regime_mult * breakers.sizing_multiplier(state, obs, bparams) * dd_mult
    frozen = breakers.blocks_new_risk(state)
    block_reason = "RISK_OVERRIDE_FREEZE" if frozen else ("RISK_OVERRIDE_REGIME_BLOCK" if regime_mult == 0 else None)

    # 3. gates 0-2
    elig = inputs.eligibility.filter(pl.col("date") == day)
    eligible_syms = set(elig.filter(pl.col("eligible"))["symbol"].to_list())
    sig = inputs.signals.get(day, _NO_SIGNALS).filter(pl.col("symbol").is_in(sorted(eligible_syms)))
    weights, weight_source = agent_weights_for(day, inputs, static_weights)
    sig = sig.filter(pl.col("agent").is_in([a for a, w in weights.items() if w > 0]))
    gates = governance.data_gates(elig, sig, settings.fund.history.min_history_rows)
    stopped = next((g for g in gates if not g.passed), None)

    book = dict(carried.book)
    if stopped is None:
        decided = _decide(
            day,
            sig,
            weights,
            book,
            elig,
            inputs,
            window,
            settings,
            sizing=sizing,
            block_reason=block_reason,
            kill_switch=kill_switch,
        )
        decided, checks, final_risk = _validate(decided, book, window, inputs.sectors, drawdown, settings)
        book = {r["symbol"]: r["position_size"] for r in decided.iter_rows(named=True) if r["position_size"]}
    else:
        decided = pl.DataFrame()
        final_risk = held
        checks = limit_checks(held, drawdown, risk_cfg)
    gates.append(governance.risk_gate(checks))
    gates.append(governance.orders_gate(gates, kill_switch, frozen))

    # audit and decision rows
    extra = {
        "regime": regime,
        "regime_multiplier": regime_mult,
        "breaker_status": str(state.status),
        "sizing_multiplier": sizing,
        "weights_source": weight_source,
        "code_version": CODE_VERSION,
    }
    if decided.height:
        records = audit.audit_records(_with_audit_inputs(decided, day, inputs, extra), day=day, strategy=strategy)
        audit_rows = audit.audit_log_rows(records, day)
        decision_rows = audit.decision_rows(records, day)
    else:
        decision_rows = pl.DataFrame()
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
    risk_row = _risk_state_row(
        day,
        cid,
        nav,
        peak,
        drawdown,
        final_risk,
        checks,
        risk_cfg.breakers.vol_target_ann,
        regime,
        regime_mult,
        dd_mult,
        state,
        sizing,
        kill_switch,
        book,
    )
    counts = (
        {str(k): int(v) for k, v in decision_rows.group_by("final_decision").len().iter_rows()}
        if decision_rows.height
        else {}
    )
    return CycleResult(
        day=day,
        decisions=decision_rows,
        audit_log=audit_rows,
        gates=gates,
        risk_state=risk_row,
        contributions=final_risk.contributions.with_columns(pl.lit(day).alias("date")),
        carried=Carried(book, nav, peak, state),
        counts=counts,
    )


def _risk_state_row(
    day: dt.date,
    cid: str,
    nav: float,
    peak: float,
    drawdown: float,
    final_risk: BookRisk,
    checks: list,
    vol_target_ann: float,
    regime: str | None,
    regime_mult: float,
    dd_mult: float,
    state: breakers.BreakerState,
    sizing: float,
    kill_switch: str | None,
    book: dict[str, float],
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
    }


def _decide(
    day: dt.date,
    signals: pl.DataFrame,
    weights: dict[str, float],
    book: dict[str, float],
    eligibility: pl.DataFrame,
    inputs: CycleInputs,
    window,
    settings: Settings,
    *,
    sizing: float,
    block_reason: str | None,
    kill_switch: str | None,
) -> pl.DataFrame:
    """The meta-brain's decisions for the eligible symbols and every held one."""
    params = meta_brain_params(settings)
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
        cvar_fn=cvar_function(window, symbols, settings.risk),
        current=book,
        eligible=eligible,
        override_reasons=reasons,
        sizing_multiplier=min(max(sizing, 0.0), 1.0),
        block_new_risk=block_reason is not None,
        block_reason=block_reason or "RISK_OVERRIDE_FREEZE",
        kill_switch=kill_switch is not None,
        close=close,
        atr=atr,
    )


def _validate(
    decided: pl.DataFrame,
    current: dict[str, float],
    window,
    sectors: dict[str, str],
    drawdown: float,
    settings: Settings,
) -> tuple[pl.DataFrame, list[dict[str, object]], BookRisk]:
    """Seed 000 section 7.4 on the decided book.

    REJECT limits (stress loss; drawdown rejects every increase) keep the longest run of increases, in
    the meta-brain's order (|score| descending), whose book satisfies them and reject the rest; SCALE
    limits then shrink the kept increases by the largest common fraction that satisfies them (bisection).
    """
    risk_cfg = settings.risk
    rows = decided.to_dicts()
    increasing = sorted(
        (r for r in rows if abs(r["position_size"]) > abs(current.get(r["symbol"], 0.0)) + 1e-15),
        key=lambda r: (-abs(r["score"] or 0.0), r["symbol"]),
    )
    base = {r["symbol"]: r["position_size"] for r in rows} | {
        r["symbol"]: current.get(r["symbol"], 0.0) for r in increasing
    }
    for s, w in current.items():
        base.setdefault(s, w)

    def book_at(kept: int, scale: float) -> dict[str, float]:
        out = dict(base)
        for r in increasing[:kept]:
            cur = current.get(r["symbol"], 0.0)
            out[r["symbol"]] = cur + scale * (r["position_size"] - cur)
        return out

    def breached(kept: int, scale: float, action: str) -> list[str]:
        checks = limit_checks(book_risk(book_at(kept, scale), window, sectors, risk_cfg), drawdown, risk_cfg)
        return [c["name"] for c in checks if c["breached"] and c["action"] == action and c["name"] != "max_drawdown"]

    kept, scale = len(increasing), 1.0
    reject_reason, scale_reason = None, None
    if increasing and drawdown > risk_cfg.limits.max_drawdown:
        kept, reject_reason = 0, "LIMIT_MAX_DRAWDOWN"
    elif increasing and (rejects := breached(kept, 1.0, "REJECT")):
        reject_reason = "LIMIT_" + "_".join(rejects).upper()
        lo, hi = 0, kept  # the longest prefix within the REJECT limits (breached(lo) is False, breached(hi) True)
        if breached(0, 1.0, "REJECT"):
            hi = 0
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if not breached(mid, 1.0, "REJECT") else (lo, mid)
        kept = lo
    if kept and (scales := breached(kept, 1.0, "SCALE")):
        scale_reason = "LIMIT_SCALED_" + "_".join(scales).upper()
        if breached(kept, 0.0, "SCALE"):
            scale = 0.0  # the book without increases already breaches: add nothing
        else:
            lo_s, hi_s = 0.0, 1.0
            for _ in range(SCALE_STEPS):
                mid_s = (lo_s + hi_s) / 2
                lo_s, hi_s = (mid_s, hi_s) if not breached(kept, mid_s, "SCALE") else (lo_s, mid_s)
            scale = lo_s
    min_trade = risk_cfg.meta_brain.min_trade
    outcome = {r["symbol"]: (scale, scale_reason) for r in increasing[:kept]}
    outcome |= {r["symbol"]: (0.0, reject_reason) for r in increasing[kept:]}
    out = [
        _scaled(r, current.get(r["symbol"], 0.0), *outcome[r["symbol"]], min_trade) if r["symbol"] in outcome else r
        for r in rows
    ]
    final = pl.DataFrame(out, schema=decided.schema)
    decided_symbols = set(final["symbol"].to_list())
    final_book = {r["symbol"]: r["position_size"] for r in out if r["position_size"]}
    final_book |= {s: w for s, w in current.items() if s not in decided_symbols and w}
    risk = book_risk(final_book, window, sectors, risk_cfg)
    return final, limit_checks(risk, drawdown, risk_cfg), risk


def _scaled(row: dict, current: float, scale: float, reason: str | None, min_trade: float) -> dict:
    """An increase shrunk to ``scale`` of itself by a limit (REJECT when what is left is below min_trade)."""
    if scale >= 1.0:
        return row
    new = current + scale * (row["position_size"] - current)
    checks = {**json.loads(row["risk_checks"]), "limit_scale": scale}
    codes = [*json.loads(row["reason_codes"]), reason]
    keep = abs(new - current) >= min_trade
    changed = {"position_size": new} if keep else {"final_decision": "REJECT", "position_size": current}
    return {**row, **changed, "reason_codes": json.dumps(codes), "risk_checks": json.dumps(checks, sort_keys=True)}


def _with_audit_inputs(decided: pl.DataFrame, day: dt.date, inputs: CycleInputs, extra: dict[str, object]):
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


# ---------------------------------------------------------------------------------------------- a range
def run_cycles(
    lake: Lake,
    settings: Settings,
    days: Sequence[dt.date],
    universe: pl.DataFrame,
    *,
    kill_switch: Callable[[], str | None],
    progress: ProgressFn = lambda _m: None,
) -> list[CycleResult]:
    """Cycles for ``days`` in order, each continuing the previous one's state.

    ``kill_switch`` is asked before each session (a switch engaged mid-range stops the rest).
    """
    days = sorted(days)
    inputs = load_inputs(lake, settings, days, universe)
    carried = load_carried(lake, days[0], settings.risk.initial_nav)
    static = settings.signals.starting_weights()
    results: list[CycleResult] = []
    for i, day in enumerate(days, start=1):
        result = run_cycle(day, inputs, carried, settings, kill_switch=kill_switch(), static_weights=static)
        results.append(result)
        carried = result.carried
        if i % 50 == 0 or i == len(days):
            progress(f"decisions: {i}/{len(days)} sessions ({day}: {result.counts or 'no decisions'})")
    return results
