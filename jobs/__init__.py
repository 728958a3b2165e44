"""Jobs and schedules: what runs when. Nothing here computes."""

from jobs.market_data import catalog_job, market_data_job

__all__ = ["catalog_job", "market_data_job"]
