"""Meta-brain steps 7-8: the CVaR-first decision rules of seed 000 §6.2 for one date.

:func:`mqf_pipeline.decisions.meta_brain.decide` states the rules and runs these steps in order:
:func:`check_inputs`; :func:`initial_states` (robust z over the eligible symbols, Kelly target per
candidate); :func:`apply_reductions` (kill switch, eligibility, reductions); :func:`apply_increases`
(freeze, min trade, opportunity cost, leverage budget, marginal and portfolio CVaR);
:func:`decision_frame`. The working state (a :class:`Candidate` per symbol and the ``book`` of weights)
belongs to one ``decide`` call; the steps update it in place, in candidate order.

Units: weights are fractions of NAV; mu/sigma daily decimals; CVaR a positive 1-day loss fraction of NAV.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from mqf_pipeline.decisions.params import MetaBrainParams
from mqf_pipeline.decisions.sizing import kelly_fraction, kelly_target, robust_z

#: ``cvar_fn(w) -> (portfolio CVaR, per-position component CVaR)`` over the ``symbols`` order given to
#: :func:`~mqf_pipeline.decisions.meta_brain.decide`; CVaR is a positive loss fraction of NAV and the
#: components sum to it.
CvarFn = Callable[[np.ndarray], tuple[float, np.ndarray]]

DECISIONS = ("EXECUTE_BUY", "EXECUTE_SELL", "HOLD", "REJECT")

_ENSEMBLE_COLUMNS = ("symbol", "mu_hat", "sigma_hat", "penalty", "conviction", "agent_results")

DECISION_COLUMNS = (
    "symbol",
    "final_decision",
    "current_weight",
    "target_weight",
    "position_size",
    "mu_hat",
    "sigma_hat",
    "penalty",
    "z",
    "score",
    "kelly",
    "conviction",
    "stop_loss",
    "reason_codes",
    "risk_checks",
    "agent_results",
)

_STRING_COLUMNS = ("symbol", "final_decision", "reason_codes", "risk_checks", "agent_results")


@dataclass(frozen=True)
class RuleContext:
    """What every rule of one ``decide`` call reads: the settings, the CVaR model and the cycle's overrides.

    ``order``: symbol -> index in the weight vector ``cvar_fn`` takes (the ``symbols`` order);
    ``sizing_multiplier`` in [0, 1]; ``block_new_risk``: no increases (reported as ``block_reason``).
    """

    params: MetaBrainParams
    symbols: Sequence[str]
    order: Mapping[str, int]
    cvar_fn: CvarFn
    sizing_multiplier: float
    block_new_risk: bool
    block_reason: str
    kill_switch: bool
    #: per-symbol multipliers of the Kelly size (seed 002 section 5.5's feedback: 0.7 after costly fills)
    symbol_sizing: Mapping[str, float] = field(default_factory=dict)

    @property
    def rf(self) -> float:
        """Risk-free return per session (decimal)."""
        return self.params.rf_daily

    @property
    def cost(self) -> float:
        """Round-trip trading cost (decimal) an increase's expected excess return must beat."""
        return self.params.cost_bps / 1e4


@dataclass
class Candidate:
    """One symbol's decision state: weights (fractions of NAV) now / after the rules so far / targeted,
    the ensemble view (daily mu/sigma, None without a signal), reason codes and the risk-check record."""

    current: float
    position: float
    checks: dict[str, Any]
    target: float = 0.0
    why: str = "NO_SIGNAL"
    mu: float | None = None
    sigma: float | None = None
    penalty: float | None = None
    z: Any = None
    score: float | None = None
    kelly: float | None = None
    conviction: float | None = None
    agents: str = "{}"
    codes: list[str] = field(default_factory=list)
    rejected: bool = False
    executed: bool = False


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def _sign(x: float) -> float:
    return float(np.sign(x))


