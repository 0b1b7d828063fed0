"""Binance JSON shapes the local exchange answers with (the fields ccxt's binance client reads)."""

from __future__ import annotations

from typing import Any

from localexchange.accounts import DEFAULT_LOT, OPEN, Account, Order, split_symbol
from localexchange.replay import ReplayMarket, Series, _num

ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS"]


def exchange_info(market: ReplayMarket, weight_limit: int | None = None) -> dict[str, Any]:
    symbols = []
    for symbol in market.symbols():
        base, quote = split_symbol(symbol)
        symbols.append(
            {
                "symbol": base + quote,
                "status": "TRADING",
                "baseAsset": base,
                "baseAssetPrecision": 8,
                "quoteAsset": quote,
                "quotePrecision": 8,
                "quoteAssetPrecision": 8,
                "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8,
                "orderTypes": ORDER_TYPES,
                "icebergAllowed": False,
                "ocoAllowed": True,
                "otoAllowed": False,
                "quoteOrderQtyMarketAllowed": False,
                "allowTrailingStop": False,
                "cancelReplaceAllowed": False,
                "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": True,  # cross margin: localexchange/margin.py
                "filters": [
                    {
                        "filterType": "PRICE_FILTER",
                        "minPrice": "0.00000001",
                        "maxPrice": "1000000.00000000",
                        "tickSize": "0.00000001",
                    },
                    *_limit_filters(market, symbol),
                ],
                "permissions": [],
                "permissionSets": [["SPOT", "MARGIN"]],
                "defaultSelfTradePreventionMode": "NONE",
                "allowedSelfTradePreventionModes": ["NONE"],
            }
        )
    return {
        "timezone": "UTC",
        "serverTime": market.now_ms,
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": weight_limit,
            }
        ]
        if weight_limit
        else [],
        "exchangeFilters": [],
        "symbols": symbols,
    }


