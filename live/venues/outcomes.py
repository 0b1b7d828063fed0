"""What an exchange call came to: done, refused, retry, or unknown (the project's own kinds).

Every ccxt error of an order call maps to one `CallOutcome` (core/vocabulary.py), freqtrade
style, so the broker never mistakes a lost answer for a refusal:
- REFUSED: the exchange said no and nothing happened (InsufficientFunds, InvalidOrder,
  BadRequest, AuthenticationError / PermissionDenied, OrderNotFound on a create, Binance -2010
  "insufficient balance", -1013 filters ...): the order is REJECTED with the reason;
- RETRY: refused before it could act: HTTP 429 / 418 (Binance's weight limiter answers before
  the matching engine, so nothing was placed): send the same request again, with the SAME
  client order id, after `Retry-After` seconds;
- UNKNOWN: the answer was lost (NetworkError, RequestTimeout, ExchangeNotAvailable, any 5xx,
  and anything else): the order may be live. Also "Duplicate order sent" (-2010 on a client
  id that is already open): it exists, so it is looked up, never refused.
UNKNOWN orders are resolved by asking the exchange (`Doubt`): fetch by `origClientOrderId`,
with backoff, until found (adopted) or until the exchange says it does not exist AND the
request can no longer arrive. Binance refuses a signed request whose `timestamp` is older than
`recvWindow` when it gets there, and one stamped more than 1 s ahead of its clock; the
timestamp is taken before the request leaves, so once our clock passes the last send +
recvWindow + the clock margin, "not found" is final.

The broker resolves in the background (an asyncio task per doubt in its actor's loop) and
reports the outcome with the series' next bar (its per-series deferred events), rather than
within the call: a lost answer usually comes with a slow or unreachable exchange, where each
lookup can take the whole request timeout; waiting inside the call would hold every other
series' bars (the broker is one actor) for as long as the exchange is down.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.vocabulary import CallOutcome

if TYPE_CHECKING:
    from actors.messages import SubmitOrder

DEFAULT_RECV_WINDOW_MS = 5_000  # Binance's own default; sent with every signed request
CLOCK_MARGIN_MS = 1_000  # Binance refuses a timestamp more than 1 s ahead of its clock
DUPLICATE = "Duplicate order sent"  # Binance -2010 on a client order id that is open


def classify(exc: BaseException, status: int | None = None, creating: bool = True) -> CallOutcome:
    """The outcome of a call that raised `exc`; `status` is the HTTP status of its answer when
    one arrived (a 5xx is UNKNOWN whatever ccxt made of its body). `creating`: the call placed
    an order (OrderNotFound then refers to something else it named, so it is a refusal)."""
    import ccxt

    if status is not None and status >= 500:
        return CallOutcome.UNKNOWN
    if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded) or status in (418, 429):
        return CallOutcome.RETRY
    if DUPLICATE in str(exc) or isinstance(exc, ccxt.DuplicateOrderId):
        return CallOutcome.UNKNOWN  # it exists at the exchange: look it up
    if isinstance(exc, ccxt.OrderNotFound):
        return CallOutcome.REFUSED if creating else CallOutcome.UNKNOWN
    refused = (
        ccxt.InsufficientFunds,
        ccxt.InvalidOrder,
        ccxt.BadRequest,
        ccxt.BadSymbol,
        ccxt.AuthenticationError,  # PermissionDenied, AccountSuspended are kinds of it
        ccxt.NotSupported,
        ccxt.OperationRejected,
    )
    if isinstance(exc, refused):
        return CallOutcome.REFUSED
    return CallOutcome.UNKNOWN  # NetworkError, RequestTimeout, ExchangeNotAvailable, the rest


def retry_after_s(headers: dict[str, str] | None, default: float) -> float:
    """Seconds to wait from a `Retry-After` header (seconds, as Binance sends it)."""
    value = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default


@dataclass(frozen=True)
class CallSettings:
    """How the live ccxt clients call the exchange, and how the broker treats lost answers.
    Production keeps the defaults; tests use short windows and backoffs."""

    timeout_ms: int = 10_000  # ccxt's request timeout
    recv_window_ms: int = DEFAULT_RECV_WINDOW_MS  # sent with every signed request
    margin_ms: int = CLOCK_MARGIN_MS  # how far our clock may run ahead of the exchange's
    backoff_s: tuple[float, float] = (0.5, 30.0)  # lookups of an unknown order: first, most
    retry_s: float = 1.0  # the wait after a 429 / 418 without Retry-After
    retries: int = 5  # 429s in a row before a send counts as unknown (looked up)
    rate_limit: bool = True  # ccxt's limiter with the exchange's request weights


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Doubt:
    """One request whose answer was lost: an order (or the two legs of an OCO list), or a
    cancel. Resolved by looking the orders up by client order id until found, or until not
    found is final (`final_ms`)."""

    legs: list[SubmitOrder]
    client_ids: list[str]
    final_ms: int  # wall ms after which "not found" is final (last send + window + margin)
    reason: str
    cancel: bool = False  # a cancel whose answer was lost (else an order)
    exchange_ids: list[str | None] = field(default_factory=list)  # cancels: what to look up
    cancel_reason: str | None = None  # the order manager asked to cancel it meanwhile
    held: bool = False  # an exit not sent yet: a cancel of its trade's legs is in doubt
    lookups: int = 0
    warned: bool = False  # one warning line while the exchange cannot be asked

    @classmethod
    def after_send(
        cls, legs: list[SubmitOrder], client_ids: list[str], reason: str, calls: CallSettings
    ) -> Doubt:
        """A doubt about orders whose last send failed now: the request was stamped before
        now, so it cannot arrive after now + recvWindow + the clock margin."""
        return cls(legs, client_ids, wall_ms() + calls.recv_window_ms + calls.margin_ms, reason)

    def final(self) -> bool:
        return wall_ms() > self.final_ms
