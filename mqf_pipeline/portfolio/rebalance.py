"""Which rebalance a session gets (seed 002 section 4.5): strategic weekly, tactical daily, emergency on a breach.

The mode is a function of the session and its risk state only, so a rerun of a session makes the same
targets whichever schedule or sensor launched it:

* EMERGENCY when the risk state of the session breaches: circuit breaker DEFENSIVE or FREEZE, or any
  limit of seed 000 section 7.4 breached after scaling (the emergency turnover budget applies);
* STRATEGIC on the last session of its week (Friday, or the session before a Friday holiday): the
  weekly rebalance with the strategic turnover budget (20%);
* TACTICAL otherwise: the daily rebalance with the tighter tactical budget.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping

from mqf_pipeline import calendar

STRATEGIC, TACTICAL, EMERGENCY = "STRATEGIC", "TACTICAL", "EMERGENCY"
BREACH_STATUSES = frozenset({"DEFENSIVE", "FREEZE"})


def is_last_session_of_week(day: dt.date) -> bool:
    """Whether no XNYS session follows ``day`` in its ISO week."""
    nxt = calendar.session_offset(day, 1)
    return nxt.isocalendar()[:2] != day.isocalendar()[:2]


def risk_breaches(risk_row: Mapping[str, object] | None) -> list[str]:
    """Why a risk_state row calls for an emergency rebalance (empty: it does not)."""
    if not risk_row:
        return []
    reasons = []
    if risk_row.get("breaker_status") in BREACH_STATUSES:
        reasons.append(f"breaker {risk_row['breaker_status']}")
    limits = json.loads(str(risk_row.get("limits_json") or "[]"))
    reasons += [f"limit {c['name']} {c['value']:.4f} > {c['limit']:.4f}" for c in limits if c.get("breached")]
    return reasons


def rebalance_mode(day: dt.date, risk_row: Mapping[str, object] | None) -> str:
    """EMERGENCY, STRATEGIC or TACTICAL for session ``day`` (module docstring)."""
    if risk_breaches(risk_row):
        return EMERGENCY
    return STRATEGIC if is_last_session_of_week(day) else TACTICAL
