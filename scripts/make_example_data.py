"""Write ``examples/own_data/``: a tiny folder of daily bars in the layouts real exports come in.

The prices come from the built-in simulator (seeded, so the files are reproducible), then leave it for
good: they are written the way a user's own files look (Yahoo CSV downloads, a vendor's Parquet, a
spreadsheet export with US dates), without spreads, and the fund reads them back through the files
provider only. Run from the project root: ``python scripts/make_example_data.py``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from mqf_pipeline.market.sim import MarketSimulator, SimulatorParams

OUT = Path("examples/own_data")
START, END = dt.date(2024, 1, 2), dt.date(2024, 9, 30)
#: simulator symbol -> the ticker it is written as (fictional tickers: this is not real data)
TICKERS = {"S0000": "ALFA", "S0001": "BRVO", "S0002": "CHRL", "S0003": "DLTA", "S0004": "ECHO", "S0005": "FXTR"}


def main() -> None:
    sim = MarketSimulator(SimulatorParams(n_symbols=12, n_sectors=4, seed=11, epoch=dt.date(2023, 1, 3)))
    bars = (
        sim.bars(START, END, list(TICKERS))
        .with_columns(pl.col("symbol").replace_strict(TICKERS))
        .select("date", "symbol", "open", "high", "low", "close", "adjusted_close", "volume")
        .sort("symbol", "date")
    )
    rounded = bars.with_columns(pl.col("open", "high", "low", "close", "adjusted_close").round(4))
    yahoo = OUT / "yahoo"
    yahoo.mkdir(parents=True, exist_ok=True)
    for ticker in ("ALFA", "BRVO"):  # Yahoo Finance download: Date,Open,High,Low,Close,Adj Close,Volume
        rounded.filter(pl.col("symbol") == ticker).drop("symbol").rename(
            {
                "date": "Date",
                "open": "Open",
                "high": "High",
                "low": "Low",
                "close": "Close",
                "adjusted_close": "Adj Close",
                "volume": "Volume",
            }
        ).write_csv(yahoo / f"{ticker}.csv")
    vendor = OUT / "vendor"
    vendor.mkdir(parents=True, exist_ok=True)
    rounded.filter(pl.col("symbol").is_in(["CHRL", "DLTA"])).write_parquet(vendor / "prices.parquet")
    (
        rounded.filter(pl.col("symbol").is_in(["ECHO", "FXTR"]))
        .with_columns(pl.col("date").dt.strftime("%m/%d/%Y"))
        .rename({"symbol": "Ticker", "adjusted_close": "Adj_Close"})
        .write_csv(OUT / "spreadsheet_export.csv")
    )
    macro = OUT / "macro"
    macro.mkdir(parents=True, exist_ok=True)
    series = sim.macro(START, END)
    for name in ("VIX", "SHORT_RATE"):
        series.filter(pl.col("series_id") == name).select("date", pl.col("value").round(6)).write_csv(
            macro / f"{name}.csv"
        )
    print(f"wrote {OUT}: {bars.get_column('symbol').n_unique()} symbols, {START}..{END}")


if __name__ == "__main__":
    main()
