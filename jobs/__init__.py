"""Jobs and schedules: what runs when. Nothing here computes."""

from jobs.asset_jobs import catalog_job, daily_cycle_job, market_data_job, research_cycle_job

__all__ = ["catalog_job", "daily_cycle_job", "market_data_job", "research_cycle_job"]
