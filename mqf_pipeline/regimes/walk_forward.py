"""Walk-forward filtered regimes: the refit schedule and the per-date filtered HMM probabilities.

Nothing here looks ahead: every output dated D uses observations dated <= D, a model fitted only
on observations dated strictly before the last refit date <= D, and the **filtered** state
probabilities P(state_D | obs_1..D) of that model (:meth:`RegimeModel.filter`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl
from sklearn.base import clone

from mqf_pipeline.regimes.features import DEFAULT_OBSERVATIONS, hmm_observations, missing_observations
from mqf_pipeline.regimes.model import HMM_STATES, RegimeModel

#: Filtered label probabilities of :attr:`WalkForward.frame`, in :data:`HMM_STATES` order.
PROB_COLUMNS: tuple[str, str, str] = ("prob_normal", "prob_volatile", "prob_crisis")


def fit_schedule(
    dates: Sequence[dt.date] | pl.Series,
    every: int | Literal["monthly"] = 21,
    min_train: int = 504,
) -> list[dt.date]:
    """Refit dates: the session at index ``min_train`` (so training has ``min_train`` sessions
    before it), then every ``every`` sessions, or the first session of each later month.

    Depends only on the dates up to each refit date (appending dates never moves earlier refits).
    """
    days = list(dates)
    if len(days) <= min_train:
        return []
    if every == "monthly":
        out = [days[min_train]]
        out += [d for prev, d in zip(days[min_train:], days[min_train + 1 :], strict=False) if d.month != prev.month]
        return out
    if not isinstance(every, int) or every < 1:
        raise ValueError("every must be a positive number of sessions or 'monthly'")
    return days[min_train::every]


@dataclass(frozen=True)
class WalkForward:
    """Result of :func:`filtered_regimes`: the per-date frame, the fitted model per refit date and,
    per refit date, the digest of everything its fit depended on (``fit_keys``, see ``reuse``)."""

    frame: pl.DataFrame
    models: dict[dt.date, RegimeModel]
    fit_keys: dict[dt.date, str] = field(default_factory=dict)

    def fits(self) -> dict[str, RegimeModel]:
        """The fitted models keyed by their fit digest."""
        return {self.fit_keys[d]: m for d, m in self.models.items() if d in self.fit_keys}


def _refit_estimator(model: RegimeModel, k: int, warm: bool, n_init_refit: int) -> RegimeModel:
    """A fresh copy of the prototype's parameters for refit ``k``: seeded ``random_state + k``, with
    ``n_init_refit`` k-means starts when it is warm-started from the previous refit."""
    return clone(model).set_params(
        random_state=model.random_state + k,
        n_init=model.n_init if not warm else n_init_refit,
    )


def _require_rows(
    train: np.ndarray, features: pl.DataFrame, observations: Sequence[str], model: RegimeModel, refit: dt.date
) -> None:
    """ValueError saying why when ``train`` (the rows of ``features``) has too few complete rows for ``model``."""
    complete = int(np.isfinite(train).all(axis=1).sum())
    if complete >= model.min_rows():
        return
    why = missing_observations(features, observations)
    raise ValueError(
        f"regime fit for {refit}: need at least {model.min_rows()} complete rows of observations "
        f"{list(observations)}, got {complete} of {train.shape[0]} training sessions" + (f" ({why})" if why else "")
    )


def _walk_frame(
    dates: list[dt.date], first: int, refit_of: list[dt.date | None], probs: np.ndarray, vols: np.ndarray
) -> pl.DataFrame:
    """The per-date frame from the first refit date (index ``first``) on."""
    p = probs[first:]
    state = p.argmax(axis=1) if p.size else np.zeros(0, dtype=np.int64)
    return pl.DataFrame(
        {
            "date": pl.Series(dates[first:], dtype=pl.Date),
            "refit_date": pl.Series(refit_of[first:], dtype=pl.Date),
            "hmm_state": pl.Series([HMM_STATES[s] for s in state], dtype=pl.String),
            "prob_normal": p[:, 0],
            "prob_volatile": p[:, 1],
            "prob_crisis": p[:, 2],
            "hmm_vol": vols[first:, 0],
        }
    )


def filtered_regimes(
    features: pl.DataFrame,
    model: RegimeModel,
    refit_every: int | Literal["monthly"] = 21,
    min_train: int = 504,
    *,
    observations: Sequence[str] = DEFAULT_OBSERVATIONS,
    max_train: int | None = None,
    n_init_refit: int = 1,
    warm_start: bool = True,
    reuse: WalkForward | None = None,
) -> WalkForward:
    """Walk-forward filtered HMM states for every date from the first refit date on.

    ``model`` is the unfitted prototype (fitted state, if any, is ignored): each refit fits a
    ``sklearn.base.clone`` of it. For a date D with last refit date R <= D (:func:`fit_schedule`),
    the model is fitted on the observations dated strictly before R (at most ``max_train`` of the
    latest) and its filtered probabilities are computed over the observations from the first date
    of ``features`` up to D only. One fit per refit date: the first with the prototype's ``n_init``
    k-means restarts, later ones with ``n_init_refit`` restarts plus one EM run started from the
    previous refit's model (``warm_start``); the best training log-likelihood wins. Refit k is
    seeded with ``model.random_state + k``, so results are deterministic.

    ``reuse`` (optional, read only) is an earlier result: a refit whose digest (the prototype's
    parameters, the options, its training observations and the previous refit's digest) matches
    one of ``reuse``'s takes that fitted model instead of fitting again, so repeated runs on a
    growing history only fit new refit dates. ``frame`` columns: date, refit_date, hmm_state,
    prob_normal, prob_volatile, prob_crisis, hmm_vol (probability-weighted fitted volatility of
    the index, annualised decimal).
    """
    feats = features.sort("date")
    X = hmm_observations(feats, observations)
    dates = feats["date"].to_list()
    refits = fit_schedule(dates, refit_every, min_train)
    position = {d: i for i, d in enumerate(dates)}
    bounds = [position[r] for r in refits] + [len(dates)]
    known = reuse.fits() if reuse is not None else {}
    models: dict[dt.date, RegimeModel] = {}
    fit_keys: dict[dt.date, str] = {}
    probs = np.full((len(dates), 3), np.nan)
    vols = np.full((len(dates), 1), np.nan)
    refit_of: list[dt.date | None] = [None] * len(dates)
    options = repr((tuple(observations), max_train, n_init_refit, sorted(model.get_params().items())))
    digest = hashlib.sha256(f"{options}|{warm_start}".encode()).hexdigest()
    for k, refit in enumerate(refits):
        lo, hi = bounds[k], bounds[k + 1]
        start = 0 if max_train is None else max(0, lo - max_train)
        train = np.ascontiguousarray(X[start:lo])
        digest = hashlib.sha256(f"{digest if warm_start else options}|{k}".encode() + train.tobytes()).hexdigest()
        fitted = known.get(digest)
        if fitted is None:
            _require_rows(train, feats.slice(start, lo - start), observations, model, refit)
            previous = models[refits[k - 1]] if k and warm_start else None
            fitted = _refit_estimator(model, k, previous is not None, n_init_refit).fit(train, init_from=previous)
        models[refit], fit_keys[refit] = fitted, digest
        state_probs = fitted.filter(X[:hi])[lo:hi]
        probs[lo:hi] = fitted.label_probabilities(state_probs)
        vols[lo:hi, 0] = state_probs @ fitted.state_vol_
        refit_of[lo:hi] = [refit] * (hi - lo)
    frame = _walk_frame(dates, bounds[0], refit_of, probs, vols)
    return WalkForward(frame=frame, models=models, fit_keys=fit_keys)


__all__ = ["PROB_COLUMNS", "WalkForward", "filtered_regimes", "fit_schedule"]
