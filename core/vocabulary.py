"""The domain's words, as StrEnums.

Each member's value is the exact string the system always wrote (trades.csv, the database,
results files, messages), and a StrEnum member is that string: `Side.LONG == "long"`, it formats
and serialises as "long". So files and tables do not change, and code may compare against either.
"""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    """The side of a position (trade)."""

    LONG = "long"
    SHORT = "short"

    @property
    def opposite(self) -> Side:
        return Side.SHORT if self is Side.LONG else Side.LONG


class OrderSide(StrEnum):
    """The side of an order: a long enters with a buy and exits with a sell; a short mirrors."""

    BUY = "buy"
    SELL = "sell"


class SignalAction(StrEnum):
    """What a strategy's signal asks for."""

    ENTER = "enter"
    EXIT = "exit"


class OrderKind(StrEnum):
    """How an order fills (the simulated exchange's and the venue's order types)."""

    MARKET = "market"  # at the next open
    STOP = "stop"  # stop-market: at the stop level, or the open when the bar gaps through it
    LIMIT = "limit"  # at the limit level, or the open when the bar gaps through it
    TIMED = "timed"  # a market order at the first open at or after its trigger time
    CLOSE = "close"  # at the last close (end of data)


class OrderRole(StrEnum):
    """Why an order exists: the entry, or the exit it is. A trade's exit_reason is the role of
    the order that closed it."""

    ENTRY = "entry"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    TIME = "time"
    SIGNAL = "signal"
    END_OF_DATA = "end_of_data"
    DISABLED = "disabled"  # live: the instance was disabled with its positions to close
    RISK_LIMIT = "risk_limit"  # live: a risk limit was breached with --on-breach close


class OrderStatus(StrEnum):
    """NEW (created) -> SUBMITTED (accepted by the exchange) -> FILLED | CANCELLED | REJECTED.
    Live, NEW -> UNKNOWN when the answer to the request was lost (a timeout, a dropped
    connection, a 5xx): the order may be live at the exchange. Looking it up by its client order
    id then moves it on: found -> SUBMITTED / FILLED / CANCELLED (adopted); not there once the
    request can no longer arrive -> REJECTED (live/venues/outcomes.py)."""

    NEW = "NEW"
    UNKNOWN = "UNKNOWN"
    SUBMITTED = "SUBMITTED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"


class CallOutcome(StrEnum):
    """What an exchange call came to (live/venues/outcomes.py): it was DONE; the exchange
    REFUSED it (nothing happened); RETRY: refused before it could act (a rate limit), send the
    same request again later; UNKNOWN: the answer was lost, it may or may not have happened."""

    DONE = "done"
    REFUSED = "refused"
    RETRY = "retry"
    UNKNOWN = "unknown"


class TradeStatus(StrEnum):
    ACTIVE = "ACTIVE"
    CLOSED = "CLOSED"
