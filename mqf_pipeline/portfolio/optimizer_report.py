"""Constraint limits, result types and constraint-usage diagnostics of the portfolio optimizer.

Units as in :mod:`mqf_pipeline.portfolio.optimizer`: weights and limits are fractions of NAV, ADV and
NAV share a currency. :class:`OptimizerConstraints` holds the seed 002 §4.2 limits,
:func:`constraint_report` measures weights against them (:class:`ConstraintUsage` per constraint) and
:class:`OptimizationResult` is what :meth:`PortfolioOptimizer.solve` returns.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

STATUSES: tuple[str, ...] = ("optimal", "relaxed", "sequential", "greedy", "hold")
"""Values of :attr:`OptimizationResult.status`, best first."""

CONSTRAINT_NAMES: tuple[str, ...] = ("gross", "long", "short", "sector", "turnover", "liquidity", "single_name")
"""Aggregate constraint names used in reports and in ``constraints_violated``."""

BINDING_RTOL: float = 1e-6
"""A constraint binds when ``value >= limit - max(1e-9, BINDING_RTOL * limit)`` (and limit > 0)."""

_LIMIT_FIELDS = ("gross", "long", "short", "sector", "turnover", "adv_fraction", "single_name")


@dataclass(frozen=True)
class OptimizerConstraints:
    """Limits of seed 002 §4.2 as fractions of NAV, and the risk aversion.

    ``adv_fraction``: ``|w_i| <= adv_fraction * ADV_i / NAV`` (ADV in currency per day).
    ``allow_shorts=False`` adds ``w >= 0`` (the short limit is then moot). ``risk_aversion`` is
    lambda in ``mu'w - lambda w'Sigma w`` with annualised mu and Sigma; 1.0 penalises a 20%-vol
    portfolio by 4%/year of expected return. Limits must be finite and >= 0, lambda finite > 0;
    anything else raises ``ValueError`` naming the field.
    """

    gross: float = 1.0
    long: float = 0.6
    short: float = 0.4
    sector: float = 0.15
    turnover: float = 0.20
    adv_fraction: float = 0.02
    single_name: float = 0.10
    allow_shorts: bool = False
    risk_aversion: float = 1.0

    def __post_init__(self) -> None:
        for name in (*_LIMIT_FIELDS, "risk_aversion"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"OptimizerConstraints.{name} must be a finite number, got {value!r}")
            if value < 0 or (name == "risk_aversion" and value == 0):
                bound = "> 0" if name == "risk_aversion" else ">= 0"
                raise ValueError(f"OptimizerConstraints.{name} must be {bound}, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not isinstance(self.allow_shorts, bool | np.bool_):
            raise ValueError(f"OptimizerConstraints.allow_shorts must be a bool, got {self.allow_shorts!r}")
        object.__setattr__(self, "allow_shorts", bool(self.allow_shorts))


class ConstraintUsage(NamedTuple):
    """One constraint's limit and value (fractions of NAV), utilisation in percent, binding flag."""

    limit: float
    value: float
    utilisation_pct: float
    binding: bool


@dataclass(frozen=True)
class OptimizationResult:
    """Target weights and diagnostics of one :meth:`PortfolioOptimizer.solve` call.

    ``objective`` = ``mu'w - lambda w'Sigma w``, ``expected_return`` = ``mu'w`` and ``volatility``
    = ``sqrt(w'Sigma w)`` are annualised decimals; ``sharpe`` = ``(mu'w - rf) / volatility`` (0.0
    when the volatility is 0). ``constraints_violated`` lists the :data:`CONSTRAINT_NAMES` that the
    returned weights break by more than ``feas_tol`` (empty when all hold); ``conflicts`` explains
    in words why the full problem was infeasible; ``notes`` records solver failures and the
    fallback trail. ``utilisation`` maps each aggregate name and ``"sector:<label>"`` to a
    :class:`ConstraintUsage`; ``marginal_risk`` is ``(Sigma w)_i / volatility`` (zeros when 0), so
    ``w @ marginal_risk == volatility``. ``solve_time_ms`` is the wall time of the whole call.
    """

    weights: np.ndarray
    status: str
    method: str
    solve_time_ms: float
    objective: float
    expected_return: float
    volatility: float
    sharpe: float
    constraints_violated: list[str]
    conflicts: list[str]
    utilisation: dict[str, ConstraintUsage]
    marginal_risk: np.ndarray
    notes: list[str] = field(default_factory=list)


