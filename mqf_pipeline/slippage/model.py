"""Seed 002 section 5.3 slippage model, per symbol with shrinkage toward the pooled fit.

``Slippage_bps = a0 + a1 Q/ADV + a2 sigma + a3 spread_bps + a4 (Q/ADV) sigma`` with Q/ADV decimal, sigma
daily decimal, spread in bps: a0 and a3 are bps (per bps), a1, a2 and a4 bps per unit of their regressor.

Estimation (fills dated on or before the estimation date only):

* **Basis.** The regressors are centred and scaled by the pooled fills' mean and standard deviation and
  the interaction is the product of the centred terms: the same column space as the seed's form (so the
  same least-squares fit), better conditioned (the raw interaction is nearly collinear with Q/ADV). The
  coefficients are mapped back to the seed's uncentred a0..a4. A regressor without variation in the
  pooled fills (e.g. every spread the configured default) gets coefficient 0 (with its interaction): its
  level is absorbed by a0.
* **Pooled fit** (symbol ``'*'``): OLS on every fill (minimum-norm least squares in the scaled basis if
  the design is still rank-deficient: status ``pooled_rank_deficient``). With fewer than
  ``min_pooled_fills`` (20) usable fills nothing is fitted (``too_few_fills``; none: ``no_fills``) and the
  static default, the execution policy's ``expected_cost_bps``, predicts.
* **Per symbol**, with ``k = shrinkage`` and ``G = X'X / N`` (the pooled design's second moments):
  ``b_s = argmin ||y_s - X_s b||^2 + k (b - b_pool)' G (b - b_pool)``, i.e. the pooled fit enters as k
  pseudo-fills shaped like the pooled design; solved as one least-squares problem stacked with
  ``sqrt(k) R``, ``R'R = G``. The estimate does not depend on the centring (G transforms with the basis);
  n_s fills << k gives about the pooled fit, n_s >> k the symbol's own OLS. Statuses: ``shrunk`` (k > 0),
  ``own`` (k = 0, the symbol's OLS), ``pooled_only`` (fewer than ``min_fills`` fills: the pooled
  coefficients), ``pooled_singular`` (k = 0 and the symbol's own design is rank-deficient, e.g. every fill
  the same size: the pooled coefficients).
* ``r_squared`` in sample, on the symbol's own fills with its coefficients (null with < 2 fills or no
  variance); HC3 standard errors (``stderr_``) for ``own`` symbols and the pooled fit, NaN otherwise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from mqf_pipeline.execution import simulator as sim
from mqf_pipeline.execution.policy import PolicyParams
from mqf_pipeline.slippage.data import as_table, fills_frame
from mqf_pipeline.slippage.params import SlippageParams

#: The symbol of the pooled (all-symbol) row in slippage_model_coeffs.
POOLED_SYMBOL = "*"
N_COEF = 5
#: Pooled statuses under which the model is not fitted and the static default predicts.
STATIC_STATUSES = frozenset({"no_fills", "too_few_fills"})
DEFAULT_PARAMS = SlippageParams()


@dataclass(frozen=True)
class _Basis:
    """Centring ``mean`` and ``scale`` of (qadv, sigma, spread) and which of the 5 columns vary."""

    mean: np.ndarray
    scale: np.ndarray
    live: np.ndarray


def _basis(raw: np.ndarray) -> _Basis:
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    flat = std <= 1e-12 * np.abs(mean)
    live = np.array([True, not flat[0], not flat[1], not flat[2], not (flat[0] or flat[1])])
    return _Basis(mean, np.where(flat, 1.0, std), live)


def _design(raw: np.ndarray, basis: _Basis) -> np.ndarray:
    z = (raw - basis.mean) / basis.scale
    full = np.column_stack([np.ones(len(raw)), z[:, 0], z[:, 1], z[:, 2], z[:, 0] * z[:, 1]])
    return full[:, basis.live]


def _to_seed_form(basis: _Basis) -> np.ndarray:
    """T (5, n_live): the seed's a0..a4 = T b for the scaled basis' coefficients b."""
    (mq, ms, mp), (dq, ds, dp) = basis.mean, basis.scale
    t = np.zeros((N_COEF, N_COEF))
    t[0] = [1.0, -mq / dq, -ms / ds, -mp / dp, mq * ms / (dq * ds)]
    t[1, 1], t[1, 4] = 1.0 / dq, -ms / (dq * ds)
    t[2, 2], t[2, 4] = 1.0 / ds, -mq / (dq * ds)
    t[3, 3] = 1.0 / dp
    t[4, 4] = 1.0 / (dq * ds)
    return t[:, basis.live]


def _r_squared(y: np.ndarray, fitted: np.ndarray) -> float:
    if len(y) < 2:
        return float("nan")
    sst = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - fitted) ** 2)) / sst if sst > 0 else float("nan")


def _hc3(x: np.ndarray, resid: np.ndarray) -> np.ndarray:
    """HC3 covariance of OLS coefficients: ``(X'X)^-1 X' diag(e_i^2 / (1 - h_i)^2) X (X'X)^-1``."""
    q, r = np.linalg.qr(x)
    h = np.sum(q**2, axis=1)
    r_inv = np.linalg.inv(r)
    bread = r_inv @ r_inv.T
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # h = 1 (as many fills as columns): NaN
        w = resid**2 / (1.0 - h) ** 2
        return bread @ ((x * w[:, None]).T @ x) @ bread


def _stderr(x: np.ndarray, resid: np.ndarray, t: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.diag(t @ _hc3(x, resid) @ t.T))


def static_cost_bps(qadv: ArrayLike, sigma: ArrayLike, spread: ArrayLike, static: PolicyParams) -> np.ndarray:
    """The static default: ``expected_cost_bps`` of the policy's default strategy under its cost model, per
    row (bps); NaN where the inputs are invalid (Q/ADV <= 0, sigma or spread < 0, non-finite)."""
    q, s, p = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (qadv, sigma, spread)))
    out = np.full(q.shape, np.nan)
    ok = np.isfinite(q) & (q > 0) & np.isfinite(s) & (s >= 0) & np.isfinite(p) & (p >= 0)
    for i in zip(*np.nonzero(ok), strict=True):
        out[i] = sim.expected_cost_bps(static.default_strategy, q[i], s[i], p[i], static.cost)
    return out


