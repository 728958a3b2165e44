"""Circuit breakers (seed 000 §7.5), drawdown adaptation and the recovery protocol (§7.6).

The breaker is a small state machine persisted as one table row per session (``BreakerState.to_row``).
:func:`step` is the pure transition: it takes the state after session ``t-1`` and the risk observed at the
close of session ``t`` (:class:`RiskObservation`: 1-day 95% VaR as a positive loss fraction of NAV, the book's
annualised vol, drawdown from peak NAV as a fraction) and returns the state that governs sizing from there on.

Triggers (``target = vol_target_ann``, all comparisons strict unless noted):

* **Freeze trigger** = Tier 3 (``drawdown > max_drawdown`` and ``vol_ann > tier3_vol_multiple * target``) or the
  kill switch (``drawdown >= kill_drawdown``, regardless of vol).
* **Tier 2** = ``var > tier2_var_multiple * var_limit`` or ``vol_ann > tier2_vol_multiple * target``.
* **Tier 1** = ``var > var_limit``.
* **Calm** = ``vol_ann < recovery_vol_multiple * target`` (vol at or above it is agitated).

Transitions:

* Any status: a freeze trigger -> FREEZE with ``cooldown_remaining = cooldown_sessions`` (in FREEZE this
  restarts the cooldown; the kill switch also restarts it, so the book stays frozen while the drawdown is at or
  beyond ``kill_drawdown`` -- leaving then needs the drawdown to come back, e.g. an operator re-basing the peak).
* FREEZE without a trigger: ``cooldown_remaining`` drops by one per session; once it is 0 the state moves to
  RECOVERY step 0 in a calm session, else stays FREEZE. The trigger session has ``cooldown_remaining =
  cooldown_sessions``, so a freeze lasts at least ``cooldown_sessions`` sessions (10 by default): the first
  session that can return a non-FREEZE state is the ``cooldown_sessions``-th one after the trigger.
* RECOVERY without a trigger: a calm session adds one to ``sessions_in_step``; when it reaches
  ``recovery_step_sessions`` the step advances by exactly one (20% -> 40% -> ... -> 100%) and the counter
  restarts; an agitated session resets the counter to 0 (no advance, no step back). Completing the last step
  (100%) returns to the Tier 0-2 classification below. Step 0 starts with a counter of 0 in the session that
  leaves FREEZE, so each step lasts at least ``recovery_step_sessions`` sessions and no path skips a phase.
  Tier 1/2 keep being evaluated during RECOVERY (``tier`` records them) and sizing is
  ``min(recovery_steps[step], tier sizing)``; they never move the state out of RECOVERY.
* NORMAL / SCALE / DEFENSIVE: Tier 2 -> DEFENSIVE, else Tier 1 -> SCALE, else NORMAL (no hysteresis).

Sizing (:func:`sizing_multiplier`, a multiplier of the target weights in [0, 1]): NORMAL 1, SCALE
``var_limit / var``, DEFENSIVE ``defensive_sizing``, FREEZE 0 and no new risk (:func:`blocks_new_risk`),
RECOVERY as above. :func:`drawdown_multiplier` is a separate, continuous drawdown adaptation.

Reason codes in ``last_trigger``: ``TIER1_VAR``, ``TIER2_VAR``, ``TIER2_VOL``, ``TIER2_VAR_VOL``,
``TIER3_DD_VOL``, ``KILL_DRAWDOWN`` ("" in NORMAL). FREEZE and RECOVERY keep the freeze trigger's code.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _count(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class BreakerParams:
    """Thresholds of the breakers and the recovery protocol.

    ``var_limit``: 1-day 95% VaR limit, loss fraction of NAV. ``vol_target_ann``: the book's annualised
    volatility target (decimal, 0.10 = 10%/yr); the ``*_vol_multiple`` fields are multiples of it.
    ``max_drawdown`` / ``kill_drawdown``: fractions of peak NAV. ``defensive_sizing``: Tier-2 sizing multiplier.
    ``cooldown_sessions``: minimum sessions in FREEZE. ``recovery_steps``: sizing of the recovery phases,
    strictly increasing, ending at 1.0. ``recovery_step_sessions``: consecutive calm sessions a phase needs
    before advancing. ``dd_decay``: rate k of :func:`drawdown_multiplier` (dimensionless, per ``max_drawdown``
    of drawdown); ``None`` means ``ln(1 / defensive_sizing)`` so the multiplier is ``defensive_sizing`` at
    ``max_drawdown``.
    """

    var_limit: float = 0.04
    tier2_var_multiple: float = 1.5
    vol_target_ann: float = 0.10
    tier2_vol_multiple: float = 2.0
    max_drawdown: float = 0.18
    kill_drawdown: float = 0.25
    tier3_vol_multiple: float = 1.0
    defensive_sizing: float = 0.25
    cooldown_sessions: int = 10
    recovery_steps: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    recovery_step_sessions: int = 5
    recovery_vol_multiple: float = 1.5
    dd_decay: float | None = None

    def __post_init__(self) -> None:
        _positive("var_limit", self.var_limit)
        _positive("tier2_var_multiple", self.tier2_var_multiple)
        if self.tier2_var_multiple < 1:
            raise ValueError(f"tier2_var_multiple must be >= 1, got {self.tier2_var_multiple!r}")
        _positive("vol_target_ann", self.vol_target_ann)
        _positive("tier2_vol_multiple", self.tier2_vol_multiple)
        _positive("tier3_vol_multiple", self.tier3_vol_multiple)
        _positive("recovery_vol_multiple", self.recovery_vol_multiple)
        _positive("max_drawdown", self.max_drawdown)
        _positive("kill_drawdown", self.kill_drawdown)
        if self.max_drawdown >= 1:
            raise ValueError(f"max_drawdown must be < 1, got {self.max_drawdown!r}")
        if not self.max_drawdown <= self.kill_drawdown <= 1:
            raise ValueError(f"kill_drawdown must be in [max_drawdown, 1], got {self.kill_drawdown!r}")
        _positive("defensive_sizing", self.defensive_sizing)
        if self.defensive_sizing >= 1:
            raise ValueError(f"defensive_sizing must be < 1, got {self.defensive_sizing!r}")
        _count("cooldown_sessions", self.cooldown_sessions, 1)
        _count("recovery_step_sessions", self.recovery_step_sessions, 1)
        steps = tuple(float(s) for s in self.recovery_steps)
        if not steps:
            raise ValueError("recovery_steps must not be empty")
        if any(not (0 < s <= 1) for s in steps) or any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError(f"recovery_steps must be strictly increasing in (0, 1], got {self.recovery_steps!r}")
        if steps[-1] != 1.0:
            raise ValueError(f"recovery_steps must end at 1.0, got {self.recovery_steps!r}")
        object.__setattr__(self, "recovery_steps", steps)  # accept lists from YAML
        if self.dd_decay is not None:
            _positive("dd_decay", self.dd_decay)

    @property
    def decay(self) -> float:
        """The effective drawdown-adaptation rate k (``dd_decay`` or ``ln(1 / defensive_sizing)``)."""
        return self.dd_decay if self.dd_decay is not None else math.log(1.0 / self.defensive_sizing)


class Status(StrEnum):
    """Breaker status: NORMAL, SCALE (Tier 1), DEFENSIVE (Tier 2), FREEZE (Tier 3), RECOVERY."""

    NORMAL = "NORMAL"
    SCALE = "SCALE"
    DEFENSIVE = "DEFENSIVE"
    FREEZE = "FREEZE"
    RECOVERY = "RECOVERY"


@dataclass(frozen=True)
class RiskObservation:
    """Risk of the book at a session's close.

    ``var``: 1-day 95% VaR, positive loss fraction of NAV. ``vol_ann``: realised or ex-ante annualised vol
    (decimal). ``drawdown``: fraction below peak NAV in [0, 1]. Non-finite values are rejected: a missing risk
    number must be handled by the caller, not read as calm.
    """

    var: float
    vol_ann: float
    drawdown: float

    def __post_init__(self) -> None:
        for name in ("var", "vol_ann", "drawdown"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"{name} must be a real number, got {value!r}")
            value = float(value)  # numpy scalars become plain floats
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
            object.__setattr__(self, name, value)
        if self.drawdown > 1:
            raise ValueError(f"drawdown must be <= 1, got {self.drawdown!r}")


_ROW_TYPES: dict[str, type] = {
    "status": str,
    "tier": int,
    "cooldown_remaining": int,
    "recovery_step": int,
    "sessions_in_step": int,
    "sessions_in_status": int,
    "last_trigger": str,
}


@dataclass(frozen=True)
class BreakerState:
    """The breaker after a session. ``tier`` 0-3 is the highest tier in force (3 exactly in FREEZE);
    ``recovery_step`` indexes ``recovery_steps`` (-1 unless RECOVERY); ``sessions_in_step`` counts calm
    sessions towards the next step; ``sessions_in_status`` counts consecutive sessions with this status
    (including this one); ``last_trigger`` is a reason code or "".
    """

    status: Status = Status.NORMAL
    tier: int = 0
    cooldown_remaining: int = 0
    recovery_step: int = -1
    sessions_in_step: int = 0
    sessions_in_status: int = 0
    last_trigger: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))
        for name in ("tier", "cooldown_remaining", "recovery_step", "sessions_in_step", "sessions_in_status"):
            _count(name, getattr(self, name), -1 if name == "recovery_step" else 0)
        if self.tier > 3:
            raise ValueError(f"tier must be in 0..3, got {self.tier}")
        frozen = self.status is Status.FREEZE
        recovering = self.status is Status.RECOVERY
        if frozen != (self.tier == 3):
            raise ValueError(f"tier 3 goes with FREEZE and only with it, got {self.status} tier {self.tier}")
        if recovering != (self.recovery_step >= 0):
            raise ValueError(f"recovery_step must be >= 0 exactly in RECOVERY, got {self.recovery_step}")
        if not frozen and self.cooldown_remaining:
            raise ValueError("cooldown_remaining must be 0 outside FREEZE")
        if not recovering and self.sessions_in_step:
            raise ValueError("sessions_in_step must be 0 outside RECOVERY")

    @classmethod
    def initial(cls) -> BreakerState:
        """NORMAL, no session seen yet."""
        return cls()

    def to_row(self) -> dict[str, str | int]:
        """Plain str/int values for a table row."""
        return {name: kind(getattr(self, name)) for name, kind in _ROW_TYPES.items()}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> BreakerState:
        """Inverse of :meth:`to_row`; extra keys (e.g. a date column) are ignored."""
        missing = [name for name in _ROW_TYPES if name not in row]
        if missing:
            raise ValueError(f"breaker row lacks {missing}")
        values: dict[str, Any] = {}
        for name, kind in _ROW_TYPES.items():
            value = row[name]
            if kind is int:
                if isinstance(value, float | np.floating) and not float(value).is_integer():
                    raise ValueError(f"{name} must be integral, got {value!r}")
                value = int(value)
            else:
                value = "" if value is None else str(value)
            values[name] = value
        values["status"] = Status(values["status"])
        return cls(**values)


def freeze_trigger(obs: RiskObservation, params: BreakerParams) -> str:
    """``KILL_DRAWDOWN``, ``TIER3_DD_VOL`` or "" (no freeze trigger)."""
    if obs.drawdown >= params.kill_drawdown:
        return "KILL_DRAWDOWN"
    if obs.drawdown > params.max_drawdown and obs.vol_ann > params.tier3_vol_multiple * params.vol_target_ann:
        return "TIER3_DD_VOL"
    return ""


def tier_of(obs: RiskObservation, params: BreakerParams) -> tuple[int, str]:
    """The Tier 0-2 classification of ``obs`` and its reason code ("" for tier 0)."""
    by_var = obs.var > params.tier2_var_multiple * params.var_limit
    by_vol = obs.vol_ann > params.tier2_vol_multiple * params.vol_target_ann
    if by_var or by_vol:
        return 2, "TIER2_VAR_VOL" if by_var and by_vol else ("TIER2_VAR" if by_var else "TIER2_VOL")
    if obs.var > params.var_limit:
        return 1, "TIER1_VAR"
    return 0, ""


def is_calm(obs: RiskObservation, params: BreakerParams) -> bool:
    """Vol strictly below ``recovery_vol_multiple * vol_target_ann``."""
    return obs.vol_ann < params.recovery_vol_multiple * params.vol_target_ann


_TIER_STATUS = {0: Status.NORMAL, 1: Status.SCALE, 2: Status.DEFENSIVE}


def _moved(state: BreakerState, status: Status, **kw: Any) -> BreakerState:
    """A new state with ``status``; ``sessions_in_status`` continues or restarts at 1."""
    same = status is state.status
    return BreakerState(status=status, sessions_in_status=state.sessions_in_status + 1 if same else 1, **kw)


def step(state: BreakerState, obs: RiskObservation, params: BreakerParams) -> BreakerState:
    """The breaker after one more session (see the module docstring for the semantics)."""
    if state.recovery_step >= len(params.recovery_steps):
        raise ValueError(f"recovery_step {state.recovery_step} out of range for {params.recovery_steps}")
    reason = freeze_trigger(obs, params)
    if reason:
        return _moved(state, Status.FREEZE, tier=3, cooldown_remaining=params.cooldown_sessions, last_trigger=reason)
    tier, tier_reason = tier_of(obs, params)
    calm = is_calm(obs, params)
    if state.status is Status.FREEZE:
        remaining = max(state.cooldown_remaining - 1, 0)
        if remaining > 0 or not calm:
            return _moved(state, Status.FREEZE, tier=3, cooldown_remaining=remaining, last_trigger=state.last_trigger)
        return _moved(state, Status.RECOVERY, tier=tier, recovery_step=0, last_trigger=state.last_trigger)
    if state.status is Status.RECOVERY:
        count = state.sessions_in_step + 1 if calm else 0
        stage = state.recovery_step
        if count >= params.recovery_step_sessions:
            stage, count = stage + 1, 0
        if stage < len(params.recovery_steps):
            return _moved(
                state,
                Status.RECOVERY,
                tier=tier,
                recovery_step=stage,
                sessions_in_step=count,
                last_trigger=state.last_trigger,
            )
    return _moved(state, _TIER_STATUS[tier], tier=tier, last_trigger=tier_reason)


def _tier_sizing(tier: int, obs: RiskObservation, params: BreakerParams) -> float:
    if tier == 0:
        return 1.0
    if tier == 1:
        return min(1.0, params.var_limit / obs.var) if obs.var > 0 else 1.0
    if tier == 2:
        return params.defensive_sizing
    return 0.0


def sizing_multiplier(state: BreakerState, obs: RiskObservation, params: BreakerParams) -> float:
    """Multiplier in [0, 1] of the target weights: NORMAL 1, SCALE ``min(1, var_limit / var)``, DEFENSIVE
    ``defensive_sizing``, FREEZE 0, RECOVERY ``min(recovery_steps[step], sizing of state.tier)``.

    ``obs`` should be the observation passed to the :func:`step` that produced ``state`` (SCALE uses its VaR).
    """
    tier_sizing = _tier_sizing(state.tier, obs, params)
    if state.status is Status.RECOVERY:
        return min(params.recovery_steps[state.recovery_step], tier_sizing)
    return tier_sizing


def blocks_new_risk(state: BreakerState) -> bool:
    """True in FREEZE: no position's absolute weight may increase (reductions stay allowed)."""
    return state.status is Status.FREEZE