def check_inputs(
    ens: pl.DataFrame, symbols: Sequence[str], current: Mapping[str, float], sizing_multiplier: float
) -> dict[str, int]:
    """Validate ``decide``'s inputs (raise ValueError naming the problem); return symbol -> index in ``symbols``."""
    missing = [c for c in _ENSEMBLE_COLUMNS if c not in ens.columns]
    if missing:
        raise ValueError(f"decide: ensemble frame is missing column(s) {missing}")
    if "date" in ens.columns and ens.get_column("date").n_unique() > 1:
        raise ValueError("decide: the ensemble frame holds more than one date")
    if ens.get_column("symbol").is_duplicated().any():
        raise ValueError("decide: duplicate symbols in the ensemble frame")
    if not (isinstance(sizing_multiplier, numbers.Real) and 0 <= sizing_multiplier <= 1):
        raise ValueError(f"decide: sizing_multiplier must be in [0, 1], got {sizing_multiplier!r}")
    order = {s: i for i, s in enumerate(symbols)}
    if len(order) != len(symbols):
        raise ValueError("decide: duplicate names in symbols")
    for s, w in current.items():
        if not math.isfinite(w):
            raise ValueError(f"decide: current weight of {s!r} is {w!r}")
        if w != 0 and s not in order:
            raise ValueError(f"decide: held symbol {s!r} is not in symbols (the CVaR model must cover the book)")
    return order


def _blank_checks(eligible: bool, ctx: RuleContext) -> dict[str, Any]:
    """The risk-check record of a candidate before any rule ran: limits set, values None."""
    p = ctx.params
    return {
        "kill_switch": ctx.kill_switch,
        "eligible": eligible,
        "block_new_risk": ctx.block_new_risk,
        "sizing_multiplier": float(ctx.sizing_multiplier),
        "z": None,
        "z_entry": p.z_entry,
        "trade": None,
        "min_trade": p.min_trade,
        "excess_return_horizon": None,
        "opportunity_cost": ctx.cost,
        "marginal_cvar": None,
        "marginal_cvar_limit": p.max_marginal_cvar,
        "portfolio_cvar": None,
        "cvar_limit": p.cvar_limit,
        "gross_before": None,
        "gross_after": None,
        "max_leverage": p.max_leverage,
    }


def _candidate(row: Mapping[str, Any] | None, current: float, eligible: bool, z: Any, ctx: RuleContext) -> Candidate:
    """A candidate's starting state: its Kelly target (steps 5-6) from the ensemble ``row`` (None: no signal,
    target 0) and its robust ``z`` (None when not eligible)."""
    checks = _blank_checks(eligible, ctx)
    if row is None:
        return Candidate(current=current, position=current, checks=checks)
    p = ctx.params
    mu, sigma = float(row["mu_hat"]), float(row["sigma_hat"])
    kelly = float(kelly_fraction(mu, sigma, p.gamma, ctx.rf))
    checks["z"] = z
    own = float(ctx.symbol_sizing.get(row["symbol"], 1.0))
    if own != 1.0:
        checks["slippage_kelly_multiplier"] = own
    sizing = ctx.sizing_multiplier * own
    target, why = kelly_target(
        kelly, z, sizing, z_entry=p.z_entry, max_position=p.max_position, allow_shorts=p.allow_shorts
    )
    return Candidate(
        current=current,
        position=current,
        checks=checks,
        target=target,
        why=why,
        mu=mu,
        sigma=sigma,
        penalty=row["penalty"],
        z=z,
        score=mu / sigma,
        kelly=kelly,
        conviction=row["conviction"],
        agents=row["agent_results"],
    )


def initial_states(
    rows: Mapping[str, Mapping[str, Any]],
    candidates: Sequence[str],
    current: Mapping[str, float],
    ok: Mapping[str, bool],
    ctx: RuleContext,
) -> dict[str, Candidate]:
    """Step 4 (robust z of mu_hat over the eligible symbols with a row) and each candidate's starting state."""
    scored = sorted(s for s in rows if ok[s])
    zs = dict(zip(scored, robust_z(np.array([rows[s]["mu_hat"] for s in scored], dtype=float)), strict=True))
    return {s: _candidate(rows.get(s), float(current.get(s, 0.0)), ok[s], zs.get(s), ctx) for s in candidates}


