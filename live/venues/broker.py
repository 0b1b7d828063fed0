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
A read that fails (a 5xx, a timeout) is tried again at the next bar, with one warning line.
Every order carries a client order id derived from (instance, signal bar, role, attempt), so a
resend is recognisable; that id is also the order's row id in the database (the order manager
wrote it as NEW before this actor received it) and the exchange's order id is written to that
row as soon as the exchange answers. An error of an order call is classified
(live/venues/outcomes.py): refused -> OrderRejected; a rate limit -> the same request again after
Retry-After; a lost answer -> OrderUnknown (the row is written UNKNOWN at once) and the order is
looked up in the background (live/venues/resolution.py) until the exchange's truth is known, which
is reported with the series' next bar. What the exchange answers about orders, fills and balances
comes out as typed reports (live/venues/reports.py): after a restart the node asks for the stored
open orders' reports, reconciliation (live/ops/reconcile.py) decides, and the node hands the
decisions back (`resume`, `cancel_orders`, `record`, `handle_batch`) before trading resumes.
The orders of one batch go out concurrently, each instance's in its order, and the events come
back in the messages' order (live/venues/batches.py, docs/live.md#the-brokers-batches).
API keys come from the environment only (live/venues/ccxt_clients.api_keys).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from actors.messages import (
    BarClosed,
    CancelOrder,
    OrderAccepted,
    OrderCancelled,
    OrderPartiallyFilled,
    OrderRejected,
    OrderUnknown,
    SubmitOrder,
    replace,
)
from actors.order_store import MS, client_order_id, order_key
from core.vocabulary import CallOutcome, OrderKind
from live.venues.batches import InFlight, Step, run_steps
from live.venues.ccxt_clients import CcxtJson, OrderClient
from live.venues.outcomes import CallSettings, Doubt, classify, retry_after_s, wall_ms
from live.venues.partial_fills import PartialFills, fill_event, unsent
from live.venues.reconciling import READ_ATTEMPTS, Reconciling
from live.venues.reports import (
    BalanceReport,
    OrderStatus,
    OrderStatusReport,
    amounts,
    answer_fills,
    fill_parts,
    filled_of,
    updated_ns,
)
from live.venues.resolution import BrokerEvent, Resolution, RestingOrder
from testing.crash import crash_point

__all__ = ["CcxtBroker", "client_order_id"]
BrokerInput = SubmitOrder | CancelOrder | BarClosed
# requests at the exchange at once: a batch's orders go out side by side, this many at a
# time (ccxt's limiter counts their weight over a rolling minute, docs/live.md#the-brokers-batches)
IN_FLIGHT = 16
log = logging.getLogger("raytrader.live")


