"""Order manager stores backed by the database (store.models OrderRecord / TradeRecord).

`SqlOrderStore` writes every order and trade change through (live trading: a restart or a
crash loses nothing). Live, it runs with `autocommit=False`: changes are buffered and
`flush()` writes them in one transaction at the end of each delivery batch (live/node.py).
That is still write-ahead: the order manager emits a SubmitOrder in one delivery round and the
exchange actor receives it in the next, after the NEW row was committed.
Backtests use `MemoryOrderStore` (actors/order_manager.py) and store their orders and trades in
bulk at the end (store.runs.save_backtest_run with `order_rows`).

Live order ids are stable: the row id is the client order id derived from (instance, signal
bar, role) — `client_order_id(order_key(...), ts, role)`, the id the broker sends — so after a
restart the same order has the same id and can never be sent twice under two names.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from actors.order_manager import MemoryOrderStore, OrderState, TradeState
from core.vocabulary import OrderKind, OrderRole, OrderStatus

ROLE_CODES = {
    OrderRole.ENTRY: "en",
    OrderRole.STOP_LOSS: "sl",
    OrderRole.TAKE_PROFIT: "tp",
    OrderRole.TIME: "tx",
    OrderRole.SIGNAL: "sx",
    OrderRole.END_OF_DATA: "ed",
}
MS = 1_000_000
DRY_RUN = "dry-run"  # run_id of dry-run live rows (real live rows have none)
# the order type of a stored order: market, timed and close orders are market orders
_TYPES = {OrderKind.STOP: OrderKind.STOP, OrderKind.LIMIT: OrderKind.LIMIT}


def client_order_id(instance: str, signal_ts: int, role: str, attempt: int = 0) -> str:
    """<= 36 chars of [A-Za-z0-9-]: rt-<instance hash>-<signal bar ms>-<role>-<attempt>."""
    digest = hashlib.sha1(instance.encode()).hexdigest()[:8]
    return f"rt-{digest}-{signal_ts // MS}-{ROLE_CODES.get(role, 'xx')}-{attempt}"


def order_key(strategy: str, side: str, role: str, entry_ts: int | None) -> str:
    """The instance part of a client order id. Entries add their side (a hedged instance may
    enter both sides at one bar); exits add their trade's entry time (one exit signal closes
    every open trade of a pyramiding instance at the same bar)."""
    return f"{strategy}|{side}" if role == OrderRole.ENTRY else f"{strategy}|{entry_ts}"


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time(ns: int | None) -> datetime | None:
    """Nanoseconds since the epoch as a UTC datetime (whole microseconds, as the database keeps
    them). Plain datetime arithmetic: exact, and no pandas in the actors that store orders."""
    return None if ns is None else EPOCH + timedelta(microseconds=ns // 1000)


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
        "type": _TYPES.get(kind, OrderKind.MARKET),
        "quantity": record["quantity"],
        "price": record["price"] if kind == OrderKind.LIMIT else None,
        "stop_price": record["price"] if kind == OrderKind.STOP else None,
        "status": record["status"],
        # live, a resting order can fill in parts: filled so far (a backtest fills all at once)
        "filled_quantity": record["filled"]
        or (record["quantity"] if record["status"] == OrderStatus.FILLED else 0.0),
        "avg_fill_price": record["fill_price"],
        "fee": record["fee"],
        "reason": record["reason"],
        "created_at": _time(record["created_ts"]),
        "updated_at": _time(record["fill_ts"]),
    }


def order_rows(records: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """All records of a run; bracket legs point at their trade's entry order."""
    entry = OrderRole.ENTRY
    entry_of_trade = {r["trade_id"]: r["order_id"] for r in records if r["role"] == entry}
    return [
        order_row(r, prefix, entry_of_trade.get(r["trade_id"]) if r["role"] != entry else None)
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
        # closed by partial exits so far (live): the open position is quantity - this
        "exited_quantity": record["exited"] or None,
    }


