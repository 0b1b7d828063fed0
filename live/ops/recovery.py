"""Live restart: the open orders and trades of earlier sessions come back from the database.

`load_state` reads the live rows of the traded instances (real: run_id NULL; dry run: run_id
"dry-run") and rebuilds what the order manager held: open orders (NEW / SUBMITTED), ACTIVE
trades with their exit orders, and the exits of entries not yet filled. Ids inside the actors
are numbers of this session; the rows keep their stable ids (the client order ids), which
the restored orders carry along (`row_ids`). The exchange side is reconciled separately
(live/ops/reconcile.py for the ccxt broker, `restore_dry_run` for the simulated exchange).

Also here: the portfolio with a settable cash, the group
that commits the order store once per delivery batch, the marks writer, and `LoopActor` (an
async actor run in this process, for the in-process live node of the recovery tests).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from actors.messages import (
    ExitSpec,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    SubmitOrder,
    TradeOpened,
)
from actors.order_manager import OrderManager, OrderState, TradeState, time_exit_ts
from actors.order_store import DRY_RUN
from core.vocabulary import OrderKind, OrderRole, OrderStatus, Side, TradeStatus
from live.actor_group import ActorGroup
from testing.crash import crash_point

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Table

    from live.dry_run import DryRunExchange
    from store.models import OrderRecord, TradeRecord

OPEN = (OrderStatus.NEW, OrderStatus.UNKNOWN, OrderStatus.SUBMITTED)


@dataclass
class Restored:
    orders: list[OrderState] = field(default_factory=list)  # NEW / SUBMITTED
    trades: list[TradeState] = field(default_factory=list)  # ACTIVE
    pending: dict[tuple[str, int], tuple[ExitSpec, str]] = field(default_factory=dict)
    row_ids: dict[int, str] = field(default_factory=dict)  # order id -> stored (client) id
    exchange_ids: dict[int, str | None] = field(default_factory=dict)
    trade_rows: dict[int, tuple[str, int, int | None]] = field(default_factory=dict)
    exits: dict[int, ExitSpec] = field(default_factory=dict)  # trade id -> its entry's exits
    # the closed trades' cash flows, as the portfolio booked them (dry run: its cash comes back
    # exactly, so sizing after a restart is bit for bit the sizing without one)
    cash_flows: list[float] = field(default_factory=list)
    known: dict[str, str | None] = field(default_factory=dict)  # stored id -> exchange id
    last_fill_ms: dict[str, int] = field(default_factory=dict)  # symbol -> latest stored fill
    filled: dict[int, float] = field(default_factory=dict)  # order id -> filled so far (parts)

    def submits(self) -> list[tuple[str, str | None, SubmitOrder]]:
        """(client id, exchange id, the order as the exchange actor would have received it)."""
        trades = {t.trade_id: t for t in self.trades}
        out = []
        for o in self.orders:
            trade = trades.get(o.trade_id) if o.trade_id is not None else None
            trigger = o.trigger_ts
            if o.kind == OrderKind.TIMED and trade is not None and trigger is None:
                trigger = time_exit_ts(trade.entry_ts, self.exits.get(o.trade_id, ExitSpec()))
            msg = SubmitOrder(
                o.created_ts,
                o.order_id,
                o.strategy,
                o.symbol,
                o.side,
                o.quantity,
                o.kind,
                o.role,
                o.price,
                trigger,
                trade.entry_ts if trade else 0,
                o.trade_id,
                o.trade_id,
            )
            out.append((self.row_ids[o.order_id], self.exchange_ids.get(o.order_id), msg))
        return out

    def opened(self) -> list[TradeOpened]:
        """The restored trades as the portfolio and the strategy hosts first heard of them."""
        return [
            TradeOpened(
                t.entry_ts,
                t.trade_id,
                t.signal_id,
                t.strategy,
                t.symbol,
                t.interval,
                t.side,
                t.quantity,
                t.entry_price,
                t.entry_fee,
            )
            for t in self.trades
        ]


def _ns(value: object) -> int:
    import pandas as pd

    return int(pd.Timestamp(value).as_unit("ns").value) if value is not None else 0


def _kind(row: OrderRecord) -> str:
    if row.type in (OrderKind.STOP, OrderKind.LIMIT):
        return row.type
    return {OrderRole.TIME: OrderKind.TIMED, OrderRole.END_OF_DATA: OrderKind.CLOSE}.get(
        row.role, OrderKind.MARKET
    )


def _exits(text: str | None) -> tuple[ExitSpec, str]:
    data = json.loads(text) if text else {}
    names = set(ExitSpec.__struct_fields__)
    return ExitSpec(**{k: v for k, v in data.items() if k in names}), data.get("interval", "")


def load_state(db_url: str, exchange: str, labels: Iterable[str], dry_run: bool) -> Restored:
    from sqlmodel import select

    from store.db import session_scope
    from store.models import OrderRecord, TradeRecord

    labels = list(labels)
    run = DRY_RUN if dry_run else None
    out = Restored()
    with session_scope(db_url) as session:

        def live(model: Any) -> Any:
            run_ok = model.run_id.is_(None) if run is None else model.run_id == run
            return select(model).where(
                run_ok, model.exchange == exchange, model.strategy.in_(labels)
            )

        orders = session.exec(live(OrderRecord)).all()
        trades = session.exec(live(TradeRecord)).all()
    by_id = {o.id: o for o in orders}
    out.known = {o.id: o.exchange_order_id for o in orders}
    for o in orders:
        if o.status == OrderStatus.FILLED and o.updated_at is not None:
            ms = _ns(o.updated_at) // 1_000_000
            out.last_fill_ms[o.symbol] = max(out.last_fill_ms.get(o.symbol, 0), ms)
    out.cash_flows = _cash_flows(orders, trades)
    next_id = 0
    trade_of_entry: dict[str, TradeState] = {}
    for k, t in enumerate(
        sorted(
            (t for t in trades if t.status == TradeStatus.ACTIVE),
            key=lambda t: (t.entry_time, t.trade_id),
        ),
        1,
    ):
        entry = by_id.get(t.trade_id)
        exits, _interval = _exits(entry.exits_json if entry is not None else None)
        state = TradeState(
            k,
            -k,
            t.strategy,
            t.symbol,
            t.interval,
            t.side,
            t.quantity,
            _ns(t.entry_time),
            t.entry_price,
            t.fees,
            exited=t.exited_quantity or 0.0,
        )
        # its partial exits so far (a take profit filled in part): one part per exit order,
        # at its average price (the exact parts of one session are summed into that row)
        state.parts = [
            (o.filled_quantity, o.avg_fill_price or 0.0, o.fee)
            for o in sorted(orders, key=lambda o: (o.created_at, o.id))
            if o.parent_id == t.trade_id
            and o.role != OrderRole.ENTRY
            and o.filled_quantity
            and o.status != OrderStatus.FILLED
        ]
        out.trades.append(state)
        out.exits[k] = exits
        trade_of_entry[t.trade_id] = state
        out.trade_rows[k] = (t.trade_id, int(t.id), None)
    for o in sorted((o for o in orders if o.status in OPEN), key=lambda o: (o.created_at, o.id)):
        next_id += 1
        # an exit of a trade already closed (its sibling filled, the cancel never got through)
        # comes back without a trade: reconciliation cancels it if it still rests
        trade = trade_of_entry.get(o.parent_id) if o.parent_id else None
        signal_id = trade.signal_id if trade else -(1000 + next_id)
        price = o.price if o.type == OrderKind.LIMIT else o.stop_price
        state = OrderState(
            next_id,
            o.strategy,
            o.symbol,
            o.side,
            _kind(o),
            o.role,
            o.quantity,
            price,
            trade.trade_id if trade else None,
            signal_id,
            _ns(o.created_at),
            o.status,
        )
        if o.filled_quantity:  # a resting exit filled in part
            state.filled, state.fill_price, state.fee = o.filled_quantity, o.avg_fill_price, o.fee
            state.fill_ts = _ns(o.updated_at) if o.updated_at is not None else None
            out.filled[next_id] = o.filled_quantity
        if state.kind == OrderKind.TIMED and trade is not None:  # a re-placed one keeps it
            state.trigger_ts = time_exit_ts(
                trade.entry_ts, out.exits.get(trade.trade_id, ExitSpec())
            )
        out.orders.append(state)
        out.row_ids[next_id] = o.id
        out.exchange_ids[next_id] = o.exchange_order_id
        if trade is not None:
            trade.orders.append(next_id)
        elif o.role == "entry":
            out.pending[(o.strategy, signal_id)] = _exits(o.exits_json)
    return out


def _cash_flows(orders: list[OrderRecord], trades: list[TradeRecord]) -> list[float]:
    """What Portfolio.on_trade_opened/closed added to the cash for each closed trade."""
    fee = {o.id: o.fee for o in orders}
    exit_fee = {
        o.parent_id: o.fee for o in orders if o.parent_id and o.status == OrderStatus.FILLED
    }
    out = []
    for t in trades:
        if t.status != TradeStatus.CLOSED or t.exit_price is None:
            continue
        sign = 1.0 if t.side == Side.LONG else -1.0
        entry_fee = fee.get(t.trade_id, 0.0)
        out.append(-(sign * t.quantity * t.entry_price + entry_fee))
        out.append(sign * t.quantity * t.exit_price - exit_fee.get(t.trade_id, t.fees - entry_fee))
    return out


def adopt_into(manager: OrderManager, restored: Restored) -> None:
    """Give the order manager (and its store) the restored state, writing nothing."""
    store = manager.store
    for order in restored.orders:
        store.adopt(order, restored.row_ids[order.order_id])
    for trade in restored.trades:
        row_id, pk, entry = restored.trade_rows[trade.trade_id]
        store.adopt_trade(trade, row_id, pk, entry)
    manager.restore(restored.orders, restored.trades, restored.pending)
    store.pending = manager._pending  # entries' exits are written with their NEW row


def replace_lost_legs(
    manager: OrderManager, restored: Restored, lost: list[SubmitOrder], now_ns: int
) -> list[SubmitOrder]:
    """New orders for bracket legs cancelled at the exchange behind our back: stored NEW now
    (new client order ids: their time is now), sent once the actors run."""
    trades = {t.trade_id: t for t in restored.trades}
    ts = now_ns // 1_000_000 * 1_000_000
    fresh, out = [], []
    next_id = max([0, *(o.order_id for o in restored.orders)])
    for old in lost:
        trade = trades[old.trade_id]
        next_id += 1
        order = OrderState(
            next_id,
            old.strategy,
            old.symbol,
            old.side,
            old.kind,
            old.role,
            old.quantity,
            old.price,
            trade.trade_id,
            trade.signal_id,
            ts,
        )
        trade.orders.append(next_id)
        fresh.append(order)
        out.append(
            SubmitOrder(
                ts,
                next_id,
                old.strategy,
                old.symbol,
                old.side,
                old.quantity,
                old.kind,
                old.role,
                old.price,
                None,
                trade.entry_ts,
                trade.trade_id,
                trade.trade_id,
            )
        )
    manager.restore(fresh, [], {})
    for order in fresh:
        manager.store.put_order(order)
    manager.store.flush()  # write-ahead: stored before they can be sent
    return out


def restore_dry_run(exchange: DryRunExchange, restored: Restored) -> list:
    """The dry run's resting orders come back into its books from the database. An entry
    that was NEW is refused (the bar it was meant for has passed); the rest are placed again."""
    events: list = []
    for _cid, _eid, msg in restored.submits():
        if msg.role == "entry":
            events.append(OrderRejected(msg.ts, msg.order_id, "not placed before a restart"))
            continue
        if msg.trade_id is None:  # an exit of a trade that closed before the restart
            events.append(OrderCancelled(msg.ts, msg.order_id, "oco"))
            continue
        out = exchange.on_submit(msg)
        events.extend(e for e in out if type(e) is not OrderAccepted or _is_new(restored, msg))
    return events


def _is_new(restored: Restored, msg: SubmitOrder) -> bool:
    return any(o.order_id == msg.order_id and o.status == OrderStatus.NEW for o in restored.orders)


def position_warnings(trades: list[dict], totals: dict[str, float], bases: set[str]) -> list[str]:
    """The account's base assets against the open trades of the database (spot positions)."""
    held: dict[str, float] = {}
    for t in trades:
        if t["status"] == TradeStatus.ACTIVE:
            base = t["symbol"].split("/")[0]
            rest = t["quantity"] - (t.get("exited") or 0.0)  # after its partial exits
            held[base] = held.get(base, 0.0) + (1 if t["side"] == Side.LONG else -1) * rest
    out = []
    for base in sorted(bases):
        have, ours = totals.get(base, 0.0), held.get(base, 0.0)
        if abs(have - ours) > 1e-9 * max(1.0, abs(have)):
            out.append(
                f"the account holds {have:.8g} {base}, the open trades in the database "
                f"{ours:.8g}: the difference is not ours and is left untouched"
            )
    return out


