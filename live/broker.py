"""Real mode: the ccxt broker actor, in the place of the dry run's simulated exchange.

A plain class with async methods, run as an async Ray actor. Orders from the order manager:
- market (entries, exits by signal): a market order at once; it fills at the bar in progress;
  resting bracket legs of the same trade are cancelled first (a spot sell needs free coins);
- a stop loss and a take profit of one trade arriving together become one OCO order list (a
  resting spot sell locks the coins, so two separate sells of the same coins would be refused,
  DESIGN.md section 12); a lone stop is a STOP_LOSS (market on trigger), a lone target a LIMIT;
- a time exit is kept here: when a bar closes at or after its trigger, a market order is sent, so
  it fills at the first open at or after the trigger, as in the backtest.
Fills of resting orders are read by polling the exchange when a bar of that symbol closes (the
exchange matched that bar before publishing it), and, like the fills of time exits, reported in
that bar's first delivery step (before the strategies see the bar), as the simulated exchange does.
Every order carries a client order id derived from (instance, signal bar, role, attempt), so a
resend is recognisable. API keys come from the environment only (live/ccxt_clients.api_keys).
"""

from __future__ import annotations

import hashlib
from typing import Any

from actors.messages import (
    BarClosed,
    CancelOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)

ROLE_CODES = {"entry": "en", "stop_loss": "sl", "take_profit": "tp", "time": "tx", "signal": "sx",
              "end_of_data": "ed"}  # fmt: skip
MS = 1_000_000


def client_order_id(instance: str, signal_ts: int, role: str, attempt: int = 0) -> str:
    """<= 36 chars of [A-Za-z0-9-]: rt-<instance hash>-<signal bar ms>-<role>-<attempt>."""
    digest = hashlib.sha1(instance.encode()).hexdigest()[:8]
    return f"rt-{digest}-{signal_ts // MS}-{ROLE_CODES.get(role, 'xx')}-{attempt}"


class CcxtBroker:
    def __init__(self, exchange: str, url: str | None, routes: dict[str, tuple[str, str]],
                 market: str = "spot") -> None:  # fmt: skip
        self.exchange, self.url = exchange, url
        self.market = market  # spot | margin (live/margin.py: shorts need margin)
        self.routes = dict(routes)  # strategy id -> (symbol, interval)
        self.client: Any = None
        self._resting: dict[int, dict] = {}  # our order id -> {"id", "symbol", "oco", "msg"}
        self._timed: dict[int, SubmitOrder] = {}
        self._deferred: dict[tuple[str, str], list] = {}  # reported at that series' next bar
        self._gone: set[int] = set()  # cancelled at the exchange before the manager asked
        self.sent = 0

    def subscriptions(self) -> tuple[type, ...]:
        return (SubmitOrder, CancelOrder, BarClosed)

    async def start(self) -> bool:
        from live.ccxt_clients import api_keys, ws_client
        from live.margin import for_market

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
        """An instance enabled while running (live/control.py), on a series already streamed."""
        self.routes[strategy] = series

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

        from live.margin import short_refusal

        refusal = short_refusal(self.market, msg)
        if refusal is not None:
            return [OrderRejected(msg.ts, msg.order_id, refusal)]
        if msg.trade_id is not None:
            await self._free_coins(msg.trade_id)
        cid = client_order_id(msg.strategy, msg.ts, msg.role)
        try:
            order = await self.client.create_order(msg.symbol, "market", msg.side, msg.quantity,
                                                   None, {"clientOrderId": cid})  # fmt: skip
        except ccxt.BaseError as exc:
            return [OrderRejected(msg.ts, msg.order_id, f"{type(exc).__name__}: {exc}")]
        self.sent += 1
        return [OrderAccepted(msg.ts, msg.order_id), _filled(msg.order_id, order)]

    async def _bracket(self, legs: list[SubmitOrder]) -> list:
        import ccxt

        stop = next((m for m in legs if m.kind == "stop"), None)
        limit = next((m for m in legs if m.kind == "limit"), None)
        first = stop or limit
        market = self.client.market(first.symbol)
        try:
            if stop and limit:
                ids = (client_order_id(stop.strategy, stop.ts, stop.role),
                       client_order_id(limit.strategy, limit.ts, limit.role))  # fmt: skip
                result = await self.client.privatePostOrderListOco({
                    "symbol": market["id"], "side": stop.side.upper(),
                    "quantity": self.client.amount_to_precision(stop.symbol, stop.quantity),
                    "aboveType": "LIMIT_MAKER",
                    "abovePrice": self.client.price_to_precision(stop.symbol, limit.price),
                    "belowType": "STOP_LOSS",
                    "belowStopPrice": self.client.price_to_precision(stop.symbol, stop.price),
                    "belowClientOrderId": ids[0], "aboveClientOrderId": ids[1]})  # fmt: skip
                by_cid = {o["clientOrderId"]: o["orderId"] for o in result["orders"]}
                placed = [(stop, by_cid[ids[0]]), (limit, by_cid[ids[1]])]
            elif stop:
                order = await self.client.create_order(
                    stop.symbol, "market", stop.side, stop.quantity, None,
                    {"stopLossPrice": stop.price,
                     "clientOrderId": client_order_id(stop.strategy, stop.ts, stop.role)})  # fmt: skip
                placed = [(stop, order["id"])]
            else:
                order = await self.client.create_order(
                    limit.symbol,
                    "limit",
                    limit.side,
                    limit.quantity,
                    limit.price,
                    {"clientOrderId": client_order_id(limit.strategy, limit.ts, limit.role)},
                )
                placed = [(limit, order["id"])]
        except ccxt.BaseError as exc:
            return [OrderRejected(m.ts, m.order_id, f"{type(exc).__name__}: {exc}") for m in legs]
        self.sent += 1
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
        key = (bar.symbol, bar.interval)
        out = self._deferred.pop(key, [])
        out.extend(await self._poll_fills(bar))
        for oid, msg in list(self._timed.items()):
            if self.routes.get(msg.strategy) == key and msg.trigger_ts <= bar.ts:
                del self._timed[oid]  # fills at the open of the bar now in progress
                events = await self._market(msg)
                self._deferred.setdefault(key, []).extend(e for e in events
                                                          if type(e) is not OrderAccepted)  # fmt: skip
        return out

    async def _poll_fills(self, bar: BarClosed) -> list:
        mine = {oid: r for oid, r in self._resting.items()
                if r["msg"].symbol == bar.symbol and self.routes.get(r["msg"].strategy)
                == (bar.symbol, bar.interval)}  # fmt: skip
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
                fills.append((0 if rest["msg"].kind == "stop" else 1, _filled(oid, order)))
        return [event for _rank, event in sorted(fills, key=lambda f: f[0])]  # stops first


def _filled(order_id: int, order: dict) -> OrderFilled:
    info = order.get("info") or {}
    ts_ms = int(info.get("updateTime") or info.get("transactTime") or order["timestamp"])
    fee = float((order.get("fee") or {}).get("cost") or 0.0)
    return OrderFilled(ts_ms * MS, order_id, float(order["average"] or order["price"]),
                       float(order["filled"]), fee)  # fmt: skip
