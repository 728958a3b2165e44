"""Meta-brain steps 2-3: the confidence-weighted ensemble and the disagreement penalty, per symbol and date.

Pure functions over polars frames. Agents' ``mu``/``sigma`` cover their own ``horizon_days``; everything
here is daily (``mu_d = mu / horizon_days``, ``sigma_d = sigma / sqrt(horizon_days)``); see
:mod:`mqf_pipeline.decisions.meta_brain` for the derivation of the penalty.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import polars as pl

#: An agent whose daily mu has a cross-sectional std below this fraction of its largest |mu| on a date
#: has no cross-sectional view (constant up to rounding) and is left out of the disagreement.
_FLAT_VIEW_RTOL = 1e-10

_SIGNAL_COLUMNS = ("symbol", "agent", "mu", "sigma", "confidence", "signal", "horizon_days")


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
    This is the frame :func:`~mqf_pipeline.decisions.meta_brain.decide` takes (one date at a time).
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
