"""Which market a live instance trades: spot (longs only) or cross margin (longs and shorts).

A short needs a market that lends the coins it sells (docs/live.md#shorts-need-margin). On spot, a short
entry is refused before it reaches the exchange, with the reason and the fix; the run goes on.
On margin, the ccxt broker's client is wrapped by `MarginClient`, which sends every order and
query to Binance's cross margin API (ccxt routes `{'marginMode': 'cross'}` to /sapi/v1/margin/...)
with `sideEffectType=AUTO_BORROW_REPAY`: a short sale borrows its coins, the buy that closes it
repays them (and a long that needs more quote than is free borrows it, its sale repays it). The
broker's code stays the same for both markets: only its client differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING

from actors.messages import SubmitOrder
from core.vocabulary import OrderRole, OrderSide
from live.venues.ccxt_clients import CcxtJson, OrderClient

if TYPE_CHECKING:
    import ccxt.pro


class Market(StrEnum):
    """Where the broker's orders go: spot (longs only) or cross margin (longs and shorts)."""

    SPOT = "spot"
    MARGIN = "margin"


MARKETS = tuple(Market)
CROSS = {"marginMode": "cross"}
SIDE_EFFECT = "AUTO_BORROW_REPAY"


def check_market(market: str) -> str:
    """The market kind, or ValueError with the fix."""
    if market not in MARKETS:
        raise ValueError(f"--market must be one of {', '.join(MARKETS)}, got {market!r}")
    return market


def short_refusal(market: str, msg: SubmitOrder) -> str | None:
    """Why a SubmitOrder cannot go to this market (a short entry on spot), or None."""
    if market == Market.SPOT and msg.role == OrderRole.ENTRY and msg.side == OrderSide.SELL:
        return f"short on spot market {msg.symbol}: use --market margin"
    return None


def for_market(client: ccxt.pro.Exchange, market: str) -> OrderClient:
    """The ccxt client the broker uses on this market."""
    return MarginClient(client) if check_market(market) == Market.MARGIN else client


class MarginClient:
    """A ccxt binance client whose orders, order queries and balance are on the cross margin
    account. Markets, precision and close are the client's own (named below for the broker's
    OrderClient protocol), and so is any other attribute."""

    def __init__(self, client: ccxt.pro.Exchange) -> None:
        self._client = client

    def __getattr__(self, name: str) -> object:
        return getattr(self._client, name)

    async def load_markets(self) -> Mapping[str, CcxtJson]:
        return await self._client.load_markets()

    async def close(self) -> None:
        await self._client.close()

    def market(self, symbol: str) -> CcxtJson:
        return self._client.market(symbol)

    def amount_to_precision(self, symbol: str, amount: float) -> str:
        return self._client.amount_to_precision(symbol, amount)

    def price_to_precision(self, symbol: str, price: float | None) -> str:
        return self._client.price_to_precision(symbol, price)

    async def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None = None,
        params: dict | None = None,
    ) -> CcxtJson:
        extra = {**CROSS, "sideEffectType": SIDE_EFFECT, **(params or {})}
        return await self._client.create_order(symbol, type, side, amount, price, extra)

    async def cancel_order(
        self, id: str, symbol: str | None = None, params: dict | None = None
    ) -> CcxtJson:
        return await self._client.cancel_order(id, symbol, {**CROSS, **(params or {})})

    async def fetch_order(
        self, id: str, symbol: str | None = None, params: dict | None = None
    ) -> CcxtJson:
        return await self._client.fetch_order(id, symbol, {**CROSS, **(params or {})})

    async def fetch_open_orders(
        self,
        symbol: str | None = None,
        since: int | None = None,
        limit: int | None = None,
        params: dict | None = None,
    ) -> list[CcxtJson]:
        return await self._client.fetch_open_orders(
            symbol, since, limit, {**CROSS, **(params or {})}
        )

    async def fetch_orders(
        self,
        symbol: str | None = None,
        since: int | None = None,
        limit: int | None = None,
        params: dict | None = None,
    ) -> list[CcxtJson]:
        return await self._client.fetch_orders(symbol, since, limit, {**CROSS, **(params or {})})

    async def fetch_my_trades(
        self,
        symbol: str | None = None,
        since: int | None = None,
        limit: int | None = None,
        params: dict | None = None,
    ) -> list[CcxtJson]:
        return await self._client.fetch_my_trades(symbol, since, limit, {**CROSS, **(params or {})})

    async def fetch_balance(self, params: dict | None = None) -> CcxtJson:
        return await self._client.fetch_balance({**CROSS, **(params or {})})

    async def privatePostOrderListOco(self, request: dict) -> CcxtJson:  # noqa: N802 - ccxt's name
        """The spot OCO request, sent as Binance's margin OCO (its older form: `price` for the
        LIMIT_MAKER leg, `stopPrice` for the STOP_LOSS leg, per-leg client ids)."""
        legs = {request.get(f"{pos}Type"): pos for pos in ("above", "below")}
        limit, stop = legs.get("LIMIT_MAKER"), legs.get("STOP_LOSS")
        if limit is None or stop is None:
            raise ValueError(f"an OCO needs a LIMIT_MAKER and a STOP_LOSS leg, got {legs}")
        margin = {
            "symbol": request["symbol"],
            "side": request["side"],
            "quantity": request["quantity"],
            "price": request[f"{limit}Price"],
            "stopPrice": request[f"{stop}StopPrice"],
            "sideEffectType": SIDE_EFFECT,
        }
        for key, pos in (("limitClientOrderId", limit), ("stopClientOrderId", stop)):
            if request.get(f"{pos}ClientOrderId"):
                margin[key] = request[f"{pos}ClientOrderId"]
        if request.get("listClientOrderId"):
            margin["listClientOrderId"] = request["listClientOrderId"]
        return await self._client.sapiPostMarginOrderOco(margin)
