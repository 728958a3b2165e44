"""The slippage refit over the lake (seed 002 Part 5): per session, the model fitted on every fill up to its close,
and how well the model fitted before it predicted the session's fills.

Reads ``execution_feedback`` (one row per fill, dated by the session it traded in) up to each session; a
session's rows depend only on fills at or before it, so a session materialized alone equals the same session
inside a backfill. The maths is :mod:`mqf_pipeline.slippage`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.slippage import SlippageModel, coeff_rows, error_rows, fill_predictions
from mqf_pipeline.stages.base import RunContext, Stage, StepOutput
from mqf_pipeline.stages.params import slippage_params


@dataclass(frozen=True)
class SlippageDetail:
    """What a session's refit found: fills used, the pooled fit's status and R^2, symbols with their own fit,
    and the session's prediction error (mean absolute, bps; None without fills that session)."""

    fills_used: int
    fills_today: int
    pooled_status: str
    pooled_r_squared: float | None
    symbols_fitted: int
    mean_abs_error_bps: float | None


class SlippageStage(Stage):
    """Refit the slippage model on the fills up to each session; score the previous fit on the session's fills."""

    NAME: ClassVar[str] = "slippage"
    READS: ClassVar[tuple[str, ...]] = ("execution_feedback",)
    WRITES: ClassVar[tuple[str, ...]] = ("slippage_model_coeffs", "slippage_prediction_errors")
    PARTITION_BY: ClassVar[dict[str, str]] = {"slippage_model_coeffs": "estimation_date"}
    CODE_VERSION: ClassVar[str] = "1"

    def load_inputs(self, ctx: RunContext, days: Sequence[dt.date]) -> pl.DataFrame:
        """Every fill stored up to the last session (the fits look back over all of them, or ``lookback_days``)."""
        last = max(days).isoformat()
        return ctx.lake.read("execution_feedback", [p for p in ctx.lake.partitions("execution_feedback") if p <= last])

    def step(self, day: dt.date, inputs: pl.DataFrame, carried: SlippageModel | None, ctx: RunContext) -> StepOutput:
        """``carried``: the model fitted at the previous session (it predicts this session's fills; the first
        session of a run fits it the same way, as of the previous session)."""
        params = slippage_params(ctx.settings)
        before = carried or SlippageModel(params).fit(inputs, calendar.previous_session(day))
        errors = error_rows(fill_predictions(inputs, day, model=before))
        model = SlippageModel(params).fit(inputs, day)
        coeffs = coeff_rows(model, day)
        today = inputs.filter(pl.col("date") == day).height if inputs.height else 0
        detail = SlippageDetail(
            fills_used=int(model.pooled_n_obs_),
            fills_today=today,
            pooled_status=str(model.pooled_status_),
            pooled_r_squared=_float(model.pooled_r_squared_),
            symbols_fitted=sum(status != "pooled_only" for status in model.status_),
            mean_abs_error_bps=float(errors["error_bps"].abs().mean()) if errors.height else None,
        )
        rows = {"slippage_model_coeffs": coeffs, "slippage_prediction_errors": errors}
        return StepOutput(day, rows, model, detail)

    def progress_line(self, step: StepOutput, i: int, n: int) -> str:
        d: SlippageDetail = step.detail
        return f"{self.NAME}: {i}/{n} sessions {step.day}: {d.pooled_status}, {d.fills_used} fills"


def _float(value: object) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None
