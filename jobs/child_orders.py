"""The intraday child-order job: one pass of the child-order op (run every few minutes in market hours)."""

import dagster as dg

from assets.child_orders import work_child_orders


@dg.job(
    description="Work the previous session's TWAP/VWAP/POV/WAIT orders as child orders at the broker during "
    "the session: submit the children due, cancel on the guards. Rerun-safe; nothing for the paper broker.",
    tags={"mqf/kind": "intraday"},
)
def child_orders_job() -> None:
    work_child_orders()
