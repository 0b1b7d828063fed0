"""The local exchange's accounts and order matching (spot, balances locked like a real market).

Fill rules are those of docs/design.md#fill-semantics, applied to the bar in progress:
- a MARKET order fills at once at the OPEN of the bar in progress of its symbol's finest series
  (a strategy's signal at the close of bar t arrives while bar t+1 is in progress: it fills at
  that bar's open, as the backtest's market order does);
- resting orders (LIMIT, STOP_LOSS = stop-market) are live from the bar in progress when they
  were placed; each time a bar of that series closes they are checked against it: stops first
  (a sell stop fills at min(open, stop): a gap fills at the open), then limits (a sell limit at
  max(open, limit)); buys mirror;
- the two legs of an OCO order list share one lock and fill at most once: one filling cancels
  the other;
- a fill's time is the open time of the bar it happened in; the fee (`fee_rate` of notional) is
  charged in the quote asset.
Balances: a resting sell locks its base quantity, a resting buy its quote cost; an order that
needs more than the free balance is refused (-2010), as on a real spot exchange, so a second
resting sell of the same coins (a stop loss and a separate take profit) is refused.
Cross margin (the market where shorts are allowed): each key also has a margin account, funded on
first use like the spot one and kept apart from it as Binance keeps its wallets apart. An order's
`sideEffectType` MARGIN_BUY / AUTO_BORROW_REPAY borrows the shortfall when it is placed (a short
sale borrows the base coins), debts up to (LEVERAGE - 1) x net equity (3x cross margin; past
that -3006); AUTO_REPAY / AUTO_BORROW_REPAY repays the debt in the asset a fill brings in, and
cancelling an order that borrowed repays its loan. No interest (backtests charge none: parity).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from localexchange.replay import ReplayMarket, Series

log = logging.getLogger("raytrader.exchange")


class ExchangeError(Exception):
    """A refused request: Binance error `code` and message (HTTP 400)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


INSUFFICIENT = -2010
UNKNOWN_ORDER = -2011
BAD_PARAM = -1102
BORROW_LIMIT = -3006  # Binance: "Your borrow amount has exceed maximum borrow amount."
LEVERAGE = 3.0  # cross margin classic: debts up to (LEVERAGE - 1) x net equity
SIDE_EFFECTS = ("NO_SIDE_EFFECT", "MARGIN_BUY", "AUTO_REPAY", "AUTO_BORROW_REPAY")
BORROWS = ("MARGIN_BUY", "AUTO_BORROW_REPAY")
REPAYS = ("AUTO_REPAY", "AUTO_BORROW_REPAY")
OPEN = ("NEW", "PARTIALLY_FILLED")  # statuses of an order still resting at the exchange
DEFAULT_LOT = 1e-8  # LOT_SIZE stepSize (and minQty) of a symbol without limits of its own


@dataclass
class Order:
    order_id: int
    client_id: str
    symbol: str  # unified
    side: str  # BUY | SELL
    type: str  # MARKET | LIMIT | STOP_LOSS
    quantity: float
    price: float | None
    stop_price: float | None
    created_ms: int
    active_from_ms: int
    list_id: int = -1
    status: str = "NEW"
    executed: float = 0.0
    quote: float = 0.0
    fee: float = 0.0
    fill_price: float | None = None
    update_ms: int = 0
    trade_id: int | None = None  # of the last fill
    last_qty: float = 0.0  # the last fill's quantity and fee (a partly filled order has several)
    last_fee: float = 0.0
    locked: tuple[str, float] | None = None  # (asset, amount) held for this order (or its list)
    side_effect: str = "NO_SIDE_EFFECT"  # margin orders only
    borrowed: tuple[str, float] | None = None  # what placing this margin order borrowed


