"""Discounted Thompson sampling per regime: Beta posteriors of each agent's hit probability.

Per regime c and agent k, discounted counts over outcome sessions tau <= t:
S_ck(t) = sum gamma^(t - tau) hit_k(tau), F_ck(t) = sum gamma^(t - tau) (1 - hit_k(tau)), summing over the
outcomes whose signal session was in regime c (every regime's counts are discounted at every outcome
session, so a regime not seen lately fades). Posterior: Beta(alpha0 + S_ck, beta0 + F_ck).

Weights for a session in regime c: p_k = P(theta_k = max_j theta_j) under the independent posteriors, by
Gauss-Legendre quadrature of p_k = int_0^1 f_k(x) prod_{j != k} F_j(x) dx (deterministic; no Monte Carlo),
renormalised to sum 1, then the KL projection onto the capped simplex.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from mqf_pipeline.learning.projection import kl_project


def discounted_counts(
    hits: NDArray[np.float64], regime_codes: NDArray[np.int64], n_regimes: int, gamma: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Discounted success and failure counts after each outcome session (module docstring).

    ``hits``: (T, N) in {0, 1}, NaN where the agent has no outcome; ``regime_codes``: (T, N) regime index of
    the outcome's signal session, -1 when unknown (no update). Returns S, F of shape (T, n_regimes, N).
    """
    t_len, n = hits.shape
    s_hist = np.zeros((t_len, n_regimes, n))
    f_hist = np.zeros((t_len, n_regimes, n))
    s, f = np.zeros((n_regimes, n)), np.zeros((n_regimes, n))
    cols = np.arange(n)
    for t in range(t_len):
        s *= gamma
        f *= gamma
        ok = np.isfinite(hits[t]) & (regime_codes[t] >= 0)
        s[regime_codes[t, ok], cols[ok]] += hits[t, ok]
        f[regime_codes[t, ok], cols[ok]] += 1.0 - hits[t, ok]
        s_hist[t], f_hist[t] = s, f
    return s_hist, f_hist


def beta_posterior(
    successes: NDArray[np.float64], failures: NDArray[np.float64], prior: tuple[float, float]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Beta posterior parameters (alpha0 + S, beta0 + F)."""
    return prior[0] + np.asarray(successes, dtype=np.float64), prior[1] + np.asarray(failures, dtype=np.float64)


def beta_mean_var(
    alpha: NDArray[np.float64], beta: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean a / (a + b) and variance a b / ((a + b)^2 (a + b + 1)) of Beta(a, b)."""
    total = alpha + beta
    return alpha / total, alpha * beta / (total**2 * (total + 1.0))


@lru_cache(maxsize=8)
def _nodes(n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    t, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (t + 1.0), 0.5 * w


def prob_best(alpha: NDArray[np.float64], beta: NDArray[np.float64], nodes: int = 256) -> NDArray[np.float64]:
    """P(agent k has the highest hit probability) under independent Beta(alpha_k, beta_k) (alpha, beta >= 1),
    by ``nodes``-point Gauss-Legendre quadrature on [0, 1], renormalised to sum 1."""
    a, b = np.asarray(alpha, dtype=np.float64), np.asarray(beta, dtype=np.float64)
    if np.any(a < 1) or np.any(b < 1) or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError(f"prob_best: need finite alpha, beta >= 1, got {a!r}, {b!r}")
    x, w = _nodes(nodes)
    pdf = stats.beta.pdf(x[None, :], a[:, None], b[:, None])  # (N, M)
    cdf = stats.beta.cdf(x[None, :], a[:, None], b[:, None])
    others = np.where(np.eye(a.size, dtype=bool)[:, :, None], 1.0, cdf[None, :, :]).prod(axis=1)  # (N, M)
    p = (pdf * others * w[None, :]).sum(axis=1)
    return p / p.sum()


def ts_weights(
    alpha: NDArray[np.float64], beta: NDArray[np.float64], floor: float, cap: float, nodes: int = 256
) -> NDArray[np.float64]:
    """The capped-simplex KL projection of :func:`prob_best`."""
    return kl_project(prob_best(alpha, beta, nodes), floor, cap)


__all__ = ["beta_mean_var", "beta_posterior", "discounted_counts", "prob_best", "ts_weights"]
