"""Out-of-sample slippage prediction errors: each session's fills against the model fitted on the fills
strictly before that session (slippage_prediction_errors rows).

A symbol's row for a session aggregates its usable fills of that session (usually one order; two when a
trade crossed zero) by notional-weighted mean (weights quantity x arrival price, dollars):
``predicted_slippage`` and ``actual_slippage`` in bps (``FillSpec.target``, positive = cost),
``error_bps = actual - predicted`` (positive: it cost more than predicted), ``error_pct = 100 x error_bps /
|predicted|`` (percent; null when |predicted| < 0.01 bps), ``market_condition`` the fills' regime mapped
to the seed's four names (:func:`mqf_pipeline.slippage.regime.seed_regime`; null when unknown).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import polars as pl

from mqf_pipeline.slippage.data import as_table, fills_frame
from mqf_pipeline.slippage.model import DEFAULT_PARAMS, SlippageModel, static_cost_bps
from mqf_pipeline.slippage.params import SlippageParams
from mqf_pipeline.slippage.regime import seed_regime_expr

#: Below this |predicted| (bps) error_pct is null.
MIN_PREDICTED_BPS = 0.01


def fill_predictions(
    feedback: pl.DataFrame,
    session: dt.date,
    params: SlippageParams | None = None,
    model: SlippageModel | None = None,
) -> pl.DataFrame:
    """The usable fills of ``session`` (:data:`mqf_pipeline.slippage.data.FILL_COLUMNS`) with
    ``predicted_bps`` (the model fitted on fills dated before ``session``), ``static_bps`` (the static
    default, :func:`static_cost_bps`) and ``model_status`` (the status the prediction came from).

    ``model``: an already fitted model (its estimation date must be before ``session``); else one is
    fitted on ``feedback`` as of the day before ``session`` with ``params``."""
    if model is None:
        params = params if params is not None else DEFAULT_PARAMS
        model = SlippageModel(params).fit(feedback, session - dt.timedelta(days=1))
    elif params is not None and params != model.params:
        raise ValueError("pass either params or a model fitted with them, not a model with other params")
    elif model.estimation_date_ >= session:
        raise ValueError(f"model fitted as of {model.estimation_date_}: not before the session {session} (lookahead)")
    params = model.params
    fills = fills_frame(feedback.filter(pl.col("date") == session), params.fills)
    q, s, p = (fills[c].to_numpy() for c in ("qadv", "sigma", "spread"))
    symbols = fills["symbol"].to_list()
    return fills.with_columns(
        pl.Series("predicted_bps", model.predict(q, s, p, symbols) if fills.height else [], dtype=pl.Float64),
        pl.Series("static_bps", static_cost_bps(q, s, p, params.static), dtype=pl.Float64),
        pl.Series("model_status", model.status_of(symbols), dtype=pl.String),
    )


def error_rows(predictions: pl.DataFrame) -> pl.DataFrame:
    """slippage_prediction_errors rows (one per date and symbol) from :func:`fill_predictions` frames."""
    if predictions.height == 0:
        return as_table(pl.DataFrame(), "slippage_prediction_errors")
    w = pl.col("weight")
    rows = (
        predictions.group_by("date", "symbol")
        .agg(
            ((pl.col("predicted_bps") * w).sum() / w.sum()).alias("predicted_slippage"),
            ((pl.col("y") * w).sum() / w.sum()).alias("actual_slippage"),
            seed_regime_expr(pl.col("regime")).drop_nulls().first().alias("market_condition"),
        )
        .with_columns((pl.col("actual_slippage") - pl.col("predicted_slippage")).alias("error_bps"))
        .with_columns(
            pl.when(pl.col("predicted_slippage").abs() >= MIN_PREDICTED_BPS)
            .then(100.0 * pl.col("error_bps") / pl.col("predicted_slippage").abs())
            .otherwise(None)
            .alias("error_pct")
        )
        .sort("date", "symbol")
    )
    return as_table(rows, "slippage_prediction_errors")


def prediction_errors(
    feedback: pl.DataFrame, sessions: dt.date | Iterable[dt.date], params: SlippageParams | None = None
) -> pl.DataFrame:
    """slippage_prediction_errors rows for each session in ``sessions``, each predicted by a model fitted on
    the fills strictly before it (walk-forward: one fit per session)."""
    days = [sessions] if isinstance(sessions, dt.date) else sorted(set(sessions))
    frames = [fill_predictions(feedback, day, params) for day in days]
    return error_rows(pl.concat(frames) if frames else pl.DataFrame())