def _reduce(
    s: str, st: Candidate, book: dict[str, float], eligible: bool, reasons: Sequence[str], ctx: RuleContext
) -> bool:
    """Rules 1-3 on one candidate (kill switch, eligibility, reduction toward zero, applied to ``book``);
    True when an increase toward its target is left for rule 4."""
    cur, target = st.current, st.target
    if ctx.kill_switch:
        st.codes, st.rejected = ["KILL_SWITCH"], True
        return False
    if not eligible:
        st.codes, st.rejected = ["NOT_ELIGIBLE", *reasons], True
        return False
    flip = cur * target < 0
    reduce_to = 0.0 if flip else target
    if abs(reduce_to) < abs(cur):
        change = reduce_to - cur
        st.checks["trade"] = change
        # a position over the single-name limit (drift: the book is the positions) is cut to its target
        # however small the trade: min_trade must not keep a limit breach
        over_limit = abs(cur) > ctx.params.max_position + 1e-12
        if reduce_to == 0.0 or abs(change) >= ctx.params.min_trade or over_limit:
            book[s] = st.position = reduce_to
            st.executed = True
            st.codes += [st.why, "CLOSE" if reduce_to == 0.0 else "REDUCE"]
        else:
            st.codes += [st.why, "NO_MATERIAL_CHANGE"]
    if abs(target) > abs(st.position):
        return True
    if not st.codes:
        st.codes = [st.why] if target == 0.0 and cur == 0.0 else [st.why, "NO_MATERIAL_CHANGE"]
    return False


def apply_reductions(
    state: Mapping[str, Candidate],
    book: dict[str, float],
    ok: Mapping[str, bool],
    reasons_of: Mapping[str, Sequence[str]],
    ctx: RuleContext,
) -> list[str]:
    """Rules 1-3 over every candidate in order, applying executed reductions to ``book``; returns the
    symbols with an increase left for rule 4."""
    increases: list[str] = []
    for s, st in state.items():
        if _reduce(s, st, book, ok[s], reasons_of.get(s, []), ctx):
            increases.append(s)
    return increases


def _weight_vector(weights: Mapping[str, float], ctx: RuleContext) -> np.ndarray:
    """The non-zero ``weights`` as a vector in ``ctx.symbols`` order (the input of ``cvar_fn``)."""
    vec = np.zeros(len(ctx.symbols))
    for name, w in weights.items():
        if w != 0:
            vec[ctx.order[name]] = w
    return vec


def _trial_cvar(book: Mapping[str, float], s: str, size: float, ctx: RuleContext) -> tuple[float, float]:
    """(portfolio CVaR, component CVaR of ``s``) of ``book`` with ``s`` at weight ``size``."""
    port_cvar, comps = ctx.cvar_fn(_weight_vector({**book, s: size}, ctx))
    comps = np.asarray(comps, dtype=float)
    if comps.shape != (len(ctx.symbols),) or not (np.all(np.isfinite(comps)) and math.isfinite(port_cvar)):
        raise ValueError("decide: cvar_fn must return a finite CVaR and one finite component per symbol")
    return port_cvar, float(comps[ctx.order[s]])


def _risk_gate(s: str, st: Candidate, book: dict[str, float], ctx: RuleContext) -> None:
    """Rule 4's last part: leverage budget, then marginal CVaR, portfolio CVaR and leverage verdicts."""
    p = ctx.params
    start, target = st.position, st.target
    direction = _sign(target)
    gross_before = float(sum(abs(w) for w in book.values()))
    budget = p.max_leverage - gross_before
    size, scaled, lev_reject = target, False, False
    if abs(target) - abs(start) > budget:
        if budget >= p.min_trade and budget > 0:
            size, scaled = direction * (abs(start) + budget), True
        else:
            lev_reject = True
    port_cvar, marginal = _trial_cvar(book, s, size, ctx)
    st.checks.update(
        marginal_cvar=marginal,
        portfolio_cvar=float(port_cvar),
        gross_before=gross_before,
        gross_after=gross_before - abs(start) + abs(size),
    )
    if marginal > p.max_marginal_cvar:
        st.codes.append("MARGINAL_CVAR")
    elif port_cvar > p.cvar_limit:
        st.codes.append("CVAR_BREACH")
    elif lev_reject:
        st.codes.append("LEVERAGE_LIMIT")
    else:
        book[s] = st.position = size
        st.executed = True
        st.codes += ["INCREASE", *(["LEVERAGE_SCALED"] if scaled else [])]
        return
    st.rejected = True


