"""The venue's reports of fills in parts (live/venues/reports.py): an order's trades as parts,
what a later report adds to the parts reported, and several trades summed exactly."""

from __future__ import annotations

import math

from live.venues.reports import FillPart, fill_parts, parts_after, status_report, sum_parts

# a market order filled in three trades (ccxt fetch_my_trades), listed out of order
TRADES = [
    {"id": "12", "amount": 2.0, "price": 0.25, "fee": {"cost": 0.0005}, "timestamp": 1000},
    {"id": "11", "amount": 1.0, "price": 0.5, "fee": {"cost": 0.0005}, "timestamp": 1000},
    {"id": "13", "amount": 1.0, "price": 0.75, "fee": {"cost": 0.00075}, "timestamp": 2000},
]


def test_a_market_order_filled_in_several_trades_sums_its_fills() -> None:
    parts = fill_parts(TRADES)
    assert [p.trade_id for p in parts] == ["11", "12", "13"]  # as they happened
    qty, price, fee = sum_parts(list(parts))
    assert qty == 4.0  # by hand: 1 + 2 + 1
    assert price == (0.5 + 0.5 + 0.75) / 4 == 0.4375
    assert fee == math.fsum([0.0005, 0.0005, 0.00075])


def test_a_later_report_carries_only_the_parts_after_those_reported() -> None:
    parts = fill_parts(TRADES)
    assert parts_after(parts, 0.0) == list(parts)
    assert [p.trade_id for p in parts_after(parts, 1.0)] == ["12", "13"]
    assert [p.trade_id for p in parts_after(parts, 3.0)] == ["13"]
    assert parts_after(parts, 4.0) == []


def test_an_open_order_filled_in_part_says_how_much() -> None:
    order = {"id": 7, "clientOrderId": "rt-x", "status": "open", "filled": 4.0, "info": {}}
    part = FillPart(4.0, 0.625, 0.0025, 1000, "1")
    report = status_report(order, "PFX/BTC", (part,))
    assert (report.status, report.filled, report.parts) == ("open", 4.0, (part,))
