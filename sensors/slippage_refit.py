"""Slippage refit on demand: once enough fills arrived since the model was last refitted, refit it.

The daily cycle refits the model at every session it runs (group ``slippage``); fills booked by runs that do
not (an execution-only backfill, the intraday child-order step) leave the stored model behind. This sensor
counts the fills stored in ``execution_feedback`` after the latest refit and, at
``execution.slippage_model.refit_min_new_fills``, requests ``slippage_refit_job`` for the latest session
with fills (one request per session: the run key).
"""

import dagster as dg

from jobs.asset_jobs import slippage_refit_job
from mqf_pipeline.storage.lake import Lake
from resources import SettingsResource


def new_fills_since_refit(lake: Lake) -> tuple[int, str | None, str | None]:
    """Fills stored after the latest refit, the latest session with fills and the latest refit's session."""
    fills = lake.partitions("execution_feedback")
    refits = lake.partitions("slippage_model_coeffs")
    last_refit = refits[-1] if refits else None
    newer = [p for p in fills if last_refit is None or p > last_refit]
    rows = sum(lake.footer(lake.path("execution_feedback", p)).num_rows for p in newer)
    return rows, (fills[-1] if fills else None), last_refit


@dg.sensor(
    job=slippage_refit_job,
    name="slippage_refit_sensor",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a slippage model refit (slippage_refit_job) once execution.slippage_model."
    "refit_min_new_fills fills were stored after the latest refit; the daily cycle refits at every session itself.",
)
def slippage_refit_sensor(context: dg.SensorEvaluationContext, settings: SettingsResource):
    """One RunRequest per session with enough new fills (run key ``slippage-refit-<session>``)."""
    cfg = settings.get()
    new, latest, last_refit = new_fills_since_refit(Lake(cfg.lake_root))
    needed = cfg.execution.slippage_model.refit_min_new_fills
    if latest is None or new < needed:
        since = f"since the refit of {last_refit}" if last_refit else "and no refit yet"
        return dg.SkipReason(f"{new} new fill(s) {since}; a refit is requested at {needed}")
    return dg.RunRequest(
        run_key=f"slippage-refit-{latest}",
        partition_key=latest,
        tags={"mqf/trigger": f"{new} new fills since {last_refit or 'the first fill'}"},
    )