@dataclass
class Account:
    api_key: str
    secret: str
    balances: dict[str, list[float]]  # asset -> [free, locked]
    orders: dict[int, Order] = field(default_factory=dict)
    trades: list[dict] = field(default_factory=list)
    margin: bool = False  # a cross margin account (may borrow)
    debts: dict[str, float] = field(default_factory=dict)  # asset -> borrowed, not yet repaid

    def free(self, asset: str) -> float:
        return self.balances.setdefault(asset, [0.0, 0.0])[0]

    def move(self, asset: str, free: float = 0.0, locked: float = 0.0) -> None:
        row = self.balances.setdefault(asset, [0.0, 0.0])
        row[0] += free
        row[1] += locked


def split_symbol(symbol: str) -> tuple[str, str]:
    base, quote = symbol.split("/")
    return base, quote


# (order, its remaining quantity, the LOT_SIZE step) -> the part a bar fills, None for all of it
PartialFill = Callable[["Order", float, float], float | None]


class MatchingEngine:
    """Accounts (one per API key) and their orders against a ReplayMarket."""

    def __init__(self, market: ReplayMarket, funding: dict[str, float], fee_rate: float = 0.001):
        self.market = market
        self.funding = dict(funding)
        self.fee_rate = fee_rate
        self.accounts: dict[str, Account] = {}
        self.margin_accounts: dict[str, Account] = {}
        self._ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._list_ids = itertools.count(1)
        self.partial: PartialFill | None = None  # the fault mode's partial fills, when on

    def lot_step(self, symbol: str) -> float:
        return self.market.limits.get(symbol, (0.0, DEFAULT_LOT))[1]

    def account(self, api_key: str, secret: str) -> Account:
        """The key's account, funded on first use."""
        acct = self.accounts.get(api_key)
        if acct is None:
            funds = {a: [v, 0.0] for a, v in self.funding.items()}
            acct = self.accounts[api_key] = Account(api_key, secret, funds)
        return acct

    def margin_account(self, api_key: str, secret: str) -> Account:
        """The key's cross margin account (apart from its spot account), funded on first use."""
        acct = self.margin_accounts.get(api_key)
        if acct is None:
            funds = {a: [v, 0.0] for a, v in self.funding.items()}
            acct = self.margin_accounts[api_key] = Account(api_key, secret, funds, margin=True)
        return acct

    # -- placing ------------------------------------------------------------------------------
    def place(
        self,
        acct: Account,
        symbol: str,
        side: str,
        type_: str,
        quantity: float,
        price: float | None,
        stop_price: float | None,
        client_id: str,
        list_id: int = -1,
        side_effect: str = "NO_SIDE_EFFECT",
    ) -> list[Order]:
        """Place an order; returns the orders that changed (the new one, filled or resting)."""
        if side_effect not in SIDE_EFFECTS or (side_effect != "NO_SIDE_EFFECT" and not acct.margin):
            raise ExchangeError(
                BAD_PARAM,
                f"sideEffectType {side_effect!r} is not valid here; "
                f"margin orders take one of {', '.join(SIDE_EFFECTS)}",
            )
        series = self._series(symbol)
        bar = series.forming()
        if bar is None:
            raise ExchangeError(-1013, f"market {symbol} has no bar in progress: replay ended")
        self._check(acct, symbol, side, type_, quantity, price, stop_price, client_id)
        now = int(series.open_ms[bar])
        order = Order(
            next(self._ids),
            client_id,
            symbol,
            side,
            type_,
            quantity,
            price,
            stop_price,
            now,
            now,
            list_id,
            update_ms=now,
            side_effect=side_effect,
        )
        if acct.margin:  # borrows before the funds check, as Binance's MARGIN_BUY does
            self.borrow_for(acct, order, float(series.values[bar][0]))
        if type_ == "MARKET":
            self._require_funds(acct, order, float(series.values[bar][0]))
            self._fill(acct, order, float(series.values[bar][0]), now)
        else:
            self._lock(acct, order)
        acct.orders[order.order_id] = order
        return [order]

    def place_oco(
        self,
        acct: Account,
        symbol: str,
        side: str,
        quantity: float,
        limit: float,
        stop: float,
        client_ids: tuple[str, str],
        side_effect: str = "NO_SIDE_EFFECT",
    ) -> list[Order]:
        """A take-profit LIMIT_MAKER and a STOP_LOSS sharing one lock; one fill cancels the other."""
        if not (limit and limit > 0):
            raise ExchangeError(BAD_PARAM, "an OCO needs a positive limit price")
        list_id = next(self._list_ids)
        stop_order = self.place(
            acct,
            symbol,
            side,
            "STOP_LOSS",
            quantity,
            None,
            stop,
            client_ids[0],
            list_id,
            side_effect,
        )[0]
        # the limit leg shares the stop leg's lock: placed without locking again
        now = stop_order.created_ms
        limit_order = Order(
            next(self._ids),
            client_ids[1],
            symbol,
            side,
            "LIMIT_MAKER",
            quantity,
            limit,
            None,
            now,
            now,
            list_id,
            update_ms=now,
            side_effect=side_effect,
        )
        acct.orders[limit_order.order_id] = limit_order
        return [stop_order, limit_order]

    def _check(self, acct, symbol, side, type_, quantity, price, stop_price, client_id) -> None:
        if side not in ("BUY", "SELL"):
            raise ExchangeError(BAD_PARAM, f"side must be BUY or SELL, got {side!r}")
        if type_ not in ("MARKET", "LIMIT", "STOP_LOSS"):
            raise ExchangeError(-1116, f"order type {type_!r} not supported here")
        if not quantity or quantity <= 0:
            raise ExchangeError(BAD_PARAM, "quantity must be positive")
        if type_ == "LIMIT" and not (price and price > 0):
            raise ExchangeError(BAD_PARAM, "LIMIT needs a positive price")
        if type_ == "STOP_LOSS" and not (stop_price and stop_price > 0):
            raise ExchangeError(BAD_PARAM, "STOP_LOSS needs a positive stopPrice")
        if any(o.client_id == client_id and o.status in OPEN for o in acct.orders.values()):
            raise ExchangeError(-2010, "Duplicate order sent.")

    def _series(self, symbol: str) -> Series:
        series = self.market.finest(symbol)
        if series is None:
            raise ExchangeError(-1121, f"Invalid symbol {symbol}")
        return series

    def _require_funds(self, acct: Account, order: Order, price: float) -> None:
        base, quote = split_symbol(order.symbol)
        if order.side == "BUY":
            need, asset = order.quantity * price * (1 + self.fee_rate), quote
        else:
            need, asset = order.quantity, base
        if acct.free(asset) + 1e-12 < need:
            # Binance's exact words: ccxt maps them to InsufficientFunds, as with the real one
            log.info("refused: needs %.8f %s, %.8f free", need, asset, acct.free(asset))
            raise ExchangeError(
                INSUFFICIENT, "Account has insufficient balance for requested action."
            )

    def _lock(self, acct: Account, order: Order) -> None:
        level = order.price if order.type == "LIMIT" else order.stop_price
        self._require_funds(acct, order, level)
        base, quote = split_symbol(order.symbol)
        if order.side == "SELL":
            order.locked = (base, order.quantity)
        else:
            order.locked = (quote, order.quantity * level * (1 + self.fee_rate))
        acct.move(order.locked[0], -order.locked[1], order.locked[1])

    def _unlock(self, acct: Account, order: Order) -> None:
        holder = self._lock_holder(acct, order)
        if holder is not None and holder.locked:
            asset, amount = holder.locked
            acct.move(asset, amount, -amount)
            holder.locked = None

    def _lock_holder(self, acct: Account, order: Order) -> Order | None:
        if order.list_id < 0:
            return order
        return next(
            (o for o in acct.orders.values() if o.list_id == order.list_id and o.locked), None
        )

    # -- margin (cross): borrowing and repaying -------------------------------------------------
    def borrow_for(self, acct: Account, order: Order, price: float) -> None:
        """MARGIN_BUY / AUTO_BORROW_REPAY: borrow what the order needs beyond the free balance
        (a short sale borrows its base coins), within the account's borrowing limit."""
        if order.side_effect not in BORROWS:
            return
        base, quote = split_symbol(order.symbol)
        level = price if order.type == "MARKET" else (order.price or order.stop_price or price)
        if order.side == "BUY":
            need, asset = order.quantity * level * (1 + self.fee_rate), quote
        else:
            need, asset = order.quantity, base
        shortfall = need - acct.free(asset)
        if shortfall <= 1e-12:
            return
        prices = {quote: 1.0, base: level}
        limit = (LEVERAGE - 1.0) * self.net_equity(acct, quote, prices)
        debt = self.debt_value(acct, quote, prices) + shortfall * prices[asset]
        if debt > limit + 1e-12:
            raise ExchangeError(
                BORROW_LIMIT,
                f"Your borrow amount has exceed maximum borrow amount: borrowing {shortfall:.8f} "
                f"{asset} makes debts {debt:.8f} {quote}, over {limit:.8f} {quote} "
                f"({LEVERAGE - 1:g} x net equity)",
            )
        acct.move(asset, shortfall)
        acct.debts[asset] = acct.debts.get(asset, 0.0) + shortfall
        order.borrowed = (asset, shortfall)

    def _repay(self, acct: Account, asset: str, received: float) -> None:
        """AUTO_REPAY: what a fill brings in pays back the debt in that asset first."""
        amount = min(acct.debts.get(asset, 0.0), received, acct.free(asset))
        if amount > 0:
            acct.move(asset, -amount)
            acct.debts[asset] -= amount

    def price_in(self, asset: str, quote: str, prices: dict[str, float]) -> float | None:
        if asset in prices:
            return prices[asset]
        return self.market.last_price(f"{asset}/{quote}")

    def net_equity(self, acct: Account, quote: str, prices: dict[str, float]) -> float:
        """Assets minus debts, valued in `quote` (assets without a price in it count nothing)."""
        total = 0.0
        for asset, (free, locked) in acct.balances.items():
            price = self.price_in(asset, quote, prices)
            if price:
                total += (free + locked - acct.debts.get(asset, 0.0)) * price
        return total

    def debt_value(self, acct: Account, quote: str, prices: dict[str, float]) -> float:
        return sum(
            amount * (self.price_in(asset, quote, prices) or 0.0)
            for asset, amount in acct.debts.items()
        )

    # -- filling and cancelling ---------------------------------------------------------------
    def _fill(
        self, acct: Account, order: Order, price: float, ts_ms: int, qty: float | None = None
    ) -> None:
        """Fill `qty` of the order's remaining quantity (all of it by default) at `price`: one
        trade; the order is FILLED, or PARTIALLY_FILLED with the rest still resting (locked)."""
        remaining = remaining_of(order)
        qty = remaining if qty is None else qty
        self._release(acct, order, qty, remaining)
        base, quote = split_symbol(order.symbol)
        notional = qty * price
        fee = notional * self.fee_rate
        sign = 1.0 if order.side == "BUY" else -1.0
        acct.move(base, sign * qty)
        acct.move(quote, -sign * notional - fee)
        done = qty >= remaining - 1e-12
        order.status = "FILLED" if done else "PARTIALLY_FILLED"
        order.executed = order.quantity if done else round(order.executed + qty, 12)
        order.quote += notional
        order.fee += fee
        order.fill_price, order.last_qty, order.last_fee, order.update_ms = price, qty, fee, ts_ms
        order.trade_id = next(self._trade_ids)
        acct.trades.append(
            {
                "id": order.trade_id,
                "order": order,
                "price": price,
                "qty": qty,
                "fee": fee,
                "time": ts_ms,
            }
        )
        if acct.margin and order.side_effect in REPAYS:
            received = (base, qty) if order.side == "BUY" else (quote, notional - fee)
            self._repay(acct, *received)

    def _release(self, acct: Account, order: Order, qty: float, remaining: float) -> None:
        """Unlock what `qty` of the order's `remaining` quantity held (all of it for the rest);
        an OCO leg that fills in part takes the list's lock over, as its sibling expires."""
        holder = self._lock_holder(acct, order)
        if holder is None or not holder.locked:
            return
        asset, amount = holder.locked
        part = amount if qty >= remaining - 1e-12 else amount * qty / remaining
        acct.move(asset, part, -part)
        holder.locked = None
        if part < amount:
            order.locked = (asset, amount - part)

    def cancel(self, acct: Account, order: Order, ts_ms: int | None = None) -> list[Order]:
        if order.status not in OPEN:
            raise ExchangeError(UNKNOWN_ORDER, "Unknown order sent.")
        self._unlock(acct, order)
        if acct.margin and order.borrowed is not None:  # Binance's autoRepayAtCancel (default)
            self._repay(acct, *order.borrowed)
        order.status = "CANCELED"
        order.update_ms = ts_ms if ts_ms is not None else self.market.now_ms
        changed = [order]
        for sibling in self._siblings(acct, order):
            sibling.status, sibling.update_ms = "CANCELED", order.update_ms
            changed.append(sibling)
        return changed

    def _siblings(self, acct: Account, order: Order) -> list[Order]:
        if order.list_id < 0:
            return []
        return [
            o
            for o in acct.orders.values()
            if o.list_id == order.list_id and o is not order and o.status in OPEN
        ]

    def on_bars_closed(self, closed: list) -> list[tuple[Account, Order]]:
        """Check resting orders against each closed bar of a symbol's finest series."""
        changed: list[tuple[Account, Order]] = []
        for c in closed:
            series = c.series
            if self.market.finest(series.symbol) is not series:
                continue
            o, h, low, _c, _v = (float(x) for x in series.values[c.index])
            bar_ms = int(series.open_ms[c.index])
            for kind in ("STOP_LOSS", "LIMIT"):  # stops first: docs/design.md#fill-semantics
                for acct in [*self.accounts.values(), *self.margin_accounts.values()]:
                    for order in list(acct.orders.values()):
                        if self._due(order, series.symbol, kind, bar_ms, h, low):
                            changed.extend((acct, x) for x in self._trigger(acct, order, o, bar_ms))
        return changed

    def _due(
        self, order: Order, symbol: str, kind: str, bar_ms: int, high: float, low: float
    ) -> bool:
        if order.status not in OPEN or order.symbol != symbol or order.active_from_ms > bar_ms:
            return False
        if kind == "STOP_LOSS" and order.type == "STOP_LOSS":
            return low <= order.stop_price if order.side == "SELL" else high >= order.stop_price
        if kind == "LIMIT" and order.type in ("LIMIT", "LIMIT_MAKER"):
            return high >= order.price if order.side == "SELL" else low <= order.price
        return False

    def _trigger(self, acct: Account, order: Order, open_: float, bar_ms: int) -> list[Order]:
        sell = order.side == "SELL"
        if order.type == "STOP_LOSS":
            price = min(open_, order.stop_price) if sell else max(open_, order.stop_price)
        else:
            price = max(open_, order.price) if sell else min(open_, order.price)
        qty = None  # all of it, unless the fault mode fills a resting limit in part
        if self.partial is not None and order.type in ("LIMIT", "LIMIT_MAKER"):
            qty = self.partial(order, remaining_of(order), self.lot_step(order.symbol))
        siblings = self._siblings(acct, order)  # any fill of an OCO leg, a part too, ends the other
        self._fill(acct, order, price, bar_ms, qty)
        for sibling in siblings:
            sibling.status, sibling.update_ms = "EXPIRED", bar_ms
        return [order, *siblings]


def remaining_of(order: Order) -> float:
    return round(order.quantity - order.executed, 12)
