"""The domain's StrEnums keep the exact strings files, tables and messages always carried."""

from __future__ import annotations

import json

import pandas as pd

from actors.messages import SubmitOrder, TradeClosed
from core.vocabulary import (
    OrderKind,
    OrderRole,
    OrderSide,
    OrderStatus,
    Side,
    SignalAction,
    TradeStatus,
)


def test_values_are_the_strings_of_the_public_formats() -> None:
    assert [s.value for s in Side] == ["long", "short"]  # trades.csv side
    assert [s.value for s in OrderSide] == ["buy", "sell"]
    assert [a.value for a in SignalAction] == ["enter", "exit"]
    assert [k.value for k in OrderKind] == ["market", "stop", "limit", "timed", "close"]
    # trades.csv exit_reason is the role of the closing order (docs/design.md#tradescsv)
    assert {r.value for r in OrderRole} == {
        "entry",
        "stop_loss",
        "take_profit",
        "signal",
        "time",
        "end_of_data",
        "disabled",
        "risk_limit",  # closed by --on-breach close (docs/live.md#risk-limits)
    }
    # the orders table's status; UNKNOWN: the exchange's answer was lost (live/venues/outcomes.py)
    assert [s.value for s in OrderStatus] == [
        "NEW",
        "UNKNOWN",
        "SUBMITTED",
        "FILLED",
        "CANCELLED",
        "REJECTED",
    ]
    assert [s.value for s in TradeStatus] == ["ACTIVE", "CLOSED"]


def test_a_member_is_its_string_everywhere_it_is_written() -> None:
    assert Side.LONG == "long" and f"{Side.SHORT}" == "short" and str(OrderStatus.NEW) == "NEW"
    assert {"long": 1}[Side.LONG] == 1 and {Side.LONG: 1}["long"] == 1
    assert json.dumps({"side": Side.LONG}) == '{"side": "long"}'
    assert pd.DataFrame({"side": [Side.LONG, Side.SHORT]}).to_csv(index=False) == (
        "side\nlong\nshort\n"
    )


def test_opposite_side() -> None:
    assert Side.LONG.opposite is Side.SHORT and Side.SHORT.opposite is Side.LONG


def test_a_message_built_with_plain_strings_equals_one_built_with_members() -> None:
    # live/ builds some messages from stored rows (plain strings): they must compare equal
    plain = SubmitOrder(1, 7, "s", "ETH/BTC", "buy", 1.0, "market", "entry")
    typed = SubmitOrder(1, 7, "s", "ETH/BTC", OrderSide.BUY, 1.0, OrderKind.MARKET, OrderRole.ENTRY)
    assert plain == typed
    closed = TradeClosed(
        1, 2, "s", "ETH/BTC", Side.SHORT, 1.0, 0, 1.0, 1.1, 0.0, 0.0, -0.1, "signal"
    )
    assert closed.exit_reason == OrderRole.SIGNAL and closed.side == "short"
