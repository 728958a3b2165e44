"""Online agent weights per session (seed 002 Part 2): ``agent_weights`` and ``agent_performance`` rows.

For session D the weights use only outcomes dated <= D (known at D's close; :mod:`.outcomes`) and regime
rows dated <= D; they are the weights the ensemble uses for D's decisions. Per outcome session, in order:

1. EG (:func:`~.projection.eg_step`): w <- Proj_K(w * exp(eta * g)), g the rewards of :mod:`.rewards`
   (an agent without an outcome gets the mean of the others); starts from the static weights.
2. TS (:mod:`.thompson`): the discounted Beta counts of the regime of each outcome's signal session.

Weights of D (the state after the last outcome session <= D, in the regime of D, the regime row at or
before D):

* fewer than ``min_sessions`` outcome sessions: the static weights, ``static (warm-up: k of n sessions)``;
* regime unknown, or its posterior holds fewer than ``ts_min_trials`` discounted trials per agent: EG;
* the regime changed within the last ``lookback`` regime rows: TS (``TS (regime X for k sessions)``);
* else the blend (1 - s) EG + s TS with s = ``ts_share_stable`` (``EG`` at s = 0, ``TS`` at s = 1, the
  default). A convex combination of two points of the capped simplex stays in it.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
from numpy.typing import NDArray

from mqf_pipeline.learning.outcomes import decayed_window_stats, rolling_sharpe
from mqf_pipeline.learning.params import WeightLearningParams
from mqf_pipeline.learning.projection import check_feasible, eg_step
from mqf_pipeline.learning.rewards import fill_neutral, unit_rewards
from mqf_pipeline.learning.thompson import beta_posterior, discounted_counts, ts_weights

#: Columns of :func:`learn_weights` (the ``agent_weights`` table without its generated id/created_at).
WEIGHT_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "cycle_id": pl.String(),
    "agent_name": pl.String(),
    "weight": pl.Float64(),
    "rolling_sharpe": pl.Float64(),
    "recent_hit_rate": pl.Float64(),
    "regime": pl.String(),
    "volatility_regime": pl.Float64(),
    "algorithm_used": pl.String(),
}
#: Columns of :func:`agent_performance_rows` (the ``agent_performance`` table without id/created_at).
PERFORMANCE_SCHEMA: dict[str, pl.DataType] = {
    "agent_name": pl.String(),
    "date": pl.Date(),
    "predicted_return": pl.Float64(),
    "actual_return": pl.Float64(),
    "hit": pl.Int32(),
    "pnl_contribution": pl.Float64(),
    "factor_adjusted_return": pl.Float64(),
}


def _check_static(static: Mapping[str, float], params: WeightLearningParams) -> NDArray[np.float64]:
    check_feasible(len(static), params.floor, params.cap)
    w = np.array([float(v) for v in static.values()])
    lo, hi = params.floor - 1e-12, params.cap + 1e-12
    if not (np.all(np.isfinite(w)) and abs(w.sum() - 1.0) <= 1e-9 and np.all((w >= lo) & (w <= hi))):
        raise ValueError(f"static weights {dict(static)} must sum to 1 within [{params.floor}, {params.cap}]")
    return w


def _matrices(
    outcomes: pl.DataFrame, agents: list[str], regimes: pl.DataFrame
) -> tuple[list[dt.date], NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], list[str]]:
    """Outcome sessions, actual_return and hit matrices (T, N; NaN = no outcome), the regime code of each
    outcome's signal session (-1 = none) and the regime labels the codes index."""
    labels = sorted(set(regimes.get_column("regime").drop_nulls().to_list())) if regimes.height else []
    if regimes.height:
        reg = regimes.select("date", "regime").drop_nulls("date").sort("date").rename({"date": "signal_date"})
        outcomes = outcomes.sort("signal_date").join_asof(reg, on="signal_date", strategy="backward")
    else:
        outcomes = outcomes.with_columns(regime=pl.lit(None, dtype=pl.String))
    coded = outcomes.with_columns(
        code=pl.col("regime").replace_strict(
            {lab: i for i, lab in enumerate(labels)}, default=-1, return_dtype=pl.Int64
        )
    )
    days = sorted(set(coded.get_column("date").to_list()))
    frame = pl.DataFrame({"date": days}, schema={"date": pl.Date()})

    def wide(col: str, fill: float) -> NDArray:
        piv = coded.pivot(on="agent", index="date", values=col) if coded.height else pl.DataFrame()
        mat = frame.join(piv, on="date", how="left") if coded.height else frame
        cols = [
            mat.get_column(a).cast(pl.Float64) if a in mat.columns else pl.Series([None] * len(days), dtype=pl.Float64)
            for a in agents
        ]
        return np.column_stack([c.fill_null(fill).to_numpy() for c in cols]) if days else np.zeros((0, len(agents)))

    return days, wide("actual_return", np.nan), wide("hit", np.nan), wide("code", -1).astype(np.int64), labels


