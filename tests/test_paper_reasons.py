"""The paper broker says what a session's bar lacks when it cannot fill an order: NO_BAR only without a bar,
NO_OHLC without an open (close-only data: fills arrive at the open), NO_VOLUME without volume or ADV."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from mqf_pipeline.config import load_settings
from mqf_pipeline.execution.brokers.paper import PaperBroker
from mqf_pipeline.execution.brokers.paper_settlement import untradable_reason
from mqf_pipeline.execution.orders import OrderRequest, OrderStatus, Side, TimeInForce
from mqf_pipeline.stages.params import cost_params

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = load_settings(ROOT / "configs")
D0, D1 = dt.date(2024, 3, 4), dt.date(2024, 3, 5)
GOOD = {"open": 100.0, "close": 101.0, "volume": 1e6, "spread_bps": 5.0, "sigma": 0.02, "adv": 1e6}
#: symbol -> (what its D1 row lacks, the cancel reason); NOBAR has no row at all
CASES = {
    "CLOSEONLY": ({"open": None}, "NO_OHLC"),
    "NOVOL": ({"volume": None}, "NO_VOLUME"),
    "ZEROVOL": ({"volume": 0.0}, "NO_VOLUME"),
    "NOADV": ({"adv": None}, "NO_VOLUME"),
    "NOSIGMA": ({"sigma": None}, "NO_VOLATILITY"),
    "OK": ({}, None),
}


def test_cancel_reason_names_what_the_bar_lacks(tmp_path: Path) -> None:
    broker = PaperBroker(tmp_path, initial_cash=1e6, params=cost_params(SETTINGS.execution), seed=5)
    symbols = ["NOBAR", *CASES]
    for s in symbols:
        broker.submit(OrderRequest(f"c-{s}", s, Side.BUY, 100.0), session=D0)
    broker.submit(OrderRequest("gtc-NOVOL", "NOVOL", Side.BUY, 100.0, time_in_force=TimeInForce.GTC), session=D0)
    market = pl.DataFrame(
        [{"symbol": s, **GOOD, **lacks} for s, (lacks, _) in CASES.items()],
        schema={"symbol": pl.String, **dict.fromkeys(GOOD, pl.Float64)},
    )
    broker.settle(D1, market)
    orders = broker.get_orders([f"c-{s}" for s in symbols] + ["gtc-NOVOL"])
    assert orders["c-NOBAR"].status is OrderStatus.CANCELLED and orders["c-NOBAR"].reject_reason == "NO_BAR"
    for s, (_, reason) in CASES.items():
        if reason is None:
            assert orders[f"c-{s}"].status is OrderStatus.FILLED, s
        else:
            assert orders[f"c-{s}"].status is OrderStatus.CANCELLED and orders[f"c-{s}"].reject_reason == reason, s
    assert orders["gtc-NOVOL"].status is OrderStatus.SUBMITTED  # a GTC order waits for a session it can trade in


def test_reasons_in_order_of_what_is_missing_first() -> None:
    assert untradable_reason(None) == "NO_BAR"
    assert untradable_reason({**GOOD, "open": None, "volume": None}) == "NO_OHLC"  # close-only, no volume
    assert untradable_reason({**GOOD, "open": float("nan")}) == "NO_OHLC"
    assert untradable_reason({**GOOD, "adv": 0.0}) == "NO_VOLUME"
    assert untradable_reason({**GOOD, "close": None}) == "NO_CLOSE"
    assert untradable_reason({**GOOD, "spread_bps": None}) == "NO_SPREAD"
    assert untradable_reason(GOOD) is None
