"""Staged evaluation of per-symbol polars expressions: windows, seeded recursions, materialisation.

A *stage* maps names to expressions over the names produced by earlier stages (an :data:`Env`
maps every available name to an expression). A list of stages is either inlined into
self-contained expressions (:func:`inline`) or materialised stage by stage as temporary columns
that are dropped once no later stage reads them (:func:`materialise`); both give the same values.

Frames are sorted by (symbol, date) with each symbol's rows contiguous; ``k`` is the bar index
from the symbol's first row. Two building blocks keep symbols independent without a per-symbol
window for every operation:

* **Window sums** (:func:`doubling_stages`, :func:`window_sum`): partial sums over 2^j rows are
  built by doubling (p_j = p_{j-1} + p_{j-1} shifted by 2^{j-1}); a sum over n rows adds the
  partials of n's binary digits. Each window is summed on its own (no running state), so the
  result at a row depends only on the rows in its window; masked to ``k >= n - 1`` it never
  reaches into another symbol and is bit-for-bit reproducible. Inlined plans skip the doubling
  stages (inlining would copy the series 2^j times) and use ``rolling_sum().over(symbol)``
  instead, a running sum that agrees to ~1e-13 relative (~1e-9 for the trend t-statistic).
* **Seeded recursions** (:class:`Recursion`): e[k] = (1 - alpha) e[k-1] + alpha x[k], seeded with
  the mean of a fixed slice of bars, evaluated with ``ewm_mean(adjust=False)`` per symbol.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import polars as pl

Env = dict[str, pl.Expr]
Stage = Callable[[Env], Env]

GROUP = "symbol"
#: Prefix of intermediate column names; they never reach the output.
PREFIX = "__f_"
K = f"{PREFIX}k"


def over(x: pl.Expr) -> pl.Expr:
    """``x`` evaluated per symbol."""
    return x.over(GROUP)


def lag(k: pl.Expr, x: pl.Expr, n: int) -> pl.Expr:
    """x from n rows earlier in the same symbol (null for k < n)."""
    return pl.when(k >= n).then(x.shift(n))


def _partial(series: str, level: int) -> str:
    return series if level == 0 else f"{PREFIX}p{level}_{series}"


def doubling_stages(windows: Mapping[str, Sequence[int]]) -> list[Stage]:
    """Stages adding the partial sums over 2^j rows that :func:`window_sum` needs.

    ``windows`` maps a series (a name in the env) to the window lengths that will be summed.
    """
    top = {s: max(ns).bit_length() - 1 for s, ns in windows.items()}

    def level(j: int) -> Stage:
        def stage(e: Env) -> Env:
            half = 1 << (j - 1)
            return {
                _partial(s, j): e[_partial(s, j - 1)] + e[_partial(s, j - 1)].shift(half)
                for s, t in top.items()
                if t >= j
            }

        stage.__name__ = f"_stage_doubling_{j}"
        stage.doubling = True  # type: ignore[attr-defined]
        return stage

    return [level(j) for j in range(1, max(top.values()) + 1)]


def window_sum(e: Env, series: str, n: int) -> pl.Expr:
    """Sum of ``series`` over the n rows ending at each row (unmasked: mask with ``k >= n - 1``)."""
    if n > 1 and _partial(series, 1) not in e:  # inlined plan: no doubling partials
        return over(e[series].rolling_sum(n))
    terms: list[pl.Expr] = []
    offset = 0
    for j in range(n.bit_length() - 1, -1, -1):
        if n >> j & 1:
            term = e[_partial(series, j)]
            terms.append(term.shift(offset) if offset else term)
            offset += 1 << j
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


class Recursion(NamedTuple):
    """A TA-Lib style seeded recursion e[k] = (1 - alpha) e[k-1] + alpha x[k] for k > last.

    The seed e[last] is the sum of x over bars first..last (nulls count as 0) times
    ``scale / (last - first + 1)`` (the mean, rescaled). With ``skip_nulls`` a null x leaves e
    unchanged; otherwise polars' EWM null semantics apply (nulls decay the previous state).
    """

    x: str
    first: int
    last: int
    alpha: float
    scale: float = 1.0
    skip_nulls: bool = False


def seeded_inputs(e: Env, recs: Mapping[str, Recursion]) -> Env:
    """Recursion inputs: x after k == last, the seed up to and including it.

    Filling the rows before the seed with the seed itself (rather than nulls) keeps the EWM on
    polars' null-free path, which is faster; an EWM of a constant stays that constant, so the
    state at k == last is the seed (to the last bit, as polars evaluates it) and :func:`recurse`
    masks the rows before it.
    """
    k = e[K]
    out: Env = {}
    for name, r in recs.items():
        span = r.last - r.first + 1
        seed = over(e[r.x].slice(r.first, span).sum() * (r.scale / span))
        out[f"{PREFIX}y{name}"] = pl.when(k > r.last).then(e[r.x]).otherwise(seed)
    return out


def recurse(e: Env, recs: Mapping[str, Recursion]) -> Env:
    """The recursions over their :func:`seeded_inputs`, per symbol; null before the seed."""
    k = e[K]
    return {
        name: pl.when(k >= r.last).then(
            over(e[f"{PREFIX}y{name}"].ewm_mean(alpha=r.alpha, adjust=False, ignore_nulls=r.skip_nulls))
        )
        for name, r in recs.items()
    }


def inline(stages: Sequence[Stage], inputs: Sequence[str], outputs: Sequence[str]) -> dict[str, pl.Expr]:
    """Each output as one self-contained expression over the ``inputs`` columns."""
    env: Env = {name: pl.col(name) for name in inputs}
    for stage in stages:
        if not getattr(stage, "doubling", False):
            env |= stage(env)
    return {name: env[name] for name in outputs}


def materialise(frame: pl.DataFrame, stages: Sequence[Stage]) -> pl.DataFrame:
    """``frame`` with every stage's columns added, intermediates (``PREFIX``) dropped when dead."""
    env: Env = {name: pl.col(name) for name in frame.columns}
    plans: list[Env] = []
    for stage in stages:
        new = stage(env)
        plans.append(new)
        env |= {name: pl.col(name) for name in new}
    needed_after: list[set[str]] = []  # columns read by the stages after each stage
    live: set[str] = set()
    for new in reversed(plans):
        needed_after.append(set(live))
        live |= {root for expr in new.values() for root in expr.meta.root_names()}
    out = frame
    for new, needed in zip(plans, reversed(needed_after), strict=True):
        out = out.with_columns(expr.alias(name) for name, expr in new.items())
        out = out.drop(c for c in out.columns if c.startswith(PREFIX) and c not in needed)
    return out
