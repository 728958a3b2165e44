"""Quarterly company accounts, closed at each fiscal period end inside the simulation loop.

Book equity follows clean surplus (book + earnings - dividends, earnings = ROE x book) with a
slow pull (:data:`BOOK_PULL` per quarter, log scale) toward ``book_to_price_target x market
cap``. The pull keeps B/P (and E/P = ROE x B/P) tied to the value loading over decades, while
price noise and the planted value premium make B/P a noisy, mean-reverting signal.
Reports become known ``25-45`` sessions after the period end.
All amounts are company totals in USD except the ``*_per_share`` ones (period-end share basis).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mqf_pipeline.market.sim.rng import Stream, generator
from mqf_pipeline.market.sim.universe import Universe

#: Report lag after the period end, in sessions (inclusive bounds).
REPORT_LAG_SESSIONS = (25, 45)
#: Weight of the market-implied book in each quarter's book equity (log scale).
BOOK_PULL = 0.05


@dataclass(frozen=True)
class QuarterReport:
    """One fiscal quarter for every symbol (arrays of shape (n_symbols,))."""

    period_end_session: int
    quarter_end: np.datetime64  # calendar quarter end, datetime64[D]
    report_session: np.ndarray  # session index at which the report is public
    eps: np.ndarray  # USD per share
    book_value_per_share: np.ndarray  # USD per share
    revenue: np.ndarray  # USD, the quarter
    operating_cash_flow: np.ndarray  # USD, the quarter
    dividend_per_share: np.ndarray  # USD per share, ex-dates in the quarter
    shares_outstanding: np.ndarray
    book_equity: np.ndarray  # USD


def close_quarter(
    u: Universe,
    *,
    seed: int,
    quarter_ordinal: int,
    session: int,
    quarter_end: np.datetime64,
    close: np.ndarray,
    shares: np.ndarray,
    book_prev: np.ndarray,
    dividends_per_share: np.ndarray,
) -> QuarterReport:
    """Accounts of the quarter ending at ``session`` from the raw close and shares at that close."""
    rng = generator(seed, Stream.FUNDAMENTALS, quarter_ordinal)
    z = rng.standard_normal((4, u.n))
    lag = rng.integers(REPORT_LAG_SESSIONS[0], REPORT_LAG_SESSIONS[1] + 1, size=u.n)
    earnings = (u.roe_annual / 4.0 + 0.01 * z[0]) * book_prev
    retained = np.maximum(book_prev + earnings - dividends_per_share * shares, 0.2 * book_prev)
    target = close * shares * u.book_to_price_target
    book = np.exp((1 - BOOK_PULL) * np.log(retained) + BOOK_PULL * np.log(target) + 0.01 * z[1])
    normal_earnings = np.maximum(u.roe_annual / 4.0, 0.005) * book_prev
    revenue = normal_earnings / u.margin * np.exp(0.04 * z[2])
    ocf = earnings + 0.05 * revenue + 0.02 * revenue * z[3]
    return QuarterReport(
        period_end_session=session,
        quarter_end=quarter_end,
        report_session=session + lag,
        eps=earnings / shares,
        book_value_per_share=book / shares,
        revenue=revenue,
        operating_cash_flow=ocf,
        dividend_per_share=dividends_per_share.copy(),
        shares_outstanding=shares.copy(),
        book_equity=book,
    )
