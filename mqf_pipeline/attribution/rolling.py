"""Rolling OLS with Newey-West HAC standard errors, vectorised across symbols and windows (numpy).

The row for session t regresses ``y[t - window + 1 .. t, i]`` on a constant and the regressors of the
same rows. Window sums of cross-products come from cumulative sums. Symbols that share a design (the
same regressors) and have no missing return in a window share that window's inverse cross-product, so
their slopes are one batched product; only windows with missing returns (allowed when ``min_obs`` <
``window``) get their own design. Slopes are solved on the correlation scale of the centered normal
equations; a constant or collinear regressor flags the window instead of raising. Rows never use data
after them; their rounding (~1e-16 relative) depends on the rows before the window through the
cumulative sums.

HAC: ``V = (X'X)^-1 Omega (X'X)^-1`` with ``Omega = sum_l w_l (Gamma_l + Gamma_l')``, ``Gamma_l =
sum_s e_s e_{s-l} x_s x_{s-l}'`` (``Omega`` counts ``Gamma_0`` once), Bartlett ``w_l = 1 - l / (L + 1)``,
no small-sample correction: statsmodels' ``cov_type="HAC"``. Lags pair session positions inside
the window; a missing return has ``e_s = 0``, which drops its pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Status codes of :class:`RollingFit`.
OK, SHORT, MISSING_FACTORS, CONSTANT, COLLINEAR = 0, 1, 2, 3, 4
_BLOCK_ELEMENTS = 1 << 22  # memory bound (float64 cells) of one block of per-symbol cross-products
_HAC_ELEMENTS = 1 << 21  # memory bound of one block of window residuals


@dataclass(frozen=True)
class RollingFit:
    """Results for the fitted ``rows`` (R,) of the (T, N) grid; coefficient axis: intercept, regressors.

    ``coef`` and ``se`` (HAC; None without lags) are (R, N, p), NaN unless ``status`` is OK;
    ``residual_std`` = sqrt(SSR / (n - p)) (units of y) and centered ``r_squared`` are (R, N); ``n_obs``:
    observations used (for SHORT: returns present); ``status``: OK, SHORT, MISSING_FACTORS, CONSTANT or
    COLLINEAR; ``offender``: coefficient index of the constant or collinear regressor, else -1.
    """

    rows: np.ndarray
    coef: np.ndarray
    se: np.ndarray | None
    residual_std: np.ndarray
    r_squared: np.ndarray
    n_obs: np.ndarray
    status: np.ndarray
    offender: np.ndarray


def window_sums(a: np.ndarray, window: int, rows: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """Sums of ``a`` over the trailing ``window`` rows ending at each of ``rows`` (fewer at the start).

    ``overwrite``: ``a`` is a temporary the caller drops; its cumulative sums are written in place (a large
    fresh array costs page faults comparable to the arithmetic).
    """
    c = np.cumsum(a, axis=0, out=a if overwrite and a.dtype == np.float64 else None)
    if rows.size and rows[-1] - rows[0] == rows.size - 1:  # a contiguous run: slices, no gathers
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        first = min(max(lo, window), hi)
        out = np.empty_like(c[lo:hi])
        out[: first - lo] = c[lo:first]
        np.subtract(c[first:hi], c[first - window : hi - window], out=out[first - lo :])
        return out
    out = c[rows]
    prev = rows - window
    has = prev >= 0
    out[has] -= c[prev[has]]
    return out


def _cholesky_pivots(r: np.ndarray, tol: float) -> np.ndarray:
    """First regressor j whose 1 - R^2 on the regressors before it is below ``tol`` in the correlation
    matrices ``r`` (..., q, q); -1 where none. A batched Cholesky that never raises."""
    q = r.shape[-1]
    low = np.zeros_like(r)
    first = np.full(r.shape[:-2], -1, dtype=np.int16)
    for j in range(q):  # q <= a dozen regressors; vectorised over every window
        pivot = r[..., j, j] - np.sum(low[..., j, :j] ** 2, axis=-1)
        first[(pivot < tol) & (first < 0)] = j
        root = np.sqrt(np.where(pivot < tol, 1.0, pivot))
        low[..., j + 1 :, j] = (
            r[..., j + 1 :, j] - np.einsum("...ik,...k->...i", low[..., j + 1 :, :j], low[..., j, :j])
        ) / root[..., None]
        low[..., j, j] = root
    return first


def design_inverse(cxx: np.ndarray, raw_diag: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of centered cross-products ``cxx`` (..., q, q) with status and offending regressor index.

    Constant: centered sum of squares <= ``tol`` x raw sum of squares; collinear: 1 - R^2 on the earlier
    regressors < ``tol``. Singular windows get the identity instead of an inverse; the callers null their rows.
    """
    q = cxx.shape[-1]
    d = np.diagonal(cxx, axis1=-2, axis2=-1)
    constant = d <= tol * raw_diag
    any_const = constant.any(axis=-1)
    inv_sd = 1.0 / np.sqrt(np.where(constant, 1.0, d))
    corr = np.where(any_const[..., None, None], np.eye(q), cxx * inv_sd[..., :, None] * inv_sd[..., None, :])
    collinear = _cholesky_pivots(corr, tol)
    status = np.where(any_const, CONSTANT, np.where(collinear >= 0, COLLINEAR, OK)).astype(np.int8)
    offender = np.where(any_const, np.argmax(constant, axis=-1), collinear).astype(np.int16)
    corr = np.where((status == OK)[..., None, None], corr, np.eye(q))
    return np.linalg.inv(corr) * inv_sd[..., :, None] * inv_sd[..., None, :], status, offender


