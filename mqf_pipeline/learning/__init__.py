"""Online agent-weight learning (seed 002 Part 2): outcomes, rewards, EG with the capped-simplex KL
projection, discounted Thompson sampling per regime, and the ``agent_weights``/``agent_performance`` rows.

Pure functions over numpy arrays and polars frames; parameters in :class:`WeightLearningParams`.
"""

from mqf_pipeline.learning.learner import PERFORMANCE_SCHEMA, WEIGHT_SCHEMA, agent_performance_rows, learn_weights
from mqf_pipeline.learning.outcomes import OUTCOME_SCHEMA, agent_outcomes, returns_from_bars
from mqf_pipeline.learning.params import WeightLearningParams
from mqf_pipeline.learning.projection import InfeasibleWeightsError, eg_step, kl_project

__all__ = [
    "OUTCOME_SCHEMA",
    "PERFORMANCE_SCHEMA",
    "WEIGHT_SCHEMA",
    "InfeasibleWeightsError",
    "WeightLearningParams",
    "agent_outcomes",
    "agent_performance_rows",
    "eg_step",
    "kl_project",
    "learn_weights",
    "returns_from_bars",
]
