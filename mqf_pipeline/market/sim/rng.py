"""Random streams that make any date range reproducible.

Every draw comes from a generator keyed by ``(seed, stream, unit)``: ``unit`` is a block of
:data:`BLOCK` sessions (fixed-shape draws), a session (variable-count draws) or a quarter.
Simulating further never changes the draws of earlier units, so extending the end date
leaves earlier output byte-identical.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

#: Sessions per block of fixed-shape draws.
BLOCK = 256


class Stream(IntEnum):
    """Independent random streams (values are part of the seed: never renumber)."""

    UNIVERSE = 0
    REGIME = 1
    MARKET = 2
    FACTORS = 3
    SECTORS = 4
    IDIO = 5
    NEWS = 6
    MACRO = 7
    INTRADAY = 8
    HEADLINES = 9
    FUNDAMENTALS = 10


def generator(seed: int, stream: Stream, unit: int = 0) -> np.random.Generator:
    """The generator of ``stream`` for one block / session / quarter ``unit``."""
    return np.random.default_rng([seed, int(stream), unit])


def unit_t(rng: np.random.Generator, df: float, shape: tuple[int, ...]) -> np.ndarray:
    """Student-t draws with ``df`` degrees of freedom scaled to unit variance (df > 2)."""
    return rng.standard_t(df, size=shape) * np.sqrt((df - 2.0) / df)
