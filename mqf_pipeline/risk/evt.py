"""Extreme value theory tails: peaks over threshold with a generalised Pareto (GPD) fit (seed 000 §7.3).

Method (McNeil & Frey 2000; McNeil, Frey & Embrechts, *Quantitative Risk Management*, §7.2):
losses are ``L = -r`` (``r`` simple decimal returns per period, so losses are positive loss
fractions per period); the threshold ``u`` is the empirical ``threshold_quantile`` quantile of ``L``
(numpy ``method=QUANTILE_METHOD`` of :mod:`mqf_pipeline.risk.var`); the excesses ``y = L - u`` of the
``N_u`` losses strictly above ``u`` are fitted by a GPD with shape ``xi`` and scale ``beta`` by
maximum likelihood. Then, for a confidence level ``p`` and ``n`` observations,

* ``VaR_p = u + beta / xi * (((n / N_u) * (1 - p)) ** -xi - 1)`` (``xi -> 0``:
  ``u - beta * log((n / N_u) * (1 - p))``),
* ``ES_p = VaR_p / (1 - xi) + (beta - xi * u) / (1 - xi)`` for ``xi < 1`` (NaN for ``xi >= 1``: the
  tail has no finite mean).

The maximum likelihood fit is vectorised over all columns at once (no loop over symbols). It uses
Grimshaw's (1993) reduction: with ``theta = xi / beta`` the likelihood maximised over ``xi`` for
fixed ``theta`` has ``xi(theta) = mean(log(1 + theta * y))`` and profile log-likelihood
``l*(theta) = -N_u * (log(xi(theta) / theta) + xi(theta) + 1)``, a function of one variable.
``l*`` is evaluated for every column on a fixed grid of ``s = theta * max(y)`` (a dimensionless
variable; ``s > -1`` is the support constraint; ``s`` up to 1e18 reaches ``xi`` of 10 and beyond even
for heavy samples of 1,000 points), and the best grid cell is refined by golden-section search until
the bracket is at rounding level: the log-likelihood is then maximal to ~1e-15 relative, ``xi`` and
``beta`` (flat directions at the maximum) to ~1e-8. Columns have different numbers of exceedances
(ties at the threshold): excesses are packed into a zero-padded matrix with a mask, and column sums
run row by row, so a column's fit is the same whatever other columns are fitted with it.

The likelihood is unbounded for ``xi < -1`` (Smith 1985), so the maximum is taken over
``xi >= -1``: the best interior profile point is compared with the edge ``xi = -1`` (uniform
excesses, ``beta = max(y)``, log-likelihood ``-N_u log max(y)``), and a short-tailed sample whose
likelihood keeps rising towards ``xi < -1`` gets that edge fit. ``converged`` is False for such
edge fits, when the best grid point is the last one (an extremely heavy tail), and for columns with
fewer than ``MIN_FIT_EXCEEDANCES`` excesses (whose ``xi`` and ``beta`` are NaN). An unconstrained
optimiser (e.g. ``scipy.stats.genpareto.fit``) can report ``xi < -1`` with a higher, meaningless
likelihood on those edge columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mqf_pipeline.risk.var import QUANTILE_METHOD, check_level, euler_cvar, portfolio_matrix, returns_matrix

MIN_FIT_EXCEEDANCES: int = 2
"""Fewest excesses for which a GPD is fitted (one point has an unbounded likelihood)."""

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
_S_GRID = np.unique(
    np.concatenate(
        [
            -1.0 + np.logspace(-12.0, math.log10(0.999), 80),  # xi near -1 sits close to s = -1
            -np.logspace(-4.0, -10.0, 25),
            np.logspace(-10.0, 18.0, 280),
        ]
    )
)

MIN_EVT_EXCEEDANCES: int = 10
"""Fewest threshold exceedances for which :func:`scaled_component_cvar` trusts a GPD tail fit."""


@dataclass(frozen=True)
class GPDFit:
    """A GPD tail per column (arrays of shape (N,)).

    ``xi``: shape; ``beta``: scale (loss fraction per period); ``threshold``: ``u``, the loss
    threshold (loss fraction per period); ``n_obs``: observations per column; ``n_exceed``: losses
    strictly above ``u``; ``threshold_quantile``: the quantile that set ``u``; ``loglik``: maximised
    GPD log-likelihood of the excesses; ``converged``: an interior maximum was found."""

    xi: np.ndarray
    beta: np.ndarray
    threshold: np.ndarray
    n_obs: np.ndarray
    n_exceed: np.ndarray
    threshold_quantile: float = math.nan
    loglik: np.ndarray | None = None
    converged: np.ndarray | None = None


def _profile(s: np.ndarray, y: np.ndarray, n: np.ndarray, ymax: np.ndarray) -> tuple:
    """Per-observation profile log-likelihood ``l*/N_u`` at ``s`` (N,), with ``xi`` and ``beta`` there.

    ``y`` is the (K, N) matrix of excesses padded with zeros (which add exactly nothing); points with
    ``xi <= -1`` or ``s <= -1`` give -inf. Column sums of a C-ordered matrix with N >= 2 run row by
    row, so each column is summed in the same order whatever the other columns (see ``gpd_mle``)."""
    theta = s / ymax
    with np.errstate(invalid="ignore", divide="ignore"):
        xi = np.log1p(theta * y).sum(axis=0) / n
        beta = np.where(theta == 0.0, y.sum(axis=0) / n, xi / np.where(theta == 0, 1.0, theta))
        prof = -(np.log(beta) + xi + 1.0)
    ok = (s > -1.0) & (xi > -1.0) & np.isfinite(prof)
    return np.where(ok, prof, -np.inf), xi, beta


def gpd_mle(excesses: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Maximum likelihood GPD ``(xi, beta, loglik, converged)`` per column of padded ``excesses``.

    ``excesses``: (K,) or (K, N) positive excesses over a threshold (loss fractions per period);
    ``mask`` (same shape, default all True) marks the real entries of each column, so columns can
    hold different numbers of excesses. Vectorised over columns (see the module docstring); columns
    with fewer than ``MIN_FIT_EXCEEDANCES`` excesses get NaN and ``converged = False``.
    Returns arrays of shape (N,) (N = 1 for a 1-D input)."""
    y = np.asarray(excesses, dtype=np.float64)
    if y.ndim not in (1, 2):
        raise ValueError(f"excesses must be (K,) or (K, N), got shape {y.shape}")
    y = y[:, None] if y.ndim == 1 else y
    m = np.ones(y.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool).reshape(y.shape)
    if (m & ~(np.isfinite(y) & (y > 0))).any():
        raise ValueError("excesses must be finite and > 0 where the mask is set")
    n_cols = y.shape[1]
    if n_cols == 1:  # numpy sums a lone column pairwise, several columns row by row: keep one order
        y, m = np.repeat(y, 2, axis=1), np.repeat(m, 2, axis=1)
    y = np.ascontiguousarray(np.where(m, y, 0.0))
    n_all = m.sum(axis=0)
    fit = n_all >= MIN_FIT_EXCEEDANCES
    n = np.maximum(n_all, 1).astype(np.float64)
    ymax = np.where(fit, y.max(axis=0, initial=0.0), 1.0)

    grid = _S_GRID
    best = np.full(y.shape[1], -np.inf)
    arg = np.zeros(y.shape[1], dtype=np.int64)
    for g, s in enumerate(grid):  # a loop over grid points; every column is evaluated at once
        prof = _profile(np.full(y.shape[1], s), y, n, ymax)[0]
        better = prof > best
        best = np.where(better, prof, best)
        arg = np.where(better, g, arg)
    interior = np.isfinite(best) & (arg > 0) & (arg < grid.size - 1)

    a = grid[np.maximum(arg - 1, 0)]
    b = grid[np.minimum(arg + 1, grid.size - 1)]
    c = b - _GOLDEN * (b - a)
    d = a + _GOLDEN * (b - a)
    fc = _profile(c, y, n, ymax)[0]
    fd = _profile(d, y, n, ymax)[0]
    for _ in range(200):
        # each column stops on its own, so its result does not depend on the other columns
        active = b - a > 1e-15 * np.maximum(np.abs(a), np.abs(b)) + 1e-15
        if not active.any():
            break
        left = fc >= fd  # the maximum lies in [a, d]
        a2, b2 = np.where(left, a, c), np.where(left, d, b)
        new = np.where(left, b2 - _GOLDEN * (b2 - a2), a2 + _GOLDEN * (b2 - a2))
        fnew = _profile(new, y, n, ymax)[0]
        a, b = np.where(active, a2, a), np.where(active, b2, b)
        c, d, fc, fd = (
            np.where(active, np.where(left, new, d), c),
            np.where(active, np.where(left, c, new), d),
            np.where(active, np.where(left, fnew, fd), fc),
            np.where(active, np.where(left, fc, fnew), fd),
        )
    s_hat = np.where(fc >= fd, c, d)
    cand = np.stack([s_hat, grid[arg]])  # keep the grid point if the search did not improve on it
    scores = np.stack([_profile(x, y, n, ymax)[0] for x in cand])
    s_hat = cand[np.argmax(scores, axis=0), np.arange(y.shape[1])]
    prof, xi, beta = _profile(s_hat, y, n, ymax)
    # On the edge xi = -1 (uniform on [0, beta], beta >= max y) the best value is -log(max y) per point;
    # the profile only reaches it in the limit, so compare explicitly.
    edge = -np.log(ymax)
    at_edge = ~(prof > edge)
    xi, beta, prof = np.where(at_edge, -1.0, xi), np.where(at_edge, ymax, beta), np.where(at_edge, edge, prof)
    converged = fit & interior & ~at_edge & (xi > -1.0 + 1e-6)
    nan = np.full(y.shape[1], np.nan)
    return (
        np.where(fit, xi, nan)[:n_cols],
        np.where(fit, beta, nan)[:n_cols],
        np.where(fit, n * prof, nan)[:n_cols],
        converged[:n_cols],
    )


