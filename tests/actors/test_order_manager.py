"""Order lifecycle, brackets, OCO and trades of the order manager (handlers called directly)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.messages import (
    CancelOrder,
    CloseTrade,
    EndOfData,
    ExitSpec,
    OpenTrade,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    OrderUnknown,
    SignalRejected,
    SubmitOrder,
    TradeClosed,
    TradeOpened,
)
from actors.order_manager import OrderManager, bracket_levels, time_exit_ts

T0 = int(pd.Timestamp("2024-01-01 13:00", tz="UTC").value)
MIN = 60 * 10**9


def status(om: OrderManager) -> dict[int, str]:
    return {o["order_id"]: o["status"] for o in om.orders()}


def opened_trade(exits: ExitSpec, side: str = "long") -> tuple[OrderManager, list]:
    om = OrderManager()
    (entry,) = om.handle(OpenTrade(T0 - MIN, 1, "s", "X", "1m", side, 2.0, exits))
    om.handle(OrderAccepted(T0 - MIN, entry.order_id))
    out = om.handle(OrderFilled(T0, entry.order_id, 100.0, 2.0, 0.2))
    for msg in out:
        if isinstance(msg, SubmitOrder):
            om.handle(OrderAccepted(T0, msg.order_id))
    return om, out


def test_entry_goes_new_submitted_filled_and_places_the_bracket() -> None:
    om = OrderManager()
    (entry,) = om.handle(OpenTrade(T0 - MIN, 1, "s", "X", "1m", "long", 2.0, ExitSpec()))
    assert (entry.kind, entry.side, entry.role, entry.quantity) == ("market", "buy", "entry", 2.0)
    assert status(om) == {1: "NEW"}
    om.handle(OrderAccepted(T0 - MIN, 1))
    assert status(om) == {1: "SUBMITTED"}

    om, out = opened_trade(ExitSpec(sl_pct=0.01, tp_pct=0.02, hold_ns=5 * MIN))
    opened = out[0]
    assert isinstance(opened, TradeOpened) and (opened.trade_id, opened.entry_price) == (1, 100.0)
    legs = {m.role: m for m in out[1:]}
    assert legs["stop_loss"].kind == "stop" and legs["stop_loss"].price == pytest.approx(99.0)
    assert legs["take_profit"].kind == "limit" and legs["take_profit"].price == pytest.approx(102.0)
    assert legs["time"].kind == "timed" and legs["time"].trigger_ts == T0 + 5 * MIN
    assert all(m.side == "sell" and m.oco == 1 and m.active_from == T0 for m in legs.values())
    assert status(om) == {1: "FILLED", 2: "SUBMITTED", 3: "SUBMITTED", 4: "SUBMITTED"}
    assert om.trades()[0]["status"] == "ACTIVE"


def test_stop_fill_cancels_the_other_legs_and_closes_the_trade() -> None:
    om, _ = opened_trade(ExitSpec(sl_pct=0.01, tp_pct=0.02, hold_ns=5 * MIN))
    out = om.handle(OrderFilled(T0 + MIN, 2, 99.0, 2.0, 0.198))
    assert out[:2] == [CancelOrder(T0 + MIN, 3, "oco"), CancelOrder(T0 + MIN, 4, "oco")]
    closed = out[2]
    assert isinstance(closed, TradeClosed) and closed.exit_reason == "stop_loss"
    assert closed.pnl == pytest.approx(2 * (99.0 - 100.0) - 0.2 - 0.198)  # net of both fees
    trade = om.trades()[0]
    assert (trade["status"], trade["exit_price"], trade["exit_reason"]) == (
        "CLOSED",
        99.0,
        "stop_loss",
    )


def test_exit_by_signal_cancels_both_bracket_legs() -> None:
    om, _ = opened_trade(ExitSpec(sl_pct=0.01, tp_pct=0.02))
    (exit_order,) = om.handle(CloseTrade(T0 + 3 * MIN, 1, "signal"))
    assert (exit_order.kind, exit_order.role, exit_order.oco) == ("market", "signal", 1)
    assert om.handle(CloseTrade(T0 + 3 * MIN, 1, "signal")) == []  # already closing
    om.handle(OrderAccepted(T0 + 3 * MIN, exit_order.order_id))
    out = om.handle(OrderFilled(T0 + 4 * MIN, exit_order.order_id, 101.0, 2.0, 0.0))
    assert [m.order_id for m in out if isinstance(m, CancelOrder)] == [2, 3]
    assert out[-1].exit_reason == "signal"


def test_rejected_entry_becomes_a_rejected_signal() -> None:
    om = OrderManager()
    om.handle(OpenTrade(T0, 7, "s", "X", "1m", "short", 1.0, ExitSpec()))
    out = om.handle(OrderRejected(T0, 1, "no data"))
    assert out == [SignalRejected(T0, 7, "s", "X", "short", "order rejected: no data")]
    assert status(om) == {1: "REJECTED"}


def test_end_of_data_closes_trades_and_cancels_pending_entries() -> None:
    om, _ = opened_trade(ExitSpec(sl_pct=0.01))
    om.handle(OpenTrade(T0 + MIN, 2, "s", "X", "1m", "short", 1.0, ExitSpec()))
    out = om.handle(EndOfData(T0 + 9 * MIN))
    assert isinstance(out[0], SubmitOrder) and (out[0].kind, out[0].role) == (
        "close",
        "end_of_data",
    )
    assert out[1] == CancelOrder(T0 + 9 * MIN, 3, "end_of_data")


def test_leg_acknowledged_after_its_trade_closed_is_cancelled() -> None:
    om = OrderManager()
    (entry,) = om.handle(OpenTrade(T0 - MIN, 1, "s", "X", "1m", "long", 2.0, ExitSpec(0.01, 0.02)))
    om.handle(OrderAccepted(T0, entry.order_id))
    out = om.handle(OrderFilled(T0, entry.order_id, 100.0, 2.0, 0.0))
    stop, target = out[1], out[2]
    om.handle(OrderAccepted(T0, stop.order_id))
    closing = om.handle(OrderFilled(T0, stop.order_id, 99.0, 2.0, 0.0))
    assert not [m for m in closing if isinstance(m, CancelOrder)]  # target not acknowledged yet
    assert om.handle(OrderAccepted(T0, target.order_id)) == [
        CancelOrder(T0, target.order_id, "oco")
    ]


def test_bracket_levels_and_time_exits() -> None:
    assert bracket_levels("short", 100.0, ExitSpec(sl_pct=0.01, tp_pct=0.02)) == pytest.approx(
        (101.0, 98.0)
    )
    assert bracket_levels("long", 100.0, ExitSpec(sl_pct=0.01, stop_distance=3.0)) == (97.0, None)
    assert bracket_levels("long", 100.0, ExitSpec()) == (None, None)
    midnight = int(pd.Timestamp("2024-01-02", tz="UTC").value)
    assert time_exit_ts(T0, ExitSpec(session_end=True)) == midnight
    assert time_exit_ts(T0, ExitSpec(hold_ns=5 * MIN, session_end=True)) == T0 + 5 * MIN
    assert time_exit_ts(T0, ExitSpec()) is None


def test_an_order_whose_answer_was_lost_is_unknown_until_the_exchange_says() -> None:
    """Live: NEW -> UNKNOWN (the answer was lost) -> what the lookup found; an UNKNOWN leg of a
    trade that closes gets its cancel like a resting one (it may be live at the exchange)."""
    om = OrderManager()
    (entry,) = om.handle(OpenTrade(T0 - MIN, 1, "s", "X", "1m", "long", 2.0, ExitSpec(sl_pct=0.01)))
    assert om.handle(OrderUnknown(T0 - MIN, 1, "answer lost: RequestTimeout")) == []
    assert status(om) == {1: "UNKNOWN"}
    om.handle(OrderAccepted(T0 - MIN, 1))  # found at the exchange
    assert status(om) == {1: "SUBMITTED"}
    out = om.handle(OrderFilled(T0, 1, 100.0, 2.0, 0.0))
    stop = next(m for m in out if isinstance(m, SubmitOrder))
    om.handle(OrderUnknown(T0, stop.order_id, "answer lost"))
    (exit_order,) = om.handle(CloseTrade(T0 + MIN, 1, "signal"))
    om.handle(OrderAccepted(T0 + MIN, exit_order.order_id))
    out = om.handle(OrderFilled(T0 + MIN, exit_order.order_id, 101.0, 2.0, 0.0))
    assert CancelOrder(T0 + MIN, stop.order_id, "oco") in out
    # the lookup of a lost entry found nothing once it could no longer arrive: rejected
    (second,) = om.handle(OpenTrade(T0 + 2 * MIN, 2, "s", "X", "1m", "long", 1.0, ExitSpec()))
    om.handle(OrderUnknown(T0 + 2 * MIN, second.order_id, "answer lost"))
    out = om.handle(OrderRejected(T0 + 3 * MIN, second.order_id, "lost before ..."))
    assert status(om)[second.order_id] == "REJECTED" and isinstance(out[0], SignalRejected)


# -- partial fills (live: a resting take profit filled in parts) ------------------------------
def _partial_trade(qty: float) -> tuple[OrderManager, dict[str, SubmitOrder]]:
    """A long of `qty` at 100 (fee 0.2) with a stop at 99, a target at 102 and a time exit."""
    om = OrderManager()
    exits = ExitSpec(stop_distance=1.0, target_distance=2.0, hold_ns=60 * MIN)
    (entry,) = om.handle(OpenTrade(T0 - MIN, 1, "s", "X", "1m", "long", qty, exits))
    om.handle(OrderAccepted(T0 - MIN, entry.order_id))
    out = om.handle(OrderFilled(T0, entry.order_id, 100.0, qty, 0.2))
    return om, _acknowledge(om, out, T0)


def _acknowledge(om: OrderManager, out: list, ts: int) -> dict[str, SubmitOrder]:
    """The exchange accepts the new legs and confirms the cancels; returns the new legs."""
    legs = {m.role: m for m in out if isinstance(m, SubmitOrder)}
    for msg in out:
        if isinstance(msg, SubmitOrder):
            om.handle(OrderAccepted(ts, msg.order_id))
        elif isinstance(msg, CancelOrder):
            om.handle(OrderCancelled(ts, msg.order_id, msg.reason))
    return legs


def bookkeeping_errors(om: OrderManager, fills: dict[int, list[float]], qty: float) -> list[str]:
    """Per order: the sum of its fills is its filled quantity, never above its quantity; a
    closed trade sold all it held."""
    out = []
    for order in om.orders():
        mine = fills.get(order["order_id"], [])
        if sum(mine) != order["filled"] or order["filled"] > order["quantity"]:
            out.append(f"order {order['order_id']}: fills {mine}, filled {order['filled']}")
    for trade in om.trades():
        sold = sum(
            o["filled"]
            for o in om.orders()
            if o["trade_id"] == trade["trade_id"] and o["role"] != "entry"
        )
        if trade["status"] == "CLOSED" and sold != qty:
            out.append(f"trade {trade['trade_id']} closed with {sold} of {qty} sold")
    return out


def test_a_partly_filled_target_is_replaced_for_the_remainder() -> None:
    om, legs = _partial_trade(10.0)
    tp, sl, tx = legs["take_profit"], legs["stop_loss"], legs["time"]
    out = om.handle(OrderPartiallyFilled(T0 + 5 * MIN, tp.order_id, 102.0, 4.0, 0.408))
    cancels = {m.order_id for m in out if isinstance(m, CancelOrder)}
    assert cancels == {tp.order_id, sl.order_id, tx.order_id}
    new = {m.role: m for m in out if isinstance(m, SubmitOrder)}
    assert {r: (m.quantity, m.price) for r, m in new.items()} == {
        "stop_loss": (6.0, sl.price),
        "take_profit": (6.0, tp.price),
        "time": (6.0, None),
    }
    assert new["time"].trigger_ts == tx.trigger_ts  # the time exit keeps its due time
    assert all(m.ts == T0 + 5 * MIN and m.oco == 1 for m in new.values())
    (trade,) = om.trades()
    assert (trade["status"], trade["quantity"], trade["exited"]) == ("ACTIVE", 10.0, 4.0)
    row = next(o for o in om.orders() if o["order_id"] == tp.order_id)
    assert (row["filled"], row["fill_price"], row["fee"]) == (4.0, 102.0, 0.408)


def test_the_trade_closes_when_flat_with_the_exact_sum_of_its_parts() -> None:
    om, legs = _partial_trade(10.0)
    out = om.handle(
        OrderPartiallyFilled(T0 + 5 * MIN, legs["take_profit"].order_id, 102.0, 4.0, 0.1)
    )
    legs = _acknowledge(om, out, T0 + 5 * MIN)
    (closed,) = [
        m
        for m in om.handle(OrderFilled(T0 + 9 * MIN, legs["stop_loss"].order_id, 99.0, 6.0, 0.3))
        if isinstance(m, TradeClosed)
    ]
    # by hand: 4 * 102 + 6 * 99 - 10 * 100 = 2; fees 0.2 + 0.1 + 0.3
    assert closed.pnl == pytest.approx(1.4, abs=1e-12)
    assert closed.pnl == math.fsum([408.0, 594.0, -1000.0, -0.2, -0.1, -0.3])
    assert (closed.exit_reason, closed.quantity) == ("stop_loss", 10.0)
    assert closed.exit_price == pytest.approx(100.2) and closed.exit_fee == pytest.approx(0.4)


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(st.integers(1, 5), min_size=1, max_size=6), last=st.integers(1, 5))
def test_partial_fills_add_up(parts: list[int], last: int) -> None:
    """Random parts of the target (whole units, so sums are exact), each re-placing the rest:
    sum of fills == filled <= quantity for every order; the trade closes flat."""
    qty = float(sum(parts) + last)
    om, legs = _partial_trade(qty)
    fills: dict[int, list[float]] = {1: [qty]}
    ts = T0
    for part in parts:
        ts += MIN
        tp = legs["take_profit"]
        fills.setdefault(tp.order_id, []).append(float(part))
        out = om.handle(OrderPartiallyFilled(ts, tp.order_id, 102.0, float(part), 0.01))
        legs = _acknowledge(om, out, ts)
        assert bookkeeping_errors(om, fills, qty) == []
        assert legs["stop_loss"].quantity == legs["take_profit"].quantity
    assert legs["take_profit"].quantity == last
    fills.setdefault(legs["take_profit"].order_id, []).append(float(last))
    om.handle(OrderFilled(ts + MIN, legs["take_profit"].order_id, 102.0, float(last), 0.01))
    assert bookkeeping_errors(om, fills, qty) == []
    (trade,) = om.trades()
    assert trade["status"] == "CLOSED" and trade["pnl"] == pytest.approx(
        2.0 * qty - 0.2 - 0.01 * (len(parts) + 1)
    )


def test_a_first_part_taken_as_the_whole_fill_fails_the_check() -> None:
    """The broken bookkeeping: the first part reported as the order's fill closes the trade
    with most of the position still held."""
    om, legs = _partial_trade(10.0)
    tp = legs["take_profit"]
    om.handle(OrderFilled(T0 + 5 * MIN, tp.order_id, 102.0, 4.0, 0.1))  # a part, said as full
    errors = bookkeeping_errors(om, {1: [10.0], tp.order_id: [4.0]}, 10.0)
    assert errors == ["trade 1 closed with 4.0 of 10.0 sold"]