class SlippageModel(BaseEstimator):
    """The section 5.3 model per symbol (see the module docstring). ``fit(feedback, estimation_date)``
    learns from execution_feedback rows dated on or before ``estimation_date``; ``predict`` gives bps.

    Fitted attributes: ``estimation_date_``; ``symbols_`` (sorted) with ``coef_`` (n, 5: a0..a4),
    ``status_``, ``r_squared_``, ``n_obs_``, ``stderr_`` (HC3, NaN unless ``own``); ``pooled_coef_``,
    ``pooled_status_`` (``pooled``, ``pooled_rank_deficient``, or ``no_fills`` / ``too_few_fills``: not
    fitted, no symbol rows, the static default predicts), ``pooled_r_squared_``,
    ``pooled_n_obs_``, ``pooled_stderr_``; ``n_dropped_`` rows up to the date that were not usable (passive
    schedule, missing or invalid inputs, outside ``lookback_days``)."""

    def __init__(self, params: SlippageParams = DEFAULT_PARAMS) -> None:
        self.params = params

    def fit(self, feedback: pl.DataFrame, estimation_date: dt.date) -> SlippageModel:
        """Fit on the usable fills of ``feedback`` dated on or before ``estimation_date``."""
        params = self.params
        fills = fills_frame(feedback, params.fills, until=estimation_date)
        if params.lookback_days is not None:
            fills = fills.filter(pl.col("date") > estimation_date - dt.timedelta(days=params.lookback_days))
        n_rows = feedback.filter(pl.col("date") <= estimation_date).height if feedback.height else 0
        self.estimation_date_ = estimation_date
        self.n_dropped_ = n_rows - fills.height
        if fills.height < params.min_pooled_fills:  # >= 1, so no fills lands here too
            self._set_empty("no_fills" if fills.height == 0 else "too_few_fills", fills.height)
            return self
        raw = fills.select("qadv", "sigma", "spread").to_numpy().astype(float)
        y = fills["y"].to_numpy().astype(float)
        basis = _basis(raw)
        x, t = _design(raw, basis), _to_seed_form(basis)
        b_pool, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
        full_rank = rank == x.shape[1]
        self.pooled_coef_ = t @ b_pool
        self.pooled_status_ = "pooled" if full_rank else "pooled_rank_deficient"
        self.pooled_r_squared_ = _r_squared(y, x @ b_pool)
        self.pooled_n_obs_ = fills.height
        self.pooled_stderr_ = _stderr(x, y - x @ b_pool, t) if full_rank else np.full(N_COEF, np.nan)
        self._fit_symbols(fills["symbol"].to_numpy(), x, y, b_pool, t, params)
        return self

    def _set_empty(self, status: str, n_fills: int) -> None:
        self.symbols_: tuple[str, ...] = ()
        self.coef_ = np.empty((0, N_COEF))
        self.stderr_ = np.empty((0, N_COEF))
        self.status_: tuple[str, ...] = ()
        self.r_squared_ = np.empty(0)
        self.n_obs_ = np.empty(0, dtype=np.int64)
        self.pooled_coef_ = np.full(N_COEF, np.nan)
        self.pooled_stderr_ = np.full(N_COEF, np.nan)
        self.pooled_status_ = status
        self.pooled_r_squared_ = float("nan")
        self.pooled_n_obs_ = n_fills

    def _fit_symbols(
        self, symbols: np.ndarray, x: np.ndarray, y: np.ndarray, b_pool: np.ndarray, t: np.ndarray, p: SlippageParams
    ) -> None:
        names, codes = np.unique(symbols, return_inverse=True)
        order = np.argsort(codes, kind="stable")
        groups = np.split(order, np.cumsum(np.bincount(codes, minlength=len(names)))[:-1])
        k, n_live = p.shrinkage, x.shape[1]
        root = np.linalg.qr(x / np.sqrt(len(y)), mode="r") * np.sqrt(k)
        coef, stderr = np.empty((len(names), N_COEF)), np.full((len(names), N_COEF), np.nan)
        status, r2 = [], np.empty(len(names))
        for i, idx in enumerate(groups):
            xs, ys = x[idx], y[idx]
            if len(idx) < p.min_fills:
                b, why = b_pool, "pooled_only"
            elif k == 0:
                own, _, rank, _ = np.linalg.lstsq(xs, ys, rcond=None)
                b, why = (own, "own") if rank == n_live else (b_pool, "pooled_singular")
                if why == "own":
                    stderr[i] = _stderr(xs, ys - xs @ own, t)
            else:
                a, c = np.vstack([xs, root]), np.concatenate([ys, root @ b_pool])
                b, why = np.linalg.lstsq(a, c, rcond=None)[0], "shrunk"
            coef[i], r2[i] = t @ b, _r_squared(ys, xs @ b)
            status.append(why)
        self.symbols_ = tuple(str(s) for s in names)
        self.coef_, self.stderr_, self.status_, self.r_squared_ = coef, stderr, tuple(status), r2
        self.n_obs_ = np.array([len(g) for g in groups], dtype=np.int64)

    def coefficients(self, symbol: str | Sequence[str | None] | None, n: int) -> np.ndarray:
        """(n, 5) a0..a4 per row: the symbol's own row, the pooled one for None or an unseen symbol."""
        check_is_fitted(self, "pooled_status_")
        index = {s: i for i, s in enumerate(self.symbols_)}
        table = np.vstack([self.coef_, self.pooled_coef_[None, :]])
        names = [symbol] * n if symbol is None or isinstance(symbol, str) else list(symbol)
        if len(names) != n:
            raise ValueError(f"{len(names)} symbols for {n} rows")
        rows = np.array([index.get(s, len(self.symbols_)) if s is not None else len(self.symbols_) for s in names])
        return table[rows.astype(np.int64)] if n else np.empty((0, N_COEF))

    def predict(
        self,
        qadv: ArrayLike,
        sigma: ArrayLike,
        spread: ArrayLike,
        symbol: str | Sequence[str | None] | None = None,
    ) -> np.ndarray:
        """Predicted slippage in bps (``FillSpec.target``) per row for Q/ADV (decimal), daily sigma (decimal)
        and spread (bps). ``symbol`` one for all rows, one per row, or None (pooled); an unseen symbol gets
        the pooled coefficients. Not fitted (no fills, or fewer than ``min_pooled_fills``: :data:`STATIC_STATUSES`):
        the static default (:func:`static_cost_bps`), NaN for invalid rows."""
        q, s, p = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=float)) for v in (qadv, sigma, spread)))
        if self.pooled_status_ in STATIC_STATUSES:
            return static_cost_bps(q, s, p, self.params.static)
        a = self.coefficients(symbol, len(q))
        return a[:, 0] + a[:, 1] * q + a[:, 2] * s + a[:, 3] * p + a[:, 4] * q * s

    def status_of(self, symbols: Sequence[str]) -> list[str]:
        """Per symbol, the status its prediction comes from (``unseen`` -> the pooled row's status)."""
        check_is_fitted(self, "pooled_status_")
        own = dict(zip(self.symbols_, self.status_, strict=True))
        return [own.get(s, self.pooled_status_) for s in symbols]


