"""Rough run times, said up front by ``mqf run`` and ``mqf backfill`` before they start.

A linear model per job: a fixed cost (Dagster's run start, the step processes' imports) plus a cost per
session and symbol. The rates were measured by ``bench/first_run.py`` on this project's reference machine
(2 cores, the simulator, 500 symbols; ``bench/results/first_run.json``); a slower or busier machine takes
longer, and the numbers are said as estimates ("~").
"""

from __future__ import annotations

#: job -> (fixed seconds, seconds per session and symbol)
RATES: dict[str, tuple[float, float]] = {
    # bench/first_run.py, 2026-12-06: warm-up 1,240 sessions 81.6 s; daily 59 sessions 166.8 s, 1 session 21.4 s
    "warm_up_job": (8.0, 1.2e-4),
    "daily_cycle_job": (19.0, 5.0e-3),
    "catalog_job": (4.0, 0.0),
}


def estimate_seconds(job: str, sessions: int, symbols: int) -> float:
    """Estimated wall seconds of ``job`` over ``sessions`` sessions of ``symbols`` symbols (0 for a job
    without a model)."""
    fixed, per = RATES.get(job, (0.0, 0.0))
    return fixed + per * sessions * symbols