class CcxtBroker(PartialFills, Resolution, Reconciling):
    def __init__(
        self,
        exchange: str,
        url: str | None,
        routes: dict[str, tuple[str, str]],
        db_url: str | None = None,
        market: str = "spot",
        calls: CallSettings | None = None,
    ) -> None:
        self.exchange, self.url, self.db_url = exchange, url, db_url
        self.market = market  # spot | margin (live/venues/margin.py: shorts need margin)
        self.calls = calls or CallSettings()
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
        self._doubts: dict[int, Doubt] = {}  # order id -> its lost answer being resolved
        self._tasks: set[asyncio.Task] = set()  # the resolutions running in the background
        # trades an exit fill seen here closed (before the order manager heard of it): no other
        # exit of theirs is sold (on a shared account it would sell another trade's coins)
        self._closed_trades: set[int | None] = set()
        self._quiet_until = 0.0  # monotonic s: no request before (a 429 / 418's Retry-After)
        self._requests: deque[float] = deque()  # monotonic times of the last minute's requests
        self.requests = 0
        self._read_failed: set[str] = set()  # reads that failed (one warning until they work)
        # resting orders filled in part: the quantity of their parts reported so far (a later
        # report of the order carries only what filled after that)
        self._reported: dict[int, float] = {}
        self._report_filled: dict[str, float] = {}  # exchange id -> filled, as reconciled
        self._in_flight = InFlight(IN_FLIGHT)
        self._unrecorded: list[tuple[str, str | int]] | None = None  # exchange ids, in a batch

    def subscriptions(self) -> tuple[type, ...]:
        return (SubmitOrder, CancelOrder, BarClosed)

    async def start(self) -> bool:
        from live.venues.ccxt_clients import api_keys, ws_client
        from live.venues.margin import for_market

        keys = api_keys(self.exchange)
        if keys is None:
            raise RuntimeError(f"no API keys for {self.exchange} in the environment")
        client = ws_client(self.exchange, self.url, keys, self.calls)
        self.client = for_market(client, self.market)
        await self.client.load_markets()
        return True

    async def stop(self) -> bool:
        for task in list(self._tasks):  # unresolved orders stay UNKNOWN: a restart looks
            task.cancel()  # them up by client id (live/ops/reconcile.py)
        if self.client is not None:
            await self.client.close()
        return True

    def add_route(self, strategy: str, series: tuple[str, str]) -> None:
        """An instance enabled while running (live/ops/control.py), on a series already streamed."""
        self.routes[strategy] = series

    async def balances(self) -> BalanceReport:
        """Every asset's free and total (free + locked) balance."""
        balance = await self._read(self.client.fetch_balance)
        return BalanceReport(amounts(balance.get("free")), amounts(balance.get("total")))

    async def _read(self, call: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """A read asked again after a transient failure (a 5xx, a timeout), with backoff, at
        most READ_ATTEMPTS times; a refusal, or the last failure, is raised."""
        import ccxt

        delay = self.calls.backoff_s[0]
        for attempt in range(READ_ATTEMPTS):
            try:
                return await self._send(call, *args)
            except ccxt.BaseError as exc:
                refused = self._outcome(exc, creating=False) is CallOutcome.REFUSED
                if refused or attempt + 1 == READ_ATTEMPTS:
                    raise
                await asyncio.sleep(delay)
                delay *= 2
        return None  # not reached

    def request_rate(self) -> int:
        """REST requests of this broker in the last minute (the Ray metrics show it)."""
        now = time.monotonic()
        while self._requests and now - self._requests[0] > 60.0:
            self._requests.popleft()
        return len(self._requests)

    async def _send(self, call: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """One REST call: after any Retry-After still running; a 429 / 418 (the exchange's
        limiter refused it before acting) is waited out and the SAME request sent again (the
        same client order id), at most `calls.retries` times, then its error is raised."""
        import ccxt

        retry = 0
        while True:
            wait = self._quiet_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                async with self._in_flight.slot():
                    self.requests += 1
                    self._requests.append(time.monotonic())
                    return await call(*args)
            except ccxt.BaseError as exc:
                if self._outcome(exc) is not CallOutcome.RETRY or retry >= self.calls.retries:
                    raise
                retry += 1
                headers = getattr(self.client, "last_response_headers", None)
                wait = retry_after_s(headers, self.calls.retry_s * 2 ** (retry - 1))
                self._quiet_until = max(self._quiet_until, time.monotonic() + wait)
                log.warning(
                    "%s refused a request for its rate limit (%s): waiting %.1f s, then the "
                    "same request again",
                    self.exchange,
                    type(exc).__name__,
                    wait,
                )

    def _outcome(self, exc: BaseException, creating: bool = True) -> CallOutcome:
        import ccxt

        # the status of the last answer counts only when this error came from an answer
        answered = isinstance(exc, ccxt.ExchangeError)
        status = getattr(self.client, "last_status", None) if answered else None
        return classify(exc, status, creating)

    # -- messages -----------------------------------------------------------------------------
    async def handle_batch(self, messages: list[BrokerInput]) -> list[BrokerEvent]:
        """The events of these messages, in the order the broker always gave them. The orders
        go out concurrently (live/venues/batches.py): each instance's messages one after another
        in the order given, the instances side by side, and a bar alone. Everything that must
        stay in order belongs to one trade, and a trade to one instance: a cancel and the
        replacement after it, the cancel of an exit's legs before the exit, an entry and the
        bracket placed once its fill is known (a later batch); other instances' orders share
        only the account's balance, which the exchange checks whatever arrives first."""
        steps: list[Step] = []
        brackets: dict[int, list[SubmitOrder]] = {}
        owners: dict[int, str] = {}  # this batch's orders: order id -> instance
        for msg in messages:
            kind = type(msg)
            if kind is BarClosed:
                steps.append((None, partial(self._on_bar, msg)))
                continue
            if kind is CancelOrder:
                key = self._owner(msg.order_id, owners)
                if unsent(brackets, msg.order_id):  # cancelled before it was sent: it never is
                    steps.append((key, _ready(OrderCancelled(msg.ts, msg.order_id, msg.reason))))
                else:
                    steps.append((key, partial(self._cancel, msg)))
                continue
            owners[msg.order_id] = key = ("instance", msg.strategy)
            if msg.kind == OrderKind.MARKET:
                steps.append((key, partial(self._market, msg)))
            elif msg.kind == OrderKind.TIMED:
                steps.append((key, partial(self._keep_timed, msg)))
            elif msg.kind in (OrderKind.STOP, OrderKind.LIMIT):
                group = msg.oco if msg.oco is not None else -msg.order_id
                brackets.setdefault(group, []).append(msg)
            else:
                reason = f"{msg.kind} orders do not exist live"
                steps.append((key, _ready(OrderRejected(msg.ts, msg.order_id, reason))))
        for legs in brackets.values():  # after the batch's other messages, as always
            if legs:
                steps.append((owners[legs[0].order_id], partial(self._bracket, legs)))
        self._unrecorded = []  # the exchange ids are written once per stretch (one commit)
        try:
            return await run_steps(steps, self._write_ids)
        finally:
            self._write_ids()
            self._unrecorded = None

    def _owner(self, order_id: int, owners: dict[int, Any]) -> Any:
        """The key of the chain a cancel joins: its order's instance (an order of this batch,
        resting, a time exit or in doubt); an order the broker does not follow touches nothing
        another message of the batch touches, so it gets a chain of its own."""
        if order_id in owners:
            return owners[order_id]
        rest, doubt = self._resting.get(order_id), self._doubts.get(order_id)
        msg = rest.msg if rest is not None else self._timed.get(order_id)
        if msg is None and doubt is not None and doubt.legs:
            msg = doubt.legs[0]
        return ("instance", msg.strategy) if msg is not None else ("order", order_id)

    async def _keep_timed(self, msg: SubmitOrder) -> list[BrokerEvent]:
        self._timed[msg.order_id] = msg
        return [OrderAccepted(msg.ts, msg.order_id)]

    async def _market(self, msg: SubmitOrder) -> list[BrokerEvent]:
        import ccxt

        from live.venues.margin import short_refusal

        refusal = short_refusal(self.market, msg)
        if refusal is not None:
            return [OrderRejected(msg.ts, msg.order_id, refusal)]
        if msg.trade_id is not None and msg.trade_id in self._closed_trades:
            return [OrderCancelled(msg.ts, msg.order_id, "its trade closed first")]
        parts: list[OrderPartiallyFilled] = []
        if msg.trade_id is not None:
            closed, parts = await self._free_coins(msg)
            if closed:  # a leg filled first: the trade is flat already, nothing to sell
                cancelled = OrderCancelled(msg.ts, msg.order_id, "its trade closed first")
                return [*parts, *closed, cancelled]
            if parts:  # a take profit filled in part before its cancel: sell what is left
                left = round(msg.quantity - math.fsum(p.quantity for p in parts), 12)
                msg = replace(msg, quantity=left)
            if self.legs_in_doubt(msg.trade_id):  # a leg may lock the coins: wait until known
                return [*parts, *self.hold(msg)]
        cid = self.cid(msg)
        crash_point("submit")
        try:
            order = await self._send(
                self.client.create_order,
                msg.symbol,
                "market",
                msg.side,
                msg.quantity,
                None,
                {"clientOrderId": cid},
            )
        except ccxt.BaseError as exc:
            return [*parts, *self._failed([msg], exc)]
        self.sent += 1
        crash_point("sent")
        self.record([(cid, order["id"])])
        fill = fill_event(msg.order_id, await self._with_fill(order, msg.symbol, answer=True))
        self.closes(msg)
        crash_point("filled")
        return [*parts, OrderAccepted(msg.ts, msg.order_id), fill]

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
                result = await self._send(
                    self.client.privatePostOrderListOco,
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
                    },
                )
                by_cid = {o["clientOrderId"]: o["orderId"] for o in result["orders"]}
                placed = [(stop, by_cid[ids[0]]), (limit, by_cid[ids[1]])]
            elif stop:
                crash_point("submit")
                order = await self._send(
                    self.client.create_order,
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
                order = await self._send(
                    self.client.create_order,
                    limit.symbol,
                    "limit",
                    limit.side,
                    limit.quantity,
                    limit.price,
                    {"clientOrderId": self.cid(limit)},
                )
                placed = [(limit, order["id"])]
        except ccxt.BaseError as exc:
            return self._failed(legs, exc)
        self.sent += 1
        crash_point("sent")
        self.record([(self.cid(msg), exchange_id) for msg, exchange_id in placed])
        for msg, exchange_id in placed:
            self._resting[msg.order_id] = RestingOrder(str(exchange_id), msg)
        return [OrderAccepted(m.ts, m.order_id) for m in legs]

    def _failed(self, legs: list[SubmitOrder], exc: BaseException) -> list[BrokerEvent]:
        """An order call that raised: refused -> rejected; else its fate is unknown, and it is
        looked up in the background (a rate limit that never let it through: not found is
        final at once, so an exit goes again and an entry is refused)."""
        outcome = self._outcome(exc)
        reason = f"{type(exc).__name__}: {str(exc)[:300]}"
        if outcome is CallOutcome.REFUSED or (
            outcome is CallOutcome.RETRY and legs[0].role == "entry"
        ):
            return [OrderRejected(m.ts, m.order_id, reason) for m in legs]
        doubt = Doubt.after_send(legs, [self.cid(m) for m in legs], reason, self.calls)
        if outcome is CallOutcome.RETRY:
            doubt.final_ms = wall_ms()  # refused before the exchange acted: nothing in flight
        log.warning(
            "the answer to order %s on %s was lost (%s): looking it up at %s",
            ", ".join(doubt.client_ids),
            legs[0].symbol,
            reason,
            self.exchange,
        )
        self.mark_unknown(doubt)
        self.begin(doubt)
        return [OrderUnknown(m.ts, m.order_id, f"answer lost: {reason}") for m in legs]

    async def _cancel(self, msg: CancelOrder) -> list[BrokerEvent]:
        if self._timed.pop(msg.order_id, None) is not None or msg.order_id in self._gone:
            self._gone.discard(msg.order_id)
            return [OrderCancelled(msg.ts, msg.order_id, msg.reason)]
        doubt = self._doubts.get(msg.order_id)
        if doubt is not None:  # its fate is being looked up: cancelled when it is known
            doubt.cancel_reason = msg.reason
            return []
        rest = self._resting.pop(msg.order_id, None)
        if rest is None:
            return []
        return await self._cancel_leg(msg.order_id, rest, msg.ts, msg.reason)

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
        """The fills of this series' resting orders, each order read side by side (a bar that
        closes 100 trades' stops reads 100 orders); an order whose read fails is read again at
        the next bar (one warning line until reads work again). The events come in the order
        of the resting orders, stops first, whichever read answered first."""
        import ccxt

        mine = {
            oid: r
            for oid, r in self._resting.items()
            if r.msg.symbol == bar.symbol
            and self.routes.get(r.msg.strategy) == (bar.symbol, bar.interval)
        }
        if not mine:
            return []
        what = f"the open orders on {bar.symbol}"
        try:
            still_open = {
                str(o["id"]): o for o in await self._send(self.client.fetch_open_orders, bar.symbol)
            }
        except ccxt.BaseError as exc:
            self.read_failed(what, exc)
            return []
        polls = [
            self._poll_one(oid, rest, still_open.get(rest.exchange_id), bar.symbol)
            for oid, rest in mine.items()
        ]
        fills, failed = [], None
        for result in await asyncio.gather(*polls, return_exceptions=True):
            if isinstance(result, ccxt.BaseError):
                failed = failed or result
            elif isinstance(result, BaseException):
                raise result
            else:
                fills.extend(result)
        if failed is not None:
            self.read_failed(what, failed)
        else:
            self.read_worked(what)
        if fills:
            crash_point("filled")
        return [event for _rank, event in sorted(fills, key=lambda f: f[0])]  # stops first

    async def _poll_one(
        self, oid: int, rest: RestingOrder, held: CcxtJson | None, symbol: str
    ) -> list[tuple[int, BrokerEvent]]:
        """One resting order's new fills, ranked (a stop's first); `held`: it is still open."""
        if held is not None:  # resting; a part of it may have filled
            if filled_of(held) > self._reported.get(oid, 0.0) + 1e-12:
                return [(1, e) for e in await self._new_parts(oid, rest)]
            return []
        order = await self._send(self.client.fetch_order, rest.exchange_id, symbol)
        if order["status"] != "closed":
            return []
        fill = await self._final_fill(oid, order, symbol)  # with its fee
        if self._resting.pop(oid, None) is None:
            return []
        self.closes(rest.msg)
        self._reported.pop(oid, None)
        return [(0 if rest.msg.kind == OrderKind.STOP else 1, fill)]

    async def _with_fill(
        self, order: CcxtJson, symbol: str, strict: bool = False, answer: bool = False
    ) -> OrderStatusReport:
        """The report of a filled order with its fill; its fee from its trades: those of the
        order's `answer` to its creation when they carry every fee and all of its quantity
        (Binance's FULL answer: `fills` with their commission; no request more), else the
        account's trades of the order (an order as fetched carries none, and a fill without its
        fee would misstate the pnl). When the trades cannot be read: `strict` raises (the
        caller reads again), else the order's own fee is used, with a warning (an order looked
        up later carries none: its lookups are strict)."""
        import ccxt

        info = order.get("info") or {}
        ts_ms = int(info.get("updateTime") or info.get("transactTime") or order["timestamp"])
        fee = float((order.get("fee") or {}).get("cost") or 0.0)
        try:
            trades = answer_fills(order, ts_ms) if answer else None
            if trades is None:
                trades = await self._send(
                    self.client.fetch_my_trades, symbol, None, None, {"orderId": order["id"]}
                )
        except ccxt.BaseError as exc:
            if strict:
                raise
            log.warning(
                "the trades of order %s on %s could not be read (%s): its fee is the order's",
                order["id"],
                symbol,
                type(exc).__name__,
            )
            trades = []
        if trades:
            fee = math.fsum(float((t.get("fee") or {}).get("cost") or 0.0) for t in trades)
        return OrderStatusReport(
            str(order["id"]),
            order.get("clientOrderId"),
            symbol,
            OrderStatus.of(order.get("status")),
            updated_ns(order),
            ts_ms * MS,
            float(order["average"] or order["price"]),
            float(order["filled"]),
            fee,
            fill_parts(trades),
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
        """Write the exchange's order ids to the orders' rows at once (one transaction); during
        a batch, once its orders in flight side by side are answered (one commit for all: the
        writes, one after another, would hold the sends back). A crash before that write is a
        crash between an order's answer and its write (recovery finds it by client order id)."""
        self.sent_ids.update(str(e) for _c, e in placed)
        if self._unrecorded is not None:
            self._unrecorded.extend(placed)
        else:
            self._write(placed)

    def _write_ids(self) -> None:
        if self._unrecorded:
            placed, self._unrecorded[:] = list(self._unrecorded), []
            self._write(placed)

    def _write(self, placed: list[tuple[str, str | int]]) -> None:
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


def _ready(*events: BrokerEvent) -> Callable[[], Awaitable[list[BrokerEvent]]]:
    """A step whose events are known without asking the exchange."""

    async def done() -> list[BrokerEvent]:
        return list(events)

    return done
