"""Seeded market simulator: a first-class data provider with exported ground truth.

Modules: ``params`` (calibration), ``rng`` (reproducible streams), ``universe`` (static
cross-section), ``engine`` (the path loop; one session's steps in ``engine_session``, its data in
``engine_state``), ``fundamentals`` (quarterly accounts), ``ohlcv`` (bars), ``headlines`` (news
text), ``truth`` (ground-truth frames), ``simulator`` (the API).
"""

from mqf_pipeline.market.sim.params import REGIMES, SECTORS, STYLE_FACTORS, SimulatorParams
from mqf_pipeline.market.sim.simulator import ALPHA_COLUMNS, MarketSimulator
from mqf_pipeline.market.sim.truth import SimulatorTruth

__all__ = [
    "ALPHA_COLUMNS",
    "REGIMES",
    "SECTORS",
    "STYLE_FACTORS",
    "MarketSimulator",
    "SimulatorParams",
    "SimulatorTruth",
]
