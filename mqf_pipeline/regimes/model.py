"""The regime estimator: a Gaussian HMM whose states are labelled by ascending fitted volatility.

HMM: observations are the equal-weight index return in percent and the log cross-sectional
dispersion of returns (standardised); states are ordered by fitted index volatility and labelled
NORMAL / VOLATILE / CRISIS. The default has 4 components, the two calmest both labelled NORMAL:
markets (and the simulator) have two calm regimes (bull and bear, 10% and 13% vol in the
simulator), and with 3 components the likelihood often prefers splitting calm in two and
merging VOLATILE with CRISIS, whenever the training window holds few crisis days. Walk-forward on
7 simulator seeds (100 symbols, 2006-2025, refit every 63 sessions) the 3-state model scored
0.85-0.93 permutation-invariant accuracy against the volatility classes (VOLATILE recall as low as
0.08), the 4-state one 0.88-0.97. ``n_components=3`` is available.

:class:`RegimeModel` is a scikit-learn estimator: its parameters are set in ``__init__`` (and
``get_params``/``set_params``/``sklearn.base.clone`` work on them), ``fit`` returns the estimator and
everything learned from data is an attribute ending in ``_``.
"""

from __future__ import annotations

import numpy as np
from hmmlearn.hmm import GaussianHMM
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from mqf_pipeline.regimes.features import SESSIONS_PER_YEAR
from mqf_pipeline.regimes.hmm import floored_covariance, forward_filter, gaussian_log_emission

#: HMM states in label order: ascending fitted volatility of the index return.
HMM_STATES: tuple[str, str, str] = ("NORMAL", "VOLATILE", "CRISIS")