class StoredGroup(ActorGroup):
    """The order manager's group: its store's changes are committed once per delivery batch,
    before what the batch emitted (orders to send) leaves this actor: write-ahead."""

    def handle_batch(self, messages: list) -> list:
        out = super().handle_batch(messages)
        for actor in self.members.values():
            store = getattr(actor, "store", None)
            if store is not None and hasattr(store, "flush"):
                crash_point("flush")
                store.flush()
        return out


def write_marks(db_url: str, marks: dict[str, float], dry_run: bool, exchange: str) -> int:
    """Mark every ACTIVE live trade at its symbol's latest close; returns how many."""
    from sqlalchemy import func, update

    from store.db import session_scope
    from store.models import TradeRecord, utcnow

    table = TradeRecord.__table__
    run_ok = table.c.run_id.is_(None) if not dry_run else table.c.run_id == DRY_RUN
    count = 0
    with session_scope(db_url) as session:
        conn = session.connection()
        now = utcnow()
        for symbol, price in marks.items():
            sign = _sign_case(table)
            count += conn.execute(
                update(table)
                .where(
                    run_ok,
                    table.c.status == TradeStatus.ACTIVE,
                    table.c.symbol == symbol,
                    table.c.exchange == exchange,
                )
                .values(
                    mark_price=price,
                    marked_at=now,
                    unrealised_pnl=sign
                    * (table.c.quantity - func.coalesce(table.c.exited_quantity, 0.0))
                    * (price - table.c.entry_price),
                )
            ).rowcount
    return count


def _sign_case(table: Table) -> ColumnElement[float]:
    from sqlalchemy import case

    return case((table.c.side == Side.SHORT, -1.0), else_=1.0)


class LoopActor:
    """An async actor (the ccxt broker) driven from synchronous code, its loop running in a
    thread of its own as a Ray async actor's does: a method call waits for its result, and the
    actor's background tasks (lookups of lost answers) go on between calls. The in-process
    live node (no Ray) uses it."""

    def __init__(self, target: object) -> None:
        import threading

        self._target = target
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._target, name)

        def call(*args: object) -> Any:
            if self._loop.is_closed():
                raise RuntimeError(f"{name}: the actor was stopped")
            if not asyncio.iscoroutinefunction(method):
                return self._run_sync(method, args)  # in the loop: no race with its tasks
            return asyncio.run_coroutine_threadsafe(method(*args), self._loop).result()

        return call

    def _run_sync(self, method: Callable[..., Any], args: tuple) -> Any:
        async def run() -> Any:
            return method(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    def close(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        if not self._loop.is_running():
            self._loop.close()
