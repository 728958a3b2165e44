"""A multi-armed bandit over data providers, and the per-provider metrics it learns from.

Every provider call (one attempt) yields a reward in [0, 1]:
``0`` for a failure, else ``w_success + w_latency * s / (s + latency_ms) + w_quality * quality``
with ``s = latency_scale_ms`` and weights summing to 1. ``quality`` is the fraction of the requested
symbol-sessions returned with finite positive prices (1.0 where it cannot be measured).

Arms are (provider, capability). Thompson sampling keeps a Beta(alpha, beta) posterior per arm,
updated with fractional rewards (alpha += r, beta += 1 - r) after an optional discount towards
the prior; UCB1 uses the mean reward plus ``exploration * sqrt(2 ln N / n)``. Sampling uses a
seeded numpy generator, so the order is deterministic for a given seed and history.
Latencies are milliseconds; ``updated_at`` is a UTC timestamp.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

Algorithm = Literal["thompson", "ucb1"]

METRICS_SCHEMA: dict[str, pl.DataType] = {
    "provider": pl.String(),
    "capability": pl.String(),
    "requests": pl.Int64(),
    "successes": pl.Int64(),
    "failures": pl.Int64(),
    "retries": pl.Int64(),
    "rate_limited": pl.Int64(),
    "timeouts": pl.Int64(),
    "rows": pl.Int64(),
    "mean_latency_ms": pl.Float64(),
    "mean_quality": pl.Float64(),
    "bandit_alpha": pl.Float64(),
    "bandit_beta": pl.Float64(),
    "mean_reward": pl.Float64(),
    "updated_at": pl.Datetime("us", "UTC"),
}


def utc_now() -> dt.datetime:
    """The current time in UTC."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Outcome:
    """The result of one provider call: ``status`` is ok | error | rate_limited | timeout."""

    status: str
    latency_ms: float
    quality: float = 1.0
    rows: int = 0
    retries: int = 0

    @property
    def success(self) -> bool:
        return self.status == "ok"


@dataclass
class ArmStats:
    """Counters and running means of one (provider, capability) arm."""

    provider: str
    capability: str
    alpha: float
    beta: float
    requests: int = 0
    successes: int = 0
    failures: int = 0
    retries: int = 0
    rate_limited: int = 0
    timeouts: int = 0
    rows: int = 0
    mean_latency_ms: float = 0.0
    mean_quality: float = 0.0
    mean_reward: float = 0.0
    updated_at: dt.datetime | None = None


