"""The ccxt broker's resolution of lost answers: orders and cancels whose outcome is unknown.

An order whose answer was lost (live/venues/outcomes.py: UNKNOWN) is a `Doubt`: its row is
written UNKNOWN at once, and a background task of the broker's loop looks it up by client order
id (`origClientOrderId`) with backoff (`CallSettings.backoff_s`):
- found: adopted. Open -> it rests (its fill comes by polling), filled -> its fill is reported,
  cancelled / expired -> cancelled; the exchange id is written to the row;
- not found, while the request could still arrive: asked again later;
- not found once it can no longer arrive (`Doubt.final`): an entry is REJECTED ("lost before the
  exchange accepted it"); an exit (bracket leg, exit by signal, time exit) is sent again under the
  SAME client order id (never a second order under a new id); one the order manager asked to
  cancel meanwhile is cancelled instead;
- the exchange cannot be asked: one warning line, and the lookups go on (it stays UNKNOWN; a
  restart looks it up like a NEW row).
The outcome is reported with the next bar of the order's series (the broker's deferred events).
A cancel whose answer was lost is resolved the same way, by the order's exchange id: still open
-> cancelled again; filled -> its fill; gone -> cancelled. An exit never leaves a live stop behind.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actors.messages import (
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderUnknown,
    SubmitOrder,
)
from core.vocabulary import OrderKind, OrderRole, OrderStatus
from live.venues.outcomes import Doubt
from live.venues.reports import OrderStatus as AtExchange

if TYPE_CHECKING:
    from live.venues.ccxt_clients import CcxtJson, OrderClient
    from live.venues.outcomes import CallSettings

BrokerEvent = OrderAccepted | OrderRejected | OrderFilled | OrderCancelled | OrderUnknown
log = logging.getLogger("raytrader.live")
_GONE = (AtExchange.CANCELED, AtExchange.EXPIRED, AtExchange.REJECTED)
LOST = "lost before the exchange accepted it"


@dataclass(frozen=True)
class RestingOrder:
    """A stop or target resting at the exchange, with the order that placed it."""

    exchange_id: str
    msg: SubmitOrder


class Resolution:
    """The broker's half that resolves doubts (mixed into CcxtBroker, whose state it uses)."""

    client: OrderClient
    calls: CallSettings
    exchange: str
    db_url: str | None
    routes: dict[str, tuple[str, str]]
    _resting: dict[int, RestingOrder]
    _deferred: dict[tuple[str, str], list[BrokerEvent]]
    _doubts: dict[int, Doubt]
    _tasks: set[asyncio.Task]
    _closed_trades: set[int | None]  # trades an exit fill seen here closed
    _read_failed: set[str]  # reads that failed (one warning until they work again)

    if TYPE_CHECKING:  # the broker's own methods used here

        async def _send(self, call: Any, *args: Any) -> Any: ...
        async def _lookup(self, symbol: str, eid: str | None, cid: str) -> CcxtJson | None: ...
        async def _with_fill(self, order: CcxtJson, symbol: str, strict: bool) -> Any: ...
        async def _market(self, msg: SubmitOrder) -> list[BrokerEvent]: ...
        async def _bracket(self, legs: list[SubmitOrder]) -> list[BrokerEvent]: ...
        def record(self, placed: list[tuple[str, str | int]]) -> None: ...

    def read_failed(self, what: str, exc: BaseException) -> None:
        """A read that failed (the caller reads again at the next bar): one warning line until
        it works again."""
        if what not in self._read_failed:
            self._read_failed.add(what)
            log.warning(
                "reading %s from %s failed (%s: %s): trying again at the next bar",
                what,
                self.exchange,
                type(exc).__name__,
                str(exc)[:200],
            )

    def read_worked(self, what: str) -> None:
        self._read_failed.discard(what)

    def begin(self, doubt: Doubt) -> None:
        """Resolve `doubt` in the background; its outcome waits for its series' next bar."""
        for msg in doubt.legs:
            self._doubts[msg.order_id] = doubt
        task = asyncio.get_running_loop().create_task(self._resolve(doubt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settled(self, timeout: float = 10.0) -> bool:
        """Wait until no doubt is left (tests, and a stop that may wait); False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                while self._tasks:
                    await asyncio.wait(set(self._tasks))
        except TimeoutError:
            return False
        return True

    def doubts(self) -> int:
        return len(self._tasks)

    def mark_unknown(self, doubt: Doubt) -> None:
        """The rows of a lost order are written UNKNOWN at once (they exist as NEW: written
        before the order could be sent); the order manager's OrderUnknown follows."""
        if self.db_url is None:
            return
        from sqlalchemy import update

        from store.db import session_scope
        from store.models import OrderRecord

        table = OrderRecord.__table__
        with session_scope(self.db_url) as session:
            session.connection().execute(
                update(table)
                .where(table.c.id.in_(doubt.client_ids), table.c.status == OrderStatus.NEW)
                .values(status=OrderStatus.UNKNOWN, reason=f"answer lost: {doubt.reason}"[:250])
            )

    async def _resolve(self, doubt: Doubt) -> None:
        import ccxt

        delay, most = self.calls.backoff_s
        while True:
            await asyncio.sleep(delay)
            delay = min(most, delay * 2)
            doubt.lookups += 1
            try:
                if doubt.cancel:
                    events = await self._settle_cancel(doubt)
                elif doubt.held:
                    events = await self._settle_held(doubt)
                else:
                    events = await self._settle(doubt)
            except Exception as exc:  # noqa: BLE001 - unreachable, or an answer it cannot read:
                # it stays UNKNOWN (a restart looks it up), said once, and is asked again
                if not doubt.warned:
                    doubt.warned = True
                    log.warning(
                        "looking up %s at %s failed (%s: %s): trying again",
                        ", ".join(doubt.client_ids),
                        self.exchange,
                        type(exc).__name__,
                        str(exc)[:200],
                        exc_info=not isinstance(exc, ccxt.BaseError | OSError),  # a bug: say where
                    )
                continue
            if events is None:
                continue
            for msg in doubt.legs:
                if self._doubts.get(msg.order_id) is doubt:
                    del self._doubts[msg.order_id]
            key = self.routes.get(doubt.legs[0].strategy)
            if key is not None:
                self._deferred.setdefault(key, []).extend(events)
            return

    def closes(self, msg: SubmitOrder) -> None:
        """A fill of `msg` was seen: an exit's fill closes its trade (no other exit of it may
        be sold, even before the order manager heard of the fill)."""
        if msg.role != OrderRole.ENTRY and msg.trade_id is not None:
            self._closed_trades.add(msg.trade_id)

    def legs_in_doubt(self, trade_id: int | None) -> bool:
        """A leg of this trade may be live without being watched here: its placing or its
        cancel is being looked up. It may lock the coins an exit would sell (a spot sell then
        is refused, or on a shared account sells another trade's coins)."""
        return any(
            d.legs[0].oco == trade_id
            and (d.cancel or d.legs[0].kind in (OrderKind.STOP, OrderKind.LIMIT))
            for d in self._doubts.values()
        )

    def hold(self, msg: SubmitOrder) -> list[BrokerEvent]:
        """An exit that must wait until its trade's legs are known (and then cancelled by
        `_free_coins`): a spot sell of locked coins would be refused, leaving the trade with
        neither its stop nor its exit. Sent from the background then; it stays NEW meanwhile."""
        log.warning("exit of trade %s waits until its bracket legs are known", msg.trade_id)
        self.begin(Doubt([msg], [], 0, "waiting for its legs' cancel", held=True))
        return []

    async def _settle_held(self, doubt: Doubt) -> list[BrokerEvent] | None:
        msg = doubt.legs[0]
        if doubt.cancel_reason is not None:
            return [OrderCancelled(msg.ts, msg.order_id, doubt.cancel_reason)]
        if self.legs_in_doubt(msg.trade_id):
            return None
        if msg.trade_id in self._closed_trades:  # a leg filled instead of being cancelled:
            # the trade is flat; selling now would sell another trade's coins
            return [OrderCancelled(msg.ts, msg.order_id, "its trade closed first")]
        return await self._market(msg)

    async def _settle(self, doubt: Doubt) -> list[BrokerEvent] | None:
        """The exchange's truth about the orders of `doubt`, as events; None: not yet known."""
        found = [
            await self._lookup(m.symbol, None, cid)
            for m, cid in zip(doubt.legs, doubt.client_ids, strict=True)
        ]
        if any(order is not None for order in found):
            return await self._adopt(doubt, found)
        if not doubt.final():
            return None
        legs = doubt.legs
        if doubt.cancel_reason is not None:
            return [OrderCancelled(m.ts, m.order_id, doubt.cancel_reason) for m in legs]
        if legs[0].role == OrderRole.ENTRY:
            log.warning("order %s was %s: rejected", doubt.client_ids[0], LOST)
            return [OrderRejected(m.ts, m.order_id, f"{LOST} ({doubt.reason})") for m in legs]
        # sent again under the same ids; the doubt stays registered until the answer is in (an
        # exit of the trade waits meanwhile; a lost answer again is a new doubt in its place)
        log.warning("exit %s was %s: sent again", ", ".join(doubt.client_ids), LOST)
        if legs[0].kind in (OrderKind.STOP, OrderKind.LIMIT):
            events = await self._bracket(legs)
        else:
            events = await self._market(legs[0])
        if doubt.cancel_reason is not None:  # asked to cancel while it was sent again
            for msg in legs:
                rest = self._resting.pop(msg.order_id, None)
                if rest is not None:
                    events += await self.cancel_resting(
                        msg.order_id, rest, msg.ts, doubt.cancel_reason
                    )
        return events

    async def _adopt(self, doubt: Doubt, found: list[CcxtJson | None]) -> list[BrokerEvent] | None:
        events: list[BrokerEvent] = []
        fills: list[tuple[int, BrokerEvent]] = []
        for msg, cid, order in zip(doubt.legs, doubt.client_ids, found, strict=True):
            if order is None:  # the other leg of a list that arrived: it cannot follow
                events.append(OrderCancelled(msg.ts, msg.order_id, "not at the exchange"))
                continue
            self.record([(cid, order["id"])])
            events.append(OrderAccepted(msg.ts, msg.order_id))
            status = AtExchange.of(order.get("status"))
            if status is AtExchange.CLOSED:
                report = await self._with_fill(order, msg.symbol, strict=True)
                self.closes(msg)
                fill = OrderFilled(
                    report.filled_ts, msg.order_id, report.price, report.filled, report.fee
                )
                fills.append((0 if msg.kind == OrderKind.STOP else 1, fill))
            elif status in _GONE:
                events.append(OrderCancelled(msg.ts, msg.order_id, f"{status} at the exchange"))
            else:  # open (or a word ccxt did not map): watched like any resting order
                rest = RestingOrder(str(order["id"]), msg)
                if doubt.cancel_reason is not None:
                    events.extend(await self.cancel_resting(msg.order_id, rest, msg.ts, "oco"))
                else:
                    self._resting[msg.order_id] = rest
        log.warning("order %s was found at the exchange: adopted", ", ".join(doubt.client_ids))
        return events + [e for _rank, e in sorted(fills, key=lambda f: f[0])]

    async def cancel_resting(
        self, order_id: int, rest: RestingOrder, ts: int, reason: str
    ) -> list[BrokerEvent]:
        """Cancel a resting order. When the cancel fails, the order is looked up: filled ->
        its fill; gone (an OCO sibling went with it) -> cancelled; still there or the exchange
        cannot say -> resolved in the background (cancelled again until it is gone)."""
        import ccxt

        msg = rest.msg
        try:
            await self._send(self.client.cancel_order, rest.exchange_id, msg.symbol)
            return [OrderCancelled(ts, order_id, reason)]
        except ccxt.BaseError as exc:
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        try:
            events = await self._cancel_outcome(order_id, rest, ts, reason)
        except ccxt.BaseError:
            events = None
        if events is not None:
            return events
        log.warning(
            "cancelling order %s on %s failed (%s): looking it up until it is gone",
            rest.exchange_id,
            msg.symbol,
            error,
        )
        doubt = Doubt([msg], [rest.exchange_id], 0, error, cancel=True, cancel_reason=reason)
        doubt.exchange_ids = [rest.exchange_id]
        self.begin(doubt)
        return []

    async def _cancel_outcome(
        self, order_id: int, rest: RestingOrder, ts: int, reason: str
    ) -> list[BrokerEvent] | None:
        order = await self._send(self.client.fetch_order, rest.exchange_id, rest.msg.symbol)
        status = AtExchange.of(order.get("status"))
        if status is AtExchange.CLOSED:
            report = await self._with_fill(order, rest.msg.symbol, strict=True)
            self.closes(rest.msg)
            return [
                OrderFilled(report.filled_ts, order_id, report.price, report.filled, report.fee)
            ]
        if status in _GONE:
            return [OrderCancelled(ts, order_id, reason)]
        return None

    async def _settle_cancel(self, doubt: Doubt) -> list[BrokerEvent] | None:
        import ccxt

        msg = doubt.legs[0]
        rest = RestingOrder(doubt.exchange_ids[0] or "", msg)
        events = await self._cancel_outcome(msg.order_id, rest, msg.ts, doubt.cancel_reason or "")
        if events is not None:
            return events
        try:  # still open: cancel it again
            await self._send(self.client.cancel_order, rest.exchange_id, msg.symbol)
        except ccxt.BaseError:
            return None
        return [OrderCancelled(msg.ts, msg.order_id, doubt.cancel_reason or "cancelled")]