def position_caps(adv: np.ndarray, nav: float, constraints: OptimizerConstraints) -> np.ndarray:
    """Per-asset liquidity caps ``adv_fraction * ADV_i / NAV`` (fractions of NAV).

    A non-finite or non-positive ADV means no known liquidity and gives a cap of 0."""
    adv = np.asarray(adv, dtype=np.float64)
    nav = float(nav)
    if not (math.isfinite(nav) and nav > 0):
        raise ValueError(f"nav must be finite and > 0, got {nav!r}")
    good = np.isfinite(adv) & (adv > 0)
    return np.where(good, constraints.adv_fraction * np.where(good, adv, 0.0) / nav, 0.0)


def _sector_codes(sectors: Sequence[Hashable] | np.ndarray, n: int) -> tuple[np.ndarray, list[str]]:
    """Integer code per asset and the sorted sector labels (as strings)."""
    labels = np.asarray([str(s) for s in sectors])
    if labels.shape != (n,):
        raise ValueError(f"sectors must hold one label per asset ({n}), got {labels.shape[0]}")
    uniq, codes = np.unique(labels, return_inverse=True)
    return codes.astype(np.int64), [str(u) for u in uniq]


def _usage(limit: float, value: float) -> ConstraintUsage:
    pct = 100.0 * value / limit if limit > 0 else (0.0 if value <= 0 else math.inf)
    binding = limit > 0 and value >= limit - max(1e-9, BINDING_RTOL * limit)
    return ConstraintUsage(float(limit), float(value), float(pct), bool(binding))


def _report(
    w: np.ndarray,
    w_prev: np.ndarray,
    liq_cap: np.ndarray,
    codes: np.ndarray,
    labels: list[str],
    c: OptimizerConstraints,
) -> dict[str, ConstraintUsage]:
    """Usage of every constraint; per-asset and sector aggregates report their tightest member."""
    absw = np.abs(w)
    out = {
        "gross": _usage(c.gross, float(absw.sum())),
        "long": _usage(c.long, float(np.maximum(w, 0.0).sum())),
        "short": _usage(c.short if c.allow_shorts else 0.0, float(np.maximum(-w, 0.0).sum())),
        "turnover": _usage(c.turnover, float(np.abs(w - w_prev).sum())),
    }
    sector_gross = np.bincount(codes, weights=absw, minlength=len(labels))
    worst = int(np.argmax(sector_gross))
    out["sector"] = _usage(c.sector, float(sector_gross[worst]))
    i = int(np.argmax(absw - liq_cap))
    out["liquidity"] = _usage(float(liq_cap[i]), float(absw[i]))
    out["single_name"] = _usage(c.single_name, float(absw.max()))
    for label, g in zip(labels, sector_gross, strict=True):
        out[f"sector:{label}"] = _usage(c.sector, float(g))
    return out


def _violations(report: dict[str, ConstraintUsage], tol: float) -> list[str]:
    return [name for name in CONSTRAINT_NAMES if report[name].value > report[name].limit + tol]


def constraint_report(
    w: np.ndarray,
    w_prev: np.ndarray,
    adv: np.ndarray,
    nav: float,
    sectors: Sequence[Hashable] | np.ndarray,
    constraints: OptimizerConstraints,
) -> dict[str, ConstraintUsage]:
    """Limit, value, utilisation (%) and binding flag of every constraint for weights ``w``.

    Keys: :data:`CONSTRAINT_NAMES` plus ``"sector:<label>"`` per sector. ``sector``, ``liquidity``
    and ``single_name`` report the asset or sector with the largest excess over its cap (its own
    cap as ``limit``). Long-only constraints report ``short`` with limit 0. Binding needs a limit
    > 0 and ``value >= limit - max(1e-9, 1e-6 * limit)``.
    """
    w = np.asarray(w, dtype=np.float64)
    w_prev = np.asarray(w_prev, dtype=np.float64)
    n = w.shape[0]
    if w.shape != (n,) or w_prev.shape != (n,) or np.shape(adv) != (n,):
        raise ValueError("w, w_prev and adv must all have shape (n,)")
    codes, labels = _sector_codes(sectors, n)
    liq = position_caps(adv, nav, constraints)
    out = _report(w, w_prev, liq, codes, labels, constraints)
    return out
