"""What the venue answers, as typed reports (the broker builds them from ccxt's answers).

Reconciliation (live/ops/reconcile.py) reads these and never a ccxt dict, so it does not depend
on ccxt's spelling and can be tested with hand-made reports. Frozen msgspec Structs, like the
engine's messages (actors/messages.py): cheap to build and to send between Ray actors.
Times are ns since the epoch (the engine's unit); exchange and client order ids are strings.
"""

from __future__ import annotations

import math
from enum import StrEnum

import msgspec

MS = 1_000_000  # ns per ms


class OrderStatus(StrEnum):
    """An order's state at the exchange (ccxt's unified words)."""

    OPEN = "open"
    CLOSED = "closed"  # filled
    CANCELED = "canceled"
    CANCELING = "canceling"
    EXPIRED = "expired"
    REJECTED = "rejected"
    UNKNOWN = "unknown"  # a word ccxt did not map

    @classmethod
    def of(cls, word: str | None) -> OrderStatus:
        try:
            return cls(word)
        except ValueError:
            return cls.UNKNOWN


class FillPart(msgspec.Struct, frozen=True):
    """One trade of an order (a part of its fill): a resting limit can fill in parts, a market
    order in several trades."""

    quantity: float
    price: float
    fee: float  # quote fee of this trade
    ts_ms: int  # the exchange's time of the trade
    trade_id: str | None = None


class OrderStatusReport(msgspec.Struct, frozen=True):
    """One order as the exchange holds it. For a filled (closed) order, its fill: when it
    filled, at what average price, how much, and the fee its trades paid."""

    exchange_id: str
    client_id: str | None
    symbol: str
    status: OrderStatus
    updated_ts: int  # ns; the exchange's last update of the order (0: not stated)
    filled_ts: int = 0  # ns; the fill's time (closed orders)
    price: float = 0.0  # average fill price (closed orders)
    filled: float = 0.0  # base quantity filled (so far, for an open order filled in part)
    fee: float = 0.0  # quote fee of the fill
    parts: tuple[FillPart, ...] = ()  # its trades, oldest first (when read: partly filled)


class FillReport(msgspec.Struct, frozen=True):
    """One trade of the account (a fill of some order), as listed by the exchange."""

    trade_id: str | None
    exchange_order_id: str
    symbol: str
    side: str | None
    quantity: float | None
    price: float | None
    ts_ms: int  # the exchange's time of the trade, ms


class AccountReport(msgspec.Struct, frozen=True):
    """What the account shows for an audit: open orders and the fills since a time on the
    traded symbols, and the exchange ids of the orders this broker placed itself."""

    open_orders: tuple[OrderStatusReport, ...]
    fills: tuple[FillReport, ...]
    placed: frozenset[str]


class BalanceReport(msgspec.Struct, frozen=True):
    """The account's balances per asset: free, and total (free + locked)."""

    free: dict[str, float]
    total: dict[str, float]

    def quote_free(self, symbol: str) -> float:
        """The free balance of a pair's quote currency (what a buy can spend)."""
        return self.free.get(symbol.split("/")[1], 0.0)


def amounts(per_asset: dict[str, float | None] | None) -> dict[str, float]:
    """ccxt's free / total balances per asset as floats (None: 0)."""
    return {asset: float(v or 0.0) for asset, v in (per_asset or {}).items()}


def updated_ns(order: dict) -> int:
    """The exchange's last update of a ccxt order, ns (0: not stated)."""
    info = order.get("info") or {}
    return int(info.get("updateTime") or order.get("timestamp") or 0) * MS


def status_report(order: dict, symbol: str, parts: tuple[FillPart, ...] = ()) -> OrderStatusReport:
    """A ccxt order without its fill (open, cancelled, expired); an open one filled in part
    says how much so far, and its parts when they were read."""
    status = OrderStatus.of(order.get("status"))
    return OrderStatusReport(
        str(order["id"]),
        order.get("clientOrderId"),
        symbol,
        status,
        updated_ns(order),
        filled=float(order.get("filled") or 0.0),
        parts=parts,
    )


def filled_of(order: dict) -> float:
    """The base quantity a ccxt order has filled so far."""
    return float(order.get("filled") or 0.0)


def fill_parts(trades: list[dict]) -> tuple[FillPart, ...]:
    """An order's trades (ccxt fetch_my_trades) as parts, in the order they happened."""
    parts = [
        FillPart(
            float(t["amount"]),
            float(t["price"]),
            float((t.get("fee") or {}).get("cost") or 0.0),
            int(t["timestamp"]),
            None if t.get("id") is None else str(t["id"]),
        )
        for t in trades
    ]
    return tuple(sorted(parts, key=lambda p: (p.ts_ms, _number(p.trade_id))))


def _number(trade_id: str | None) -> int:
    return int(trade_id) if trade_id is not None and trade_id.isdigit() else 0


def parts_after(parts: tuple[FillPart, ...], reported: float) -> list[FillPart]:
    """The parts beyond the first `reported` quantity (those already reported): the parts
    happened in this order, so what was reported is a prefix of them."""
    done, out = 0.0, []
    for part in parts:
        done += part.quantity
        if done > reported + 1e-9 * max(1.0, reported):
            out.append(part)
    return out


def sum_parts(parts: list[FillPart]) -> tuple[float, float, float]:
    """(quantity, average price, fee) of several parts, each sum exact (math.fsum)."""
    qty = math.fsum(p.quantity for p in parts)
    value = math.fsum(p.quantity * p.price for p in parts)
    return qty, (value / qty if qty else 0.0), math.fsum(p.fee for p in parts)


def fill_report(fill: dict, symbol: str) -> FillReport:
    """A ccxt trade of the account."""
    amount, price = fill.get("amount"), fill.get("price")
    return FillReport(
        None if fill.get("id") is None else str(fill["id"]),
        str(fill.get("order")),
        symbol,
        fill.get("side"),
        None if amount is None else float(amount),
        None if price is None else float(price),
        int(fill["timestamp"]),
    )


def answer_fills(order: dict, ts_ms: int) -> list[dict] | None:
    """The trades in an order's answer to its creation (ccxt parses Binance's FULL answer's
    `fills` into `trades`, without their time: the order's `ts_ms`), when each carries its fee
    and together they are all that filled; None otherwise (the account's trades of the order
    are read instead)."""
    trades = order.get("trades") or []
    if not trades or any((t.get("fee") or {}).get("cost") is None for t in trades):
        return None
    filled = float(order.get("filled") or 0.0)
    if abs(math.fsum(float(t["amount"]) for t in trades) - filled) > 1e-9 * max(1.0, filled):
        return None
    return [{**t, "timestamp": t.get("timestamp") or ts_ms} for t in trades]
