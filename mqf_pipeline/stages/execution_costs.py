"""What the fills so far teach the orders of a session (seed 002 Part 5): the expected cost from the slippage
model fitted on every fill up to the session, and the feedback actions' preferred schedules.

The orders of session D trade during D+1; the model is fitted on the fills up to D (the ones booked at D
included: the same fit as ``slippage_model_coeffs`` of D), and the actions in force at D+1 come from the same
fills. While too few fills exist the policy keeps the static cost model and says so. Pure: the inputs are the
fills, the session and the settings.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from mqf_pipeline import calendar
from mqf_pipeline.execution.strategies import Strategy
from mqf_pipeline.slippage import SlippageModel, actions_in_force, regime_estimate
from mqf_pipeline.stages.params import feedback_params, slippage_params

#: Pooled statuses of a fit the policy uses (anything else: the static cost model).
USABLE = ("pooled", "pooled_rank_deficient")


@dataclass(frozen=True)
class SessionCosts:
    """The fitted model (None: the static cost model), the preferred schedule per symbol and a label for the
    ``policy`` column of execution_decisions."""

    model: SlippageModel | None
    preferred: dict[str, Strategy]
    label: str
    regime_multiplier: float = 1.0  # seed 002 section 5.6 for the session's regime

    def fitted_bps(self, symbol: str, size_adv: float, sigma: float, spread_bps: float) -> float | None:
        """The model's expected cost of an aggressive order (bps vs the mid) times the regime's multiplier, None
        without a usable fit."""
        if self.model is None:
            return None
        value = self.model.predict(np.array([size_adv]), np.array([sigma]), np.array([spread_bps]), symbol)[0]
        return float(value) * self.regime_multiplier if np.isfinite(value) else None


@dataclass(frozen=True)
class FeedbackMultipliers:
    """Seed 002 section 5.5's actions in force for the decisions of a session: per symbol, the multiplier of its
    signal score and of its Kelly size, and one line saying which symbols and why (for the audit)."""

    score: dict[str, float]
    kelly: dict[str, float]
    summary: str | None


def feedback_multipliers(fills: pl.DataFrame, day: dt.date, settings) -> FeedbackMultipliers:
    """The actions in force after ``day`` from the fills up to it (its own included: they trade tomorrow)."""
    actions = _actions(fills, day, settings)
    if actions is None or not actions.height:
        return FeedbackMultipliers({}, {}, None)
    score = dict(actions.select("symbol", "score_multiplier").iter_rows())
    kelly = dict(actions.select("symbol", "kelly_multiplier").iter_rows())
    summary = "; ".join(
        f"{r['symbol']}: score x{r['score_multiplier']}, Kelly x{r['kelly_multiplier']} until {r['until_date']} "
        f"({r['reason']})"
        for r in actions.iter_rows(named=True)
    )
    return FeedbackMultipliers(score, kelly, summary)


def _actions(fills: pl.DataFrame, day: dt.date, settings) -> pl.DataFrame | None:
    upto = fills.filter(pl.col("date") <= day) if fills.height else fills
    if not upto.height:
        return None
    params = feedback_params(settings)
    # the hold windows of the triggers in force: from hold_sessions before ``day`` to as many after it
    span = params.hold_sessions + 1
    sessions = calendar.sessions(calendar.session_offset(day, -span), calendar.session_offset(day, span))
    return actions_in_force(upto, day, sessions, params)


def session_costs(fills: pl.DataFrame, day: dt.date, settings, regime: str | None = None) -> SessionCosts:
    """The costs the orders of ``day`` are planned with, from ``fills`` (execution_feedback, any dates: only
    those dated up to ``day`` are used) and the session's ``regime`` (seed 002 section 5.6: the fitted estimate
    times the regime's multiplier; the label records it with the confidence that sets the band)."""
    upto = fills.filter(pl.col("date") <= day) if fills.height else fills
    model = SlippageModel(slippage_params(settings)).fit(upto, day) if upto.height else None
    usable = model is not None and model.pooled_status_ in USABLE
    band = regime_estimate([1.0], regime).row(0, named=True)
    label = "static cost model"
    if usable:
        label = (
            f"fitted slippage model ({day}, {model.pooled_n_obs_} fills), regime {band['regime'] or 'unknown'} "
            f"x{band['multiplier']:g} (confidence {band['confidence']:g})"
        )
    actions = _actions(fills, day, settings)
    preferred: dict[str, Strategy] = {}
    if actions is not None:
        preferred = {s: Strategy(p) for s, p in actions.select("symbol", "preferred_strategy").iter_rows()}
    return SessionCosts(model if usable else None, preferred, label, float(band["multiplier"]))