class ProviderBandit:
    """Learns which provider serves a capability best; see the module docstring for the reward."""

    def __init__(
        self,
        *,
        algorithm: Algorithm = "thompson",
        exploration: float = 1.0,
        discount: float = 1.0,
        prior: tuple[float, float] = (1.0, 1.0),
        latency_scale_ms: float = 1000.0,
        weights: tuple[float, float, float] = (0.4, 0.2, 0.4),
        rng_seed: int = 0,
        now: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        if exploration <= 0:
            raise ValueError(f"bandit exploration must be positive, got {exploration}")
        if not 0 < discount <= 1:
            raise ValueError(f"bandit discount must be in (0, 1], got {discount}")
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"bandit reward weights must be non-negative and not all zero, got {weights}")
        total = sum(weights)
        self.weights = tuple(w / total for w in weights)
        self.algorithm = algorithm
        self.exploration = exploration
        self.discount = discount
        self.prior = prior
        self.latency_scale_ms = latency_scale_ms
        self._rng = np.random.default_rng(rng_seed)
        self._now = now
        self._arms: dict[tuple[str, str], ArmStats] = {}

    def arm(self, provider: str, capability: str) -> ArmStats:
        """The stats of one arm (created at the prior if unseen)."""
        key = (provider, capability)
        if key not in self._arms:
            self._arms[key] = ArmStats(provider, capability, alpha=self.prior[0], beta=self.prior[1])
        return self._arms[key]

    def reward(self, outcome: Outcome) -> float:
        """Reward in [0, 1] for one call (see module docstring)."""
        if not outcome.success:
            return 0.0
        w_ok, w_lat, w_q = self.weights
        latency_score = self.latency_scale_ms / (self.latency_scale_ms + max(outcome.latency_ms, 0.0))
        quality = min(max(outcome.quality, 0.0), 1.0) if math.isfinite(outcome.quality) else 0.0
        return w_ok + w_lat * latency_score + w_q * quality

    def record(self, provider: str, capability: str, outcome: Outcome) -> float:
        """Update counters and the posterior with one call's outcome; returns its reward."""
        a = self.arm(provider, capability)
        r = self.reward(outcome)
        a.requests += 1
        a.retries += outcome.retries
        a.rows += outcome.rows
        if outcome.success:
            a.successes += 1
            a.mean_quality += (outcome.quality - a.mean_quality) / a.successes
        else:
            a.failures += 1
            a.rate_limited += outcome.status == "rate_limited"
            a.timeouts += outcome.status == "timeout"
        a.mean_latency_ms += (outcome.latency_ms - a.mean_latency_ms) / a.requests
        a.mean_reward += (r - a.mean_reward) / a.requests
        p_a, p_b = self.prior
        a.alpha = p_a + self.discount * (a.alpha - p_a) + r
        a.beta = p_b + self.discount * (a.beta - p_b) + (1.0 - r)
        a.updated_at = self._now()
        return r

    def add_retries(self, provider: str, capability: str, n: int) -> None:
        """Count ``n`` retries that did not come with an outcome of their own."""
        self.arm(provider, capability).retries += n

    def scores(self, capability: str, candidates: Sequence[str]) -> list[float]:
        """One score per candidate (higher is better): a posterior draw or a UCB1 bound."""
        arms = [self.arm(p, capability) for p in candidates]
        if self.algorithm == "thompson":
            p_a, p_b = self.prior
            e = self.exploration
            return [float(self._rng.beta(p_a + (a.alpha - p_a) / e, p_b + (a.beta - p_b) / e)) for a in arms]
        total = sum(a.requests for a in arms)
        out: list[float] = []
        for a in arms:
            if a.requests == 0:
                out.append(math.inf)
            else:
                out.append(a.mean_reward + self.exploration * math.sqrt(2.0 * math.log(max(total, 1)) / a.requests))
        return out

    def order(self, capability: str, candidates: Sequence[str]) -> list[str]:
        """Candidates best first; ties keep the given (priority) order."""
        s = self.scores(capability, candidates)
        idx = sorted(range(len(candidates)), key=lambda i: (-s[i], i))
        return [candidates[i] for i in idx]

    def to_frame(self) -> pl.DataFrame:
        """All arms as a frame with :data:`METRICS_SCHEMA`, sorted by capability, provider."""
        rows = [
            {
                "provider": a.provider,
                "capability": a.capability,
                "requests": a.requests,
                "successes": a.successes,
                "failures": a.failures,
                "retries": a.retries,
                "rate_limited": a.rate_limited,
                "timeouts": a.timeouts,
                "rows": a.rows,
                "mean_latency_ms": a.mean_latency_ms,
                "mean_quality": a.mean_quality,
                "bandit_alpha": a.alpha,
                "bandit_beta": a.beta,
                "mean_reward": a.mean_reward,
                "updated_at": a.updated_at,
            }
            for a in self._arms.values()
        ]
        return pl.DataFrame(rows, schema=METRICS_SCHEMA).sort("capability", "provider")

    def load_frame(self, frame: pl.DataFrame) -> None:
        """Replace the state of the arms in ``frame`` (as written by :meth:`to_frame`)."""
        missing = [c for c in METRICS_SCHEMA if c not in frame.columns]
        if missing:
            raise ValueError(f"provider_metrics frame lacks column(s) {missing}")
        frame = frame.select([pl.col(c).cast(t) for c, t in METRICS_SCHEMA.items()])
        for row in frame.iter_rows(named=True):
            self._arms[(row["provider"], row["capability"])] = ArmStats(
                provider=row["provider"],
                capability=row["capability"],
                alpha=row["bandit_alpha"],
                beta=row["bandit_beta"],
                requests=row["requests"],
                successes=row["successes"],
                failures=row["failures"],
                retries=row["retries"],
                rate_limited=row["rate_limited"],
                timeouts=row["timeouts"],
                rows=row["rows"],
                mean_latency_ms=row["mean_latency_ms"],
                mean_quality=row["mean_quality"],
                mean_reward=row["mean_reward"],
                updated_at=row["updated_at"],
            )
