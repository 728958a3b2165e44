"""The meta-brain's settings (configs/risk.yaml ``meta_brain`` plus the portfolio limits), validated."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from mqf_pipeline.decisions.sizing import rf_per_period


@dataclass(frozen=True)
class MetaBrainParams:
    """Meta-brain settings (configs/risk.yaml ``meta_brain``; fractions of NAV unless said otherwise).

    ``beta``: disagreement strength on standardised views; ``gamma``: fractional Kelly factor;
    ``risk_free_annual``: decimal per year, compounded over ``periods_per_year`` sessions;
    ``max_position``: max |weight| of one name; ``max_leverage``: max gross sum |w|;
    ``z_entry``: robust z needed (in the position's direction) for a non-zero target;
    ``min_trade``: smallest |weight change| worth an order; ``cost_bps``: round-trip cost (bps) the
    expected excess return over ``cost_horizon_days`` sessions must beat; ``max_marginal_cvar``:
    per-position component CVaR limit; ``cvar_limit``: portfolio 1-day CVaR limit;
    ``stop_atr_multiple``: stop-loss distance in ATRs.
    """

    beta: float = 0.5
    gamma: float = 0.3
    risk_free_annual: float = 0.02
    periods_per_year: int = 252
    max_position: float = 0.10
    max_leverage: float = 1.0
    allow_shorts: bool = False
    z_entry: float = 1.0
    min_trade: float = 0.0025
    cost_bps: float = 10.0
    cost_horizon_days: int = 21
    max_marginal_cvar: float = 0.01
    cvar_limit: float = 0.06
    stop_atr_multiple: float = 2.0

    def __post_init__(self) -> None:
        rules: dict[str, tuple[Callable[[Any], bool], str]] = {
            "beta": (lambda v: v >= 0, ">= 0"),
            "gamma": (lambda v: 0 < v <= 1, "in (0, 1]"),
            "risk_free_annual": (lambda v: 0 <= v < 1, "in [0, 1)"),
            "periods_per_year": (lambda v: v >= 1, ">= 1"),
            "max_position": (lambda v: 0 < v <= 1, "in (0, 1]"),
            "max_leverage": (lambda v: v > 0, "> 0"),
            "z_entry": (lambda v: v >= 0, ">= 0"),
            "min_trade": (lambda v: v >= 0, ">= 0"),
            "cost_bps": (lambda v: v >= 0, ">= 0"),
            "cost_horizon_days": (lambda v: v >= 1, ">= 1"),
            "max_marginal_cvar": (lambda v: v > 0, "> 0"),
            "cvar_limit": (lambda v: v > 0, "> 0"),
            "stop_atr_multiple": (lambda v: v > 0, "> 0"),
        }
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "allow_shorts":
                if not isinstance(value, bool):
                    raise ValueError(f"MetaBrainParams.allow_shorts must be a bool, got {value!r}")
                continue
            want_int = f.name in ("periods_per_year", "cost_horizon_days")
            numeric = isinstance(value, int if want_int else (int, float)) and not isinstance(value, bool)
            ok, text = rules[f.name]
            if not numeric or not math.isfinite(value) or not ok(value):
                kind = "an int" if want_int else "a finite number"
                raise ValueError(f"MetaBrainParams.{f.name} must be {kind} {text}, got {value!r}")

    @property
    def rf_daily(self) -> float:
        """Risk-free return per session (decimal)."""
        return rf_per_period(self.risk_free_annual, self.periods_per_year)