def _regime_at(day: dt.date, rdays: list[dt.date], rlabels: list[str], lookback: int) -> tuple[str | None, int, bool]:
    """Regime label of ``day`` (last row at or before it), its run length (rows) and whether it changed
    within the last ``lookback`` rows."""
    j = bisect.bisect_right(rdays, day) - 1
    if j < 0 or rlabels[j] is None:
        return None, 0, False
    run = 1
    while run < lookback and j - run >= 0 and rlabels[j - run] == rlabels[j]:
        run += 1
    return rlabels[j], run, run < lookback and j - run >= 0


def _choose(
    eg: NDArray[np.float64],
    alpha: NDArray[np.float64] | None,
    beta: NDArray[np.float64] | None,
    regime: tuple[str | None, int, bool],
    params: WeightLearningParams,
) -> tuple[NDArray[np.float64], str]:
    """The session's weights and algorithm_used from the EG weights and the current regime's posterior."""
    label, run, changed = regime
    if label is None:
        return eg, "EG (regime unknown)"
    trials = 0.0 if alpha is None else float((alpha + beta).mean() - sum(params.ts_prior))
    if trials < params.ts_min_trials:
        return eg, f"EG (regime {label}: {trials:.1f} of {params.ts_min_trials:g} TS trials)"
    share = 1.0 if changed else params.ts_share_stable
    if share == 0.0:
        return eg, "EG"
    ts = ts_weights(alpha, beta, params.floor, params.cap, params.quadrature_nodes)
    if share == 1.0:
        return ts, f"TS (regime {label} for {run} sessions)" if changed else "TS"
    return (1.0 - share) * eg + share * ts, f"EG+TS blend (TS share {share:.2f})"


