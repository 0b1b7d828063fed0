"""Order manager stores backed by the database (store.models OrderRecord / TradeRecord).

`SqlOrderStore` writes every order and trade change at once (live trading: a restart or a
crash loses nothing). Backtests use `MemoryOrderStore` (actors/order_manager.py) and store
their orders and trades in bulk at the end (store.runs.save_backtest_run with `order_rows`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pandas as pd

from actors.order_manager import MemoryOrderStore, OrderState, TradeState

_TYPES = {"stop": "stop", "limit": "limit"}  # market, timed and close orders are market orders


def _time(ns: int | None) -> datetime | None:
    return None if ns is None else pd.Timestamp(ns, tz="UTC").to_pydatetime()


def order_row(record: dict[str, Any], prefix: str, parent: int | None) -> dict[str, Any]:
    """An order manager record as an OrderRecord row; ids are `prefix:order_id`."""
    kind = record["kind"]
    return {
        "id": f"{prefix}:{record['order_id']}",
        "parent_id": f"{prefix}:{parent}" if parent else None,
        "role": record["role"],
        "strategy": record["strategy"],
        "symbol": record["symbol"],
        "side": record["side"],
        "type": _TYPES.get(kind, "market"),
        "quantity": record["quantity"],
        "price": record["price"] if kind == "limit" else None,
        "stop_price": record["price"] if kind == "stop" else None,
        "status": record["status"],
        "filled_quantity": record["quantity"] if record["status"] == "FILLED" else 0.0,
        "avg_fill_price": record["fill_price"],
        "fee": record["fee"],
        "reason": record["reason"],
        "created_at": _time(record["created_ts"]),
        "updated_at": _time(record["fill_ts"]),
    }


def order_rows(records: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """All records of a run; bracket legs point at their trade's entry order."""
    entry_of_trade = {r["trade_id"]: r["order_id"] for r in records if r["role"] == "entry"}
    return [
        order_row(r, prefix, entry_of_trade.get(r["trade_id"]) if r["role"] != "entry" else None)
        for r in records
    ]


def trade_row(record: dict[str, Any], prefix: str) -> dict[str, Any]:
    notional = record["quantity"] * record["entry_price"]
    pnl = record["pnl"]
    return {
        "trade_id": f"{prefix}:{record['trade_id']}",
        "strategy": record["strategy"],
        "symbol": record["symbol"],
        "interval": record["interval"],
        "side": record["side"],
        "status": record["status"],
        "entry_time": _time(record["entry_ts"]),
        "entry_price": record["entry_price"],
        "exit_time": _time(record["exit_ts"]),
        "exit_price": record["exit_price"],
        "quantity": record["quantity"],
        "fees": record["entry_fee"] + record["exit_fee"],
        "pnl": pnl,
        "return_pct": pnl / notional if pnl is not None and notional else None,
        "exit_reason": record["exit_reason"],
    }


class SqlOrderStore(MemoryOrderStore):
    """Write-through store: each change is written in its own transaction, then kept in memory."""

    def __init__(self, url: str, prefix: str | None = None, run_id: str | None = None,
                 instance_id: int | None = None, exchange: str = "") -> None:  # fmt: skip
        super().__init__()
        self.url = url
        self.prefix = prefix or uuid.uuid4().hex[:12]  # order ids stay unique across sessions
        self.extra = {"run_id": run_id, "instance_id": instance_id, "exchange": exchange}
        self._trade_pk: dict[int, int] = {}
        # Bracket legs point at their trade's entry order; the link is written with each leg,
        # because the rows carry no trade id to rebuild it from later.
        self._entry_of_signal: dict[tuple[str, int | None], int] = {}
        self._entry_of_trade: dict[int, int | None] = {}

    def put_order(self, order: OrderState) -> None:
        from store.db import session_scope
        from store.models import OrderRecord

        super().put_order(order)
        if order.role == "entry":
            self._entry_of_signal[(order.strategy, order.signal_id)] = order.order_id
            parent = None
        else:
            parent = self._entry_of_trade.get(order.trade_id) if order.trade_id else None
        row = order_row(order.record(), self.prefix, parent)
        with session_scope(self.url) as session:
            session.merge(OrderRecord(**row, **self.extra))

    def put_trade(self, trade: TradeState) -> None:
        from store.db import session_scope
        from store.models import TradeRecord

        super().put_trade(trade)
        entry = self._entry_of_signal.get((trade.strategy, trade.signal_id))
        self._entry_of_trade.setdefault(trade.trade_id, entry)
        row = trade_row(trade.record(), self.prefix)
        with session_scope(self.url) as session:
            record = TradeRecord(**row, **self.extra, id=self._trade_pk.get(trade.trade_id))
            record = session.merge(record)
            session.flush()
            self._trade_pk[trade.trade_id] = record.id