def _pair_designs(x: np.ndarray, valid: np.ndarray, window: int, rows: np.ndarray, pr: np.ndarray, pi: np.ndarray):
    """n, means and centered cross-products of the regressors over each pair's valid observations."""
    q = x.shape[1]
    n = np.empty(pr.size)
    xbar = np.empty((pr.size, q))
    raw = np.empty((pr.size, q, q))
    syms = np.unique(pi)
    step = max(1, _BLOCK_ELEMENTS // (x.shape[0] * q * q))
    xx = x[:, :, None] * x[:, None, :]
    for lo in range(0, syms.size, step):  # blocks of symbols (memory bound), vectorised inside
        block = syms[lo : lo + step]
        m = valid[:, block].astype(np.float64)
        sel = np.isin(pi, block)
        local = np.searchsorted(block, pi[sel])
        r_idx = pr[sel]
        n_b = window_sums(m, window, rows)[r_idx, local]
        n[sel] = n_b
        xbar[sel] = window_sums(m[:, :, None] * x[:, None, :], window, rows)[r_idx, local] / n_b[:, None]
        raw[sel] = window_sums(m[:, :, None, None] * xx[:, None], window, rows)[r_idx, local]
    cxx = raw - n[:, None, None] * xbar[:, :, None] * xbar[:, None, :]
    return n, xbar, cxx, np.diagonal(raw, axis1=-2, axis2=-1)


def _hac_se(
    Y: np.ndarray, X: np.ndarray, valid: np.ndarray, rows: np.ndarray, fit: dict, window: int, lags: int
) -> np.ndarray:
    """Newey-West standard errors (R, n, p) of one design group (``X`` (T, p), column 0 the constant)."""
    N, p = Y.shape[1], X.shape[1]
    se = np.full((rows.size, N, p), np.nan)
    todo = np.flatnonzero((fit["status"] == OK).any(axis=1))
    if todo.size == 0:
        return se
    pad = window - 1
    view = np.lib.stride_tricks.sliding_window_view
    xpad = np.vstack([np.zeros((pad, p)), X])
    xv = view(xpad, window, axis=0)  # (T, p, window): row t = the window ending at t (padded rows t .. t + pad)
    yv = view(np.vstack([np.zeros((pad, N)), np.where(valid, Y, 0.0)]), window, axis=0)
    mv = view(np.vstack([np.zeros((pad, N), bool), valid]), window, axis=0)
    ia, ib = np.triu_indices(p)
    cross = [xpad[:, ia] * xpad[:, ib]]  # lag l at padded position s: x_{s+l} x_s' + x_s x_{s+l}', upper triangle
    cross += [xpad[lag:, ia] * xpad[:-lag, ib] + xpad[lag:, ib] * xpad[:-lag, ia] for lag in range(1, lags + 1)]
    cross_v = [view(c, window - lag, axis=0) for lag, c in enumerate(cross)]
    weights = [1.0] + [1.0 - lag / (lags + 1.0) for lag in range(1, lags + 1)]
    step = max(1, _HAC_ELEMENTS // (N * window))
    for lo in range(0, todo.size, step):  # blocks of windows (memory bound), vectorised over windows and symbols
        idx = todo[lo : lo + step]
        t = rows[idx]
        err = np.where(mv[t], yv[t] - np.nan_to_num(fit["coef"][idx]) @ xv[t], 0.0)  # (c, N, window)
        omega = np.zeros((idx.size, N, ia.size))
        for lag, (c_v, w) in enumerate(zip(cross_v, weights, strict=True)):
            z = err[:, :, lag:] * err[:, :, : window - lag]
            omega += w * (z @ np.ascontiguousarray(c_v[t].transpose(0, 2, 1)))
        full = np.empty((idx.size, N, p, p))
        full[..., ia, ib] = omega
        full[..., ib, ia] = omega
        a_inv = _uncentered_inverse(fit, idx)
        var = np.einsum("...ij,...jk,...ik->...i", a_inv, full, a_inv)
        se[idx] = np.sqrt(np.maximum(var, 0.0))
    se[fit["status"] != OK] = np.nan
    return se


def _uncentered_inverse(fit: dict, idx: np.ndarray) -> np.ndarray:
    """(X'X)^-1 with the constant, per (window in ``idx``, symbol), from the centered inverse S^-1:
    ``[[1/n + xbar' S^-1 xbar, -(S^-1 xbar)'], [-S^-1 xbar, S^-1]]``."""
    n = fit["n"][idx]
    s_inv = np.broadcast_to(fit["s_inv"][idx][:, None], (*n.shape, *fit["s_inv"].shape[1:])).copy()
    xbar = np.broadcast_to(fit["xbar"][idx][:, None], (*n.shape, fit["xbar"].shape[1])).copy()
    pr, pi, p_inv, p_xbar = fit["pairs"]
    sel = np.isin(pr, idx)
    if sel.any():
        local = np.searchsorted(idx, pr[sel])
        s_inv[local, pi[sel]] = p_inv[sel]
        xbar[local, pi[sel]] = p_xbar[sel]
    sx = np.einsum("...ij,...j->...i", s_inv, xbar)
    q = xbar.shape[-1]
    a_inv = np.empty((*n.shape, q + 1, q + 1))
    a_inv[..., 0, 0] = 1.0 / np.where(n > 0, n, 1.0) + np.einsum("...i,...i->...", xbar, sx)
    a_inv[..., 0, 1:] = -sx
    a_inv[..., 1:, 0] = -sx
    a_inv[..., 1:, 1:] = s_inv
    return a_inv


def _designs(x: np.ndarray, window: int, rows: np.ndarray, tol: float) -> dict[str, np.ndarray]:
    """G designs at once: ``x`` (T, G, q) regressors without the constant (NaN = missing session).

    Per fitted row and design: nx (sessions with every regressor), xbar, the inverse centered
    cross-product s_inv (R, G, q, q), status and offender (see :func:`design_inverse`).
    """
    x_ok = np.isfinite(x).all(axis=-1)
    xz = np.where(x_ok[..., None], x, 0.0)
    nx = window_sums(x_ok.astype(np.float64), window, rows, overwrite=True)
    xbar = window_sums(xz, window, rows) / np.where(nx > 0, nx, 1.0)[..., None]
    raw = window_sums(xz[..., :, None] * xz[..., None, :], window, rows, overwrite=True)
    cxx = raw - nx[..., None, None] * xbar[..., :, None] * xbar[..., None, :]
    s_inv, status, offender = design_inverse(cxx, np.diagonal(raw, axis1=-2, axis2=-1), tol)
    return {"x_ok": x_ok, "x": xz, "nx": nx, "xbar": xbar, "s_inv": s_inv, "status": status, "offender": offender}


def _fit_group(
    Y: np.ndarray, design: dict[str, np.ndarray], window: int, min_obs: int, rows: np.ndarray, tol: float
) -> dict:
    """Coefficients and fit statistics of the symbols of ``Y`` (T, n) on one design of :func:`_designs`
    (``x`` (T, q), ``x_ok`` (T,), per-row nx, xbar, s_inv, status, offender)."""
    x, nx, xbar, s_inv = design["x"], design["nx"], design["xbar"], design["s_inv"]
    d_status, d_off = design["status"], design["offender"]
    valid = np.isfinite(Y) & design["x_ok"][:, None]
    y = np.where(valid, Y, 0.0)
    n = window_sums(valid.astype(np.float64), window, rows, overwrite=True)
    n_ret = window_sums(np.isfinite(Y).astype(np.float64), window, rows, overwrite=True)
    ybar = window_sums(y, window, rows) / np.where(n > 0, n, 1.0)
    cyy = window_sums(y * y, window, rows, overwrite=True) - n * ybar * ybar
    sxy = window_sums(y[:, :, None] * x[:, None, :], window, rows, overwrite=True)
    short = n < min_obs
    pending = ~short & (n < nx[:, None])  # windows with a missing return: their own design
    status = np.where(short, np.where(n_ret >= min_obs, MISSING_FACTORS, SHORT), d_status[:, None]).astype(np.int8)
    offender = np.where(short, -1, d_off[:, None]).astype(np.int16)
    pr, pi = np.nonzero(pending)
    p_sxy = sxy[pr, pi]
    cxy = sxy  # centered in place
    cxy -= (n * ybar)[..., None] * xbar[:, None, :]
    coef = np.empty((*n.shape, x.shape[1] + 1))
    beta = np.matmul(cxy, s_inv, out=coef[..., 1:])  # s_inv is symmetric
    coef[..., 0] = ybar - (beta @ xbar[:, :, None])[..., 0]
    p_inv = np.empty((0, *s_inv.shape[1:]))
    p_xbar = np.empty((0, xbar.shape[1]))
    if pr.size:  # each pending pair's own design; a pair's arithmetic never depends on other pairs
        p_n, p_xbar, p_cxx, p_raw = _pair_designs(x, valid, window, rows, pr, pi)
        p_inv, p_status, p_off = design_inverse(p_cxx, p_raw, tol)
        p_cxy = p_sxy - p_n[:, None] * p_xbar * ybar[pr, pi][:, None]
        p_beta = np.einsum("kij,kj->ki", p_inv, p_cxy)
        cxy[pr, pi] = p_cxy
        beta[pr, pi] = p_beta
        coef[pr, pi, 0] = ybar[pr, pi] - np.einsum("ki,ki->k", p_xbar, p_beta)
        status[pr, pi] = p_status
        offender[pr, pi] = p_off
    ok = status == OK
    ssr = np.maximum(cyy - np.einsum("...i,...i->...", beta, cxy), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ok & (cyy > 0), 1.0 - ssr / cyy, np.nan)
        resid_std = np.where(ok, np.sqrt(ssr / (n - x.shape[1] - 1)), np.nan)
    np.copyto(coef, np.nan, where=~ok[..., None])
    offender = np.where(status >= CONSTANT, offender + 1, -1).astype(np.int16)  # coefficient index
    return {
        "coef": coef,
        "r2": r2,
        "resid_std": resid_std,
        "status": status,
        "offender": offender,
        "n_obs": np.where(status == SHORT, n_ret, n).astype(np.int64),
        "n": n,
        "s_inv": s_inv,
        "xbar": xbar,
        "pairs": (pr, pi, p_inv, p_xbar),
        "valid": valid,
    }


def rolling_ols(
    y: np.ndarray,
    X: np.ndarray,
    *,
    window: int,
    min_obs: int | None = None,
    lags: int | None = None,
    tol: float = 1e-10,
    group_X: np.ndarray | None = None,
    group_of: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> RollingFit:
    """Trailing-window OLS of every column of ``y`` (T, N; NaN = missing) on a constant and ``X`` (T, K).

    With ``group_X`` (T, G) and ``group_of`` (N,) ints, symbol i also has the regressor
    ``group_X[:, group_of[i]]`` (the last coefficient; ``group_of[i] < 0``: none, that coefficient NaN).
    ``lags``: Newey-West lags (None: no standard errors); ``min_obs`` (default ``window``) is raised to
    p + 1; ``rows``: the sessions to fit (default all; sums still use the rows before them). A session
    where any regressor is NaN is left out of every window.
    """
    T, N = y.shape
    if X.ndim != 2 or X.shape[0] != T:
        raise ValueError(f"X must be (T={T}, K), got {X.shape}")
    has_group = group_X is not None
    if has_group and (group_of is None or np.shape(group_of) != (N,) or group_X.shape[0] != T):
        raise ValueError("group_X must have T rows and group_of shape (N,)")
    rows = np.arange(T) if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
    p = 1 + X.shape[1] + int(has_group)
    need = max(window if min_obs is None else min_obs, p + 1)
    R = rows.size
    out = {
        "coef": np.full((R, N, p), np.nan),
        "se": np.full((R, N, p), np.nan) if lags is not None else None,
        "resid_std": np.full((R, N), np.nan),
        "r2": np.full((R, N), np.nan),
        "n_obs": window_sums(np.isfinite(y).astype(np.float64), window, rows).astype(np.int64),
        "status": np.full((R, N), SHORT, dtype=np.int8),
        "offender": np.full((R, N), -1, dtype=np.int16),
    }
    k0 = int(np.searchsorted(rows, need - 1))  # earlier rows cannot hold ``need`` observations: SHORT
    fit_rows = rows[k0:]
    groups = np.asarray(group_of) if has_group else np.full(N, -1)
    present = np.unique(groups) if fit_rows.size else np.empty(0, dtype=np.int64)
    designs = {}
    sector = present[present >= 0]
    if sector.size:  # every sector's design in one batch: shared regressors plus the sector's own
        x = np.concatenate([np.broadcast_to(X[:, None, :], (T, sector.size, X.shape[1])), group_X[:, sector, None]], -1)
        batch = _designs(x, window, fit_rows, tol)
        designs |= {g: {k: v[:, k_g] for k, v in batch.items()} for k_g, g in enumerate(sector)}
    if present.size and present[0] < 0:
        designs[-1] = {k: v[:, 0] for k, v in _designs(X[:, None, :], window, fit_rows, tol).items()}
    for g in present:  # one design per group (a dozen sectors at most), vectorised inside
        cols = np.flatnonzero(groups == g)
        fit = _fit_group(y[:, cols], designs[g], window, need, fit_rows, tol)
        pg = designs[g]["x"].shape[1] + 1
        out["coef"][k0:, cols, :pg] = fit["coef"]
        if lags is not None:
            Xg = np.hstack([np.ones((T, 1)), designs[g]["x"]])
            se = _hac_se(y[:, cols], Xg, fit["valid"], fit_rows, fit, window, lags)
            out["se"][k0:, cols, :pg] = se
        for key in ("resid_std", "r2", "n_obs", "status", "offender"):
            out[key][k0:, cols] = fit[key]
    return RollingFit(
        rows=rows,
        coef=out["coef"],
        se=out["se"],
        residual_std=out["resid_std"],
        r_squared=out["r2"],
        n_obs=out["n_obs"],
        status=out["status"],
        offender=out["offender"],
    )