class SqlOrderStore(MemoryOrderStore):
    """Write-through store. `prefix` given: ids are `prefix:order_id` (one session's ids);
    `stable=True` (live): ids are the client order ids (`id_prefix` + cid), the same in every
    session. With `autocommit=False` changes wait in memory until `flush()` (one transaction)."""

    def __init__(
        self,
        url: str,
        prefix: str | None = None,
        run_id: str | None = None,
        instance_id: int | None = None,
        exchange: str = "",
        stable: bool = False,
        autocommit: bool = True,
        id_prefix: str = "",
    ) -> None:
        super().__init__()
        self.url = url
        self.prefix = prefix or uuid.uuid4().hex[:12]  # order ids stay unique across sessions
        self.stable, self.autocommit, self.id_prefix = stable, autocommit, id_prefix
        self.extra = {"run_id": run_id, "instance_id": instance_id, "exchange": exchange}
        self.ids: dict[int, str] = {}  # order id -> row id
        self.trade_ids: dict[int, str] = {}  # trade id -> row trade_id
        self.pending: dict = {}  # the order manager's (strategy, signal) -> (exits, interval)
        self._trade_pk: dict[int, int] = {}
        # Bracket legs point at their trade's entry order; the link is written with each leg,
        # because the rows carry no trade id to rebuild it from later.
        self._entry_of_signal: dict[tuple[str, int | None], int] = {}
        self._entry_of_trade: dict[int, int | None] = {}
        self._dirty_orders: dict[int, dict[str, Any]] = {}
        self._dirty_trades: dict[int, dict[str, Any]] = {}

    def order_id_of(self, order: OrderState) -> str:
        if not self.stable:
            return f"{self.prefix}:{order.order_id}"
        known = self.ids.get(order.order_id)
        if known is None:
            trade = self._trades.get(order.trade_id) if order.trade_id is not None else None
            key = order_key(
                order.strategy,
                order.side,
                order.role,
                trade.entry_ts if trade is not None else None,
            )
            known = self.id_prefix + client_order_id(key, order.created_ts, order.role)
            self.ids[order.order_id] = known
        return known

    def put_order(self, order: OrderState) -> None:
        super().put_order(order)
        if order.role == OrderRole.ENTRY:
            self._entry_of_signal[(order.strategy, order.signal_id)] = order.order_id
            parent = None
        else:
            parent = self._entry_of_trade.get(order.trade_id) if order.trade_id else None
        row = order_row(order.record(), self.prefix, parent)
        row["id"] = self.order_id_of(order)
        if self.stable and order.role != OrderRole.ENTRY:
            row["parent_id"] = self.trade_ids.get(order.trade_id)  # the trade's entry order
        if order.role == OrderRole.ENTRY and order.status == OrderStatus.NEW:
            spec = self.pending.get((order.strategy, order.signal_id))
            if spec is not None:  # what the fill needs to place the bracket (recovery)
                row["exits_json"] = json.dumps(
                    {"interval": spec[1], **msgspec.structs.asdict(spec[0])}
                )
        previous = self._dirty_orders.get(order.order_id)
        if previous is not None and "exits_json" in previous:
            row.setdefault("exits_json", previous["exits_json"])
        self._dirty_orders[order.order_id] = {**row, **self.extra}
        if self.autocommit:
            self.flush()

    def put_trade(self, trade: TradeState) -> None:
        super().put_trade(trade)
        entry = self._entry_of_signal.get((trade.strategy, trade.signal_id))
        self._entry_of_trade.setdefault(trade.trade_id, entry)
        row = trade_row(trade.record(), self.prefix)
        if self.stable:
            if trade.trade_id not in self.trade_ids and entry is not None:
                self.trade_ids[trade.trade_id] = self.ids.get(entry, row["trade_id"])
            row["trade_id"] = self.trade_ids.get(trade.trade_id, row["trade_id"])
        self._dirty_trades[trade.trade_id] = {**row, **self.extra}
        if self.autocommit:
            self.flush()

    def flush(self) -> None:
        """Write every buffered change in one transaction (nothing to do: no round trip)."""
        if not self._dirty_orders and not self._dirty_trades:
            return
        from store.db import session_scope

        orders, trades = self._dirty_orders, self._dirty_trades
        with session_scope(self.url) as session:
            conn = session.connection()
            _upsert_orders(conn, list(orders.values()))
            self._trade_pk.update(_upsert_trades(conn, trades, self._trade_pk))
        self._dirty_orders, self._dirty_trades = {}, {}

    def adopt(self, order: OrderState, row_id: str) -> None:
        """A restored order (live/ops/recovery.py): keep its stored id, write nothing."""
        self.ids[order.order_id] = row_id
        MemoryOrderStore.put_order(self, order)
        if order.role == OrderRole.ENTRY:
            self._entry_of_signal[(order.strategy, order.signal_id)] = order.order_id

    def adopt_trade(self, trade: TradeState, row_id: str, pk: int, entry: int | None) -> None:
        self.trade_ids[trade.trade_id] = row_id
        self._trade_pk[trade.trade_id] = pk
        self._entry_of_trade[trade.trade_id] = entry
        MemoryOrderStore.put_trade(self, trade)


