"""Parameters of online agent-weight learning (seed 002 Part 2), validated on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class WeightLearningParams:
    """Settings of :func:`~mqf_pipeline.learning.learner.learn_weights` (units in brackets).

    Weights and windows (seed 002 §2.3-2.4): ``eta`` EG learning rate on rewards in [0, 1];
    ``floor``/``cap`` the capped simplex {floor <= w_i <= cap, sum w = 1} (feasible for
    ceil(1 / cap) <= N <= floor(1 / floor) agents: 3..20 with 0.05/0.40); ``lookback`` [sessions]
    the rolling window of the statistics; ``half_life`` [sessions] their exponential decay;
    ``periods_per_year`` [sessions] the Sharpe annualisation (sqrt(252)).

    Reward: ``risk_aversion`` is lambda in r = R - lambda * Risk (R the session's realized return of
    the agent's signal portfolio, Risk its decayed std over the lookback, both decimal per session).

    Warm-up: ``min_sessions`` outcome sessions before learned weights replace the static ones.

    Thompson sampling: ``ts_discount`` gamma per outcome session (counts of every regime are multiplied
    by it, so a regime not seen for 1 / (1 - gamma) sessions has faded); ``ts_prior`` the Beta(alpha0,
    beta0) prior (both >= 1); ``ts_min_trials`` discounted trials per agent (mean over agents) the
    current regime needs before its posterior is used; ``ts_share_stable`` the TS share of the blend
    when the regime did not change within the lookback (after a change the share is 1);
    ``quadrature_nodes`` Gauss-Legendre nodes for P(agent is best).

    ``ts_share_stable`` = 1 and ``ts_discount`` = 0.99 were chosen on seeds 0-9 of ``bench/weights.py``
    (grid {0, 0.5, 1} x {0.98, 0.99, 0.995}); so TS is used whenever the current regime's posterior holds
    ``ts_min_trials``, and EG (eta 0.1 moves at most 0.1 in log-weight per session) when it does not.
    """

    eta: float = 0.1
    floor: float = 0.05
    cap: float = 0.40
    lookback: int = 21
    half_life: float = 10.0
    periods_per_year: int = 252
    risk_aversion: float = 0.1
    min_sessions: int = 21
    ts_discount: float = 0.99
    ts_prior: tuple[float, float] = (1.0, 1.0)
    ts_min_trials: float = 10.0
    ts_share_stable: float = 1.0
    quadrature_nodes: int = 256

    def __post_init__(self) -> None:
        checks = {
            "eta": self.eta > 0,
            "floor": 0 <= self.floor < 1,
            "cap": self.floor < self.cap <= 1,
            "lookback": self.lookback >= 2,
            "half_life": self.half_life > 0,
            "periods_per_year": self.periods_per_year >= 1,
            "risk_aversion": self.risk_aversion >= 0,
            "min_sessions": self.min_sessions >= 1,
            "ts_discount": 0 < self.ts_discount <= 1,
            "ts_prior": len(self.ts_prior) == 2 and all(p >= 1 for p in self.ts_prior),
            "ts_min_trials": self.ts_min_trials >= 0,
            "ts_share_stable": 0 <= self.ts_share_stable <= 1,
            "quadrature_nodes": self.quadrature_nodes >= 16,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            finite = all(math.isfinite(v) for v in (value if isinstance(value, tuple) else (value,)))
            if not (ok and finite):
                raise ValueError(f"WeightLearningParams: invalid {name}={value!r}")

    @property
    def decay(self) -> float:
        """Per-session decay factor of the rolling statistics: 0.5 ** (1 / half_life)."""
        return 0.5 ** (1.0 / self.half_life)


__all__ = ["WeightLearningParams"]
