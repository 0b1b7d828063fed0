"""The local exchange's cross margin API: Binance's /sapi/v1/margin/... paths, for shorts.

ccxt's binance client sends an order with `{'marginMode': 'cross'}` to /sapi/v1/margin/order
(and fetch/cancel/open orders/my trades/balance to their /sapi/v1/margin/ twins), so the same
spot symbols trade on the margin account of the key (localexchange/accounts.py: borrowing, repaying,
the borrowing limit). The order handlers are the spot ones of LocalExchange run on the margin
account; only the account, the OCO (Binance's older margin OCO: price / stopPrice /
limitClientOrderId / stopClientOrderId) and borrow-repay are margin's own. Margin order updates
are not pushed on the spot user stream (Binance has a separate margin stream): clients poll.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from localexchange import binance_format as fmt
from localexchange.accounts import BAD_PARAM, Account, ExchangeError, MatchingEngine

SAPI = "/sapi/v1/margin/"
Answer = tuple[Any, list]  # (JSON body, the (account, order) pairs it changed)
AccountHandler = Callable[[Account, dict], Answer]
RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SpotApi(Protocol):
    """What the margin API takes from the spot exchange (localexchange/server.py): its
    matching engine, its signed-request wrapper and the spot order handlers it reuses."""

    engine: MatchingEngine

    def signed(self, handler: AccountHandler, margin: bool = False) -> RouteHandler: ...
    def require_symbol(self, params: dict) -> str: ...
    def check_order_filters(self, symbol: str, params: dict) -> None: ...
    def new_order(self, acct: Account, params: dict) -> Answer: ...
    def get_order(self, acct: Account, params: dict) -> Answer: ...
    def cancel_order(self, acct: Account, params: dict) -> Answer: ...
    def open_orders(self, acct: Account, params: dict) -> Answer: ...
    def all_orders(self, acct: Account, params: dict) -> Answer: ...
    def my_trades(self, acct: Account, params: dict) -> Answer: ...


def margin_routes(ex: SpotApi) -> list[web.RouteDef]:
    """Routes of the cross margin API, each on the key's margin account."""

    def signed(handler: AccountHandler) -> RouteHandler:
        return ex.signed(handler, margin=True)

    return [
        web.get(SAPI + "account", signed(lambda acct, p: (account_json(ex, acct), []))),
        web.post(SAPI + "order", signed(ex.new_order)),
        web.get(SAPI + "order", signed(ex.get_order)),
        web.delete(SAPI + "order", signed(ex.cancel_order)),
        web.get(SAPI + "openOrders", signed(ex.open_orders)),
        web.get(SAPI + "allOrders", signed(ex.all_orders)),
        web.get(SAPI + "myTrades", signed(ex.my_trades)),
        web.post(SAPI + "order/oco", signed(lambda acct, p: new_oco(ex, acct, p))),
        web.post(SAPI + "borrow-repay", signed(lambda acct, p: borrow_repay(ex, acct, p))),
    ]


def new_oco(ex: SpotApi, acct: Account, params: dict) -> Answer:
    """POST /sapi/v1/margin/order/oco: a LIMIT_MAKER at `price` and a STOP_LOSS at `stopPrice`."""
    symbol = ex.require_symbol(params)
    ex.check_order_filters(symbol, params)
    if params.get("stopLimitPrice"):
        raise ExchangeError(
            -1116, "STOP_LOSS_LIMIT legs are not supported here; omit stopLimitPrice"
        )
    list_client = params.get("listClientOrderId") or f"list-{time.monotonic_ns()}"
    ids = (
        params.get("stopClientOrderId") or f"{list_client}-s",
        params.get("limitClientOrderId") or f"{list_client}-t",
    )
    orders = ex.engine.place_oco(
        acct,
        symbol,
        params.get("side", ""),
        _float(params.get("quantity")),
        _float(params.get("price")),
        _float(params.get("stopPrice")),
        ids,
        params.get("sideEffectType") or "NO_SIDE_EFFECT",
    )
    body = {**fmt.order_list_json(orders, list_client), "isIsolated": False}
    return body, [(acct, o) for o in orders]


def borrow_repay(ex: SpotApi, acct: Account, params: dict) -> Answer:
    """POST /sapi/v1/margin/borrow-repay with type REPAY: pay back a debt by hand (orders borrow
    through their sideEffectType; a manual BORROW is not offered here)."""
    asset, kind = params.get("asset", "").upper(), params.get("type", "")
    amount = _float(params.get("amount")) or 0.0
    if kind != "REPAY" or amount <= 0 or not asset:
        raise ExchangeError(
            BAD_PARAM,
            "borrow-repay here takes type=REPAY, asset and amount > 0; "
            "borrow with an order's sideEffectType=MARGIN_BUY",
        )
    owed = acct.debts.get(asset, 0.0)
    if amount > owed + 1e-12 or amount > acct.free(asset) + 1e-12:
        raise ExchangeError(
            -3041,
            f"Balance is not enough: repaying {amount:.8f} {asset}, "
            f"owed {owed:.8f}, free {acct.free(asset):.8f}",
        )
    acct.move(asset, -amount)
    acct.debts[asset] = owed - amount
    return {"tranId": time.monotonic_ns()}, []


def account_json(ex: SpotApi, acct: Account) -> dict[str, Any]:
    """GET /sapi/v1/margin/account: per asset free, locked, borrowed, interest, net asset; the
    totals in BTC (assets without a BTC price count nothing there)."""
    rows, assets_btc, debts_btc = [], 0.0, 0.0
    for asset, (free, locked) in sorted(acct.balances.items()):
        borrowed = acct.debts.get(asset, 0.0)
        rows.append(
            {
                "asset": asset,
                "free": fmt._num(free),
                "locked": fmt._num(locked),
                "borrowed": fmt._num(borrowed),
                "interest": "0",
                "netAsset": fmt._num(free + locked - borrowed),
            }
        )
        price = ex.engine.price_in(asset, "BTC", {"BTC": 1.0}) or 0.0
        assets_btc += (free + locked) * price
        debts_btc += borrowed * price
    level = assets_btc / debts_btc if debts_btc > 0 else 999.0
    return {
        "borrowEnabled": True,
        "tradeEnabled": True,
        "transferEnabled": True,
        "marginLevel": fmt._num(level),
        "totalAssetOfBtc": fmt._num(assets_btc),
        "totalLiabilityOfBtc": fmt._num(debts_btc),
        "totalNetAssetOfBtc": fmt._num(assets_btc - debts_btc),
        "userAssets": rows,
    }


def _float(value: Any) -> float | None:
    return None if value in (None, "") else float(value)
