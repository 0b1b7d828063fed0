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
row as soon as the exchange answers. After a restart `reconcile` (live/ops/reconcile.py) compares
the stored open orders with the exchange before trading resumes. API keys come from the environment only (live/ccxt_clients.api_keys).
"""

from __future__ import annotations

import math
from typing import Any

from actors.messages import (
    BarClosed,
    CancelOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
    replace,
)
from actors.order_store import MS, client_order_id, order_key
from testing.crash import crash_point

__all__ = ["CcxtBroker", "client_order_id"]


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
        self.client: Any = None
        self._resting: dict[int, dict] = {}  # our order id -> {"id", "symbol", "oco", "msg"}
        self._timed: dict[int, SubmitOrder] = {}
        self._deferred: dict[tuple[str, str], list] = {}  # reported at that series' next bar
        self._gone: set[int] = set()  # cancelled at the exchange before the manager asked
        self.sent = 0
        self.sent_ids: set[str] = set()  # exchange ids of the orders placed by this session
        self.known: dict[str, str | None] = {}  # restored: stored client id -> exchange id
        self.cids: dict[int, str] = {}  # restored orders: our order id -> their stored client id
        self.audit_from: dict[str, int] = {}  # symbol -> exchange ms the next audit reads from

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

    async def totals(self) -> dict[str, float]:
        """Every asset's total (free + locked) balance."""
        balance = await self.client.fetch_balance()
        return {k: float(v or 0.0) for k, v in (balance.get("total") or {}).items()}

    async def quote_balance(self, symbol: str) -> float:
        balance = await self.client.fetch_balance()
        return float(balance.get(symbol.split("/")[1], {}).get("free") or 0.0)

    # -- messages -----------------------------------------------------------------------------
    async def handle_batch(self, messages: list) -> list:
        out: list = []
        brackets: dict[int, list[SubmitOrder]] = {}
        for msg in messages:
            kind = type(msg)
            if kind is BarClosed:
                out.extend(await self._on_bar(msg))
            elif kind is CancelOrder:
                out.extend(await self._cancel(msg))
            elif msg.kind == "market":
                out.extend(await self._market(msg))
            elif msg.kind == "timed":
                self._timed[msg.order_id] = msg
                out.append(OrderAccepted(msg.ts, msg.order_id))
            elif msg.kind in ("stop", "limit"):
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

    async def _market(self, msg: SubmitOrder) -> list:
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
        fill = await self.fill_event(msg.order_id, order, msg.symbol)
        crash_point("filled")
        return [OrderAccepted(msg.ts, msg.order_id), fill]

    async def _bracket(self, legs: list[SubmitOrder]) -> list:
        import ccxt

        stop = next((m for m in legs if m.kind == "stop"), None)
        limit = next((m for m in legs if m.kind == "limit"), None)
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
            self._resting[msg.order_id] = {"id": str(exchange_id), "msg": msg}
        return [OrderAccepted(m.ts, m.order_id) for m in legs]

    async def _free_coins(self, trade_id: int) -> None:
        """Cancel the resting legs of a trade before it is closed by a market order."""
        for oid, rest in list(self._resting.items()):
            if rest["msg"].oco == trade_id:
                try:
                    await self.client.cancel_order(rest["id"], rest["msg"].symbol)
                except Exception:  # noqa: BLE001 - an OCO sibling went with it
                    pass
                del self._resting[oid]
                self._gone.add(oid)

    async def _cancel(self, msg: CancelOrder) -> list:
        if self._timed.pop(msg.order_id, None) is not None or msg.order_id in self._gone:
            self._gone.discard(msg.order_id)
            return [OrderCancelled(msg.ts, msg.order_id, msg.reason)]
        rest = self._resting.pop(msg.order_id, None)
        if rest is None:
            return []
        try:
            await self.client.cancel_order(rest["id"], rest["msg"].symbol)
        except Exception:  # noqa: BLE001 - already expired as the other leg of an OCO
            pass
        return [OrderCancelled(msg.ts, msg.order_id, msg.reason)]

    async def _on_bar(self, bar: BarClosed) -> list:
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

    async def _poll_fills(self, bar: BarClosed) -> list:
        mine = {
            oid: r
            for oid, r in self._resting.items()
            if r["msg"].symbol == bar.symbol
            and self.routes.get(r["msg"].strategy) == (bar.symbol, bar.interval)
        }
        if not mine:
            return []
        still_open = {str(o["id"]) for o in await self.client.fetch_open_orders(bar.symbol)}
        fills = []
        for oid, rest in mine.items():
            if rest["id"] in still_open:
                continue
            order = await self.client.fetch_order(rest["id"], bar.symbol)
            if order["status"] == "closed":
                del self._resting[oid]
                fill = await self.fill_event(oid, order, bar.symbol)
                fills.append((0 if rest["msg"].kind == "stop" else 1, fill))
        if fills:
            crash_point("filled")
        return [event for _rank, event in sorted(fills, key=lambda f: f[0])]  # stops first

    async def fill_event(self, order_id: int, order: dict, symbol: str) -> OrderFilled:
        """The fill of a closed order; its fee from the account's trades (an order as fetched
        carries none, and a fill without its fee would misstate the trade's pnl)."""
        import ccxt

        event = _filled(order_id, order)
        try:
            trades = await self.client.fetch_my_trades(symbol, None, None, {"orderId": order["id"]})
        except ccxt.BaseError:
            return event
        if not trades:
            return event
        fee = math.fsum(float((t.get("fee") or {}).get("cost") or 0.0) for t in trades)
        return replace(event, fee=fee)

    # -- ids ----------------------------------------------------------------------------------
    def cid(self, msg: SubmitOrder) -> str:
        """The client order id: the stored one for a restored order, else derived."""
        known = self.cids.get(msg.order_id)
        if known is not None:
            return known
        key = order_key(msg.strategy, msg.side, msg.role, msg.active_from)
        return client_order_id(key, msg.ts, msg.role)

    def record(self, placed: list[tuple[str, Any]]) -> None:
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

    async def reconcile(
        self, submits: list, known: dict[str, str | None], last_fill_ms: dict[str, int]
    ) -> dict:
        """Start of a session: the stored open orders against the exchange (live/ops/reconcile.py)."""
        from live.ops.reconcile import reconcile

        self.known = dict(known)
        self.audit_from = dict(last_fill_ms)
        return await reconcile(self, submits, known, last_fill_ms)

    async def audit(self) -> list[str]:
        """Every --reconcile-every minutes: exchange orders and fills (since the newest fill the
        last audit saw) unknown to us, as warnings."""
        from live.ops.reconcile import audit

        eids = {str(e) for e in self.known.values() if e}
        return await audit(self, set(self.known), eids, dict(self.audit_from))


def _filled(order_id: int, order: dict) -> OrderFilled:
    info = order.get("info") or {}
    ts_ms = int(info.get("updateTime") or info.get("transactTime") or order["timestamp"])
    fee = float((order.get("fee") or {}).get("cost") or 0.0)
    return OrderFilled(
        ts_ms * MS, order_id, float(order["average"] or order["price"]), float(order["filled"]), fee
    )
