"""Portfolio: final size and compliance for every signal, before any order exists.

Sizing of an entry signal raised at the close of bar t (price estimate p = close_t):
- with a stop (distance d per unit, from the strategy's stop_distance or sl_pct * p):
  qty = risk * equity / d, so hitting the stop loses about `risk` of equity;
- without a stop the whole notional counts as at risk: qty = risk * equity / p;
then capped by available cash (cash not reserved by pending entries, including fee and
slippage: collateral for shorts too) less `cash_buffer` x cash (a margin live entries keep for
a next open above the signal's close; 0 in backtests), by `max_symbol_exposure` and `max_total_exposure`
(fractions of equity, positions marked at their latest price), and limited to
`max_open_positions` per strategy and side, or to that strategy's own limit in
`position_limits` (strategy id -> limit: a pyramiding strategy's max_entries). An order whose
notional (qty * p) is below `min_notional` is dust and refused; with a `lot_size` the quantity is
rounded down to whole lots and less than one lot is refused. A strategy that
is not hedged cannot hold a long and a short at once. A signal that fails a check is rejected
with a recorded reason.

The fill happens at the next open, not at close_t: if the price gaps up the fill can cost more
than the cash available and cash goes slightly negative for that trade (no re-sizing at fill).

Cash accounting: a long entry pays qty*price + fee, its exit receives qty*price - fee; a short
entry receives qty*price - fee, its exit pays qty*price + fee. Equity = cash + sum of long
qty*mark - sum of short qty*mark, at all times.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from actors.messages import (
    CloseTrade,
    OpenTrade,
    SignalRaised,
    SignalRejected,
    TradeClosed,
    TradeOpened,
)
from actors.runtime import Actor, EventClock
from core.vocabulary import OrderRole, Side, SignalAction


class Position(msgspec.Struct, gc=False):
    trade_id: int
    strategy: str
    symbol: str
    side: Side
    quantity: float
    entry_price: float

    @property
    def sign(self) -> float:
        return 1.0 if self.side == Side.LONG else -1.0


class Reservation(msgspec.Struct, gc=False):
    strategy: str
    symbol: str
    side: Side
    notional: float
    cost: float  # notional + fee + slippage estimate


class ExactSum:
    """A running float sum that is exact until read, so the result does not depend on the order
    of the additions (Shewchuk partials, as math.fsum). Fast mode and replay settle fills of one
    bar in different orders; with this, cash is the same to the last bit in both."""

    __slots__ = ("partials",)

    def __init__(self, start: float = 0.0) -> None:
        self.partials = [float(start)]

    def add(self, x: float) -> None:
        partials, i = self.partials, 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]

    @property
    def value(self) -> float:
        return math.fsum(self.partials)


class Portfolio(Actor):
    handlers = {
        SignalRaised: "on_signal",
        SignalRejected: "on_signal_rejected",
        TradeOpened: "on_trade_opened",
        TradeClosed: "on_trade_closed",
    }

    def __init__(
        self,
        cash: float = 10_000.0,
        risk: float = 0.01,
        fee_bps: float = 10.0,
        slippage_bps: float = 0.0,
        max_symbol_exposure: float = 1.0,
        max_total_exposure: float = 1.0,
        max_open_positions: int = 1,
        hedged: frozenset[str] = frozenset(),
        clock: EventClock | None = None,
        position_limits: dict[str, int] | None = None,
        min_notional: float = 0.0,
        lot_size: float = 0.0,
        cash_buffer: float = 0.0,
    ) -> None:
        super().__init__(clock)
        self.cash_buffer = float(cash_buffer)  # fraction of the cash never committed
        self.min_notional = float(min_notional)  # smaller orders are dust: refused
        self.lot_size = float(lot_size)  # sizes rounded down to whole lots (0: no rounding)
        self.initial_cash = float(cash)
        self._cash = ExactSum(cash)
        self.risk = risk
        self.cost_rate = (fee_bps + slippage_bps) / 1e4
        self.max_symbol_exposure = max_symbol_exposure
        self.max_total_exposure = max_total_exposure
        self.max_open_positions = max_open_positions
        self.hedged = hedged
        self.position_limits = dict(position_limits or {})
        self.positions: dict[int, Position] = {}
        self.marks: dict[str, float] = {}
        # (strategy id, signal id) -> pending entry: each strategy host numbers its own signals
        self._reserved: dict[tuple[str, int], Reservation] = {}
        self.rejections: list[dict[str, Any]] = []
        self.closed: list[TradeClosed] = []

    # -- valuation ----------------------------------------------------------------------------
    @property
    def cash(self) -> float:
        return self._cash.value

    def equity(self) -> float:
        """Cash plus every open position marked at its symbol's latest price."""
        values = [
            p.sign * p.quantity * self.marks.get(p.symbol, p.entry_price)
            for p in self.positions.values()
        ]
        return math.fsum([*self._cash.partials, *values])

    def exposure(self, symbol: str | None = None) -> float:
        """Absolute marked notional of open positions and pending entries (one symbol or all)."""
        held = math.fsum(
            p.quantity * self.marks.get(p.symbol, p.entry_price)
            for p in self.positions.values()
            if symbol is None or p.symbol == symbol
        )
        pending = math.fsum(
            r.notional for r in self._reserved.values() if symbol is None or r.symbol == symbol
        )
        return held + pending

    def _exposures(self, symbol: str) -> tuple[float, float]:
        """(exposure(symbol), exposure()) in one pass; the same sums, so the same floats."""
        if not self.positions and not self._reserved:
            return 0.0, 0.0
        marks = self.marks
        held, held_here = [], []
        for p in self.positions.values():
            value = p.quantity * marks.get(p.symbol, p.entry_price)
            held.append(value)
            if p.symbol == symbol:
                held_here.append(value)
        pending = [r.notional for r in self._reserved.values()]
        pending_here = [r.notional for r in self._reserved.values() if r.symbol == symbol]
        fsum = math.fsum
        return fsum(held_here) + fsum(pending_here), fsum(held) + fsum(pending)

    # -- handlers -----------------------------------------------------------------------------
    def on_signal(self, msg: SignalRaised) -> list:
        self.marks[msg.symbol] = msg.price
        if msg.action == SignalAction.EXIT:
            return [
                CloseTrade(msg.ts, p.trade_id, OrderRole.SIGNAL)
                for p in self.positions.values()
                if p.strategy == msg.strategy and p.symbol == msg.symbol and p.side == msg.side
            ]
        reason = self._compliance(msg)
        quantity = 0.0
        if reason is None:
            quantity, reason = self.size(msg)
        if reason is not None:
            return self._reject(msg, reason)
        notional = quantity * msg.price
        self._reserved[(msg.strategy, msg.signal_id)] = Reservation(
            msg.strategy, msg.symbol, msg.side, notional, notional * (1 + self.cost_rate)
        )
        return [
            OpenTrade(
                msg.ts,
                msg.signal_id,
                msg.strategy,
                msg.symbol,
                msg.interval,
                msg.side,
                quantity,
                msg.exits,
            )
        ]

    def on_signal_rejected(self, msg: SignalRejected) -> list:
        if self._reserved.pop((msg.strategy, msg.signal_id), None) is not None:
            self._record(msg.ts, msg.signal_id, msg.strategy, msg.symbol, msg.side, msg.reason)
        return []

    def on_trade_opened(self, msg: TradeOpened) -> list:
        self._reserved.pop((msg.strategy, msg.signal_id), None)
        sign = 1.0 if msg.side == Side.LONG else -1.0
        self._cash.add(-(sign * msg.quantity * msg.entry_price + msg.entry_fee))
        self.positions[msg.trade_id] = Position(
            msg.trade_id, msg.strategy, msg.symbol, msg.side, msg.quantity, msg.entry_price
        )
        self.marks[msg.symbol] = msg.entry_price
        return []

    def on_trade_closed(self, msg: TradeClosed) -> list:
        position = self.positions.pop(msg.trade_id, None)
        if position is None:
            return []
        self._cash.add(position.sign * msg.quantity * msg.exit_price - msg.exit_fee)
        self.marks[msg.symbol] = msg.exit_price
        self.closed.append(msg)
        return []

    # -- rules --------------------------------------------------------------------------------
    def _compliance(self, msg: SignalRaised) -> str | None:
        strategy, side = msg.strategy, msg.side
        same, opposite = 0, False  # this strategy's positions and pending entries per side
        for held in (self.positions, self._reserved) if self.positions or self._reserved else ():
            for p in held.values():
                if p.strategy == strategy:
                    if p.side == side:
                        same += 1
                    else:
                        opposite = True
        limit = self.position_limits.get(strategy, self.max_open_positions)
        if same >= limit:
            return (
                f"max open positions reached: {same} {msg.side} of {limit} "
                f"allowed for {msg.strategy}"
            )
        if opposite and msg.strategy not in self.hedged:
            return f"{msg.strategy} holds the opposite side and does not declare hedge"
        return None

    def size(self, msg: SignalRaised) -> tuple[float, str | None]:
        """(quantity, None) or (0, reason) for an entry at price estimate msg.price."""
        price = msg.price
        if not (price > 0 and math.isfinite(price)):
            return 0.0, f"no valid price at the signal ({price})"
        # no open position and nothing reserved (the common case): equity, available cash
        # and both exposures are the cash itself and zeros, the same floats as the full sums
        idle = not self.positions and not self._reserved
        equity = self._cash.value if idle else self.equity()
        if equity <= 0:
            return 0.0, f"equity is not positive ({equity:.2f})"
        distance = stop_distance(msg)
        by_risk = (
            msg.size_scale * self.risk * equity / (distance if distance is not None else price)
        )
        if idle:
            available, here, total = equity, 0.0, 0.0
        else:
            available = math.fsum(
                [*self._cash.partials, *[-r.cost for r in self._reserved.values()]]
            )
            here, total = self._exposures(msg.symbol)
        # the smallest cap binds (the first of equal ones, as min() would pick)
        binding, quantity = "risk", by_risk
        if self.cash_buffer > 0:  # only when set: 0 keeps the backtests' floats as they were
            available -= self.cash_buffer * self._cash.value
        cash_cap = available / (price * (1 + self.cost_rate))
        if cash_cap < quantity:
            binding, quantity = "cash", cash_cap
            if self.cash_buffer > 0:
                binding = f"cash less the {self.cash_buffer * 100:g}% buffer"
        symbol_cap = (self.max_symbol_exposure * equity - here) / price
        if symbol_cap < quantity:
            binding, quantity = "symbol exposure", symbol_cap
        total_cap = (self.max_total_exposure * equity - total) / price
        if total_cap < quantity:
            binding, quantity = "total exposure", total_cap
        if not (quantity > 0 and math.isfinite(quantity)):
            return 0.0, f"no size left: {binding} limit allows {max(quantity, 0.0):.8g} units"
        if self.lot_size > 0:  # whole lots only; the tiny epsilon keeps 3 x 0.1 at 3 lots
            lots = math.floor(quantity / self.lot_size + 1e-9)
            if lots < 1:
                return 0.0, f"below one lot: {quantity:.8g} units < lot size {self.lot_size:g}"
            quantity = lots * self.lot_size
        if quantity * price < self.min_notional:
            return 0.0, (
                f"below the minimum notional: {quantity * price:.8g} < {self.min_notional:g} "
                f"({binding} limit allows {quantity:.8g} units at {price:.8g})"
            )
        return quantity, None

    def _reject(self, msg: SignalRaised, reason: str) -> list:
        self._record(msg.ts, msg.signal_id, msg.strategy, msg.symbol, msg.side, reason)
        return [SignalRejected(msg.ts, msg.signal_id, msg.strategy, msg.symbol, msg.side, reason)]

    def _record(
        self, ts: int, signal_id: int, strategy: str, symbol: str, side: str, reason: str
    ) -> None:
        self.rejections.append(
            {
                "ts": ts,
                "signal_id": signal_id,
                "strategy": strategy,
                "symbol": symbol,
                "side": side,
                "reason": reason,
            }
        )

    def open_positions(self, strategy: str | None = None, symbol: str | None = None) -> list:
        """Open positions, optionally of one strategy and/or one symbol."""
        return [
            p
            for p in self.positions.values()
            if (strategy is None or p.strategy == strategy)
            and (symbol is None or p.symbol == symbol)
        ]

    def closed_trades(self, strategy: str | None = None, symbol: str | None = None) -> list:
        return [
            t
            for t in self.closed
            if (strategy is None or t.strategy == strategy)
            and (symbol is None or t.symbol == symbol)
        ]

    def state(self) -> dict[str, Any]:
        return {
            "cash": self.cash,
            "equity": self.equity(),
            "positions": len(self.positions),
            "rejections": list(self.rejections),
        }


def stop_distance(msg: SignalRaised) -> float | None:
    """Stop distance per unit at the signal: the strategy's distance, else sl_pct * price."""
    exits = msg.exits
    if exits is None:
        return None
    d = exits.stop_distance
    if d is not None and math.isfinite(d) and d > 0:
        return d
    if exits.sl_pct:
        return exits.sl_pct * msg.price
    return None
