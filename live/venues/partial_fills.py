"""The ccxt broker's half that follows resting orders filled in parts (docs/live.md#partial-fills).

A resting limit (an OCO's take profit) can fill in parts; the exchange then expires the OCO's
stop. Each part is reported once, as it filled (OrderPartiallyFilled: its own quantity, price and
fee, from the account's trades of that order), and the order's closing fill then carries only
what filled after the parts reported (`_reported` keeps their quantity per order). A cancel of
an order filled in part reads it again: a part that filled since the last poll is reported
before the cancel, a rest that filled instead of being cancelled is its last part. A market exit
of a trade whose take profit filled in part before its cancel sells only what is left.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from actors.messages import OrderFilled, OrderPartiallyFilled, SubmitOrder
from actors.order_store import MS
from core.vocabulary import OrderKind
from live.venues.reports import (
    OrderStatusReport,
    fill_parts,
    filled_of,
    parts_after,
    sum_parts,
)

if TYPE_CHECKING:
    from live.venues.ccxt_clients import CcxtJson, OrderClient
    from live.venues.resolution import BrokerEvent, RestingOrder

log = logging.getLogger("raytrader.live")


class PartialFills:
    """Mixed into CcxtBroker, whose state and calls it uses."""

    client: OrderClient
    _resting: dict[int, RestingOrder]
    _gone: set[int]
    _reported: dict[int, float]

    if TYPE_CHECKING:  # the broker's own methods used here

        async def _send(self, call: Any, *args: Any) -> Any: ...
        async def _with_fill(
            self, order: CcxtJson, symbol: str, strict: bool = False
        ) -> OrderStatusReport: ...
        async def cancel_resting(
            self, order_id: int, rest: RestingOrder, ts: int, reason: str
        ) -> list[BrokerEvent]: ...

    async def _new_parts(self, oid: int, rest: RestingOrder) -> list[OrderPartiallyFilled]:
        """The parts of a resting order filled since the last report, one event each (its
        trades, read from the account: each part's own price and fee)."""
        trades = await self._send(
            self.client.fetch_my_trades, rest.msg.symbol, None, None, {"orderId": rest.exchange_id}
        )
        parts = fill_parts(trades)
        new = parts_after(parts, self._reported.get(oid, 0.0))
        if new:
            self._reported[oid] = math.fsum(p.quantity for p in parts)
        return [OrderPartiallyFilled(p.ts_ms * MS, oid, p.price, p.quantity, p.fee) for p in new]

    async def _final_fill(self, oid: int, order: CcxtJson, symbol: str) -> OrderFilled:
        """The fill that completes a resting order: all of it, or, when parts of it were
        reported already, only what filled after them."""
        report = await self._with_fill(order, symbol, strict=True)
        reported = self._reported.get(oid, 0.0)
        if not reported:
            return fill_event(oid, report)
        qty, price, fee = sum_parts(parts_after(report.parts, reported))
        if not qty > 0:  # the trades do not show it (not expected): the order's own figures
            qty, price, fee = report.filled - reported, report.price, report.fee
        return OrderFilled(report.filled_ts, oid, price, qty, fee)

    async def _cancel_leg(
        self, oid: int, rest: RestingOrder, ts: int, reason: str
    ) -> list[BrokerEvent]:
        """Cancel a resting order. A limit cancelled, or one with parts reported, is read again
        afterwards: a part that filled after the last poll is reported before its cancel (a
        market exit then sells only the rest), and when the rest filled instead of being
        cancelled, only that last part is its fill (the parts were reported already)."""
        events = await self.cancel_resting(oid, rest, ts, reason)
        reported = self._reported.get(oid, 0.0)
        filled = any(type(e) is OrderFilled for e in events)
        cancelled_limit = rest.msg.kind == OrderKind.LIMIT and not filled
        if not events or not (reported or cancelled_limit):
            return events
        try:
            order = await self._send(self.client.fetch_order, rest.exchange_id, rest.msg.symbol)
            if filled:
                last = await self._final_fill(oid, order, rest.msg.symbol)
                events = [last if type(e) is OrderFilled else e for e in events]
            elif filled_of(order) > reported + 1e-12:
                events = [*await self._new_parts(oid, rest), *events]
        except Exception as exc:  # noqa: BLE001 - the cancel stands; say what may be missing
            log.warning(
                "the fills of order %s on %s at its cancel could not be read (%s)",
                rest.exchange_id,
                rest.msg.symbol,
                type(exc).__name__,
            )
        if events:
            self._reported.pop(oid, None)
        return events

    async def _free_coins(
        self, msg: SubmitOrder
    ) -> tuple[list[BrokerEvent], list[OrderPartiallyFilled]]:
        """Cancel the resting legs of a trade before it is closed by a market order. Returns
        the fills of legs that filled first (then the trade is flat: nothing to sell) and the
        parts of legs that filled in part before their cancel (the exit sells the rest)."""
        fills: list[BrokerEvent] = []
        parts: list[OrderPartiallyFilled] = []
        for oid, rest in list(self._resting.items()):
            if rest.msg.oco != msg.trade_id:
                continue
            del self._resting[oid]
            for event in await self._cancel_leg(oid, rest, msg.ts, "oco"):
                if type(event) is OrderFilled:
                    fills.append(event)
                elif type(event) is OrderPartiallyFilled:  # a part before the cancel
                    parts.append(event)
                else:  # reported when the order manager asks to cancel it
                    self._gone.add(oid)
        return fills, parts


def fill_event(order_id: int, report: OrderStatusReport) -> OrderFilled:
    return OrderFilled(report.filled_ts, order_id, report.price, report.filled, report.fee)


def unsent(brackets: dict[int, list[SubmitOrder]], order_id: int) -> bool:
    """Take a stop or target out of this batch's brackets not yet sent (two parts of a target
    in one batch: the legs placed for the rest after the first are replaced by the second's)."""
    for legs in brackets.values():
        for k, msg in enumerate(legs):
            if msg.order_id == order_id:
                del legs[k]
                return True
    return False
