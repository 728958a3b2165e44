"""Jobs and schedules: what runs when. Nothing here computes."""

from jobs.asset_jobs import (
    catalog_job,
    daily_attribution_job,
    daily_cycle_job,
    market_data_job,
    research_cycle_job,
    slippage_refit_job,
    warm_up_job,
)
from jobs.child_orders import child_orders_job

__all__ = [
    "catalog_job",
    "child_orders_job",
    "daily_attribution_job",
    "daily_cycle_job",
    "market_data_job",
    "research_cycle_job",
    "slippage_refit_job",
    "warm_up_job",
]
