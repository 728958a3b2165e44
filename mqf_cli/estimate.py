"""Rough run times, said up front by ``mqf run`` and ``mqf backfill`` before they start.

A linear model per job: a fixed cost (Dagster's run start, the step processes' imports) plus a cost per
session and symbol. The rates were measured by ``bench/first_run.py`` on this project's reference machine
(2 cores, the simulator, 500 symbols; ``bench/results/first_run.json``); a slower or busier machine takes
longer, and the numbers are said as estimates ("~").
"""

from __future__ import annotations

#: job -> (fixed seconds, seconds per session and symbol)
RATES: dict[str, tuple[float, float]] = {
    "warm_up_job": (12.0, 1.3e-4),
    "daily_cycle_job": (30.0, 1.6e-3),
    "catalog_job": (8.0, 0.0),
}


def estimate_seconds(job: str, sessions: int, symbols: int) -> float:
    """Estimated wall seconds of ``job`` over ``sessions`` sessions of ``symbols`` symbols (0 for a job
    without a model)."""
    fixed, per = RATES.get(job, (0.0, 0.0))
    return fixed + per * sessions * symbols
