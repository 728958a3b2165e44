"""The EG reward of each agent and session, in [0, 1] (seed 002 §2.2: r = R_realized - lambda * Risk).

R_realized: the session's realized return of the agent's signal portfolio (``actual_return``, decimal);
Risk: the decayed std of that return over the lookback (decimal per session, :mod:`.outcomes`).
Map to [0, 1]: g = 1 / (1 + exp(-r / s_t)), s_t the median over agents of Risk at session t. For a given
session the map is the same for every agent and strictly increasing in r, so it ranks agents as r does;
dividing by s_t makes eta = 0.1 act on a dimensionless reward (a raw decimal r of ~1e-2 would make
eta * r ~ 1e-3 and nothing would move). Rewards lie in (0, 1), the range the EG regret bound
ln N / eta + eta T / 8 assumes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit


def raw_reward(actual: NDArray[np.float64], risk: NDArray[np.float64], risk_aversion: float) -> NDArray[np.float64]:
    """r = R - lambda * Risk (decimal per session; NaN where either is missing)."""
    return np.asarray(actual, dtype=np.float64) - risk_aversion * np.asarray(risk, dtype=np.float64)


def reward_scale(risk: NDArray[np.float64]) -> NDArray[np.float64]:
    """s_t: the median over agents of the positive, finite Risk of each session (NaN when none). Shape (T,)."""
    r = np.where(np.isfinite(risk) & (risk > 0), risk, np.nan)
    out = np.full(r.shape[0], np.nan)
    has = np.isfinite(r).any(axis=1)
    out[has] = np.nanmedian(r[has], axis=1)
    return out


def unit_rewards(actual: NDArray[np.float64], risk: NDArray[np.float64], risk_aversion: float) -> NDArray[np.float64]:
    """g = expit(r / s_t) in (0, 1), shape (T, N); NaN where r or s_t is missing (the agent is neutral)."""
    scale = reward_scale(risk)[:, None]
    with np.errstate(invalid="ignore"):
        return expit(raw_reward(actual, risk, risk_aversion) / scale)


def fill_neutral(gains: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """One session's rewards with missing agents set to the mean of the others (their weight then moves
    with the average); None when no agent has a reward (no update)."""
    ok = np.isfinite(gains)
    if not ok.any():
        return None
    return np.where(ok, gains, gains[ok].mean())


__all__ = ["fill_neutral", "raw_reward", "reward_scale", "unit_rewards"]
