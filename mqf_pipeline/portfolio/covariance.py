"""Covariance inputs for the portfolio optimizer, in annualised decimal units.

Units: ``returns`` are simple decimal returns per trading day; every covariance returned here is
annualised (daily covariance x ``TRADING_DAYS`` = 252), so a 30%-volatility stock has variance
0.09. The optimizer expects annualised ``mu`` and covariance: daily decimal units (variances
~1e-4) are badly scaled for the interior-point solver (see shared NUMERICS.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.covariance import LedoitWolf, ledoit_wolf_shrinkage

TRADING_DAYS: int = 252
"""Sessions per year used to annualise daily covariances."""


def _clean_returns(returns: np.ndarray, nan_policy: str) -> np.ndarray:
    """``returns`` as a float (T, N) matrix with NaNs zeroed or their rows dropped."""
    arr = np.asarray(returns, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"returns must be 2-D (T, N) with N >= 1, got shape {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError("returns hold inf: clean them first")
    nan = np.isnan(arr)
    if nan_policy == "zero":
        arr = np.where(nan, 0.0, arr)
    elif nan_policy == "drop":
        arr = arr[~nan.any(axis=1)]
    else:
        raise ValueError(f"nan_policy must be 'zero' or 'drop', got {nan_policy!r}")
    if arr.shape[0] < 2:
        raise ValueError(f"need at least 2 usable rows of returns, got {arr.shape[0]}")
    return arr


def ledoit_wolf_covariance(
    returns: np.ndarray, nan_policy: Literal["zero", "drop"] = "zero", periods_per_year: int = TRADING_DAYS
) -> np.ndarray:
    """Annualised Ledoit-Wolf shrinkage covariance of daily simple returns, shape ``(N, N)``.

    ``returns`` is ``(T, N)``, one column per asset, decimal returns per day. Missing values:
    ``nan_policy="zero"`` (default) treats a NaN return as 0 (no price move that day, which biases
    that asset's variance down in proportion to the missing share); ``"drop"`` drops every row
    holding a NaN (exact, but can leave few rows in a wide universe). ``inf`` is always rejected.
    The estimate is :class:`sklearn.covariance.LedoitWolf` (sample mean removed, shrinkage towards
    a scaled identity) times ``periods_per_year``. Raises ``ValueError`` for fewer than 2 usable
    rows, a non 2-D input or an unknown policy.
    """
    arr = _clean_returns(returns, nan_policy)
    cov = LedoitWolf().fit(arr).covariance_ * float(periods_per_year)
    return (cov + cov.T) / 2.0


def ledoit_wolf_factor(
    returns: np.ndarray, nan_policy: Literal["zero", "drop"] = "zero", periods_per_year: int = TRADING_DAYS
) -> FactorCovariance:
    """The same annualised Ledoit-Wolf estimate as :func:`ledoit_wolf_covariance`, in exact factor form.

    Ledoit-Wolf is ``(1 - delta) S + delta m I`` with ``S = Xc' Xc / T`` (demeaned returns) and
    ``m = trace(S) / N``, so ``loadings = sqrt(periods_per_year (1 - delta) / T) Xc'`` (``(N, T)``)
    and ``specific_var = periods_per_year delta m`` reproduce it exactly. Worth it only when ``T`` is
    well below ``N``: measured on 2 cores with T = 252, the optimizer is ~1.7x faster at 1,000 assets
    and no faster at 500. Same NaN policy and errors as :func:`ledoit_wolf_covariance`.
    """
    arr = _clean_returns(returns, nan_policy)
    delta = float(ledoit_wolf_shrinkage(arr))
    t, n = arr.shape
    xc = arr - arr.mean(axis=0)
    m = float((xc * xc).sum()) / (t * n)
    loadings = math.sqrt(periods_per_year * (1.0 - delta) / t) * xc.T
    return FactorCovariance(loadings, np.full(n, periods_per_year * delta * m))


def statistical_factor_covariance(
    returns: np.ndarray,
    n_factors: int = 20,
    nan_policy: Literal["zero", "drop"] = "zero",
    periods_per_year: int = TRADING_DAYS,
) -> FactorCovariance:
    """Annualised statistical factor model: the top ``n_factors`` principal components plus specific variance.

    With ``Xc`` the demeaned ``(T, N)`` returns and ``Xc / sqrt(T) = U s V'``, the loadings are
    ``sqrt(periods_per_year) V_K s_K`` (``(N, K)``) and each asset's specific variance is its sample
    variance minus its common variance, so every asset keeps its sample variance exactly (the
    residual ``V_rest s_rest^2 V_rest'`` is PSD, so the difference is >= 0; rounding is clipped at 0).
    ``K`` is capped at ``min(T - 1, N)``; with ``K`` at the sample rank the model equals the sample
    covariance. In factor form the optimizer's solve costs O(N K^2) rather than O(N^3).
    """
    if n_factors < 1:
        raise ValueError(f"n_factors must be >= 1, got {n_factors!r}")
    arr = _clean_returns(returns, nan_policy)
    t, n = arr.shape
    xc = (arr - arr.mean(axis=0)) / math.sqrt(t)
    _, sv, vt = np.linalg.svd(xc, full_matrices=False)
    k = min(n_factors, t - 1, n, sv.size)
    loadings = math.sqrt(periods_per_year) * (vt[:k].T * sv[:k])
    total = periods_per_year * (xc * xc).sum(axis=0)
    specific = np.clip(total - (loadings * loadings).sum(axis=1), 0.0, None)
    return FactorCovariance(loadings, specific)


@dataclass(frozen=True, eq=False)
class FactorCovariance:
    """Covariance in factor form ``Sigma = B B' + diag(specific_var)``, annualised decimal units.

    ``loadings`` ``B`` is ``(N, K)`` with the factor covariance already folded in (for loadings
    ``X`` on factors with covariance ``F``, pass ``X @ cholesky(F)``); ``specific_var`` is the
    ``(N,)`` idiosyncratic variance per asset (>= 0). The optimizer keeps this structure, which
    makes each solve cost O(N K^2) instead of O(N^3) for a dense matrix.
    """

    loadings: np.ndarray
    specific_var: np.ndarray

    def __post_init__(self) -> None:
        b = np.asarray(self.loadings, dtype=np.float64)
        d = np.asarray(self.specific_var, dtype=np.float64)
        if b.ndim != 2 or d.ndim != 1 or b.shape[0] != d.shape[0]:
            raise ValueError(f"loadings must be (N, K) and specific_var (N,), got {b.shape} and {d.shape}")
        if not (np.isfinite(b).all() and np.isfinite(d).all()):
            raise ValueError("loadings and specific_var must be finite")
        if (d < 0).any():
            raise ValueError("specific_var must be >= 0")
        object.__setattr__(self, "loadings", b)
        object.__setattr__(self, "specific_var", d)

    @property
    def n_assets(self) -> int:
        """Number of assets ``N``."""
        return int(self.loadings.shape[0])

    @property
    def n_factors(self) -> int:
        """Number of factor columns ``K``."""
        return int(self.loadings.shape[1])

    def matrix(self) -> np.ndarray:
        """The dense ``(N, N)`` covariance ``B B' + diag(specific_var)``."""
        return self.loadings @ self.loadings.T + np.diag(self.specific_var)

    def matvec(self, w: np.ndarray) -> np.ndarray:
        """``Sigma @ w`` without forming ``Sigma`` (O(N K))."""
        return self.loadings @ (self.loadings.T @ w) + self.specific_var * w
