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

Code: steps 2-3 live in :mod:`.ensemble`, 4-6 in :mod:`.sizing`, 7-8 in :mod:`.rules` and the settings in
:mod:`.params`; this module runs :func:`decide` and re-exports the public names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from mqf_pipeline.decisions.ensemble import disagreement_penalty, ensemble, penalised_ensemble
from mqf_pipeline.decisions.params import MetaBrainParams
from mqf_pipeline.decisions.rules import (
    DECISION_COLUMNS,
    DECISIONS,
    CvarFn,
    RuleContext,
    apply_increases,
    apply_reductions,
    check_inputs,
    decision_frame,
    initial_states,
)
from mqf_pipeline.decisions.sizing import MAD_NORMAL_SCALE, kelly_fraction, kelly_target, rf_per_period, robust_z

__all__ = [
    "DECISIONS",
    "DECISION_COLUMNS",
    "MAD_NORMAL_SCALE",
    "CvarFn",
    "MetaBrainParams",
    "decide",
    "disagreement_penalty",
    "ensemble",
    "kelly_fraction",
    "kelly_target",
    "penalised_ensemble",
    "rf_per_period",
    "robust_z",
]


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
    symbol_sizing: Mapping[str, float] | None = None,
) -> pl.DataFrame:
    """Step 8: the CVaR-first decision per candidate symbol (seed 000 §6.2), one date.

    ``ens``: one date of :func:`penalised_ensemble` (needs symbol, mu_hat, sigma_hat, penalty, conviction,
    agent_results); ``symbols``: the order of the weight vector ``cvar_fn`` takes; ``current``: weights
    now (every non-zero one must be in ``symbols``); ``eligible``: symbol -> bool, absent = not eligible
    (fail closed), ``override_reasons``: the codes to report for an ineligible symbol;
    ``sizing_multiplier`` in [0, 1] (regime x breaker x drawdown); ``block_new_risk``: no increases
    (reported as ``block_reason``); ``close``/``atr``: for the stop loss; ``symbol_sizing``: per-symbol
    multipliers of the Kelly size on top of ``sizing_multiplier`` (seed 002 section 5.5's feedback).

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
    order = check_inputs(ens, symbols, current, sizing_multiplier)
    ctx = RuleContext(
        params,
        symbols,
        order,
        cvar_fn,
        sizing_multiplier,
        block_new_risk,
        block_reason,
        kill_switch,
        dict(symbol_sizing or {}),
    )
    rows = {r["symbol"]: r for r in ens.iter_rows(named=True)}
    candidates = sorted(set(rows) | {s for s, w in current.items() if w != 0})
    ok = {s: bool(eligible.get(s, False)) for s in candidates}
    state = initial_states(rows, candidates, current, ok, ctx)
    book = {s: st.current for s, st in state.items()}
    increases = apply_reductions(state, book, ok, override_reasons or {}, ctx)
    apply_increases(state, book, increases, ctx)
    return decision_frame(state, close or {}, atr or {}, params.stop_atr_multiple)
