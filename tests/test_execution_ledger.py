"""Orders (ids, state machine) and the positions ledger: closed forms and invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqf_pipeline.execution.ledger import Ledger
from mqf_pipeline.execution.orders import (
    TRANSITIONS,
    Fill,
    OrderRequest,
    OrderStateError,
    OrderStatus,
    OrderType,
    Side,
    client_order_id,
    transition,
)


def fill(symbol: str, side: Side, qty: float, price: float, commission: float = 0.0, n: int = 0) -> Fill:
    return Fill(f"o{n}", f"f{n}", symbol, side, qty, price, f"2024-01-02T15:{n % 60:02d}:00+00:00", commission)


def test_client_order_id_is_deterministic_and_distinct_per_key() -> None:
    a = client_order_id("institutional-2024-01-02", "AAA", Side.BUY, 0)
    assert a == client_order_id("institutional-2024-01-02", "AAA", "BUY", 0)
    others = {
        client_order_id("institutional-2024-01-03", "AAA", Side.BUY, 0),
        client_order_id("institutional-2024-01-02", "AAB", Side.BUY, 0),
        client_order_id("institutional-2024-01-02", "AAA", Side.SELL, 0),
        client_order_id("institutional-2024-01-02", "AAA", Side.BUY, 1),
    }
    assert a not in others and len(others) == 4
    assert len(a) == 36  # a UUID string: within Alpaca's 128-character limit


def test_order_request_validation_names_the_symbol() -> None:
    with pytest.raises(ValueError, match="AAA: order quantity must be > 0"):
        OrderRequest("id", "AAA", Side.BUY, 0.0)
    with pytest.raises(ValueError, match=r"AAA: quantity 1\.23456 has more than 4 decimals"):
        OrderRequest("id", "AAA", Side.BUY, 1.23456)
    with pytest.raises(ValueError, match="AAA: LIMIT order needs limit_price"):
        OrderRequest("id", "AAA", Side.BUY, 1.0, OrderType.LIMIT)
    with pytest.raises(ValueError, match="AAA: STOP order needs stop_price"):
        OrderRequest("id", "AAA", Side.BUY, 1.0, OrderType.STOP)
    OrderRequest("id", "AAA", Side.SELL, 1.2345, OrderType.STOP_LIMIT, limit_price=9.0, stop_price=9.5)


@given(st.lists(st.sampled_from(list(OrderStatus)), min_size=1, max_size=8))
def test_state_machine_never_leaves_a_terminal_state(path: list[OrderStatus]) -> None:
    status = OrderStatus.NEW
    for new in path:
        try:
            nxt = transition("x", status, new)
        except OrderStateError:
            assert new != status and new not in TRANSITIONS[status]
            continue
        if status.terminal:
            assert nxt == status
        status = nxt


def test_invalid_transition_names_the_order() -> None:
    with pytest.raises(OrderStateError, match="order X1: FILLED -> SUBMITTED"):
        transition("X1", OrderStatus.FILLED, OrderStatus.SUBMITTED)


def test_realised_pnl_and_cash_by_hand() -> None:
    led = Ledger(cash=10_000.0)
    led.apply_fill(fill("AAA", Side.BUY, 10, 100.0, commission=1.0, n=1))
    led.apply_fill(fill("AAA", Side.BUY, 10, 110.0, commission=1.0, n=2))
    assert led.positions["AAA"].avg_price == pytest.approx(105.0, abs=1e-12)
    led.apply_fill(fill("AAA", Side.SELL, 5, 120.0, commission=0.5, n=3))
    # realised: 5 x (120 - 105) - 2.5 commissions; cash: 10,000 - 1,000 - 1,100 + 600 - 2.5
    assert led.realized_pnl == pytest.approx(75.0 - 2.5, abs=1e-9)
    assert led.cash == pytest.approx(10_000 - 1_001 - 1_101 + 599.5, abs=1e-9)
    assert led.qty("AAA") == 15


def test_crossing_zero_opens_at_the_fill_price_and_closing_removes_the_position() -> None:
    led = Ledger(cash=0.0)
    led.apply_fill(fill("AAA", Side.BUY, 10, 50.0, n=1))
    led.apply_fill(fill("AAA", Side.SELL, 15, 60.0, n=2))
    assert led.qty("AAA") == -5 and led.positions["AAA"].avg_price == 60.0
    assert led.realized_pnl == pytest.approx(100.0, abs=1e-12)
    led.apply_fill(fill("AAA", Side.BUY, 5, 55.0, n=3))
    assert "AAA" not in led.positions and led.realized_pnl == pytest.approx(125.0, abs=1e-12)


def test_split_keeps_value_and_dividend_pays_longs_and_charges_shorts() -> None:
    led = Ledger(cash=0.0)
    led.apply_fill(fill("AAA", Side.BUY, 10, 100.0, n=1))
    led.apply_fill(fill("BBB", Side.SELL, 4, 20.0, n=2))
    led.apply_split("AAA", 4.0)
    assert led.qty("AAA") == 40 and led.positions["AAA"].avg_price == pytest.approx(25.0, abs=1e-12)
    assert led.apply_dividend("AAA", 0.5) == pytest.approx(20.0) and led.apply_dividend("BBB", 1.0) == -4.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["AAA", "BBB", "CCC"]),
            st.sampled_from([Side.BUY, Side.SELL]),
            st.integers(1, 500),
            st.floats(5.0, 500.0),
            st.floats(0.0, 2.0),
        ),
        max_size=40,
    ),
    st.floats(5.0, 500.0),
)
def test_positions_are_the_sum_of_fills_and_nav_adds_up(trades: list, mark: float) -> None:
    """qty = sum of signed fills; NAV = initial cash + realised + unrealised PnL (1e-6 dollars)."""
    led = Ledger(cash=1e6)
    signed: dict[str, float] = {}
    for n, (sym, side, qty, price, comm) in enumerate(trades):
        led.apply_fill(fill(sym, side, float(qty), price, comm, n))
        signed[sym] = signed.get(sym, 0.0) + side.sign * qty
    for sym, q in signed.items():
        assert math.isclose(led.qty(sym), q, abs_tol=1e-9)
    prices = dict.fromkeys(signed, mark)
    unrealised = sum(p.qty * (mark - p.avg_price) for p in led.positions.values())
    assert led.nav(prices) == pytest.approx(1e6 + led.realized_pnl + unrealised, abs=1e-6)