def learn_weights(
    outcomes: pl.DataFrame,
    regimes: pl.DataFrame,
    static: Mapping[str, float],
    params: WeightLearningParams,
    until: dt.date,
    *,
    strategy: str,
    sessions: Sequence[dt.date] | None = None,
) -> pl.DataFrame:
    """``agent_weights`` rows (:data:`WEIGHT_SCHEMA`) for each session <= ``until`` (module docstring).

    ``outcomes``: :func:`~.outcomes.agent_outcomes` rows (agents not in ``static`` are ignored);
    ``regimes``: ``regime_history`` rows (date, regime[, volatility_percentile]); ``static``: the preset's
    weights (agent -> weight, the learned set; 3..20 agents for floor 0.05 / cap 0.40). ``sessions``: the
    sessions to give rows for (default: the outcome sessions). cycle_id = ``{strategy}-{date}``;
    rolling_sharpe annualised (sqrt(periods_per_year)), recent_hit_rate in [0, 1], both decayed over the
    lookback; volatility_regime = the regime row's volatility_percentile. Sorted by date, agent_name.
    """
    agents = list(static)
    w_static = _check_static(static, params)
    outs = outcomes.filter((pl.col("date") <= until) & pl.col("agent").is_in(agents))
    regs = regimes.filter(pl.col("date") <= until).sort("date") if regimes.height else regimes
    days, actual, hits, codes, labels = _matrices(outs, agents, regs)
    mean, std, _ = decayed_window_stats(actual, params.lookback, params.decay)
    sharpe = rolling_sharpe(mean, std, params.periods_per_year)
    hit_rate, _, _ = decayed_window_stats(hits, params.lookback, params.decay)
    gains = unit_rewards(actual, std, params.risk_aversion)
    eg = np.empty_like(actual)
    w = w_static.copy()
    for t in range(len(days)):
        g = fill_neutral(gains[t])
        if g is not None:
            w = eg_step(w, g, params.eta, params.floor, params.cap)
        eg[t] = w
    succ, fail = discounted_counts(hits, codes, len(labels), params.ts_discount)
    rdays = regs.get_column("date").to_list() if regs.height else []
    rlabels = regs.get_column("regime").to_list() if regs.height else []
    rvol = regs.get_column("volatility_percentile").to_list() if "volatility_percentile" in regs.columns else None
    wanted = sorted({d for d in (days if sessions is None else sessions) if d <= until})
    rows: list[dict[str, object]] = []
    for day in wanted:
        idx = bisect.bisect_right(days, day) - 1
        regime = _regime_at(day, rdays, rlabels, params.lookback)
        j = bisect.bisect_right(rdays, day) - 1
        if idx + 1 < params.min_sessions:
            weights, algo = w_static, f"static (warm-up: {idx + 1} of {params.min_sessions} sessions)"
        else:
            code = labels.index(regime[0]) if regime[0] in labels else None
            post = beta_posterior(succ[idx, code], fail[idx, code], params.ts_prior) if code is not None else None
            weights, algo = _choose(eg[idx], *(post or (None, None)), regime, params)
        for k, agent in enumerate(agents):
            rows.append(
                {
                    "date": day,
                    "cycle_id": f"{strategy}-{day.isoformat()}",
                    "agent_name": agent,
                    "weight": float(weights[k]),
                    "rolling_sharpe": _num(sharpe[idx, k]) if idx >= 0 else None,
                    "recent_hit_rate": _num(hit_rate[idx, k]) if idx >= 0 else None,
                    "regime": regime[0],
                    "volatility_regime": _num(rvol[j]) if rvol is not None and j >= 0 else None,
                    "algorithm_used": algo,
                }
            )
    return pl.DataFrame(rows, schema=WEIGHT_SCHEMA, orient="row").sort("date", "agent_name")


def _num(x: float | None) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def agent_performance_rows(outcomes: pl.DataFrame, weights: pl.DataFrame) -> pl.DataFrame:
    """``agent_performance`` rows (:data:`PERFORMANCE_SCHEMA`) from :func:`~.outcomes.agent_outcomes` rows.

    pnl_contribution = the agent's weight in force at the signal session (``weights``: :func:`learn_weights`
    rows) x actual_return: its share of the weighted sum of the agents' gross-1 signal portfolios (decimal;
    null without a weight row). factor_adjusted_return is left null (factor attribution is not computed here).
    """
    w = weights.select(
        pl.col("agent_name").alias("agent"), pl.col("date").alias("signal_date"), pl.col("weight")
    ).unique(["agent", "signal_date"], keep="first")
    out = outcomes.join(w, on=["agent", "signal_date"], how="left")
    return out.select(
        pl.col("agent").alias("agent_name"),
        "date",
        "predicted_return",
        "actual_return",
        pl.col("hit").cast(pl.Int32),
        (pl.col("weight") * pl.col("actual_return")).alias("pnl_contribution"),
        pl.lit(None, dtype=pl.Float64).alias("factor_adjusted_return"),
    ).sort("date", "agent_name")


__all__ = ["PERFORMANCE_SCHEMA", "WEIGHT_SCHEMA", "agent_performance_rows", "learn_weights"]