class RegimeModel(BaseEstimator):
    """Gaussian HMM (full covariances) whose states are labelled by ascending fitted volatility.

    ``fit(X)`` standardises the columns of X (train mean/std: ``mean_``/``scale_``), runs
    hmmlearn's ``GaussianHMM`` EM from ``n_init`` k-means starts seeded from ``random_state`` (plus
    one warm start when ``init_from`` is given) and keeps the best training log-likelihood. States
    are sorted by the fitted variance of column 0 (the index return in percent); the last two are
    VOLATILE and CRISIS and any below them NORMAL (``state_label_`` indexes :data:`HMM_STATES`; with
    2 components the labels are NORMAL and VOLATILE). Fitted attributes, in ascending-volatility
    order: ``startprob_``, ``transmat_``, ``means_``/``covars_`` (standardised units), ``state_vol_``
    (annualised decimal volatility of column 0 read as a percent daily return); ``hmm_`` is the
    hmmlearn model in its own order, ``order_`` the permutation; ``train_log_likelihood_`` and
    ``converged_`` describe the winning EM run. Rows with a NaN are not fitted.
    """

    def __init__(
        self,
        n_components: int = 4,
        n_iter: int = 200,
        tol: float = 1e-2,
        random_state: int = 0,
        min_covar: float = 1e-3,
        n_init: int = 5,
    ) -> None:
        self.n_components = n_components
        self.n_init = n_init
        self.n_iter = n_iter
        self.tol = tol
        self.random_state = random_state
        self.min_covar = min_covar

    def min_rows(self) -> int:
        """Complete (NaN-free) rows ``fit`` needs: 10 per component."""
        return 10 * self.n_components

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, ("mean_", "scale_"))
        return (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_

    def fit(self, X: np.ndarray, y: None = None, *, init_from: RegimeModel | None = None) -> RegimeModel:
        """Learn the HMM on the complete rows of X (n, d); returns self. ``y`` is ignored.

        ``init_from`` (a fitted model on the same columns, e.g. the previous refit) adds one EM run
        started from its parameters to the ``n_init`` k-means starts; it is data for this fit, not
        a parameter of the estimator, so it is neither stored nor copied by ``clone``.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError("X must be 2-D (n_samples, n_features)")
        rows = X[np.isfinite(X).all(axis=1)]
        if rows.shape[0] < self.min_rows():
            raise ValueError(f"need at least {self.min_rows()} complete rows to fit, got {rows.shape[0]}")
        self.mean_ = rows.mean(axis=0)
        self.scale_ = rows.std(axis=0)
        self.scale_[self.scale_ == 0] = 1.0
        best = self._best_start(self._scaled(rows), init_from)
        if best is None:
            raise ValueError(
                f"no HMM start converged to valid parameters ({self.n_init} k-means starts"
                f"{' + 1 warm start' if init_from is not None else ''}, {rows.shape[0]} rows)"
            )
        self.train_log_likelihood_, hmm = best
        order = np.argsort(hmm.covars_[:, 0, 0], kind="stable")
        self.hmm_ = hmm
        self.order_ = order
        self.startprob_ = hmm.startprob_[order]
        self.transmat_ = hmm.transmat_[np.ix_(order, order)]
        self.means_ = hmm.means_[order]
        self.covars_ = hmm.covars_[order]
        self.state_vol_ = np.sqrt(self.covars_[:, 0, 0]) * self.scale_[0] / 100.0 * np.sqrt(SESSIONS_PER_YEAR)
        k = self.n_components
        self.state_label_ = np.array([0] * (k - 2) + [1, 2]) if k >= 3 else np.arange(k)
        self.converged_ = bool(hmm.monitor_.converged)
        return self

    def _best_start(self, Z: np.ndarray, init_from: RegimeModel | None) -> tuple[float, GaussianHMM] | None:
        """EM on the standardised rows ``Z`` from each start (the warm one first, then the ``n_init``
        seeded k-means ones); the (log-likelihood, model) of the best valid run, None if none is."""
        best: tuple[float, GaussianHMM] | None = None
        seeds = [int(s) for s in np.random.SeedSequence(self.random_state).generate_state(self.n_init)]
        warm = init_from is not None
        with threadpool_limits(1):  # tiny matrices: BLAS/OpenMP threads only add overhead
            for seed in ([-1] if warm else []) + seeds:
                candidate = GaussianHMM(
                    n_components=self.n_components,
                    covariance_type="full",
                    n_iter=self.n_iter,
                    tol=self.tol,
                    random_state=max(seed, 0),
                    min_covar=self.min_covar,
                    implementation="scaling",
                    init_params="stmc" if seed >= 0 else "",
                )
                try:
                    if seed < 0:
                        assert init_from is not None
                        self._warm_start(candidate, init_from)
                    candidate.fit(Z)
                    score = float(candidate.score(Z))
                    _ = [np.linalg.cholesky(c) for c in candidate.covars_]
                except (ValueError, np.linalg.LinAlgError):
                    continue  # a start that collapsed a state (degenerate covariance): try the others
                if not np.isfinite(score):
                    continue
                if best is None or score > best[0]:
                    best = (score, candidate)
        return best

    def _warm_start(self, hmm: GaussianHMM, src: RegimeModel) -> None:
        """Seed ``hmm`` with the parameters of ``src``, re-expressed in this fit's standardised units."""
        if src.n_components != self.n_components or src.mean_.shape != self.mean_.shape:
            raise ValueError("init_from must have the same number of components and columns")
        ratio = src.scale_ / self.scale_
        hmm.startprob_ = src.startprob_.copy()
        hmm.transmat_ = src.transmat_.copy()
        hmm.means_ = (src.means_ * src.scale_ + src.mean_ - self.mean_) / self.scale_
        hmm.covars_ = np.stack([floored_covariance(c) for c in src.covars_ * np.outer(ratio, ratio)[None]])

    def log_emission(self, X: np.ndarray) -> np.ndarray:
        """Emission log-likelihoods (n, k), states in ascending volatility; NaN rows where X has a NaN."""
        with threadpool_limits(1):
            return gaussian_log_emission(self._scaled(X), self.means_, self.covars_)

    def filter(self, X: np.ndarray) -> np.ndarray:
        """Filtered P(state_t | X_1..t) (n, k), states in ascending volatility; row t uses rows <= t only."""
        with np.errstate(divide="ignore"):
            log_start = np.log(self.startprob_)
        return forward_filter(log_start, self.transmat_, self.log_emission(X))

    def label_probabilities(self, state_probs: np.ndarray) -> np.ndarray:
        """Sum state probabilities (n, k) into the labels of :data:`HMM_STATES` (n, 3)."""
        out = np.zeros((state_probs.shape[0], len(HMM_STATES)))
        for j, label in enumerate(self.state_label_):
            out[:, label] += state_probs[:, j]
        return out

    def smoothed(self, X: np.ndarray) -> np.ndarray:
        """hmmlearn's smoothed P(state_t | X_1..n) (LOOKAHEAD: tests and diagnostics only); X without NaN."""
        return self.hmm_.predict_proba(self._scaled(X))[:, self.order_]


__all__ = ["HMM_STATES", "RegimeModel"]
