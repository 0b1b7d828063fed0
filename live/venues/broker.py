"""Real mode: the ccxt broker actor, in the place of the dry run's simulated exchange.

A plain class with async methods, run as an async Ray actor. Orders from the order manager:
- market (entries, exits by signal): a market order at once; it fills at the bar in progress;
  resting bracket legs of the same trade are cancelled first (a spot sell needs free coins);
- a stop loss and a take profit of one trade arriving together become one OCO order list (a
  resting spot sell locks the coins, so two separate sells of the same coins would be refused,
  docs/live.md#spot-brackets-and-oco); a lone stop is a STOP_LOSS (market on trigger), a lone target a LIMIT;
- a time exit is kept here: when a bar closes at or after its trigger, a market order is sent, so
  it fills at the first open at or after the trigger, as in the backtest.
Fills of resting orders are read by polling the exchange when a bar of that symbol closes (the
exchange matched that bar before publishing it), and, like the fills of time exits, reported in
that bar's first delivery step (before the strategies see the bar), as the simulated exchange does.
Every order carries a client order id derived from (instance, signal bar, role, attempt), so a
resend is recognisable; that id is also the order's row id in the database (the order manager
wrote it as NEW before this actor received it) and the exchange's order id is written to that
row as soon as the exchange answers. What the exchange answers about orders, fills and balances
comes out as typed reports (live/venues/reports.py): after a restart the node asks for the stored
open orders' reports, reconciliation (live/ops/reconcile.py) decides, and the node hands the
decisions back (`resume`, `cancel_orders`, `record`, `handle_batch`) before trading resumes.
API keys come from the environment only (live/venues/ccxt_clients.api_keys).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from actors.messages import (
    BarClosed,
    CancelOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)
from actors.order_store import MS, client_order_id, order_key
from core.vocabulary import OrderKind
from live.venues.ccxt_clients import CcxtJson, OrderClient
from live.venues.reports import (
    AccountReport,
    BalanceReport,
    FillReport,
    OrderStatus,
    OrderStatusReport,
)
from testing.crash import crash_point

__all__ = ["CcxtBroker", "client_order_id"]
BrokerInput = SubmitOrder | CancelOrder | BarClosed
BrokerEvent = OrderAccepted | OrderRejected | OrderFilled | OrderCancelled


@dataclass(frozen=True)
class RestingOrder:
    """A stop or target resting at the exchange, with the order that placed it."""

    exchange_id: str
    msg: SubmitOrder


class CcxtBroker:
    def __init__(
        self,
        exchange: str,
        url: str | None,
        routes: dict[str, tuple[str, str]],
        db_url: str | None = None,
        market: str = "spot",
    ) -> None:
        self.exchange, self.url, self.db_url = exchange, url, db_url
        self.market = market  # spot | margin (live/venues/margin.py: shorts need margin)
        self.routes = dict(routes)  # strategy id -> (symbol, interval)
        self.client: OrderClient | None = None
        self._resting: dict[int, RestingOrder] = {}  # our order id -> resting at the exchange
        self._timed: dict[int, SubmitOrder] = {}
        self._deferred: dict[
            tuple[str, str], list[BrokerEvent]
        ] = {}  # reported at that series' next bar
        self._gone: set[int] = set()  # cancelled at the exchange before the manager asked
        self.sent = 0
        self.sent_ids: set[str] = set()  # exchange ids of the orders placed by this session
        self._client_ids: dict[int, str] = {}  # restored orders: order id -> stored client id

    def subscriptions(self) -> tuple[type, ...]:
        return (SubmitOrder, CancelOrder, BarClosed)

    async def start(self) -> bool:
        from live.venues.ccxt_clients import api_keys, ws_client
        from live.venues.margin import for_market

        keys = api_keys(self.exchange)
        if keys is None:
            raise RuntimeError(f"no API keys for {self.exchange} in the environment")
        self.client = for_market(ws_client(self.exchange, self.url, keys), self.market)
        await self.client.load_markets()
        return True

    async def stop(self) -> bool:
        if self.client is not None:
            await self.client.close()
        return True

    def add_route(self, strategy: str, series: tuple[str, str]) -> None:
        """An instance enabled while running (live/ops/control.py), on a series already streamed."""
        self.routes[strategy] = series

    async def balances(self) -> BalanceReport:
        """Every asset's free and total (free + locked) balance."""
        balance = await self.client.fetch_balance()
        return BalanceReport(_amounts(balance.get("free")), _amounts(balance.get("total")))

    # -- messages -----------------------------------------------------------------------------
    async def handle_batch(self, messages: list[BrokerInput]) -> list[BrokerEvent]:
        out: list[BrokerEvent] = []
        brackets: dict[int, list[SubmitOrder]] = {}
        for msg in messages:
            kind = type(msg)
            if kind is BarClosed:
                out.extend(await self._on_bar(msg))
            elif kind is CancelOrder:
                out.extend(await self._cancel(msg))
            elif msg.kind == OrderKind.MARKET:
                out.extend(await self._market(msg))
            elif msg.kind == OrderKind.TIMED:
                self._timed[msg.order_id] = msg
                out.append(OrderAccepted(msg.ts, msg.order_id))
            elif msg.kind in (OrderKind.STOP, OrderKind.LIMIT):
                brackets.setdefault(msg.oco if msg.oco is not None else -msg.order_id, []).append(
                    msg
                )
            else:
                out.append(
                    OrderRejected(msg.ts, msg.order_id, f"{msg.kind} orders do not exist live")
                )
        for legs in brackets.values():
            out.extend(await self._bracket(legs))
        return out

    async def _market(self, msg: SubmitOrder) -> list[BrokerEvent]:
        import ccxt

        from live.venues.margin import short_refusal

        refusal = short_refusal(self.market, msg)
        if refusal is not None:
            return [OrderRejected(msg.ts, msg.order_id, refusal)]
        if msg.trade_id is not None:
            await self._free_coins(msg.trade_id)
        cid = self.cid(msg)
        crash_point("submit")
        try:
            order = await self.client.create_order(
                msg.symbol, "market", msg.side, msg.quantity, None, {"clientOrderId": cid}
            )
        except ccxt.BaseError as exc:
            return [OrderRejected(msg.ts, msg.order_id, f"{type(exc).__name__}: {exc}")]
        self.sent += 1
        crash_point("sent")
        self.record([(cid, order["id"])])
        fill = _fill_event(msg.order_id, await self._with_fill(order, msg.symbol))
        crash_point("filled")
        return [OrderAccepted(msg.ts, msg.order_id), fill]

    async def _bracket(self, legs: list[SubmitOrder]) -> list[BrokerEvent]:
        import ccxt

        stop = next((m for m in legs if m.kind == OrderKind.STOP), None)
        limit = next((m for m in legs if m.kind == OrderKind.LIMIT), None)
        first = stop or limit
        market = self.client.market(first.symbol)
        try:
            if stop and limit:
                ids = (self.cid(stop), self.cid(limit))
                crash_point("submit")
                result = await self.client.privatePostOrderListOco(
                    {
                        "symbol": market["id"],
                        "side": stop.side.upper(),
                        "quantity": self.client.amount_to_precision(stop.symbol, stop.quantity),
                        "aboveType": "LIMIT_MAKER",
                        "abovePrice": self.client.price_to_precision(stop.symbol, limit.price),
                        "belowType": "STOP_LOSS",
                        "belowStopPrice": self.client.price_to_precision(stop.symbol, stop.price),
                        "belowClientOrderId": ids[0],
                        "aboveClientOrderId": ids[1],
                    }
                )
                by_cid = {o["clientOrderId"]: o["orderId"] for o in result["orders"]}
                placed = [(stop, by_cid[ids[0]]), (limit, by_cid[ids[1]])]
            elif stop:
                crash_point("submit")
                order = await self.client.create_order(
                    stop.symbol,
                    "market",
                    stop.side,
                    stop.quantity,
                    None,
                    {"stopLossPrice": stop.price, "clientOrderId": self.cid(stop)},
                )
                placed = [(stop, order["id"])]
            else:
                crash_point("submit")
                order = await self.client.create_order(
                    limit.symbol,
                    "limit",
                    limit.side,
                    limit.quantity,
                    limit.price,
                    {"clientOrderId": self.cid(limit)},
                )
                placed = [(limit, order["id"])]
        except ccxt.BaseError as exc:
            return [OrderRejected(m.ts, m.order_id, f"{type(exc).__name__}: {exc}") for m in legs]
        self.sent += 1
        crash_point("sent")
        self.record([(self.cid(msg), exchange_id) for msg, exchange_id in placed])
        for msg, exchange_id in placed:
            self._resting[msg.order_id] = RestingOrder(str(exchange_id), msg)
        return [OrderAccepted(m.ts, m.order_id) for m in legs]

    async def _free_coins(self, trade_id: int) -> None:
        """Cancel the resting legs of a trade before it is closed by a market order."""
        for oid, rest in list(self._resting.items()):
            if rest.msg.oco == trade_id:
                try:
                    await self.client.cancel_order(rest.exchange_id, rest.msg.symbol)
                except Exception:  # noqa: BLE001 - an OCO sibling went with it
                    pass
                del self._resting[oid]
                self._gone.add(oid)

    async def _cancel(self, msg: CancelOrder) -> list[BrokerEvent]:
        if self._timed.pop(msg.order_id, None) is not None or msg.order_id in self._gone:
            self._gone.discard(msg.order_id)
            return [OrderCancelled(msg.ts, msg.order_id, msg.reason)]
        rest = self._resting.pop(msg.order_id, None)
        if rest is None:
            return []
        try:
            await self.client.cancel_order(rest.exchange_id, rest.msg.symbol)
        except Exception:  # noqa: BLE001 - already expired as the other leg of an OCO
            pass
        return [OrderCancelled(msg.ts, msg.order_id, msg.reason)]

    async def _on_bar(self, bar: BarClosed) -> list[BrokerEvent]:
        if self._resting:
            crash_point("resting")
        key = (bar.symbol, bar.interval)
        out = self._deferred.pop(key, [])
        out.extend(await self._poll_fills(bar))
        for oid, msg in list(self._timed.items()):
            if self.routes.get(msg.strategy) == key and msg.trigger_ts <= bar.ts:
                del self._timed[oid]  # fills at the open of the bar now in progress
                events = await self._market(msg)
                self._deferred.setdefault(key, []).extend(
                    e for e in events if type(e) is not OrderAccepted
                )
        return out

    async def _poll_fills(self, bar: BarClosed) -> list[BrokerEvent]:
        mine = {
            oid: r
            for oid, r in self._resting.items()
            if r.msg.symbol == bar.symbol
            and self.routes.get(r.msg.strategy) == (bar.symbol, bar.interval)
        }
        if not mine:
            return []
        still_open = {str(o["id"]) for o in await self.client.fetch_open_orders(bar.symbol)}
        fills = []
        for oid, rest in mine.items():
            if rest.exchange_id in still_open:
                continue
            order = await self.client.fetch_order(rest.exchange_id, bar.symbol)
            if order["status"] == "closed":
                del self._resting[oid]
                fill = _fill_event(oid, await self._with_fill(order, bar.symbol))
                fills.append((0 if rest.msg.kind == OrderKind.STOP else 1, fill))
        if fills:
            crash_point("filled")
        return [event for _rank, event in sorted(fills, key=lambda f: f[0])]  # stops first

    async def _with_fill(self, order: CcxtJson, symbol: str) -> OrderStatusReport:
        """The report of a filled order with its fill; its fee from the account's trades (an
        order as fetched carries none, and a fill without its fee would misstate the pnl)."""
        import ccxt

        info = order.get("info") or {}
        ts_ms = int(info.get("updateTime") or info.get("transactTime") or order["timestamp"])
        fee = float((order.get("fee") or {}).get("cost") or 0.0)
        try:
            trades = await self.client.fetch_my_trades(symbol, None, None, {"orderId": order["id"]})
        except ccxt.BaseError:
            trades = []
        if trades:
            fee = math.fsum(float((t.get("fee") or {}).get("cost") or 0.0) for t in trades)
        return OrderStatusReport(
            str(order["id"]),
            order.get("clientOrderId"),
            symbol,
            OrderStatus.of(order.get("status")),
            _updated_ns(order),
            ts_ms * MS,
            float(order["average"] or order["price"]),
            float(order["filled"]),
            fee,
        )

    # -- ids ----------------------------------------------------------------------------------
    def cid(self, msg: SubmitOrder) -> str:
        """The client order id: the stored one for a restored order, else derived."""
        known = self._client_ids.get(msg.order_id)
        if known is not None:
            return known
        key = order_key(msg.strategy, msg.side, msg.role, msg.active_from)
        return client_order_id(key, msg.ts, msg.role)

    def record(self, placed: list[tuple[str, str | int]]) -> None:
        """Write the exchange's order ids to the orders' rows at once (one transaction)."""
        self.sent_ids.update(str(e) for _c, e in placed)
        if self.db_url is None or not placed:
            return
        from sqlalchemy import update

        from store.db import session_scope
        from store.models import OrderRecord

        table = OrderRecord.__table__
        with session_scope(self.db_url) as session:
            for cid, exchange_id in placed:
                session.connection().execute(
                    update(table)
                    .where(table.c.id == cid)
                    .values(exchange_order_id=str(exchange_id))
                )

    # -- reconciliation (live/ops/reconcile.py decides, the node applies) ------------------
    async def order_reports(
        self, queries: list[tuple[str, str | None, str]]
    ) -> list[OrderStatusReport | None]:
        """Orders of an earlier session, each (symbol, exchange id, client id): looked up by
        the exchange id when stored, else by the client order id (an order that reached the
        exchange just before a crash is found so); None: not at the exchange."""
        import ccxt

        out: list[OrderStatusReport | None] = []
        for symbol, exchange_id, client_id in queries:
            try:
                order = await self._lookup(symbol, exchange_id, client_id)
            except ccxt.BaseError as exc:
                raise RuntimeError(
                    f"reconciliation failed: order {client_id} on {symbol}: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
            if order is None:
                out.append(None)
            elif order.get("status") == "closed":
                out.append(await self._with_fill(order, symbol))
            else:
                out.append(_status_report(order, symbol))
        return out

    async def _lookup(
        self, symbol: str, exchange_id: str | None, client_id: str
    ) -> CcxtJson | None:
        import ccxt

        try:
            if exchange_id:
                return await self.client.fetch_order(exchange_id, symbol)
            return await self.client.fetch_order(None, symbol, {"origClientOrderId": client_id})
        except ccxt.OrderNotFound:
            return None

    def resume(
        self,
        client_ids: dict[int, str],
        resting: list[tuple[str, SubmitOrder]],
        timed: list[SubmitOrder],
    ) -> None:
        """Orders of an earlier session looked after again: their stored client order ids (a
        resend reuses them), those resting at the exchange (exchange id, order) and the time
        exits not yet due."""
        self._client_ids.update(client_ids)
        for exchange_id, msg in resting:
            self._resting[msg.order_id] = RestingOrder(exchange_id, msg)
        for msg in timed:
            self._timed[msg.order_id] = msg

    async def cancel_orders(self, orders: list[tuple[str, str]]) -> None:
        """Cancel these (exchange id, symbol) at the exchange."""
        for exchange_id, symbol in orders:
            await self.client.cancel_order(exchange_id, symbol)

    async def account_report(self, since_ms: dict[str, int]) -> AccountReport:
        """The open orders and the fills since `since_ms` (per symbol) on the routed symbols."""
        open_orders: list[OrderStatusReport] = []
        fills: list[FillReport] = []
        for symbol in sorted({s for s, _i in self.routes.values()}):
            for order in await self.client.fetch_open_orders(symbol):
                open_orders.append(_status_report(order, symbol))
            for fill in await self.client.fetch_my_trades(symbol, since_ms.get(symbol)):
                fills.append(_fill_report(fill, symbol))
        return AccountReport(tuple(open_orders), tuple(fills), frozenset(self.sent_ids))


def _amounts(per_asset: Mapping[str, float | None] | None) -> dict[str, float]:
    return {asset: float(v or 0.0) for asset, v in (per_asset or {}).items()}


def _updated_ns(order: CcxtJson) -> int:
    info = order.get("info") or {}
    return int(info.get("updateTime") or order.get("timestamp") or 0) * MS


def _status_report(order: CcxtJson, symbol: str) -> OrderStatusReport:
    """An order without its fill (open, cancelled, expired)."""
    status = OrderStatus.of(order.get("status"))
    return OrderStatusReport(
        str(order["id"]), order.get("clientOrderId"), symbol, status, _updated_ns(order)
    )


def _fill_report(fill: CcxtJson, symbol: str) -> FillReport:
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


def _fill_event(order_id: int, report: OrderStatusReport) -> OrderFilled:
    return OrderFilled(report.filled_ts, order_id, report.price, report.filled, report.fee)
