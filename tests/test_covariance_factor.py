"""Statistical factor covariance: exact variances, the sample covariance at full rank, planted factors."""

from __future__ import annotations

import numpy as np
import pytest

from mqf_pipeline.portfolio.covariance import statistical_factor_covariance


def test_keeps_every_sample_variance_and_is_the_sample_covariance_at_full_rank():
    """diag(B B' + D) = 252 x sample variance (ddof 0) to 1e-12 relative; K >= rank gives the sample cov."""
    rng = np.random.default_rng(0)
    X = rng.normal(0.0, 0.01, (252, 40))
    sample = np.cov(X.T, ddof=0) * 252
    few = statistical_factor_covariance(X, n_factors=5)
    np.testing.assert_allclose(np.diag(few.matrix()), np.diag(sample), rtol=1e-12)
    assert few.n_factors == 5 and (few.specific_var >= 0).all()
    full = statistical_factor_covariance(X, n_factors=1000)
    assert full.n_factors == 40
    np.testing.assert_allclose(full.matrix(), sample, rtol=1e-10, atol=1e-14)


def test_recovers_a_planted_factor_structure():
    """3 planted factors, 2,000 days x 60 assets: the common covariance within 10% (Frobenius, relative)."""
    rng = np.random.default_rng(1)
    t, n, k = 2000, 60, 3
    B = rng.normal(0.0, 0.01, (n, k))
    X = rng.normal(size=(t, k)) @ B.T + rng.normal(0.0, 0.004, (t, n))
    model = statistical_factor_covariance(X, n_factors=k, periods_per_year=1)
    common = model.loadings @ model.loadings.T
    truth = B @ B.T
    assert np.linalg.norm(common - truth) / np.linalg.norm(truth) < 0.10
    np.testing.assert_allclose(model.specific_var.mean(), 0.004**2, rtol=0.15)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="n_factors must be >= 1"):
        statistical_factor_covariance(np.zeros((10, 3)), n_factors=0)
    with pytest.raises(ValueError, match="inf"):
        statistical_factor_covariance(np.full((10, 3), np.inf))
