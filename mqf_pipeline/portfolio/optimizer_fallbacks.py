"""What the optimizer does when the full QP fails: infeasibility diagnosis and the heuristic fallbacks.

See :mod:`mqf_pipeline.portfolio.optimizer` for the fallback chain (seed 002 §4.4). :func:`_diagnose`
finds the smallest turnover that makes the problem feasible and explains the conflicts in words (for
the ``relaxed`` step); :func:`_sequential`, :func:`_greedy` and :func:`_hold` are the ``sequential``,
``greedy`` and ``hold`` steps, which need no solver.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mqf_pipeline.portfolio.optimizer_problem import _Inputs
from mqf_pipeline.portfolio.optimizer_report import OptimizerConstraints

RELAX_MARGIN: float = 1e-6
"""Turnover added on top of the minimal feasible turnover in the relaxed problem."""


class _Budget:
    """Running constraint sums for the coordinate methods; ``interval(i)`` keeps all of them."""

    def __init__(self, w: np.ndarray, inp: _Inputs, c: OptimizerConstraints, tau: float) -> None:
        self.w, self.inp, self.c, self.tau = w.copy(), inp, c, tau
        self.short_limit = c.short if c.allow_shorts else 0.0
        self.refresh()

    def refresh(self) -> None:
        w, p = self.w, self.inp.w_prev
        self.gross = float(np.abs(w).sum())
        self.long = float(np.maximum(w, 0).sum())
        self.short = float(np.maximum(-w, 0).sum())
        self.turn = float(np.abs(w - p).sum())
        self.sec = np.bincount(self.inp.codes, weights=np.abs(w), minlength=len(self.inp.labels))

    def interval(self, i: int) -> tuple[float, float]:
        wi, p, c = float(self.w[i]), float(self.inp.w_prev[i]), self.c
        ai = abs(wi)
        m = min(
            float(self.inp.cap[i]),
            max(c.gross - (self.gross - ai), 0.0),
            max(c.sector - (self.sec[self.inp.codes[i]] - ai), 0.0),
        )
        hi = min(m, max(c.long - (self.long - max(wi, 0.0)), 0.0))
        lo = max(-m, -max(self.short_limit - (self.short - max(-wi, 0.0)), 0.0))
        r = max(self.tau - (self.turn - abs(wi - p)), 0.0)
        return max(lo, p - r), min(hi, p + r)

    def move(self, i: int, x: float) -> None:
        wi, p = float(self.w[i]), float(self.inp.w_prev[i])
        self.gross += abs(x) - abs(wi)
        self.long += max(x, 0.0) - max(wi, 0.0)
        self.short += max(-x, 0.0) - max(-wi, 0.0)
        self.turn += abs(x - p) - abs(wi - p)
        self.sec[self.inp.codes[i]] += abs(x) - abs(wi)
        self.w[i] = x


def _hold(inp: _Inputs, c: OptimizerConstraints) -> np.ndarray:
    """``w_prev`` clipped to the caps: per-asset caps, then sectors, long, short and gross scaled."""
    w = np.clip(inp.w_prev, -inp.cap, inp.cap)
    if not c.allow_shorts:
        w = np.maximum(w, 0.0)
    sec = np.bincount(inp.codes, weights=np.abs(w), minlength=len(inp.labels))
    scale = np.where(sec > c.sector, c.sector / np.where(sec > 0, sec, 1.0), 1.0)
    w = w * scale[inp.codes]
    pos, neg = float(np.maximum(w, 0).sum()), float(np.maximum(-w, 0).sum())
    short_limit = c.short if c.allow_shorts else 0.0
    if pos > c.long:
        w = np.where(w > 0, w * (c.long / pos), w)
    if neg > short_limit:
        w = np.where(w < 0, w * (short_limit / neg), w)
    gross = float(np.abs(w).sum())
    if gross > c.gross:
        w = w * (c.gross / gross)
    return w


def _scores(inp: _Inputs, c: OptimizerConstraints) -> tuple[np.ndarray, np.ndarray]:
    """Single-asset target ``mu_i / (2 lambda sigma_i^2)`` and ranking score ``|mu_i| / sigma_i^2``."""
    var = np.diag(inp.sigma()).copy()
    safe = np.where(var > 0, var, 1.0)
    target = np.where(var > 0, inp.mu / (2 * c.risk_aversion * safe), np.sign(inp.mu) * np.inf)
    score = np.where(var > 0, np.abs(inp.mu) / safe, np.inf * (inp.mu != 0))
    return target, score


def _utility(w: np.ndarray, inp: _Inputs, c: OptimizerConstraints) -> float:
    """``mu'w - lambda w'Sigma w``."""
    return float(inp.mu @ w - c.risk_aversion * (w @ inp.matvec(w)))


def _greedy(inp: _Inputs, c: OptimizerConstraints, start: np.ndarray, tau: float) -> np.ndarray:
    """Greedy fill by ``|mu| / sigma^2``: release holdings beyond target worst-first, then fill."""
    target, score = _scores(inp, c)
    b = _Budget(start, inp, c, tau)
    for i in np.argsort(score, kind="stable"):
        wi = float(b.w[i])
        if wi == 0.0 or (wi * target[i] > 0 and abs(wi) <= abs(target[i])):
            continue
        lo, hi = b.interval(int(i))
        lo, hi = max(lo, min(wi, 0.0)), min(hi, max(wi, 0.0))
        if lo <= hi:
            b.move(int(i), float(np.clip(target[i], lo, hi)))
    for i in np.argsort(-score, kind="stable"):
        lo, hi = b.interval(int(i))
        if lo <= hi:
            b.move(int(i), float(np.clip(target[i], lo, hi)))
    return b.w


def _sequential(
    inp: _Inputs, c: OptimizerConstraints, start: np.ndarray, tau: float, max_sweeps: int = 50
) -> tuple[np.ndarray, int]:
    """Coordinate ascent from ``start``: each step maximises the objective in one weight exactly."""
    sigma = inp.sigma()
    lam, mu = c.risk_aversion, inp.mu
    var = np.diag(sigma)
    _, score = _scores(inp, c)
    order = [int(i) for i in np.argsort(-score, kind="stable")]
    b = _Budget(start, inp, c, tau)
    r = sigma @ b.w
    sweeps = 0
    while sweeps < max_sweeps:
        sweeps += 1
        biggest = 0.0
        for i in order:
            lo, hi = b.interval(i)
            if lo > hi:
                continue
            wi = float(b.w[i])
            slope = mu[i] - 2 * lam * (r[i] - var[i] * wi)
            x = slope / (2 * lam * var[i]) if var[i] > 0 else (hi if slope > 0 else lo)
            x = min(max(x, lo), hi)
            if x != wi:
                b.move(i, x)
                r += sigma[:, i] * (x - wi)
                biggest = max(biggest, abs(x - wi))
        b.refresh()
        if biggest < 1e-10:
            break
    return b.w, sweeps


def _diagnose(
    inp: _Inputs,
    c: OptimizerConstraints,
    tol: float,
    notes: list[str],
    min_turnover: Callable[[], float | None],
) -> tuple[float, list[str]]:
    """Smallest turnover that brings ``w_prev`` within every cap, and the conflicts in words.

    ``tol`` is the cap excess that counts as a conflict; ``min_turnover`` solves the minimal-turnover LP
    (None when no solver answers, then the clipped hold gives an upper bound).
    """
    prev = inp.w_prev
    absp = np.abs(prev)
    msgs: list[str] = []
    sector_gross = np.bincount(inp.codes, weights=absp, minlength=len(inp.labels))
    for label, g in zip(inp.labels, sector_gross, strict=True):
        if g > c.sector + tol:
            msgs.append(
                f"sector {label}: previous weights hold {g:.4f} > cap {c.sector:.4f}; "
                f"bringing it under needs turnover >= {g - c.sector:.4f}"
            )
    for name, caps, what in (
        ("liquidity", inp.liq_cap, f"{100 * c.adv_fraction:g}% of ADV / NAV"),
        ("single_name", np.full(inp.n, c.single_name), "the single-name cap"),
    ):
        excess = absp - caps
        over = np.flatnonzero(excess > tol)
        if over.size:
            i = int(over[np.argmax(excess[over])])
            msgs.append(
                f"{name}: {over.size} previous position(s) exceed {what} (e.g. {inp.names[i]} holds "
                f"{absp[i]:.4f} > cap {caps[i]:.4f}); cutting them needs turnover >= {excess[over].sum():.4f}"
            )
    short_limit = c.short if c.allow_shorts else 0.0
    for name, value, limit in (
        ("gross", float(absp.sum()), c.gross),
        ("long", float(np.maximum(prev, 0).sum()), c.long),
        ("short", float(np.maximum(-prev, 0).sum()), short_limit),
    ):
        if value > limit + tol:
            extra = "" if c.allow_shorts or name != "short" else " (shorts are not allowed)"
            msgs.append(
                f"{name}: previous weights hold {value:.4f} > cap {limit:.4f}{extra}; "
                f"needs turnover >= {value - limit:.4f}"
            )
    if not msgs:
        notes.append("previous weights satisfy every cap, so the problem is feasible: the failure is numerical")
        return 0.0, []
    tau_min = min_turnover()
    if tau_min is None:
        hold = _hold(inp, c)
        tau_min = float(np.abs(hold - prev).sum())
        notes.append(f"minimal turnover not solved; using the clipped hold's {tau_min:.4f} (an upper bound)")
    if tau_min <= c.turnover + tol:
        notes.append(f"previous weights break caps but turnover {c.turnover:.4f} suffices (minimal {tau_min:.4f})")
        return tau_min, []
    broken = sorted({m.split(" ")[0].rstrip(":") for m in msgs})
    head = (
        f"turnover: limit {c.turnover:.4f} but at least {tau_min:.4f} is needed to bring the previous "
        f"weights within the {', '.join(broken)} caps"
    )
    return tau_min, [head, *msgs]
