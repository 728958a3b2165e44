"""The shared tail of the score-based price agents: a score ``z`` becomes signal, mu and confidence.

Used by :mod:`.mean_reversion`, :mod:`.risk`, :mod:`.trend` and :mod:`.volatility`.
"""

from __future__ import annotations

import polars as pl

from mqf_pipeline.agents.evaluation import confidence


def tanh_forecast(frame: pl.DataFrame, ic: float, factors: tuple[pl.Expr, ...], **extra: pl.Expr) -> pl.DataFrame:
    """``frame`` (holding ``z``, a dimensionless score, and ``sigma``, the return sd over the horizon, decimal)
    with ``signal = tanh(z)`` in [-1, 1], then ``mu = ic * z * sigma`` (Grinold: expected return over the
    horizon, decimal) and ``confidence = prod(factors) * (1/2 + |signal|/2)`` in [0, 1].

    ``ic``: information coefficient over the horizon; ``factors``: data-trust expressions in [0, 1];
    ``extra``: more columns (e.g. ``reason_codes``) computed alongside mu and confidence.
    """
    return frame.with_columns(signal=pl.col("z").tanh()).with_columns(
        mu=ic * pl.col("z") * pl.col("sigma"),
        confidence=confidence(pl.col("signal"), *factors),
        **extra,
    )