def _try_increase(s: str, st: Candidate, book: dict[str, float], ctx: RuleContext) -> None:
    """Rule 4 on one candidate, on the book as it stands: freeze, min trade, opportunity cost, risk model."""
    p = ctx.params
    direction = _sign(st.target)
    change = st.target - st.position
    st.checks["trade"] = change
    if st.why not in st.codes:
        st.codes.append(st.why)
    if ctx.block_new_risk:
        st.codes.append(ctx.block_reason)
        st.rejected = True
        return
    if abs(change) < p.min_trade:
        st.codes.append("NO_MATERIAL_CHANGE")
        return
    edge = direction * (st.mu - ctx.rf) * p.cost_horizon_days
    st.checks["excess_return_horizon"] = edge
    if not edge > ctx.cost:
        st.codes.append("OPPORTUNITY_COST")
        return
    if s not in ctx.order:
        st.codes.append("NO_RISK_MODEL")
        st.rejected = True
        return
    _risk_gate(s, st, book, ctx)


def apply_increases(
    state: Mapping[str, Candidate], book: dict[str, float], increases: Sequence[str], ctx: RuleContext
) -> None:
    """Rule 4 over ``increases`` by |score| descending (ties by symbol); accepted ones stay in ``book``."""
    for s in sorted(increases, key=lambda name: (-abs(state[name].score), name)):
        _try_increase(s, state[s], book, ctx)


def _decision_row(
    s: str, st: Candidate, close: Mapping[str, float], atr: Mapping[str, float], stop_atr_multiple: float
) -> dict[str, Any]:
    """One output row: the decision (side of the executed change, else REJECT/HOLD) and the stop loss."""
    position, cur = st.position, st.current
    if st.executed and position != cur:
        decision = "EXECUTE_BUY" if position > cur else "EXECUTE_SELL"
    else:
        decision = "REJECT" if st.rejected else "HOLD"
    stop = None
    px, a = close.get(s), atr.get(s)
    if position != 0 and px is not None and a is not None and math.isfinite(px) and math.isfinite(a):
        stop = px - _sign(position) * stop_atr_multiple * a
    checks = {k: _finite_or_none(v) for k, v in st.checks.items()}
    return {
        "symbol": s,
        "final_decision": decision,
        "current_weight": cur,
        "target_weight": st.target,
        "position_size": position,
        "mu_hat": st.mu,
        "sigma_hat": st.sigma,
        "penalty": st.penalty,
        "z": _finite_or_none(st.z),
        "score": st.score,
        "kelly": st.kelly,
        "conviction": st.conviction,
        "stop_loss": stop,
        "reason_codes": json.dumps(st.codes),
        "risk_checks": json.dumps(checks, sort_keys=True, allow_nan=False),
        "agent_results": st.agents,
    }


def decision_frame(
    state: Mapping[str, Candidate], close: Mapping[str, float], atr: Mapping[str, float], stop_atr_multiple: float
) -> pl.DataFrame:
    """The decisions (:data:`DECISION_COLUMNS`), one row per candidate in ``state`` order (by symbol)."""
    out = [_decision_row(s, st, close, atr, stop_atr_multiple) for s, st in state.items()]
    schema = {c: pl.Float64 for c in DECISION_COLUMNS}
    schema.update({c: pl.String for c in _STRING_COLUMNS})
    return pl.DataFrame(out, schema=schema).select(DECISION_COLUMNS)
