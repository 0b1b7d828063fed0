"""Simulated exchange: the fill semantics of docs/design.md#fill-semantics, in two modes.

Fast mode (the exchange is given the whole series as arrays): on accepting an order it finds the
bar where the order would fill with a vectorized search over the following bars and schedules a
`FillDue` timer for that bar; a cancel makes the timer a no-op. Nothing runs for quiet bars.
Replay mode (no arrays): bars arrive one at a time as BarClosed and the exchange checks its book
on each, as a live dry run would. Both apply the same rules through the same helpers:

- market orders fill at the open of the first bar that opens at or after their submission;
  timed orders (time exits) at the first open at or after their trigger time;
- within a bar: open fills first, then stops, then take-profit limits (stop before target);
- a long's stop (sell stop) fills at min(open, stop): a gap through the stop fills at the open;
  a long's take profit (sell limit) at max(open, target); shorts mirror;
- slippage (bps, against you) applies to market, timed and stop fills; limits fill at their
  price or better without slippage; the fee (bps of notional) is charged on every fill;
- resting orders are live from the bar that opens at `active_from` (the entry bar itself);
- orders sharing an `oco` group fill at most once: after one fills the others cannot fill and
  wait for the order manager's cancel (a real exchange's OCO/reduce-only behaviour);
- `close` orders (end of data) fill at once at exactly the last close seen: no slippage (the
  position is valued at the close, as docs/design.md#fill-semantics rule 5 says), the fee is charged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from actors.messages import (
    BarClosed,
    CancelOrder,
    FillDue,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    Phase,
    Scheduled,
    SubmitOrder,
)
from actors.runtime import Actor, EventClock
from actors.search import block_extremes, first_hit
from core.vocabulary import OrderKind, OrderSide

if TYPE_CHECKING:  # pandas only in from_frame: the live dry-run actor never imports it
    import pandas as pd

# The members the per-order paths compare against, as module globals: reading a member off
# its enum class costs a few times more (Python 3.11), and every trade reads dozens.
_MARKET = OrderKind.MARKET
_STOP = OrderKind.STOP
_LIMIT = OrderKind.LIMIT
_TIMED = OrderKind.TIMED
_CLOSE = OrderKind.CLOSE
_SELL = OrderSide.SELL
_KINDS = frozenset(OrderKind)
# fill phase of an order kind (plain ints: the event queue compares them on every push)
_PHASE = {_STOP: int(Phase.STOP), _LIMIT: int(Phase.TARGET)}
_OPEN = int(Phase.OPEN)
_SETTLE = {int(Phase.STOP): int(Phase.SETTLE_STOP), int(Phase.TARGET): int(Phase.SETTLE_TARGET)}


@dataclass(frozen=True)
class BarArrays:
    """One series as numpy arrays (fast mode), timestamps as int ns of bar open."""

    open_ns: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray

    @classmethod
    def from_frame(cls, bars: pd.DataFrame) -> BarArrays:
        import pandas as pd

        index = pd.DatetimeIndex(bars.index)
        return cls(
            open_ns=index.as_unit("ns").asi8.copy(),
            open=bars["open"].to_numpy(np.float64),
            high=bars["high"].to_numpy(np.float64),
            low=bars["low"].to_numpy(np.float64),
            close=bars["close"].to_numpy(np.float64),
        )

    # Built on first use (a cached_property writes the instance dict: fine on a frozen class).
    @cached_property
    def low_blocks(self) -> np.ndarray:
        """Lowest low of every block of _BLOCK bars (NaN ignored)."""
        return block_extremes(self.low, below=True)

    @cached_property
    def high_blocks(self) -> np.ndarray:
        """Highest high of every block of _BLOCK bars (NaN ignored)."""
        return block_extremes(self.high, below=False)

    @cached_property
    def _grid(self) -> tuple[int, int]:
        """(first open, spacing of the first two bars) in ns; spacing 0: fewer than two bars."""
        times = self.open_ns
        return (int(times[0]), int(times[1] - times[0])) if len(times) > 1 else (0, 0)

    def first_open_at_or_after(self, ts: int) -> int:
        """Index of the first bar opening at or after ts; len(open_ns) if none.

        An order placed at a bar's close usually fills at the next bar, which opens exactly
        then: on an evenly spaced series arithmetic finds it, checked against the bar's open
        time. Otherwise (a gap before it, a time between opens) a binary search over the whole
        series, whose scattered reads cost more than the arithmetic.
        """
        first, step = self._grid
        if step > 0 and ts >= first:
            k = (ts - first) // step
            if k < len(self.open_ns) and self.open_ns[k] == ts:
                return k
        return int(self.open_ns.searchsorted(ts))


def triggers(order: SubmitOrder, high: float, low: float) -> bool:
    """Does a resting stop/limit order trigger within a bar with this range?"""
    if order.kind == _STOP:
        return low <= order.price if order.side == _SELL else high >= order.price
    return high >= order.price if order.side == _SELL else low <= order.price


def fill_price(order: SubmitOrder, open_: float, close: float, slippage: float) -> float:
    """Price of `order` filling in a bar opening at `open_` (docs/design.md#fill-semantics, see module doc)."""
    kind, sell = order.kind, order.side == _SELL
    if kind == _LIMIT:
        return max(open_, order.price) if sell else min(open_, order.price)
    if kind == _CLOSE:  # end of data: exactly the last close, no slippage
        return close
    if kind == _STOP:
        raw = min(open_, order.price) if sell else max(open_, order.price)
    else:  # market, timed
        raw = open_
    return raw * (1.0 - slippage) if sell else raw * (1.0 + slippage)


class SimExchange(Actor):
    """Simulated broker. `data` (symbol -> BarArrays) selects fast mode; None selects replay."""

    handlers = {
        SubmitOrder: "on_submit",
        CancelOrder: "on_cancel",
        FillDue: "on_fill_due",
        BarClosed: "on_bar",
    }

    def __init__(
        self,
        fee_bps: float = 10.0,
        slippage_bps: float = 0.0,
        data: dict[str, BarArrays] | None = None,
        clock: EventClock | None = None,
    ) -> None:
        super().__init__(clock)
        self.fee = fee_bps / 1e4
        self.slippage = slippage_bps / 1e4
        self.data = data
        self.fast = data is not None
        if self.fast:  # bars come as arrays: BarClosed is not needed
            self._table.pop(BarClosed)
        self._orders: dict[int, SubmitOrder] = {}
        self._filled_groups: set[int] = set()
        # Fast mode, OCO groups: the earliest timer of a group ((due, phase), order id), and the
        # timers of its later legs held back: they can only fill if that earliest leg is
        # cancelled first (if it fills, the group is done), so they are scheduled only then.
        self._first_timer: dict[int, tuple[tuple[int, int], int, int]] = {}  # + its bar index
        self._held: dict[int, list] = {}  # Scheduled, or (order, bar to search on from)
        self._last_fill_bar: tuple[str, int, int] = ("", -1, -1)  # symbol, open ns, bar index
        self._bars: dict[str, tuple[int, BarClosed]] = {}  # replay: symbol -> (index, bar)
        self.fills = 0
        # > 0: stop/target fills are booked at the bar's close, this long after its open (a
        # coarser series in a mixed-interval portfolio); the fill keeps the bar's open time.
        self.settle_after_ns = 0

    def subscriptions(self) -> tuple[type, ...]:
        return tuple(self._table)

    # -- commands ---------------------------------------------------------------------------
    def on_submit(self, msg: SubmitOrder) -> list:
        reason = self._invalid(msg)
        if reason:
            return [OrderRejected(msg.ts, msg.order_id, reason)]
        self._orders[msg.order_id] = msg
        accepted = OrderAccepted(msg.ts, msg.order_id)
        if msg.kind == _CLOSE:
            return [accepted, *self._fill_close(msg)]
        if self.fast:
            return [accepted, *self._schedule(msg)]
        return [accepted, *self._check_current_bar(msg)]

    def on_cancel(self, msg: CancelOrder) -> list:
        order = self._orders.pop(msg.order_id, None)
        if order is None:
            return []  # already filled or cancelled: nothing to do
        out: list = [OrderCancelled(msg.ts, msg.order_id, msg.reason)]
        group = order.oco
        if group is not None and group in self._held:
            first = self._first_timer.get(group)
            if first is not None and first[1] == order.order_id:
                # the leg that held the others back will not fill: schedule them now
                del self._first_timer[group]
                out.extend(self._release(self._held.pop(group)))
        return out

    def _invalid(self, msg: SubmitOrder) -> str | None:
        kind = msg.kind
        if not 0.0 < msg.quantity < math.inf:  # also refuses NaN
            return f"quantity must be a positive number, got {msg.quantity}"
        if kind in _PHASE and not (msg.price and msg.price > 0):
            return f"{kind} order needs a positive price, got {msg.price}"
        if kind == _TIMED and msg.trigger_ts is None:
            return "timed order needs trigger_ts"
        if kind not in _KINDS:
            return f"unknown order kind {kind!r}"
        if self.fast:
            if msg.symbol not in self.data:
                return f"no data for symbol {msg.symbol!r}"
        elif kind == _CLOSE and msg.symbol not in self._bars:
            return f"no bar seen yet for {msg.symbol!r}"
        return None

    # -- fast mode --------------------------------------------------------------------------
    def _schedule(self, order: SubmitOrder, start: int | None = None) -> list:
        arrays = self.data[order.symbol]
        group = order.oco
        first = self._first_timer.get(group) if group is not None else None
        # a resting leg can only fill before its group's earliest timer (else that one fills
        # first): search only up to that bar, and further only if that leg is cancelled
        bound = first[2] + 1 if first is not None and order.kind in _PHASE else None
        index = self._fill_bar(order, arrays, start, bound)
        if index < 0:
            if bound is not None and bound < len(arrays.open_ns):
                self._held.setdefault(group, []).append((order, bound))
            return []  # never fills within the data (or the bound); rests until cancelled
        phase = _PHASE.get(order.kind, _OPEN)
        ts = due = int(arrays.open_ns[index])
        if self.settle_after_ns and phase != _OPEN:
            due, phase = ts + self.settle_after_ns, _SETTLE[phase]
        timer = Scheduled(due, phase, FillDue(ts, order.order_id, index))
        if group is None:
            return [timer]
        if first is not None and (due, phase) > first[0]:
            self._held.setdefault(group, []).append(timer)  # after a sibling's fill: held
            return []
        if first is None or (due, phase) < first[0]:
            self._first_timer[group] = ((due, phase), order.order_id, index)
        return [timer]

    def _release(self, held: list) -> list:
        """Timers of held legs, and the searches not yet done past the bound they stopped at."""
        out: list = []
        for item in held:
            if type(item) is Scheduled:
                out.append(item)
            elif item[0].order_id in self._orders:  # (order, first bar not searched yet)
                out.extend(self._schedule(item[0], item[1]))
        return out

    def _fill_bar(
        self, order: SubmitOrder, arrays: BarArrays, start: int | None, bound: int | None
    ) -> int:
        """Index of the bar where `order` fills (-1: none), searching stop/limit orders from
        `start` (default: their active_from bar) up to bar `bound` (excluded; None: the end)."""
        kind = order.kind
        if kind == _MARKET or kind == _TIMED:
            first = order.ts if kind == _MARKET else order.trigger_ts
            index = arrays.first_open_at_or_after(max(first, order.active_from))
            return index if index < len(arrays.open_ns) else -1
        if start is None:
            symbol, opened, index = self._last_fill_bar
            if opened == order.active_from and symbol == order.symbol:
                start = index  # brackets live from the entry's fill bar: no search needed
            else:
                start = arrays.first_open_at_or_after(order.active_from)
        # a sell stop and a buy limit trigger on the low, the others on the high
        if (kind == _STOP) == (order.side == _SELL):
            values, below, blocks = arrays.low, True, arrays.low_blocks
        else:
            values, below, blocks = arrays.high, False, arrays.high_blocks
        return first_hit(values, start, order.price, below, blocks, bound)

    def on_fill_due(self, msg: FillDue) -> list:
        order = self._orders.get(msg.order_id)
        if order is None or (order.oco is not None and order.oco in self._filled_groups):
            return []  # cancelled meanwhile, or its OCO group already filled
        arrays = self.data[order.symbol]
        i = msg.bar_index
        self._last_fill_bar = (order.symbol, msg.ts, i)
        open_ = float(arrays.open[i])  # (the close matters only to close orders: never timed)
        price = fill_price(order, open_, open_, self.slippage)
        return [self._fill(order, msg.ts, price)]

    # -- replay mode ------------------------------------------------------------------------
    def on_bar(self, bar: BarClosed) -> list:
        previous = self._bars.get(bar.symbol)
        self._bars[bar.symbol] = ((previous[0] + 1) if previous else 0, bar)
        out: list = []
        book = [o for o in self._orders.values() if o.symbol == bar.symbol]
        if not book:
            return out
        for order in book:  # open phase, in order-id order (dict keeps insertion = id order)
            if order.kind == _MARKET and max(order.ts, order.active_from) <= bar.bar_ts:
                out.extend(self._fill_if_live(order, bar))
            elif order.kind == _TIMED and order.trigger_ts <= bar.bar_ts:
                out.extend(self._fill_if_live(order, bar))
        for kind in (_STOP, _LIMIT):  # intrabar: stops before targets
            for order in book:
                if (
                    order.kind == kind
                    and order.order_id in self._orders
                    and order.active_from <= bar.bar_ts
                    and triggers(order, bar.high, bar.low)
                ):
                    out.extend(self._fill_if_live(order, bar))
        return out

    def _check_current_bar(self, order: SubmitOrder) -> list:
        """Replay: a resting order live from the current bar is checked against it at once."""
        current = self._bars.get(order.symbol)
        if current is None or order.kind not in _PHASE:  # a resting (stop or limit) order
            return []
        bar = current[1]
        if order.active_from <= bar.bar_ts and triggers(order, bar.high, bar.low):
            return self._fill_if_live(order, bar)
        return []

    def _fill_if_live(self, order: SubmitOrder, bar: BarClosed) -> list:
        if order.order_id not in self._orders:
            return []
        if order.oco is not None and order.oco in self._filled_groups:
            return []
        price = fill_price(order, bar.open, bar.close, self.slippage)
        return [self._fill(order, bar.bar_ts, price)]

    # -- shared -----------------------------------------------------------------------------
    def _fill_close(self, order: SubmitOrder) -> list:
        if order.oco is not None and order.oco in self._filled_groups:
            return []
        if self.fast:
            arrays = self.data[order.symbol]
            ts, close = int(arrays.open_ns[-1]), float(arrays.close[-1])
        else:
            bar = self._bars[order.symbol][1]
            ts, close = bar.bar_ts, bar.close
        return [self._fill(order, ts, fill_price(order, close, close, self.slippage))]

    def _fill(self, order: SubmitOrder, ts: int, price: float) -> OrderFilled:
        del self._orders[order.order_id]
        if order.oco is not None:
            self._filled_groups.add(order.oco)
            self._first_timer.pop(order.oco, None)
            self._held.pop(order.oco, None)  # never due now: the group filled
        self.fills += 1
        fee = abs(price * order.quantity) * self.fee
        return OrderFilled(ts, order.order_id, price, order.quantity, fee)

    def open_orders(self) -> list[int]:
        return sorted(self._orders)