def fit_pot(returns: np.ndarray, threshold_quantile: float = 0.90) -> GPDFit:
    """Peaks-over-threshold GPD fit of the loss tail of each column of ``returns``.

    ``returns``: simple decimal returns per period, (T,) or (T, N); losses are ``-returns``; the
    threshold is their ``threshold_quantile`` quantile (``QUANTILE_METHOD``), and the excesses of
    the losses strictly above it are fitted by :func:`gpd_mle`. NaN/inf raise ``ValueError``.
    The fit's arrays have shape (N,) (N = 1 for a 1-D input)."""
    tq = check_level(threshold_quantile, "threshold_quantile")
    mat, _ = returns_matrix(returns)
    losses = -mat
    u = np.quantile(losses, tq, axis=0, method=QUANTILE_METHOD)
    above = losses > u
    n_exceed = above.sum(axis=0)
    k = max(int(n_exceed.max()), 1)
    excess = np.where(above, losses - u, 0.0)
    packed = -np.sort(-excess, axis=0)[:k]  # exceedances (> 0) first, padding zeros after
    mask = np.arange(k)[:, None] < n_exceed[None, :]
    xi, beta, loglik, converged = gpd_mle(np.where(mask, packed, 1.0), mask)
    return GPDFit(
        xi=xi,
        beta=beta,
        threshold=u,
        n_obs=np.full(mat.shape[1], mat.shape[0], dtype=np.int64),
        n_exceed=n_exceed.astype(np.int64),
        threshold_quantile=tq,
        loglik=loglik,
        converged=converged,
    )


