"""The meta-brain (seed 000 §3.1 steps 1-8, §6): agent signals -> one decision per symbol.

Pure functions over polars frames and numpy arrays; no I/O, no global state.

Units. Agents forecast over their own horizon (:mod:`mqf_pipeline.agents.base`: ``mu`` is the
simple return over ``horizon_days`` sessions, ``sigma`` its standard deviation). Everything here is
**daily** (per session): ``mu_d = mu / horizon_days`` and ``sigma_d = sigma / sqrt(horizon_days)``
(linear drift, i.i.d. daily returns; compounding inside one horizon is ignored, which at daily
magnitudes is far below forecast error). The risk-free rate is per session too
(:func:`rf_per_period`). Weights are fractions of NAV; CVaR is a positive 1-day loss fraction of NAV.

Steps:

1. collect the agents' Signal rows (the caller);
2. :func:`ensemble`: confidence-weighted ensemble, ``w_ik = weight_k * confidence_ik`` normalised
   over the agents covering symbol ``i``; ``mu_hat = sum_k w_ik mu_d_ik``,
   ``sigma_hat = sqrt(sum_k w_ik sigma_d_ik^2)``;
3. :func:`disagreement_penalty`: ``mu_hat *= exp(-beta * D_i)``. The seed's ``Var(mu_k)`` of daily
   mu is ~1e-8, so ``exp(-0.5 * 1e-8) == 1`` and the literal formula never bites. ``D_i`` is made
   dimensionless instead: each agent's daily mu is standardised across the symbols it scores on that
   date, ``z_ik = (mu_d_ik - mean_i mu_d_.k) / std_i mu_d_.k`` (ddof = 0), and ``D_i`` is the
   ``w_ik``-weighted population variance (normalised weights, ddof = 0) of ``z_ik`` over agents.
   ``D = 0`` when the agents rank symbol ``i`` alike, ``E[D] = 1 - 1/K`` for ``K`` equally weighted
   independent views, ``D = z^2`` for two opposed ones (~4 at ``|z| = 2``): with ``beta = 0.5`` the
   penalty spans ~1 .. 0.14. ``D`` is invariant to shifting or positively scaling any agent's mu;
3b. ``conviction = (weight_k-weighted mean agent confidence) * penalty``, in [0, 1];
4. :func:`robust_z` of the penalised ``mu_hat`` across the eligible symbols of the date;
5. score ``S = mu_hat / sigma_hat`` (daily, orders the increases);
6. :func:`kelly_fraction` ``gamma * (mu_hat - rf) / sigma_hat^2`` per symbol (no cross-asset covariance:
   the portfolio optimiser downstream handles correlations);
7. opportunity cost: an increase needs ``(mu_hat - rf) * cost_horizon_days > cost_bps / 1e4`` in its
   direction; a weight change below ``min_trade`` is not an order;
8. :func:`decide`: the CVaR-first rules of seed §6.2 (see its docstring).
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import polars as pl
from scipy.special import ndtri

#: ``cvar_fn(w) -> (portfolio CVaR, per-position component CVaR)`` over the ``symbols`` order given to
#: :func:`decide`; CVaR is a positive loss fraction of NAV and the components sum to it.
CvarFn = Callable[[np.ndarray], tuple[float, np.ndarray]]

DECISIONS = ("EXECUTE_BUY", "EXECUTE_SELL", "HOLD", "REJECT")

#: 1 / Phi^-1(3/4) = 1.4826...: MAD of a normal sample / its standard deviation (scipy's scale="normal").
MAD_NORMAL_SCALE = float(1.0 / ndtri(0.75))

#: An agent whose daily mu has a cross-sectional std below this fraction of its largest |mu| on a date
#: has no cross-sectional view (constant up to rounding) and is left out of the disagreement.
_FLAT_VIEW_RTOL = 1e-10

_SIGNAL_COLUMNS = ("symbol", "agent", "mu", "sigma", "confidence", "signal", "horizon_days")
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


@dataclass(frozen=True)
class MetaBrainParams:
    """Meta-brain settings (configs/risk.yaml ``meta_brain``; fractions of NAV unless said otherwise).

    ``beta``: disagreement strength on standardised views; ``gamma``: fractional Kelly factor;
    ``risk_free_annual``: decimal per year, compounded over ``periods_per_year`` sessions;
    ``max_position``: max |weight| of one name; ``max_leverage``: max gross sum |w|;
    ``z_entry``: robust z needed (in the position's direction) for a non-zero target;
    ``min_trade``: smallest |weight change| worth an order; ``cost_bps``: round-trip cost (bps) the
    expected excess return over ``cost_horizon_days`` sessions must beat; ``max_marginal_cvar``:
    per-position component CVaR limit; ``cvar_limit``: portfolio 1-day CVaR limit;
    ``stop_atr_multiple``: stop-loss distance in ATRs.
    """

    beta: float = 0.5
    gamma: float = 0.3
    risk_free_annual: float = 0.02
    periods_per_year: int = 252
    max_position: float = 0.10
    max_leverage: float = 1.0
    allow_shorts: bool = False
    z_entry: float = 1.0
    min_trade: float = 0.0025
    cost_bps: float = 10.0
    cost_horizon_days: int = 21
    max_marginal_cvar: float = 0.01
    cvar_limit: float = 0.06
    stop_atr_multiple: float = 2.0

    def __post_init__(self) -> None:
        rules: dict[str, tuple[Callable[[Any], bool], str]] = {
            "beta": (lambda v: v >= 0, ">= 0"),
            "gamma": (lambda v: 0 < v <= 1, "in (0, 1]"),
            "risk_free_annual": (lambda v: 0 <= v < 1, "in [0, 1)"),
            "periods_per_year": (lambda v: v >= 1, ">= 1"),
            "max_position": (lambda v: 0 < v <= 1, "in (0, 1]"),
            "max_leverage": (lambda v: v > 0, "> 0"),
            "z_entry": (lambda v: v >= 0, ">= 0"),
            "min_trade": (lambda v: v >= 0, ">= 0"),
            "cost_bps": (lambda v: v >= 0, ">= 0"),
            "cost_horizon_days": (lambda v: v >= 1, ">= 1"),
            "max_marginal_cvar": (lambda v: v > 0, "> 0"),
            "cvar_limit": (lambda v: v > 0, "> 0"),
            "stop_atr_multiple": (lambda v: v > 0, "> 0"),
        }
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "allow_shorts":
                if not isinstance(value, bool):
                    raise ValueError(f"MetaBrainParams.allow_shorts must be a bool, got {value!r}")
                continue
            want_int = f.name in ("periods_per_year", "cost_horizon_days")
            numeric = isinstance(value, int if want_int else (int, float)) and not isinstance(value, bool)
            ok, text = rules[f.name]
            if not numeric or not math.isfinite(value) or not ok(value):
                kind = "an int" if want_int else "a finite number"
                raise ValueError(f"MetaBrainParams.{f.name} must be {kind} {text}, got {value!r}")

    @property
    def rf_daily(self) -> float:
        """Risk-free return per session (decimal)."""
        return rf_per_period(self.risk_free_annual, self.periods_per_year)


def rf_per_period(annual: float, periods: int) -> float:
    """Per-period risk-free return that compounds to ``annual`` over ``periods`` periods:
    ``(1 + annual) ** (1 / periods) - 1`` (decimal; 0.02 a year over 252 sessions is 7.86e-5)."""
    if not annual > -1 or periods < 1:
        raise ValueError(f"rf_per_period needs annual > -1 and periods >= 1, got {annual!r}, {periods!r}")
    return (1.0 + annual) ** (1.0 / periods) - 1.0


def kelly_fraction(mu: Any, sigma: Any, gamma: float, rf: float) -> Any:
    """Fractional Kelly weight ``gamma * (mu - rf) / sigma**2`` (mu, sigma, rf per period, decimal).

    The second-order approximation of ``argmax_f E log(1 + rf + f (R - rf))``: within ~1% of the exact
    maximiser for daily magnitudes (|mu - rf| / sigma ~ 0.05), badly off when (mu - rf) / sigma is not
    small (a two-point R with mu=0.2, sigma=0.3, rf=0.02 has the exact optimum 1.59x this value).
    Works on floats and numpy arrays; sigma must be > 0.
    """
    sig = np.asarray(sigma, dtype=float)
    if not np.all(sig > 0):
        raise ValueError("kelly_fraction: sigma must be > 0")
    return gamma * (mu - rf) / sigma**2


def robust_z(x: np.ndarray) -> np.ndarray:
    """``(x - median(x)) / MAD(x)`` with the MAD scaled to a normal's std (x 1.4826).

    When MAD == 0 (more than half the values equal the median, or fewer than 2 values) there is no
    robust dispersion to scale by and every z is 0, so nothing clears an entry threshold > 0.
    """
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise ValueError("robust_z needs a 1-D array of finite values")
    if arr.size == 0:
        return arr.copy()
    med = np.median(arr)
    mad = MAD_NORMAL_SCALE * np.median(np.abs(arr - med))
    if mad == 0:
        return np.zeros_like(arr)
    return (arr - med) / mad


def _keys(signals: pl.DataFrame) -> list[str]:
    return ["date", "symbol"] if "date" in signals.columns else ["symbol"]


def _prepare(signals: pl.DataFrame, weights: Mapping[str, float]) -> pl.DataFrame:
    """Rows of agents with weight > 0, with ``weight``, daily ``mu_d``/``sigma_d``, the symbol's ``total`` of
    weight x confidence and the normalised ``w`` (NaN where ``total`` is 0: callers drop those symbols)."""
    missing = [c for c in _SIGNAL_COLUMNS if c not in signals.columns]
    if missing:
        raise ValueError(f"meta-brain signals: missing column(s) {missing}")
    for agent, wk in weights.items():
        if not (isinstance(wk, numbers.Real) and math.isfinite(wk) and wk >= 0):
            raise ValueError(f"meta-brain weights: agent {agent!r} has weight {wk!r}; need a finite number >= 0")
        if '"' in agent or "\\" in agent:
            raise ValueError(f"meta-brain weights: agent name {agent!r} may not contain quotes or backslashes")
    active = {a: float(w) for a, w in weights.items() if w > 0}
    keys = _keys(signals)
    df = (
        signals.with_columns(pl.col("agent").cast(pl.String), pl.col("symbol").cast(pl.String))
        .filter(pl.col("agent").is_in(list(active)))
        .sort([*keys, "agent"])  # canonical row order: window sums do not depend on the input's order
    )
    df = df.with_columns(
        weight=pl.col("agent").replace_strict(active, return_dtype=pl.Float64, default=0.0),
        mu_d=pl.col("mu").cast(pl.Float64) / pl.col("horizon_days"),
        sigma_d=pl.col("sigma").cast(pl.Float64) / pl.col("horizon_days").cast(pl.Float64).sqrt(),
    )
    checks = {
        "mu": pl.col("mu").is_finite(),
        "sigma": pl.col("sigma").is_finite() & (pl.col("sigma") > 0),
        "confidence": pl.col("confidence").is_between(0.0, 1.0),
        "horizon_days": pl.col("horizon_days") >= 1,
    }
    for column, ok in checks.items():
        bad = df.filter(~ok.fill_null(False))
        if bad.height:
            row = bad.row(0, named=True)
            raise ValueError(f"meta-brain signals: invalid {column}={row[column]!r} ({row['agent']}, {row['symbol']})")
    if df.select(pl.struct([*keys, "agent"]).is_duplicated().any()).item():
        raise ValueError(f"meta-brain signals: duplicate ({', '.join(keys)}, agent) rows")
    raw = pl.col("weight") * pl.col("confidence")
    return df.with_columns(total=raw.sum().over(keys)).with_columns(w=raw / pl.col("total"))


def ensemble(signals: pl.DataFrame, weights: Mapping[str, float]) -> pl.DataFrame:
    """Step 2: the confidence-weighted ensemble per symbol (and date, when ``signals`` has one).

    ``signals``: Signal rows (:data:`~mqf_pipeline.agents.base.SIGNAL_SCHEMA`); ``weights``: agent -> weight
    >= 0 (agents absent or at 0 are ignored). ``w_ik = weight_k * confidence_ik / sum_k(...)``;
    ``mu_hat = sum_k w_ik mu_d_ik`` (daily); ``sigma_hat = sqrt(sum_k w_ik sigma_d_ik^2)`` (daily): the
    variance is averaged, not the std, because Kelly divides by a variance and the pooled variance is
    the unbiased combination of the agents' variance estimates (it is >= the weighted mean std
    squared, the cautious side). Agent disagreement is kept out of ``sigma_hat`` (step 3 prices it).

    Columns: [date], symbol, mu_hat, sigma_hat, n_agents (agents with weight > 0 covering the symbol),
    confidence (weight_k-weighted mean agent confidence), agent_results (JSON: agent -> {confidence,
    horizon_days, mu, sigma, signal, weight}, mu/sigma over the agent's horizon, weight = w_ik; sorted
    keys). Symbols no weighted agent covers, or whose covering agents all have confidence 0, are absent.
    """
    keys = _keys(signals)
    df = _prepare(signals, weights).filter(pl.col("total") > 0)
    entry = pl.format(
        '"{}":{}',
        pl.col("agent"),
        pl.struct(
            pl.col("confidence").cast(pl.Float64),
            pl.col("horizon_days").cast(pl.Int64),
            pl.col("mu").cast(pl.Float64),
            pl.col("sigma").cast(pl.Float64),
            pl.col("signal").cast(pl.Float64),
            pl.col("w").alias("weight"),
        ).struct.json_encode(),
    )
    return (
        df.group_by(keys, maintain_order=True)
        .agg(
            mu_hat=(pl.col("w") * pl.col("mu_d")).sum(),
            sigma_hat=(pl.col("w") * pl.col("sigma_d") ** 2).sum().sqrt(),
            n_agents=pl.len().cast(pl.Int64),
            confidence=(pl.col("weight") * pl.col("confidence")).sum() / pl.col("weight").sum(),
            agent_results=pl.concat_str(pl.lit("{"), entry.str.join(","), pl.lit("}")),
        )
        .sort(keys)
    )


def disagreement_penalty(signals: pl.DataFrame, weights: Mapping[str, float], beta: float) -> pl.DataFrame:
    """Step 3: ``penalty_i = exp(-beta * D_i)`` with ``D_i`` the disagreement of standardised views.

    ``z_ik``: agent k's daily mu on symbol i standardised across all symbols k scores on that date
    (population std, ddof = 0); an agent with no cross-sectional dispersion (one symbol, or a constant
    mu up to rounding) has no view to compare and is left out. ``D_i = sum_k v_ik (z_ik - zbar_i)^2``,
    ``zbar_i = sum_k v_ik z_ik``, with ``v_ik`` the ensemble weights ``w_ik`` renormalised over the
    agents left (ddof = 0, no reliability correction); ``D_i = 0`` with fewer than two such agents.
    ``D`` is dimensionless and invariant to adding a constant to, or scaling by c > 0, one agent's mu.
    ``penalty`` is in (0, 1] (it underflows to 0 only if beta * D > ~745).

    Columns: [date], symbol, disagreement (D), penalty; symbols as in :func:`ensemble`.
    """
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"disagreement_penalty: beta must be finite and >= 0, got {beta!r}")
    keys = _keys(signals)
    by_agent = [*keys[:-1], "agent"]
    df = _prepare(signals, weights)
    sd = pl.col("mu_d").std(ddof=0).over(by_agent)
    flat = sd <= _FLAT_VIEW_RTOL * pl.col("mu_d").abs().max().over(by_agent)
    df = df.with_columns(
        z=pl.when(flat).then(None).otherwise((pl.col("mu_d") - pl.col("mu_d").mean().over(by_agent)) / sd)
    )
    df = df.filter(pl.col("total") > 0)  # after standardising: z does not depend on confidences
    vw = pl.when(pl.col("z").is_not_null()).then(pl.col("w")).otherwise(0.0)
    v = pl.when(vw.sum().over(keys) > 0).then(vw / vw.sum().over(keys)).otherwise(0.0)
    df = df.with_columns(v=v).with_columns(zbar=(pl.col("v") * pl.col("z")).sum().over(keys))
    return (
        df.group_by(keys)
        .agg(disagreement=(pl.col("v") * (pl.col("z") - pl.col("zbar")) ** 2).sum())
        .with_columns(penalty=(-beta * pl.col("disagreement")).exp())
        .sort(keys)
    )


def penalised_ensemble(signals: pl.DataFrame, weights: Mapping[str, float], beta: float) -> pl.DataFrame:
    """Steps 2-3: :func:`ensemble` with ``mu_hat`` penalised by :func:`disagreement_penalty`.

    Columns: [date], symbol, mu_hat_raw, mu_hat (= mu_hat_raw * penalty), sigma_hat, disagreement,
    penalty, n_agents, confidence, conviction (= confidence * penalty, in [0, 1]), agent_results.
    This is the frame :func:`decide` takes (one date at a time).
    """
    keys = _keys(signals)
    ens = ensemble(signals, weights).rename({"mu_hat": "mu_hat_raw"})
    pen = disagreement_penalty(signals, weights, beta)
    return (
        ens.join(pen, on=keys, how="left")
        .with_columns(
            mu_hat=pl.col("mu_hat_raw") * pl.col("penalty"), conviction=pl.col("confidence") * pl.col("penalty")
        )
        .select(
            *keys,
            "mu_hat_raw",
            "mu_hat",
            "sigma_hat",
            "disagreement",
            "penalty",
            "n_agents",
            "confidence",
            "conviction",
            "agent_results",
        )
        .sort(keys)
    )


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def _sign(x: float) -> float:
    return float(np.sign(x))


def decide(
    ens: pl.DataFrame,
    params: MetaBrainParams,
    *,
    symbols: Sequence[str],
    cvar_fn: CvarFn,
    current: Mapping[str, float],
    eligible: Mapping[str, bool],
    override_reasons: Mapping[str, Sequence[str]] | None = None,
    sizing_multiplier: float = 1.0,
    block_new_risk: bool = False,
    block_reason: str = "RISK_OVERRIDE_FREEZE",
    kill_switch: bool = False,
    close: Mapping[str, float] | None = None,
    atr: Mapping[str, float] | None = None,
) -> pl.DataFrame:
    """Step 8: the CVaR-first decision per candidate symbol (seed 000 §6.2), one date.

    ``ens``: one date of :func:`penalised_ensemble` (needs symbol, mu_hat, sigma_hat, penalty, conviction,
    agent_results); ``symbols``: the order of the weight vector ``cvar_fn`` takes; ``current``: weights
    now (every non-zero one must be in ``symbols``); ``eligible``: symbol -> bool, absent = not eligible
    (fail closed), ``override_reasons``: the codes to report for an ineligible symbol;
    ``sizing_multiplier`` in [0, 1] (regime x breaker x drawdown); ``block_new_risk``: no increases
    (reported as ``block_reason``); ``close``/``atr``: for the stop loss.

    Candidates: every symbol in ``ens`` plus every held symbol. Targets: robust z of mu_hat over the
    eligible symbols in ``ens``; ``target = min(kelly * sizing, max_position)`` if z >= z_entry and
    kelly > 0; ``max(kelly * sizing, -max_position)`` if z <= -z_entry, kelly < 0 and shorts are on;
    0 otherwise (a held symbol with no signal too: NO_SIGNAL). Targets scale with ``sizing_multiplier``,
    so 0.5x halves existing positions and 0.0x closes the eligible book (reductions are never blocked).
    Weights are fractions of NAV; mu_hat/sigma_hat daily. Then, in order:

    1. kill switch: every candidate REJECT KILL_SWITCH, nothing changes;
    2. not eligible: REJECT (NOT_ELIGIBLE + its reasons), the position is kept as is (no trading on
       data that failed the gates, in either direction);
    3. reductions (|target| < |current| toward zero; a sign flip is a close to 0 here and a new
       position in 4) are applied first, freeze or not: EXECUTE_SELL (EXECUTE_BUY to cover a short),
       but HOLD NO_MATERIAL_CHANGE when the change is below min_trade, unless it closes the position
       (a full close always executes, so no dust is stranded);
    4. increases by |score| descending (ties by symbol), each tried on the book as it stands:
       block_new_risk -> REJECT block_reason; change < min_trade -> HOLD NO_MATERIAL_CHANGE; expected
       excess return over cost_horizon_days in the trade's direction <= cost_bps -> HOLD
       OPPORTUNITY_COST; not in ``symbols`` -> REJECT NO_RISK_MODEL; the size is cut to the leverage
       budget (max_leverage - gross) if that is below the increase and >= min_trade; then, at that
       size, component CVaR > max_marginal_cvar -> REJECT MARGINAL_CVAR; portfolio CVaR > cvar_limit
       -> REJECT CVAR_BREACH; budget < min_trade -> REJECT LEVERAGE_LIMIT; else EXECUTE_BUY
       (EXECUTE_SELL for a short), with LEVERAGE_SCALED when cut. Accepted increases stay in the book;
    5. everything else HOLD.

    ``final_decision`` is the side of the net weight change (BUY up, SELL down) when one happens,
    REJECT when a rule refused the trade and nothing happened, HOLD otherwise; ``position_size`` is
    the weight after the decision (= current for HOLD and REJECT); ``stop_loss`` is close -/+
    stop_atr_multiple * ATR for a long/short result (None when flat or close/ATR missing);
    ``risk_checks`` (JSON) holds each rule's value and limit (null when not evaluated).
    Columns: :data:`DECISION_COLUMNS`, sorted by symbol.
    """
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
    reasons_of = override_reasons or {}
    p = params
    rf = p.rf_daily
    cost = p.cost_bps / 1e4

    rows = {r["symbol"]: r for r in ens.iter_rows(named=True)}
    candidates = sorted(set(rows) | {s for s, w in current.items() if w != 0})
    ok = {s: bool(eligible.get(s, False)) for s in candidates}
    scored = sorted(s for s in rows if ok[s])
    zs = dict(zip(scored, robust_z(np.array([rows[s]["mu_hat"] for s in scored], dtype=float)), strict=True))

    state: dict[str, dict[str, Any]] = {}
    for s in candidates:
        cur = float(current.get(s, 0.0))
        row = rows.get(s)
        st: dict[str, Any] = {"current": cur, "position": cur, "codes": [], "rejected": False, "executed": False}
        checks: dict[str, Any] = {
            "kill_switch": kill_switch,
            "eligible": ok[s],
            "block_new_risk": block_new_risk,
            "sizing_multiplier": float(sizing_multiplier),
            "z": None,
            "z_entry": p.z_entry,
            "trade": None,
            "min_trade": p.min_trade,
            "excess_return_horizon": None,
            "opportunity_cost": cost,
            "marginal_cvar": None,
            "marginal_cvar_limit": p.max_marginal_cvar,
            "portfolio_cvar": None,
            "cvar_limit": p.cvar_limit,
            "gross_before": None,
            "gross_after": None,
            "max_leverage": p.max_leverage,
        }
        st["checks"] = checks
        if row is None:
            st.update(mu=None, sigma=None, penalty=None, z=None, score=None, kelly=None, conviction=None)
            st.update(agents="{}", target=0.0, why="NO_SIGNAL")
        else:
            mu, sigma = float(row["mu_hat"]), float(row["sigma_hat"])
            kelly = float(kelly_fraction(mu, sigma, p.gamma, rf))
            z = zs.get(s)
            checks["z"] = z
            st.update(mu=mu, sigma=sigma, penalty=row["penalty"], z=z, score=mu / sigma, kelly=kelly)
            st.update(conviction=row["conviction"], agents=row["agent_results"])
            sized = kelly * sizing_multiplier
            target, why = 0.0, "Z_BELOW_ENTRY"
            if z is not None and z >= p.z_entry:
                target, why = (min(sized, p.max_position), "KELLY_TARGET") if kelly > 0 else (0.0, "NO_EDGE")
            elif z is not None and z <= -p.z_entry:
                if kelly >= 0:
                    why = "NO_EDGE"
                elif not p.allow_shorts:
                    why = "SHORTS_DISABLED"
                else:
                    target, why = max(sized, -p.max_position), "KELLY_TARGET"
            if target == 0.0 and why == "KELLY_TARGET":
                why = "SIZED_TO_ZERO"
            st.update(target=target, why=why)
        state[s] = st

    book = {s: st["current"] for s, st in state.items()}

    def vector(weights: Mapping[str, float]) -> np.ndarray:
        vec = np.zeros(len(symbols))
        for name, w in weights.items():
            if w != 0:
                vec[order[name]] = w
        return vec

    increases: list[str] = []
    for s, st in state.items():
        cur, target = st["current"], st["target"]
        if kill_switch:
            st["codes"], st["rejected"] = ["KILL_SWITCH"], True
            continue
        if not ok[s]:
            st["codes"], st["rejected"] = ["NOT_ELIGIBLE", *reasons_of.get(s, [])], True
            continue
        flip = cur * target < 0
        reduce_to = 0.0 if flip else target
        if abs(reduce_to) < abs(cur):
            change = reduce_to - cur
            st["checks"]["trade"] = change
            if reduce_to == 0.0 or abs(change) >= p.min_trade:
                book[s] = st["position"] = reduce_to
                st["executed"] = True
                st["codes"] += [st["why"], "CLOSE" if reduce_to == 0.0 else "REDUCE"]
            else:
                st["codes"] += [st["why"], "NO_MATERIAL_CHANGE"]
        if abs(target) > abs(st["position"]):
            increases.append(s)
        elif not st["codes"]:
            st["codes"] = [st["why"]] if target == 0.0 and cur == 0.0 else [st["why"], "NO_MATERIAL_CHANGE"]

    increases.sort(key=lambda name: (-abs(state[name]["score"]), name))
    for s in increases:
        st, checks = state[s], state[s]["checks"]
        start, target = st["position"], st["target"]
        direction = _sign(target)
        change = target - start
        checks["trade"] = change
        if st["why"] not in st["codes"]:
            st["codes"].append(st["why"])
        if block_new_risk:
            st["codes"].append(block_reason)
            st["rejected"] = True
            continue
        if abs(change) < p.min_trade:
            st["codes"].append("NO_MATERIAL_CHANGE")
            continue
        edge = direction * (st["mu"] - rf) * p.cost_horizon_days
        checks["excess_return_horizon"] = edge
        if not edge > cost:
            st["codes"].append("OPPORTUNITY_COST")
            continue
        if s not in order:
            st["codes"].append("NO_RISK_MODEL")
            st["rejected"] = True
            continue
        gross_before = float(sum(abs(w) for w in book.values()))
        budget = p.max_leverage - gross_before
        size, scaled, lev_reject = target, False, False
        if abs(target) - abs(start) > budget:
            if budget >= p.min_trade and budget > 0:
                size, scaled = direction * (abs(start) + budget), True
            else:
                lev_reject = True
        trial = {**book, s: size}
        port_cvar, comps = cvar_fn(vector(trial))
        comps = np.asarray(comps, dtype=float)
        if comps.shape != (len(symbols),) or not (np.all(np.isfinite(comps)) and math.isfinite(port_cvar)):
            raise ValueError("decide: cvar_fn must return a finite CVaR and one finite component per symbol")
        marginal = float(comps[order[s]])
        checks.update(
            marginal_cvar=marginal,
            portfolio_cvar=float(port_cvar),
            gross_before=gross_before,
            gross_after=gross_before - abs(start) + abs(size),
        )
        if marginal > p.max_marginal_cvar:
            st["codes"].append("MARGINAL_CVAR")
        elif port_cvar > p.cvar_limit:
            st["codes"].append("CVAR_BREACH")
        elif lev_reject:
            st["codes"].append("LEVERAGE_LIMIT")
        else:
            book[s] = st["position"] = size
            st["executed"] = True
            st["codes"] += ["INCREASE", *(["LEVERAGE_SCALED"] if scaled else [])]
            continue
        st["rejected"] = True

    out: list[dict[str, Any]] = []
    for s in candidates:
        st = state[s]
        position, cur = st["position"], st["current"]
        if st["executed"] and position != cur:
            decision = "EXECUTE_BUY" if position > cur else "EXECUTE_SELL"
        else:
            decision = "REJECT" if st["rejected"] else "HOLD"
        stop = None
        px, a = (close or {}).get(s), (atr or {}).get(s)
        if position != 0 and px is not None and a is not None and math.isfinite(px) and math.isfinite(a):
            stop = px - _sign(position) * p.stop_atr_multiple * a
        checks = {k: _finite_or_none(v) for k, v in st["checks"].items()}
        out.append(
            {
                "symbol": s,
                "final_decision": decision,
                "current_weight": cur,
                "target_weight": st["target"],
                "position_size": position,
                "mu_hat": st["mu"],
                "sigma_hat": st["sigma"],
                "penalty": st["penalty"],
                "z": _finite_or_none(st["z"]),
                "score": st["score"],
                "kelly": st["kelly"],
                "conviction": st["conviction"],
                "stop_loss": stop,
                "reason_codes": json.dumps(st["codes"]),
                "risk_checks": json.dumps(checks, sort_keys=True, allow_nan=False),
                "agent_results": st["agents"],
            }
        )
    schema = {c: pl.Float64 for c in DECISION_COLUMNS}
    schema.update({c: pl.String for c in ("symbol", "final_decision", "reason_codes", "risk_checks", "agent_results")})
    return pl.DataFrame(out, schema=schema).select(DECISION_COLUMNS)
