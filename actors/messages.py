"""Immutable messages between actors.

Events are past tense (OrderFilled), commands imperative (SubmitOrder). Every message carries
`ts`: int nanoseconds since the epoch, UTC. Times of fills are the OPEN time of the bar in which
the fill happened (the bar's timestamp); BarClosed and signals carry the bar's CLOSE time.

The domain's words (sides, signal actions, order kinds and roles) are the StrEnums of
core/vocabulary.py. msgspec does not check field types on construction, and a member is its
string: a message built with the plain string (live/ still does) compares and prints the same.

Ordering inside one instant is fixed by phases (see `Phase`): the runtime orders scheduled
messages by (ts, phase, sequence), so at the time where bar t closes and bar t+1 opens the close
of t (signals) comes first, then market fills at the open of t+1, then stops, then targets.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import msgspec

from core.vocabulary import OrderKind, OrderRole, OrderSide, Side, SignalAction

# Messages are msgspec Structs: immutable (frozen), slotted, picklable, equal by type and value,
# built by a C constructor. The engine builds ~17 messages per trade; a frozen dataclass sets
# each field from Python (object.__setattr__), about 5x slower, and that was a seventh of a
# backtest's time per trade. `gc=False`: a message of plain values (numbers, strings, other
# such messages) can never be part of a reference cycle, so the cyclic collector skips it.
_MESSAGE = {"frozen": True, "gc": False}
replace = msgspec.structs.replace  # a copy with some fields changed (messages never change)


class Phase(IntEnum):
    # Intrabar fills of a coarser series in a mixed-interval portfolio: booked when that bar
    # closes (before anything else at that time), since the account cannot know them earlier.
    SETTLE_STOP = -2
    SETTLE_TARGET = -1
    CLOSE = 0  # a bar closed: BarClosed, signals, orders they cause
    OPEN = 1  # fills at the open of a bar: market and time-exit orders
    STOP = 2  # intrabar: stop orders (checked before targets, docs/design.md#fill-semantics)
    TARGET = 3  # intrabar: take-profit (limit) orders
    END = 9  # after everything: end of data


class ExitSpec(msgspec.Struct, **_MESSAGE):
    """How an entry's position ends besides signals; distances override the percentages."""

    sl_pct: float | None = None
    tp_pct: float | None = None
    stop_distance: float | None = None  # price units, known at the signal bar
    target_distance: float | None = None
    hold_ns: int | None = None  # time exit after this long from the entry bar's open
    session_end: bool = False  # time exit at the end of the entry's UTC day


# -- data and lifecycle ---------------------------------------------------------------------
class RunStarted(msgspec.Struct, **_MESSAGE):
    ts: int


class BarClosed(msgspec.Struct, **_MESSAGE):
    ts: int  # close time
    symbol: str
    interval: str
    bar_ts: int  # open time (the bar's timestamp)
    open: float
    high: float
    low: float
    close: float
    volume: float


class EndOfData(msgspec.Struct, **_MESSAGE):
    ts: int


# -- strategy -> portfolio ------------------------------------------------------------------
class SignalRaised(msgspec.Struct, **_MESSAGE):
    ts: int
    signal_id: int  # numbered per strategy host: (strategy, signal_id) identifies a signal
    strategy: str
    symbol: str
    interval: str
    side: Side
    action: SignalAction
    price: float  # close of the signal bar: the sizing estimate
    exits: ExitSpec | None = None
    size_scale: float = 1.0  # multiplies the portfolio's risk-based size (a signal gate's)


class SignalRejected(msgspec.Struct, **_MESSAGE):
    ts: int
    signal_id: int
    strategy: str
    symbol: str
    side: Side
    reason: str


# -- portfolio -> order manager -------------------------------------------------------------
class OpenTrade(msgspec.Struct, **_MESSAGE):
    ts: int
    signal_id: int
    strategy: str
    symbol: str
    interval: str
    side: Side
    quantity: float
    exits: ExitSpec


class CloseTrade(msgspec.Struct, **_MESSAGE):
    ts: int
    trade_id: int
    reason: OrderRole  # the exit's role: signal (live: disabled)


