"""Order manager: order lifecycle, brackets and trades.

Orders go NEW (created) -> SUBMITTED (accepted by the exchange) -> FILLED | CANCELLED | REJECTED.
Live, an order whose answer was lost goes NEW -> UNKNOWN until the broker found out (OrderUnknown,
then the usual events; live/venues/outcomes.py).
An entry carries a bracket: when it fills the trade goes ACTIVE and the manager places the stop
loss (stop-market), the take profit (limit) and, when the strategy has one, a time exit (a timed
market order). All exit orders of a trade share one OCO group (the trade id): when one fills the
manager cancels the others; an exit by signal cancels the bracket the same way. The trade goes
CLOSED with the exit_reason of the order that closed it.

Live, a resting take profit can fill in parts (OrderPartiallyFilled, each part once): the order's
`filled` and the trade's `exited` add the parts, and since the exchange expired the OCO's stop the
rest of the position is protected again at once: the old legs are cancelled and the stop, target
and time exit placed again for the remainder, at the same levels, under new client order ids
(their time is the part's bar). The trade closes when the position is flat; its pnl is the exact
sum of every part (docs/live.md#partial-fills).

State goes through an `OrderStore`: `MemoryOrderStore` (backtests: kept in memory, written in
bulk at the end by the caller) or any write-through store with the same methods (live).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import msgspec

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
from actors.runtime import Actor, EventClock
from core.intervals import DAY_NS
from core.vocabulary import OrderKind, OrderRole, OrderSide, OrderStatus, Side, TradeStatus

# The members the per-order paths compare against, as module globals: reading a member off
# its enum class costs a few times more (Python 3.11), and every trade reads dozens.
_BUY = OrderSide.BUY
_SELL = OrderSide.SELL
_LONG = Side.LONG
_SHORT = Side.SHORT
_MARKET = OrderKind.MARKET
_STOP = OrderKind.STOP
_LIMIT = OrderKind.LIMIT
_TIMED = OrderKind.TIMED
_CLOSE = OrderKind.CLOSE
_ENTRY = OrderRole.ENTRY
_STOP_LOSS = OrderRole.STOP_LOSS
_TAKE_PROFIT = OrderRole.TAKE_PROFIT
_TIME = OrderRole.TIME
_END_OF_DATA = OrderRole.END_OF_DATA
_NEW = OrderStatus.NEW
_SUBMITTED = OrderStatus.SUBMITTED
_UNKNOWN = OrderStatus.UNKNOWN
_FILLED = OrderStatus.FILLED
_CANCELLED = OrderStatus.CANCELLED
_REJECTED = OrderStatus.REJECTED
_ACTIVE = TradeStatus.ACTIVE
_CLOSED = TradeStatus.CLOSED
_NO_EXITS = (ExitSpec(), "")  # an entry without pending exits (frozen: shared)
REPLACED = "replaced for the remainder after a partial fill"


# The order manager's own records: mutable msgspec Structs (a C constructor, like the messages;
# three orders and a trade are built per trade). Plain values only: no cycle, no GC tracking.
class OrderState(msgspec.Struct, gc=False):
    order_id: int
    strategy: str
    symbol: str
    side: OrderSide
    kind: OrderKind
    role: OrderRole
    quantity: float
    price: float | None
    trade_id: int | None
    signal_id: int | None
    created_ts: int
    status: OrderStatus = _NEW
    fill_ts: int | None = None
    fill_price: float | None = None
    fee: float = 0.0
    reason: str | None = None
    filled: float = 0.0  # base quantity filled so far: the sum of its fills (live: parts)
    trigger_ts: int | None = None  # a time exit's due time (a re-placed one keeps it)

    def record(self) -> dict[str, Any]:
        return _order_record(self)


class TradeState(msgspec.Struct):
    trade_id: int
    signal_id: int
    strategy: str
    symbol: str
    interval: str
    side: Side
    quantity: float
    entry_ts: int
    entry_price: float
    entry_fee: float
    status: TradeStatus = _ACTIVE
    exit_ts: int | None = None
    exit_price: float | None = None
    exit_fee: float = 0.0
    pnl: float | None = None
    exit_reason: OrderRole | None = None
    exited: float = 0.0  # base quantity closed so far by partial exits (live)
    orders: list[int] = msgspec.field(default_factory=list)  # exit orders (the OCO group)
    # the exit fills so far (quantity, price, fee), each part as filled: the pnl sums them
    parts: list[tuple[float, float, float]] = msgspec.field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return _trade_record(self)


# record() builds thousands of dicts per backtest: a generated dict display
# ({"order_id": s.order_id, ...}) is ~3x faster than dict(zip(fields, attrgetter(s))).
ORDER_FIELDS = OrderState.__struct_fields__
TRADE_FIELDS = tuple(n for n in TradeState.__struct_fields__ if n not in ("orders", "parts"))
_order_record, _trade_record = (
    eval("lambda s: {" + ", ".join(f"{n!r}: s.{n}" for n in fields) + "}")  # noqa: S307
    for fields in (ORDER_FIELDS, TRADE_FIELDS)  # our own slot names
)


class OrderStore(Protocol):
    def put_order(self, order: OrderState) -> None: ...
    def put_trade(self, trade: TradeState) -> None: ...
    def orders(self) -> list[dict[str, Any]]: ...
    def trades(self) -> list[dict[str, Any]]: ...


class MemoryOrderStore:
    """Backtest store: keeps the latest state of every order and trade; written in bulk later."""

    def __init__(self) -> None:
        self._orders: dict[int, OrderState] = {}
        self._trades: dict[int, TradeState] = {}

    def put_order(self, order: OrderState) -> None:
        self._orders[order.order_id] = order

    def put_trade(self, trade: TradeState) -> None:
        self._trades[trade.trade_id] = trade

    def orders(self) -> list[dict[str, Any]]:
        return [_order_record(o) for o in self._orders.values()]

    def trades(self) -> list[dict[str, Any]]:
        return [_trade_record(t) for t in self._trades.values()]


class OrderManager(Actor):
    handlers = {
        OpenTrade: "on_open_trade",
        CloseTrade: "on_close_trade",
        OrderAccepted: "on_accepted",
        OrderRejected: "on_rejected",
        OrderUnknown: "on_unknown",
        OrderFilled: "on_filled",
        OrderPartiallyFilled: "on_partially_filled",
        OrderCancelled: "on_cancelled",
        EndOfData: "on_end",
    }

    def __init__(self, store: OrderStore | None = None, clock: EventClock | None = None) -> None:
        super().__init__(clock)
        self.store = store if store is not None else MemoryOrderStore()
        # the memory store holds these very objects: their later changes need no second put
        self._rewrite = type(self.store) is not MemoryOrderStore
        self._orders: dict[int, OrderState] = {}  # not yet final
        self._trades: dict[int, TradeState] = {}  # ACTIVE
        # (strategy id, signal id) -> (exits, interval): signal ids are numbered per strategy
        self._pending: dict[tuple[str, int], tuple[ExitSpec, str]] = {}
        self._next_order = 0
        self._next_trade = 0

    # -- commands from the portfolio ----------------------------------------------------------
    def on_open_trade(self, msg: OpenTrade) -> list:
        self._pending[(msg.strategy, msg.signal_id)] = (msg.exits, msg.interval)
        side = _BUY if msg.side == _LONG else _SELL
        order = self._new_order(
            msg.ts,
            msg.strategy,
            msg.symbol,
            side,
            _MARKET,
            _ENTRY,
            msg.quantity,
            None,
            None,
            msg.signal_id,
        )
        return [self._submit(order, msg.ts)]

    def on_close_trade(self, msg: CloseTrade) -> list:
        trade = self._trades.get(msg.trade_id)
        if trade is None or self._has_pending_exit(trade, _MARKET):
            return []  # already closed or closing
        return [self._exit_order(trade, msg.ts, _MARKET, msg.reason)]

    def on_end(self, msg: EndOfData) -> list:
        """Close every active trade at the last close; cancel entries that never filled."""
        out: list = []
        for trade in list(self._trades.values()):
            out.append(self._exit_order(trade, msg.ts, _CLOSE, _END_OF_DATA))
        for order in list(self._orders.values()):
            if order.role == _ENTRY:
                out.append(CancelOrder(msg.ts, order.order_id, "end_of_data"))
        return out

    # -- events from the exchange -------------------------------------------------------------
    def on_accepted(self, msg: OrderAccepted) -> list:
        order = self._orders.get(msg.order_id)
        if order is None or order.status not in (_NEW, _UNKNOWN):
            return []
        order.status = _SUBMITTED
        if self._rewrite:
            self.store.put_order(order)
        if order.role != _ENTRY and order.trade_id not in self._trades:
            # an exit leg acknowledged after its trade closed (a sibling filled first)
            return [CancelOrder(msg.ts, order.order_id, "oco")]
        return []

    def on_unknown(self, msg: OrderUnknown) -> list:
        """The answer was lost: the order may be live; the broker looks it up (no cancel of
        its siblings is held back: an UNKNOWN leg gets its CancelOrder like a SUBMITTED one)."""
        order = self._orders.get(msg.order_id)
        if order is None or order.status != _NEW:
            return []
        order.status, order.reason = _UNKNOWN, msg.reason
        if self._rewrite:
            self.store.put_order(order)
        return []

    def on_rejected(self, msg: OrderRejected) -> list:
        order = self._finish(msg.order_id, _REJECTED, msg.reason)
        return self._entry_failed(order, msg.ts, f"order rejected: {msg.reason}")

    def on_cancelled(self, msg: OrderCancelled) -> list:
        order = self._finish(msg.order_id, _CANCELLED, msg.reason)
        return self._entry_failed(order, msg.ts, f"entry cancelled: {msg.reason}")

    def on_filled(self, msg: OrderFilled) -> list:
        order = self._orders.pop(msg.order_id, None)
        if order is None:
            return []
        order.status, order.reason = _FILLED, None
        prior = order.filled
        if prior:  # the last part of an order reported in parts: the totals add it
            total = prior + msg.quantity
            order.fill_price = (prior * order.fill_price + msg.quantity * msg.price) / total
            order.fill_ts, order.fee, order.filled = msg.ts, order.fee + msg.fee, total
        else:
            order.fill_ts, order.fill_price, order.fee = msg.ts, msg.price, msg.fee
            order.filled = msg.quantity
        if self._rewrite:
            self.store.put_order(order)  # status and fill in one write
        if order.role == _ENTRY:
            return self._open(order, msg)
        return self._close(order, msg)

    def on_partially_filled(self, msg: OrderPartiallyFilled) -> list:
        """Live: part of a resting exit filled (the exchange expired its OCO sibling, the stop).
        The order's filled quantity and the trade's exited quantity add the part; the rest of
        the position gets its protection back at its new size: the old legs are cancelled (the
        rest of the take profit locks the coins a separate stop would sell, on spot) and the
        stop, the target and the time exit are placed again for the remainder, same levels."""
        order = self._orders.get(msg.order_id)
        if order is None or not msg.quantity > 0:
            return []
        prior, qty = order.filled, msg.quantity
        total = prior + qty
        if prior:
            order.fill_price = (prior * order.fill_price + qty * msg.price) / total
        else:
            order.fill_price = msg.price
        order.fill_ts, order.fee, order.filled = msg.ts, order.fee + msg.fee, total
        if order.status in (_NEW, _UNKNOWN):  # a part filled: it is at the exchange
            order.status = _SUBMITTED
        self.store.put_order(order)
        trade = self._trades.get(order.trade_id) if order.role != _ENTRY else None
        if trade is None:  # entries are market orders: their total comes at once
            return []
        trade.parts.append((qty, msg.price, msg.fee))
        trade.exited += qty
        self.store.put_trade(trade)
        return self._protect_rest(trade, msg.ts)

    def _protect_rest(self, trade: TradeState, ts: int) -> list:
        legs = [self._orders[oid] for oid in trade.orders if oid in self._orders]
        if any(o.kind in (_MARKET, _CLOSE) for o in legs):
            return []  # an exit at market is on its way: the broker frees the coins for it
        stop = next((o.price for o in legs if o.kind == _STOP), None)
        target = next((o.price for o in legs if o.kind == _LIMIT), None)
        due = next((o.trigger_ts for o in legs if o.kind == _TIMED), None)
        out: list = [CancelOrder(ts, o.order_id, REPLACED) for o in legs]
        if open_quantity(trade) <= 0:
            return out
        if stop is not None:
            out.append(self._exit_order(trade, ts, _STOP, _STOP_LOSS, stop))
        if target is not None:
            out.append(self._exit_order(trade, ts, _LIMIT, _TAKE_PROFIT, target))
        if due is not None:
            out.append(self._exit_order(trade, ts, _TIMED, _TIME, None, due))
        return out

    # -- trades -------------------------------------------------------------------------------
    def _open(self, order: OrderState, fill: OrderFilled) -> list:
        self._next_trade += 1
        side = _LONG if order.side == _BUY else _SHORT
        key = (order.strategy, order.signal_id)
        exits, interval = self._pending.pop(key, _NO_EXITS)
        trade = TradeState(
            self._next_trade,
            order.signal_id,
            order.strategy,
            order.symbol,
            interval,
            side,
            fill.quantity,
            fill.ts,
            fill.price,
            fill.fee,
        )
        order.trade_id = trade.trade_id
        self._trades[trade.trade_id] = trade
        self.store.put_trade(trade)
        out: list = [
            TradeOpened(
                fill.ts,
                trade.trade_id,
                trade.signal_id,
                trade.strategy,
                trade.symbol,
                trade.interval,
                side,
                trade.quantity,
                fill.price,
                fill.fee,
            )
        ]
        stop, target = bracket_levels(side, fill.price, exits)
        if stop is not None:
            out.append(self._exit_order(trade, fill.ts, _STOP, _STOP_LOSS, stop))
        if target is not None:
            out.append(self._exit_order(trade, fill.ts, _LIMIT, _TAKE_PROFIT, target))
        trigger = time_exit_ts(fill.ts, exits)
        if trigger is not None:
            out.append(self._exit_order(trade, fill.ts, _TIMED, _TIME, None, trigger))
        return out

    def _close(self, order: OrderState, fill: OrderFilled) -> list:
        trade = self._trades.pop(order.trade_id, None)
        if trade is None:
            return []
        sign = 1.0 if trade.side == _LONG else -1.0
        trade.status, trade.exit_ts, trade.exit_reason = _CLOSED, fill.ts, order.role
        if trade.parts:  # closed in parts: each part's proceeds and fee, summed exactly
            _settle_parts(trade, sign, fill)
        else:
            gross = sign * trade.quantity * (fill.price - trade.entry_price)
            trade.exit_price, trade.exit_fee = fill.price, fill.fee
            trade.pnl = gross - trade.entry_fee - fill.fee
        if self._rewrite:
            self.store.put_trade(trade)
        out: list = []
        for oid in trade.orders:  # the other exits of the trade the exchange acknowledged
            sibling = self._orders.get(oid)
            if sibling is not None and oid != order.order_id and sibling.status != _NEW:
                out.append(CancelOrder(fill.ts, oid, "oco"))
        out.append(
            TradeClosed(
                fill.ts,
                trade.trade_id,
                trade.strategy,
                trade.symbol,
                trade.side,
                trade.quantity,
                trade.entry_ts,
                trade.entry_price,
                trade.exit_price,
                trade.entry_fee,
                trade.exit_fee,
                trade.pnl,
                order.role,
            )
        )
        return out

    def _exit_order(
        self,
        trade: TradeState,
        ts: int,
        kind: OrderKind,
        role: OrderRole,
        price: float | None = None,
        trigger: int | None = None,
    ) -> SubmitOrder:
        # _new_order and _submit inlined: two of these per trade, on the hot path of a fill
        side = _SELL if trade.side == _LONG else _BUY
        self._next_order += 1
        oid, tid = self._next_order, trade.trade_id
        qty = trade.quantity if not trade.exited else open_quantity(trade)
        order = OrderState(
            oid,
            trade.strategy,
            trade.symbol,
            side,
            kind,
            role,
            qty,
            price,
            tid,
            trade.signal_id,
            ts,
        )
        if trigger is not None:
            order.trigger_ts = trigger
        self._orders[oid] = order
        self.store.put_order(order)
        trade.orders.append(oid)
        return SubmitOrder(
            ts,
            oid,
            trade.strategy,
            trade.symbol,
            side,
            qty,
            kind,
            role,
            price,
            trigger,
            trade.entry_ts,
            tid,
            tid,
        )

    def _has_pending_exit(self, trade: TradeState, kind: OrderKind) -> bool:
        return any(
            oid in self._orders and self._orders[oid].kind in (kind, _CLOSE) for oid in trade.orders
        )

    # -- orders -------------------------------------------------------------------------------
    def _new_order(self, ts, strategy, symbol, side, kind, role, qty, price, trade_id, signal_id):
        self._next_order += 1
        order = OrderState(
            self._next_order,
            strategy,
            symbol,
            side,
            kind,
            role,
            qty,
            price,
            trade_id,
            signal_id,
            ts,
        )
        self._orders[order.order_id] = order
        self.store.put_order(order)
        return order

    def _submit(
        self,
        order: OrderState,
        ts: int,
        trigger: int | None = None,
        active_from: int = 0,
        oco: int | None = None,
    ) -> SubmitOrder:
        return SubmitOrder(
            ts,
            order.order_id,
            order.strategy,
            order.symbol,
            order.side,
            order.quantity,
            order.kind,
            order.role,
            order.price,
            trigger,
            active_from,
            oco,
            order.trade_id,
        )

    def _finish(self, order_id: int, status: OrderStatus, reason: str | None) -> OrderState | None:
        order = self._orders.pop(order_id, None)
        if order is None:
            return None
        order.status, order.reason = status, reason
        if self._rewrite:
            self.store.put_order(order)
        return order

    def _entry_failed(self, order: OrderState | None, ts: int, reason: str) -> list:
        if order is None or order.role != _ENTRY:
            return []
        self._pending.pop((order.strategy, order.signal_id), None)
        side = _LONG if order.side == _BUY else _SHORT
        return [SignalRejected(ts, order.signal_id, order.strategy, order.symbol, side, reason)]

    def restore(self, orders: list[OrderState], trades: list[TradeState], pending: dict) -> None:
        """Live restart (live/ops/recovery.py): take back open orders, ACTIVE trades, entry exits."""
        self._orders.update({o.order_id: o for o in orders})
        self._trades.update({t.trade_id: t for t in trades})
        self._rewrite = True  # restored objects are not in the store: every change is put
        self._pending.update(pending)
        self._next_order = max([self._next_order, *self._orders])
        self._next_trade = max([self._next_trade, *self._trades])

    # -- queries ------------------------------------------------------------------------------
    def orders(self) -> list[dict[str, Any]]:
        return self.store.orders()

    def trades(self) -> list[dict[str, Any]]:
        return self.store.trades()


def open_quantity(trade: TradeState) -> float:
    """What a trade still holds after its partial exits (rounded as the exchange rounds
    quantities: 1.0 - 0.4 must not become 0.59999999999999998, truncated to a lot below)."""
    return round(trade.quantity - trade.exited, 12)


def _settle_parts(trade: TradeState, sign: float, fill: OrderFilled) -> None:
    """A trade closed in parts: its exit price is the parts' average, its exit fee their sum,
    its pnl the exact sum (math.fsum) of every part's proceeds and fee less the entry's cost."""
    parts = [*trade.parts, (fill.quantity, fill.price, fill.fee)]
    trade.parts = parts
    trade.exited = math.fsum(q for q, _p, _f in parts)
    value = [sign * q * p for q, p, _f in parts]
    fees = [f for _q, _p, f in parts]
    trade.exit_price = math.fsum(q * p for q, p, _f in parts) / trade.exited
    trade.exit_fee = math.fsum(fees)
    entry = -sign * trade.quantity * trade.entry_price
    trade.pnl = math.fsum([*value, entry, -trade.entry_fee, *(-f for f in fees)])


def bracket_levels(side: Side, price: float, exits: ExitSpec) -> tuple[float | None, float | None]:
    """Stop and target prices from the entry fill price: distances first, else percentages."""
    if exits.stop_distance is None and exits.target_distance is None:  # percentages only
        stop_d = exits.sl_pct * price if exits.sl_pct else None
        target_d = exits.tp_pct * price if exits.tp_pct else None
    else:
        stop_d = _distance(exits.stop_distance, exits.sl_pct, price)
        target_d = _distance(exits.target_distance, exits.tp_pct, price)
    sign = 1.0 if side == _LONG else -1.0
    stop = price - sign * stop_d if stop_d is not None else None
    target = price + sign * target_d if target_d is not None else None
    return (stop if stop and stop > 0 else None, target if target and target > 0 else None)


def _distance(absolute: float | None, pct: float | None, price: float) -> float | None:
    if absolute is not None and math.isfinite(absolute) and absolute > 0:
        return absolute
    if pct:
        return pct * price
    return None


def time_exit_ts(entry_ts: int, exits: ExitSpec) -> int | None:
    """When a time exit becomes due: entry bar open + hold, and/or the end of its UTC day."""
    if not exits.hold_ns and not exits.session_end:
        return None
    candidates = []
    if exits.hold_ns:
        candidates.append(entry_ts + exits.hold_ns)
    if exits.session_end:
        candidates.append((entry_ts // DAY_NS + 1) * DAY_NS)
    return min(candidates) if candidates else None