def drawdown_multiplier(drawdown: float, params: BreakerParams | None = None) -> float:
    """Continuous drawdown adaptation ``exp(-k * drawdown / max_drawdown)`` with ``k = params.decay``.

    ``drawdown`` is a fraction of peak NAV in [0, 1]. The result is in (0, 1]: 1 at zero drawdown, strictly
    decreasing, and with the default ``k = ln(1 / defensive_sizing) = ln 4`` it is 0.25 at the 18% max drawdown
    (0.146 at the 25% kill drawdown).
    """
    p = params if params is not None else BreakerParams()
    dd = float(drawdown)
    if not (math.isfinite(dd) and 0 <= dd <= 1):
        raise ValueError(f"drawdown must be in [0, 1], got {drawdown!r}")
    return math.exp(-p.decay * dd / p.max_drawdown)


def drawdown(nav: np.ndarray) -> np.ndarray:
    """Running drawdown ``1 - nav / cummax(nav)`` (fraction >= 0) of a positive NAV series."""
    x = np.asarray(nav, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"nav must be 1-D, got shape {x.shape}")
    if x.size and not (np.all(np.isfinite(x)) and np.all(x > 0)):
        raise ValueError("nav must be finite and > 0")
    if not x.size:
        return x.copy()
    return 1.0 - x / np.maximum.accumulate(x)
