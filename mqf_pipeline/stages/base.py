"""Which stored partition a session-by-session stage continues from.

The decisions, portfolio and execution stages each carry state from the previous session (risk
state, targets, positions). A stage with nothing stored before a session starts fresh; a stage that
has state stored, but not for the session right before, has a gap and must not guess.
"""

from __future__ import annotations

import datetime as dt

from mqf_pipeline import calendar
from mqf_pipeline.storage.lake import Lake


def previous_partition(
    lake: Lake, table: str, day: dt.date, *, error: type[Exception], what: str, state: str
) -> dt.date | None:
    """The session before ``day`` if ``table`` holds it; None when ``table`` holds nothing before ``day``.

    A gap raises ``error`` naming what to materialize: "<what> for <day> continue(s) <state> of <prev>,
    which is not materialized (latest stored before it: ...)".
    """
    prev = calendar.session_offset(day, -1)
    before = [p for p in lake.partitions(table) if p < day.isoformat()]
    if not before:
        return None
    if before[-1] != prev.isoformat():
        raise error(
            f"{what} for {day} continue {state} of {prev}, which is not materialized (latest stored before it: "
            f"{before[-1]}); materialize {what} from the session after {before[-1]} through this one in order "
            "(one backfill range)"
        )
    return prev