def _limit_filters(market: ReplayMarket, symbol: str) -> list[dict[str, Any]]:
    """LOT_SIZE (the quantity step) and, when the market has one, NOTIONAL (the minimum)."""
    min_notional, step = market.limits.get(symbol, (0.0, DEFAULT_LOT))
    lot = _num(step)
    filters = [
        {"filterType": "LOT_SIZE", "minQty": lot, "maxQty": "9000000.00000000", "stepSize": lot}
    ]
    if min_notional > 0:
        filters.append(
            {
                "filterType": "NOTIONAL",
                "minNotional": _num(min_notional),
                "applyMinToMarket": True,
                "maxNotional": "9000000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            }
        )
    return filters


def kline_event(series: Series, index: int, closed: bool, event_ms: int) -> dict[str, Any]:
    t, o, h, low, c, v = series.kline(index)
    if not closed:  # the bar just opened: only its open is known
        h = low = c = o
        v = 0.0
    return {
        "e": "kline",
        "E": event_ms,
        "s": series.market_id,
        "k": {
            "t": t,
            "T": t + series.step_ms - 1,
            "s": series.market_id,
            "i": series.interval,
            "f": 0,
            "L": 0,
            "o": _num(o),
            "c": _num(c),
            "h": _num(h),
            "l": _num(low),
            "v": _num(v),
            "n": 0,
            "x": closed,
            "q": "0",
            "V": "0",
            "Q": "0",
            "B": "0",
        },
    }


def ticker(market: ReplayMarket, symbol: str) -> dict[str, Any]:
    price = market.last_price(symbol) or 0.0
    return {
        "symbol": symbol.replace("/", ""),
        "lastPrice": _num(price),
        "bidPrice": _num(price),
        "askPrice": _num(price),
        "openPrice": _num(price),
        "highPrice": _num(price),
        "lowPrice": _num(price),
        "volume": "0",
        "quoteVolume": "0",
        "closeTime": market.now_ms,
        "openTime": market.now_ms,
        "count": 0,
    }


def ticker_events(market: ReplayMarket, symbol: str) -> dict[str, dict[str, Any]]:
    """<sym>@ticker and <sym>@miniTicker stream events (ccxt.pro's watch_ticker subscribes to
    the mini one by default, its `name` option picks the full one): the REST ticker's values."""
    rest = ticker(market, symbol)
    names = {
        "c": "lastPrice",
        "o": "openPrice",
        "h": "highPrice",
        "l": "lowPrice",
        "v": "volume",
        "q": "quoteVolume",
    }
    mini = {
        "e": "24hrMiniTicker",
        "E": market.now_ms,
        "s": rest["symbol"],
        **{k: rest[v] for k, v in names.items()},
    }
    full = {
        **mini,
        "e": "24hrTicker",
        "b": rest["bidPrice"],
        "a": rest["askPrice"],
        "B": "0",
        "A": "0",
        "O": rest["openTime"],
        "C": rest["closeTime"],
        "n": rest["count"],
    }
    stream = rest["symbol"].lower()
    return {f"{stream}@ticker": full, f"{stream}@miniTicker": mini}


def order_json(order: Order, full: bool = False) -> dict[str, Any]:
    out = {
        "symbol": order.symbol.replace("/", ""),
        "orderId": order.order_id,
        "orderListId": order.list_id,
        "clientOrderId": order.client_id,
        "price": _num(order.price or 0.0),
        "origQty": _num(order.quantity),
        "executedQty": _num(order.executed),
        "cummulativeQuoteQty": _num(order.quote),
        "status": order.status,
        "timeInForce": "GTC",
        "type": order.type,
        "side": order.side,
        "stopPrice": _num(order.stop_price or 0.0),
        "time": order.created_ms,
        "transactTime": order.update_ms,
        "updateTime": order.update_ms,
        "workingTime": order.created_ms,
        "isWorking": order.status in OPEN,
        "origQuoteOrderQty": "0",
        "selfTradePreventionMode": "NONE",
    }
    if full:
        out["fills"] = [fill_json(order)] if order.status == "FILLED" else []
    if order.borrowed is not None:  # a margin order that borrowed (Binance's MARGIN_BUY answer)
        out["marginBuyBorrowAsset"], amount = order.borrowed
        out["marginBuyBorrowAmount"] = _num(amount)
    return out


def order_list_json(orders: list[Order], list_client: str) -> dict[str, Any]:
    """An OCO order list as placed (spot and margin answer alike)."""
    market_id = orders[0].symbol.replace("/", "")
    running = any(o.status in OPEN for o in orders)
    return {
        "orderListId": orders[0].list_id,
        "contingencyType": "OCO",
        # ALL_DONE once no leg rests any more (a fill of one leg, a part too, expires the other)
        "listStatusType": "EXEC_STARTED" if running else "ALL_DONE",
        "listOrderStatus": "EXECUTING" if running else "ALL_DONE",
        "listClientOrderId": list_client,
        "transactionTime": orders[0].created_ms,
        "symbol": market_id,
        "orders": [
            {"symbol": market_id, "orderId": o.order_id, "clientOrderId": o.client_id}
            for o in orders
        ],
        "orderReports": [order_json(o) for o in orders],
    }


def fill_json(order: Order) -> dict[str, Any]:
    _base, quote = split_symbol(order.symbol)
    return {
        "price": _num(order.fill_price),
        "qty": _num(order.executed),
        "commission": _num(order.fee),
        "commissionAsset": quote,
        "tradeId": order.trade_id,
    }


def my_trade_json(trade: dict) -> dict[str, Any]:
    order: Order = trade["order"]
    _base, quote = split_symbol(order.symbol)
    return {
        "symbol": order.symbol.replace("/", ""),
        "id": trade["id"],
        "orderId": order.order_id,
        "orderListId": order.list_id,
        "price": _num(trade["price"]),
        "qty": _num(trade["qty"]),
        "quoteQty": _num(trade["price"] * trade["qty"]),
        "commission": _num(trade["fee"]),
        "commissionAsset": quote,
        "time": trade["time"],
        "isBuyer": order.side == "BUY",
        "isMaker": order.type in ("LIMIT", "LIMIT_MAKER"),
        "isBestMatch": True,
    }


def account_json(acct: Account, now_ms: int) -> dict[str, Any]:
    return {
        "makerCommission": 10,
        "takerCommission": 10,
        "canTrade": True,
        "canWithdraw": False,
        "canDeposit": False,
        "updateTime": now_ms,
        "accountType": "SPOT",
        "balances": [
            {"asset": asset, "free": _num(free), "locked": _num(locked)}
            for asset, (free, locked) in sorted(acct.balances.items())
        ],
        "permissions": ["SPOT"],
    }


def execution_report(order: Order, event_ms: int) -> dict[str, Any]:
    """The user-data stream's order update (what ccxt.pro's watch_orders parses)."""
    filled = order.status in ("FILLED", "PARTIALLY_FILLED")  # this event is a trade (a part)
    execution = {
        "FILLED": "TRADE",
        "PARTIALLY_FILLED": "TRADE",
        "CANCELED": "CANCELED",
        "EXPIRED": "EXPIRED",
    }
    _base, quote = split_symbol(order.symbol)
    return {
        "e": "executionReport",
        "E": event_ms,
        "s": order.symbol.replace("/", ""),
        "c": order.client_id,
        "S": order.side,
        "o": order.type,
        "f": "GTC",
        "q": _num(order.quantity),
        "p": _num(order.price or 0.0),
        "P": _num(order.stop_price or 0.0),
        "F": "0",
        "g": order.list_id,
        "C": "",
        "x": execution.get(order.status, "NEW"),
        "X": order.status,
        "r": "NONE",
        "i": order.order_id,
        "l": _num(order.last_qty if filled else 0.0),
        "z": _num(order.executed),
        "L": _num(order.fill_price if filled else 0.0),
        "n": _num(order.last_fee if filled else 0.0),
        "N": quote if filled else None,
        "T": order.update_ms,
        "t": order.trade_id if filled else -1,
        "I": 0,
        "w": order.status in OPEN,
        "m": False,
        "M": False,
        "O": order.created_ms,
        "Z": _num(order.quote),
        "Y": _num(order.quote),
        "Q": "0",
    }
