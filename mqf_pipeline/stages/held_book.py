"""The book the fund holds at a session's close, as the execution stage booked it: positions after the
session's fills as signed fractions of the account NAV, and that NAV. Decisions measure risk on it and
the optimizer starts from it; where execution has not run (research), there is none."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from mqf_pipeline.storage.lake import Lake


@dataclass(frozen=True)
class Held:
    """The book the fund holds at a session's close: positions as signed fractions of the account NAV
    (market value / NAV, after the session's fills, costs and dividends) and that NAV (currency)."""

    book: dict[str, float]
    nav: float


def held_books(lake: Lake, first: dt.date, last: dt.date) -> dict[dt.date, Held]:
    """The stored positions and account NAV of each session in ``first``..``last`` that execution booked."""
    account = lake.read_range("account", first, last)
    if account.height == 0:
        return {}
    positions = lake.read_range("positions", first, last)
    by_day = {key[0]: part for key, part in positions.partition_by("date", as_dict=True).items()}
    out: dict[dt.date, Held] = {}
    for row in account.iter_rows(named=True):
        nav = float(row["nav"])
        part = by_day.get(row["date"])
        book = (
            {}
            if part is None or not nav
            else dict(zip(part["symbol"].to_list(), (part["market_value"] / nav).to_list(), strict=True))
        )
        out[row["date"]] = Held({s: float(w) for s, w in book.items() if w}, nav)
    return out