def _tail_ratio(fit: GPDFit, level: float) -> np.ndarray:
    """``(n / N_u) * (1 - level)`` per column; ``ValueError`` if a fitted column has it above 1."""
    level = check_level(level)
    n_exceed = np.asarray(fit.n_exceed, dtype=np.float64)
    with np.errstate(divide="ignore"):
        ratio = np.asarray(fit.n_obs, dtype=np.float64) / n_exceed * (1.0 - level)
    fitted = np.isfinite(np.asarray(fit.xi)) & (n_exceed > 0)
    if (fitted & (ratio > 1.0 + 1e-12)).any():
        cols = np.flatnonzero(fitted & (ratio > 1.0 + 1e-12)).tolist()
        raise ValueError(
            f"level {level} lies below the GPD threshold in columns {cols[:10]}: 1 - level must not exceed the "
            "exceedance rate N_u / n (use a level above threshold_quantile, or the empirical VaR)"
        )
    return ratio


def evt_var(fit: GPDFit, level: float = 0.95) -> np.ndarray:
    """GPD tail VaR per column (positive loss fraction per period), shape (N,).

    ``VaR_p = u + beta / xi * (((n / N_u) * (1 - p)) ** -xi - 1)``, computed as
    ``u + beta * expm1(-xi * log a) / xi`` with ``a = (n / N_u) * (1 - p)`` (exactly
    ``u - beta * log a`` at ``xi = 0``). The level must lie in the modelled tail, ``1 - p <= N_u / n``
    (any ``p > threshold_quantile`` qualifies), else ``ValueError``. NaN where the fit is NaN."""
    a = _tail_ratio(fit, level)
    xi = np.asarray(fit.xi, dtype=np.float64)
    beta = np.asarray(fit.beta, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_a = np.log(a)
        safe = np.where(xi == 0.0, 1.0, xi)
        growth = np.where(xi == 0.0, -log_a, np.expm1(-xi * log_a) / safe)
    return np.asarray(fit.threshold, dtype=np.float64) + beta * growth


def evt_es(fit: GPDFit, level: float = 0.95) -> np.ndarray:
    """GPD tail expected shortfall per column (positive loss fraction per period), shape (N,).

    ``ES_p = VaR_p / (1 - xi) + (beta - xi * u) / (1 - xi)``; NaN where ``xi >= 1`` (infinite mean
    tail) or the fit is NaN. Same level condition as :func:`evt_var`."""
    var = evt_var(fit, level)
    xi = np.asarray(fit.xi, dtype=np.float64)
    u = np.asarray(fit.threshold, dtype=np.float64)
    beta = np.asarray(fit.beta, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        es = (var + beta - xi * u) / (1.0 - xi)
    return np.where(xi < 1.0, es, np.nan)


def evt_cvar(
    returns: np.ndarray, level: float = 0.95, threshold_quantile: float = 0.90
) -> tuple[np.ndarray, np.ndarray]:
    """``(VaR, ES)`` per column from :func:`fit_pot` then :func:`evt_var` / :func:`evt_es`.

    Positive loss fractions per period, arrays of shape (N,) (N = 1 for a 1-D input)."""
    fit = fit_pot(returns, threshold_quantile)
    return evt_var(fit, level), evt_es(fit, level)


def scaled_component_cvar(
    weights: np.ndarray, returns: np.ndarray, level: float = 0.95, threshold_quantile: float = 0.90
) -> tuple[float, np.ndarray]:
    """Portfolio EVT CVaR (seed §7.3, GPD tail) and the historical Euler components rescaled to sum to it.

    The GPD is fitted by :func:`fit_pot` to the losses of ``returns @ weights``
    above their ``threshold_quantile`` quantile, and the components of :func:`.var.component_cvar` are
    multiplied by ``evt_cvar / historical_cvar`` (the tail-scenario shares are kept).

    Fallback: the historical ``(cvar, components)`` of :func:`component_cvar` is returned unchanged
    when the tail has fewer than ``MIN_EVT_EXCEEDANCES`` exceedances, the fit did not converge to an
    interior maximum, the fitted ``xi >= 1`` (infinite ES), or the historical CVaR is not a positive
    loss (the ratio would be meaningless). Detect it by comparing with :func:`component_cvar`.
    A ``level`` too low for the tail model raises ``ValueError`` (see :func:`evt_es`)."""
    level = check_level(level)
    w, mat, port = portfolio_matrix(weights, returns)
    cvar, components = euler_cvar(w, mat, port, level)
    fit = fit_pot(port, threshold_quantile)
    es = float(evt_es(fit, level)[0])
    usable = int(fit.n_exceed[0]) >= MIN_EVT_EXCEEDANCES and bool(fit.converged[0]) and math.isfinite(es)
    if not usable or cvar <= 0.0:
        return cvar, components
    return es, components * (es / cvar)
