"""Gaussian HMM arithmetic: the causal forward filter and the Gaussian emission densities.

Nothing here looks ahead: :func:`forward_filter` gives the **filtered** probabilities
P(state_t | obs_1..t), whose row t depends on rows <= t only (never hmmlearn's ``predict`` or
``predict_proba``, which condition on the whole sample). The estimator that fits the HMM is
:class:`mqf_pipeline.regimes.model.RegimeModel`.
"""

from __future__ import annotations

import numpy as np


def forward_filter(log_start: np.ndarray, transmat: np.ndarray, log_emission: np.ndarray) -> np.ndarray:
    """Filtered probabilities P(state_t | obs_1..t) by the scaled forward recursion.

    ``log_emission`` (n, k) holds log p(obs_t | state); a row of NaN is a missing observation
    (prediction step only). Row t depends on rows <= t only.
    """
    n, k = log_emission.shape
    out = np.empty((n, k))
    emission = np.where(np.isnan(log_emission), 0.0, log_emission)
    emission = np.exp(emission - emission.max(axis=1, keepdims=True))
    alpha = np.exp(log_start - log_start.max())
    alpha /= alpha.sum()
    for t in range(n):
        if t:
            alpha = alpha @ transmat
        alpha = alpha * emission[t]
        total = alpha.sum()
        if not total > 0:  # every state impossible (extreme outlier): keep the predicted distribution
            alpha = out[t - 1] @ transmat if t else np.exp(log_start) / np.exp(log_start).sum()
            total = alpha.sum()
        alpha = alpha / total
        out[t] = alpha
    return out


#: Smallest eigenvalue a state covariance keeps (standardised units) when EM leaves it degenerate.
EIGEN_FLOOR = 1e-6


def floored_covariance(cov: np.ndarray) -> np.ndarray:
    """``cov`` symmetrised with its eigenvalues floored at :data:`EIGEN_FLOOR` (positive definite)."""
    sym = (cov + cov.T) / 2.0
    if not np.isfinite(sym).all():
        raise ValueError(f"HMM state covariance is not finite: {cov.tolist()}")
    vals, vecs = np.linalg.eigh(sym)
    return (vecs * np.maximum(vals, EIGEN_FLOOR)) @ vecs.T


def _cholesky_floored(cov: np.ndarray) -> np.ndarray:
    """Cholesky factor of ``cov``; a covariance EM left non positive-definite (a state fitted to a
    handful of nearly collinear rows) has its eigenvalues floored first (:func:`floored_covariance`)."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return np.linalg.cholesky(floored_covariance(cov))


def gaussian_log_emission(X: np.ndarray, means: np.ndarray, covars: np.ndarray) -> np.ndarray:
    """log N(x_t; mean_k, cov_k) for each row and state, (n, k); NaN for rows with a missing value."""
    n, d = X.shape
    out = np.full((n, means.shape[0]), np.nan)
    ok = np.isfinite(X).all(axis=1)
    for j, (mu, cov) in enumerate(zip(means, covars, strict=True)):
        chol = _cholesky_floored(cov)
        z = np.linalg.solve(chol, (X[ok] - mu).T)
        log_det = 2.0 * np.log(np.diag(chol)).sum()
        out[ok, j] = -0.5 * (d * np.log(2 * np.pi) + log_det + (z**2).sum(axis=0))
    return out


__all__ = [
    "EIGEN_FLOOR",
    "floored_covariance",
    "forward_filter",
    "gaussian_log_emission",
]