# -- order manager -> exchange --------------------------------------------------------------
class SubmitOrder(msgspec.Struct, **_MESSAGE):
    ts: int
    order_id: int
    strategy: str
    symbol: str
    side: OrderSide
    quantity: float
    kind: OrderKind
    role: OrderRole
    price: float | None = None  # stop or limit level
    trigger_ts: int | None = None  # timed: fills at the first open at or after this time
    active_from: int = 0  # resting orders are live from the bar that opens at this time
    oco: int | None = None  # one-cancels-other group (the trade id): at most one fill per group
    trade_id: int | None = None


class CancelOrder(msgspec.Struct, **_MESSAGE):
    ts: int
    order_id: int
    reason: str


# -- exchange -> order manager --------------------------------------------------------------
class OrderAccepted(msgspec.Struct, **_MESSAGE):
    ts: int
    order_id: int


class OrderRejected(msgspec.Struct, **_MESSAGE):
    ts: int
    order_id: int
    reason: str


class OrderUnknown(msgspec.Struct, **_MESSAGE):
    """Live: the answer to the order's request was lost; the broker is looking it up (the
    order may be live at the exchange). Followed later by its real outcome."""

    ts: int
    order_id: int
    reason: str


class OrderFilled(msgspec.Struct, **_MESSAGE):
    ts: int  # open time of the bar in which it filled
    order_id: int
    price: float
    quantity: float
    fee: float


class OrderPartiallyFilled(msgspec.Struct, **_MESSAGE):
    """Live: one part of a resting order (a take profit's limit) filled; the rest still rests.
    `price`, `quantity` and `fee` are this part's. Parts add up: the order's filled quantity is
    the sum of its parts, and its closing OrderFilled then carries only the last part (what
    filled after the parts already reported), never the order's total again."""

    ts: int  # open time of the bar in which this part filled
    order_id: int
    price: float
    quantity: float
    fee: float


class OrderCancelled(msgspec.Struct, **_MESSAGE):
    ts: int
    order_id: int
    reason: str


# -- order manager -> portfolio, strategy host ----------------------------------------------
class TradeOpened(msgspec.Struct, **_MESSAGE):
    ts: int
    trade_id: int
    signal_id: int
    strategy: str
    symbol: str
    interval: str
    side: Side
    quantity: float
    entry_price: float
    entry_fee: float


class TradeClosed(msgspec.Struct, **_MESSAGE):
    ts: int
    trade_id: int
    strategy: str
    symbol: str
    side: Side
    quantity: float
    entry_ts: int
    entry_price: float
    exit_price: float
    entry_fee: float
    exit_fee: float
    pnl: float  # net of both fees
    exit_reason: OrderRole  # the role of the order that closed the trade


# -- timers (actors schedule these for themselves through the runtime) -----------------------
class SignalDue(msgspec.Struct, **_MESSAGE):
    ts: int
    strategy: str
    generation: int
    bar_index: int


class FillDue(msgspec.Struct, **_MESSAGE):
    ts: int
    order_id: int
    bar_index: int


class Scheduled(msgspec.Struct, **_MESSAGE):
    """Envelope an actor returns to have `msg` delivered later at (ts, phase)."""

    ts: int
    phase: int
    msg: Any


ORDER_EVENTS = (OrderAccepted, OrderRejected, OrderFilled, OrderCancelled)
TRADE_EVENTS = (TradeOpened, TradeClosed)


# -- live control (the driver sends these when `cli.py strategies enable|disable` changed the
# database while `live` runs) --------------------------------------------------------------
class DisableInstance(msgspec.Struct, **_MESSAGE):
    """Stop opening new positions for this instance; close what it holds if close_positions."""

    ts: int
    strategy: str
    close_positions: bool = False


class EnableInstance(msgspec.Struct, **_MESSAGE):
    """Accept new entries of this instance again (or for the first time: a host just spawned),
    sized with `weight` when given."""

    ts: int
    strategy: str
    weight: float | None = None
    hedge: bool = False
    position_limit: int | None = None