def coeff_rows(model: SlippageModel, estimation_date: dt.date | None = None) -> pl.DataFrame:
    """slippage_model_coeffs rows of a fitted model: the pooled row (symbol ``'*'``, status ``pooled``,
    ``pooled_rank_deficient``, or ``no_fills`` / ``too_few_fills`` with null coefficients and no symbol
    rows) then one per symbol, by symbol.
    ``estimation_date`` defaults to the model's; another date is an error (the rows would be mislabelled)."""
    check_is_fitted(model, "pooled_status_")
    if estimation_date is not None and estimation_date != model.estimation_date_:
        raise ValueError(f"model was fitted as of {model.estimation_date_}, not {estimation_date}")
    coef = np.vstack([model.pooled_coef_[None, :], model.coef_])
    frame = pl.DataFrame(
        {
            "symbol": [POOLED_SYMBOL, *model.symbols_],
            "estimation_date": [model.estimation_date_] * (len(model.symbols_) + 1),
            **{f"alpha_{j}": coef[:, j] for j in range(N_COEF)},
            "r_squared": np.concatenate([[model.pooled_r_squared_], model.r_squared_]),
            "n_observations": np.concatenate([[model.pooled_n_obs_], model.n_obs_]).astype(np.int64),
            "status": [model.pooled_status_, *model.status_],
        }
    ).with_columns(pl.col(pl.Float64).fill_nan(None))
    return as_table(frame, "slippage_model_coeffs")
