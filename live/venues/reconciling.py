"""The ccxt broker's half that answers reconciliation (live/ops/reconcile.py decides, the node
applies, docs/recovery.md#reconciliation): the stored orders' reports, the account's open orders
and fills, and the orders of an earlier session looked after again."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from actors.messages import SubmitOrder
from core.vocabulary import CallOutcome
from live.venues.outcomes import CallSettings, wall_ms
from live.venues.reports import (
    AccountReport,
    FillReport,
    OrderStatusReport,
    fill_parts,
    fill_report,
    filled_of,
    status_report,
)
from live.venues.resolution import RestingOrder

if TYPE_CHECKING:
    from live.venues.ccxt_clients import CcxtJson, OrderClient

READ_ATTEMPTS = 4  # a lookup at a restart that fails transiently is asked again this often


class Reconciling:
    """Mixed into CcxtBroker, whose state and calls it uses."""

    client: OrderClient
    calls: CallSettings
    routes: dict[str, tuple[str, str]]
    sent_ids: set[str]
    _client_ids: dict[int, str]
    _resting: dict[int, RestingOrder]
    _timed: dict[int, SubmitOrder]
    _reported: dict[int, float]
    _report_filled: dict[str, float]

    if TYPE_CHECKING:  # the broker's own methods used here

        async def _send(self, call: Any, *args: Any) -> Any: ...
        def _outcome(self, exc: BaseException, creating: bool = True) -> CallOutcome: ...
        async def _with_fill(
            self, order: CcxtJson, symbol: str, strict: bool = False, answer: bool = False
        ) -> OrderStatusReport: ...

    async def order_reports(
        self, queries: list[tuple[str, str | None, str]], final_ms: int = 0
    ) -> list[OrderStatusReport | None]:
        """Orders of an earlier session, each (symbol, exchange id, client id): looked up by
        the exchange id when stored, else by the client order id (an order that reached the
        exchange just before a crash is found so); None: not at the exchange. An order with no
        exchange id that is not found is asked for again once our clock passed `final_ms`
        (the earlier session's last request can no longer arrive then), so None is final."""
        out = [await self._report_of(*query) for query in queries]
        missing = [k for k, (q, r) in enumerate(zip(queries, out, strict=True)) if r is None]
        if missing and not all(queries[k][1] for k in missing) and wall_ms() <= final_ms:
            await asyncio.sleep((final_ms - wall_ms() + 1) / 1000.0)
            for k in missing:
                out[k] = await self._report_of(*queries[k])
        return out

    async def _report_of(
        self, symbol: str, exchange_id: str | None, client_id: str
    ) -> OrderStatusReport | None:
        import ccxt

        delay = self.calls.backoff_s[0]
        for attempt in range(READ_ATTEMPTS):
            try:
                order = await self._lookup(symbol, exchange_id, client_id)
                if order is None:
                    return None
                if order.get("status") == "closed":  # its fee is in its trades only: read
                    report = await self._with_fill(order, symbol, strict=True)  # them or retry
                elif filled_of(order) > 0:  # filled in part: its parts, for reconciliation
                    trades = await self._send(
                        self.client.fetch_my_trades, symbol, None, None, {"orderId": order["id"]}
                    )
                    report = status_report(order, symbol, fill_parts(trades))
                else:
                    report = status_report(order, symbol)
                # reconciliation reports every part up to this: resumed, it counts as reported
                self._report_filled[report.exchange_id] = report.filled
                return report
            except ccxt.BaseError as exc:
                transient = self._outcome(exc, creating=False) is not CallOutcome.REFUSED
                if not transient or attempt + 1 == READ_ATTEMPTS:
                    raise RuntimeError(
                        f"reconciliation failed: order {client_id} on {symbol}: "
                        f"{type(exc).__name__}: {exc}"
                    ) from None
                await asyncio.sleep(delay)  # a 5xx or a timeout: asked again
                delay *= 2
        return None  # not reached

    async def _lookup(
        self, symbol: str, exchange_id: str | None, client_id: str
    ) -> CcxtJson | None:
        import ccxt

        try:
            if exchange_id:
                return await self._send(self.client.fetch_order, exchange_id, symbol)
            return await self._send(
                self.client.fetch_order, None, symbol, {"origClientOrderId": client_id}
            )
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
            if self._report_filled.get(exchange_id):  # filled in part: those parts are known
                self._reported[msg.order_id] = self._report_filled[exchange_id]
        for msg in timed:
            self._timed[msg.order_id] = msg

    async def cancel_orders(self, orders: list[tuple[str, str]]) -> None:
        """Cancel these (exchange id, symbol) at the exchange."""
        for exchange_id, symbol in orders:
            await self._send(self.client.cancel_order, exchange_id, symbol)

    async def account_report(self, since_ms: dict[str, int]) -> AccountReport:
        """The open orders and the fills since `since_ms` (per symbol) on the routed symbols."""
        open_orders: list[OrderStatusReport] = []
        fills: list[FillReport] = []
        for symbol in sorted({s for s, _i in self.routes.values()}):
            for order in await self._send(self.client.fetch_open_orders, symbol):
                open_orders.append(status_report(order, symbol))
            for fill in await self._send(self.client.fetch_my_trades, symbol, since_ms.get(symbol)):
                fills.append(fill_report(fill, symbol))
        return AccountReport(tuple(open_orders), tuple(fills), frozenset(self.sent_ids))
