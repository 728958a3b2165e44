"""The slippage model's inputs, read from execution_feedback rows (one row per filled order, written by
the execution stage: :mod:`mqf_pipeline.stages.execution_outcomes`).

Per fill: ``qadv`` = quantity / adv (filled shares / ADV shares, decimal), ``sigma`` = volatility (daily,
decimal), ``spread`` = spread_bps (bps of the mid), ``y`` the slippage in bps under ``FillSpec.target``
(positive = cost), ``weight`` its notional at arrival (quantity x expected_price, dollars; the quantity
when there is no price) used to average a symbol's fills of one session, ``strategy`` its schedule (the
``strategy`` column, else ``market_conditions_json``'s ``strategy``) and ``regime``.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from mqf_pipeline.slippage.params import FillSpec
from mqf_pipeline.storage.schema import row_schema

#: Columns of :func:`fills_frame`.
FILL_COLUMNS: tuple[str, ...] = (
    "date",
    "symbol",
    "order_id",
    "qadv",
    "sigma",
    "spread",
    "y",
    "weight",
    "strategy",
    "regime",
)
_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "symbol": pl.String(),
    "order_id": pl.String(),
    "qadv": pl.Float64(),
    "sigma": pl.Float64(),
    "spread": pl.Float64(),
    "y": pl.Float64(),
    "weight": pl.Float64(),
    "strategy": pl.String(),
    "regime": pl.String(),
}


def as_table(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    """``frame`` with exactly ``table``'s stage-provided columns (storage schema), in order; missing ones null."""
    schema = row_schema(table)
    if frame.height == 0 and not frame.columns:
        return pl.DataFrame(schema=schema)
    have = set(frame.columns)
    return frame.select([pl.col(c).cast(d) if c in have else pl.lit(None, d).alias(c) for c, d in schema.items()])


def _col(frame: pl.DataFrame, name: str, dtype: pl.DataType) -> pl.Expr:
    """Column ``name`` cast to ``dtype``, or nulls when the frame lacks it."""
    return pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype=dtype)


def target_expr(frame: pl.DataFrame, target: str) -> pl.Expr:
    """A fill's slippage in bps under ``target`` (see :data:`mqf_pipeline.slippage.params.TARGETS`)."""
    if target == "cost_vs_mid":
        return _col(frame, "market_impact_bps", pl.Float64()) + _col(frame, "spread_bps", pl.Float64()) / 2.0
    return _col(frame, target, pl.Float64())


def fills_frame(feedback: pl.DataFrame, spec: FillSpec, *, until: dt.date | None = None) -> pl.DataFrame:
    """The usable fills of ``feedback`` (dated on or before ``until`` when given), :data:`FILL_COLUMNS`.

    Left out: fills of ``spec.passive_strategies``, and fills whose regressors or slippage are missing or
    invalid (quantity or adv <= 0, volatility or spread < 0, anything non-finite). Sorted by date, symbol,
    order_id so the fit does not depend on the frame's row order."""
    if feedback.height == 0:
        return pl.DataFrame(schema=_SCHEMA)
    strategy = (
        pl.col("strategy").cast(pl.String)
        if "strategy" in feedback.columns
        else _col(feedback, "market_conditions_json", pl.String()).str.json_path_match("$.strategy")
    )
    qty, adv = _col(feedback, "quantity", pl.Float64()), _col(feedback, "adv", pl.Float64())
    price = _col(feedback, "expected_price", pl.Float64())
    out = feedback.select(
        pl.col("date").cast(pl.Date),
        pl.col("symbol").cast(pl.String),
        _col(feedback, "order_id", pl.String()).alias("order_id"),
        (qty / adv).alias("qadv"),
        _col(feedback, "volatility", pl.Float64()).alias("sigma"),
        _col(feedback, "spread_bps", pl.Float64()).alias("spread"),
        target_expr(feedback, spec.target).alias("y"),
        pl.when(price.is_finite() & (price > 0)).then(qty * price).otherwise(qty).alias("weight"),
        strategy.alias("strategy"),
        _col(feedback, "regime", pl.String()).alias("regime"),
        (qty > 0).alias("_qty_ok"),
        (adv > 0).alias("_adv_ok"),
    )
    if until is not None:
        out = out.filter(pl.col("date") <= until)
    ok = (
        pl.col("_qty_ok")
        & pl.col("_adv_ok")
        & pl.col("qadv").is_finite()
        & pl.col("sigma").is_finite()
        & (pl.col("sigma") >= 0)
        & pl.col("spread").is_finite()
        & (pl.col("spread") >= 0)
        & pl.col("y").is_finite()
        & pl.col("symbol").is_not_null()
        & pl.col("date").is_not_null()
        & ~pl.col("strategy").fill_null("").is_in(list(spec.passive_strategies))
    )
    return (
        out.filter(ok.fill_null(False))
        .select(FILL_COLUMNS)
        .cast(_SCHEMA)
        .sort("date", "symbol", "order_id", nulls_last=True)
    )
