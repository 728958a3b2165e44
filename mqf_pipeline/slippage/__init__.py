"""Seed 002 Part 5, the live slippage feedback loop's pure maths: the per-symbol slippage model with
shrinkage toward the pooled fit (:mod:`.model`), its out-of-sample prediction errors (:mod:`.errors`), the
regime adjustment (:mod:`.regime`) and the feedback actions (:mod:`.feedback`). Inputs are
execution_feedback rows (:mod:`.data`); outputs are slippage_model_coeffs and slippage_prediction_errors
rows and the actions in force. Costs are in bps."""

from mqf_pipeline.slippage.data import FILL_COLUMNS, fills_frame
from mqf_pipeline.slippage.errors import error_rows, fill_predictions, prediction_errors
from mqf_pipeline.slippage.feedback import ACTION_COLUMNS, actions_in_force, session_slippage, triggers
from mqf_pipeline.slippage.model import POOLED_SYMBOL, SlippageModel, coeff_rows, static_cost_bps
from mqf_pipeline.slippage.params import TARGETS, FeedbackParams, FillSpec, SlippageParams
from mqf_pipeline.slippage.regime import REGIME_ADJUSTMENTS, regime_estimate, seed_regime

__all__ = [
    "ACTION_COLUMNS",
    "FILL_COLUMNS",
    "POOLED_SYMBOL",
    "REGIME_ADJUSTMENTS",
    "TARGETS",
    "FeedbackParams",
    "FillSpec",
    "SlippageModel",
    "SlippageParams",
    "actions_in_force",
    "coeff_rows",
    "error_rows",
    "fill_predictions",
    "fills_frame",
    "prediction_errors",
    "regime_estimate",
    "seed_regime",
    "session_slippage",
    "static_cost_bps",
    "triggers",
]