def _groups(rows: list[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Rows by their set of columns: one executemany statement per set."""
    out: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(tuple(sorted(row)), []).append(row)
    return out


def _prefixed(row: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """Parameters of an executemany UPDATE: bind names must differ from the column names."""
    return {key: value, **{f"v_{c}": v for c, v in row.items()}}


def _upsert_orders(conn: Any, rows: list[dict[str, Any]]) -> None:
    """UPDATE the rows that exist, INSERT the others: one SELECT, then one executemany per
    statement (a round of 100 orders is a few statements, not 200). Never touches
    exchange_order_id: the broker writes that one."""
    from sqlalchemy import bindparam, insert, select, update

    from store.models import OrderRecord

    if not rows:
        return
    table = OrderRecord.__table__
    ids = [row["id"] for row in rows]
    present = set(conn.execute(select(table.c.id).where(table.c.id.in_(ids))).scalars())
    for columns, group in _groups([r for r in rows if r["id"] in present]).items():
        stmt = update(table).where(table.c.id == bindparam("row_id"))
        stmt = stmt.values(**{c: bindparam(f"v_{c}") for c in columns if c != "id"})
        conn.execute(stmt, [_prefixed(row, "row_id", row["id"]) for row in group])
    for _columns, group in _groups([r for r in rows if r["id"] not in present]).items():
        conn.execute(insert(table), group)


def _upsert_trades(
    conn: Any, rows: dict[int, dict[str, Any]], known: dict[int, int]
) -> dict[int, int]:
    """Trades: UPDATE by primary key and INSERT the new ones, each one executemany; the new rows'
    primary keys (needed for their later updates) come back in order. Returns those."""
    from sqlalchemy import bindparam, insert, update

    from store.models import TradeRecord

    table = TradeRecord.__table__
    updates = [(row, known[tid]) for tid, row in rows.items() if tid in known]
    for columns, group in _groups([row for row, _pk in updates]).items():
        stmt = update(table).where(table.c.id == bindparam("row_pk"))
        stmt = stmt.values(**{c: bindparam(f"v_{c}") for c in columns})
        pks = {id(row): pk for row, pk in updates}
        conn.execute(stmt, [_prefixed(row, "row_pk", pks[id(row)]) for row in group])
    new: dict[tuple[str, ...], list[tuple[int, dict[str, Any]]]] = {}
    for tid, row in rows.items():
        if tid not in known:
            new.setdefault(tuple(sorted(row)), []).append((tid, row))
    pks: dict[int, int] = {}
    stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    for pairs in new.values():  # one executemany per column set, ids in the rows' order
        result = conn.execute(stmt, [row for _tid, row in pairs])
        pks.update(zip([tid for tid, _row in pairs], map(int, result.scalars()), strict=True))
    return pks
