"""Order lifecycle, brackets, OCO and trades of the order manager (handlers called directly)."""

from __future__ import annotations

import pandas as pd
import pytest

from actors.messages import (
    CancelOrder,
    CloseTrade,
    EndOfData,
    ExitSpec,
    OpenTrade,
    OrderAccepted,
    OrderFilled,
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
