"""Request checks the local exchange makes as Binance makes them, with Binance's error codes.

Parameters arrive as text: a number must match Binance's pattern before it is read, so NaN,
inf, a negative, `0x10` or `1e-300` never reach the matching engine (-1100). A repeated
parameter is refused (-1101), the `timestamp` of a signed request must lie within `recvWindow`
(default 5000 ms, at most 60000) of the server's wall clock (-1021: Binance compares with its
wall-clock time, not with the replayed market time), and orders pass the PRICE_FILTER and
LOT_SIZE the exchangeInfo publishes (-1013).
"""

from __future__ import annotations

import re
import time
from decimal import Decimal
from urllib.parse import parse_qsl

from localexchange.accounts import ExchangeError

ILLEGAL_CHARS = -1100
TOO_MANY_PARAMETERS = -1101
MANDATORY_PARAM = -1102
BAD_TIMESTAMP = -1021
BAD_RECV_WINDOW = -1131
FILTER_FAILURE = -1013

DECIMAL_PATTERN = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
INTEGER_PATTERN = r"^[0-9]{1,20}$"
CLIENT_ID_PATTERN = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"
_PATTERNS = {
    pattern: re.compile(pattern)
    for pattern in (DECIMAL_PATTERN, INTEGER_PATTERN, CLIENT_ID_PATTERN)
}
DECIMAL_PARAMS = (
    "quantity",
    "quoteOrderQty",
    "price",
    "stopPrice",
    "stopLimitPrice",
    "abovePrice",
    "aboveStopPrice",
    "belowPrice",
    "belowStopPrice",
    "amount",
)
PRICE_PARAMS = DECIMAL_PARAMS[2:-1]  # every price an order or order list may name
INTEGER_PARAMS = (
    "orderId",
    "orderListId",
    "fromId",
    "startTime",
    "endTime",
    "limit",
    "timestamp",
    "recvWindow",
)
CLIENT_ID_PARAMS = (
    "newClientOrderId",
    "origClientOrderId",
    "listClientOrderId",
    "limitClientOrderId",
    "stopClientOrderId",
    "aboveClientOrderId",
    "belowClientOrderId",
)
DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60000
AHEAD_TOLERANCE_MS = 1000  # Binance refuses a timestamp more than 1 s ahead of its clock

# The filters every symbol publishes (binance_format.exchange_info) and orders must pass.
MIN_PRICE = Decimal("0.00000001")
MAX_PRICE = Decimal("1000000")
TICK_SIZE = Decimal("0.00000001")
MAX_QTY = Decimal("9000000")


def parse_params(raw: bytes | str) -> dict[str, str]:
    """A query string or form body as {name: value}; each name at most once (Binance: -1101)."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ExchangeError(ILLEGAL_CHARS, "Illegal characters found in a parameter.") from None
    params: dict[str, str] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True):
        if name in params:
            raise ExchangeError(
                TOO_MANY_PARAMETERS, f"Duplicate values for a parameter detected: '{name}'."
            )
        params[name] = value
    return params


def check_formats(params: dict[str, str]) -> None:
    """Numbers and client order ids as Binance's patterns allow (-1100 naming the parameter)."""
    for names, pattern in (
        (DECIMAL_PARAMS, DECIMAL_PATTERN),
        (INTEGER_PARAMS, INTEGER_PATTERN),
        (CLIENT_ID_PARAMS, CLIENT_ID_PATTERN),
    ):
        for name in names:
            value = params.get(name)
            if value is not None and not _PATTERNS[pattern].match(value):
                raise ExchangeError(
                    ILLEGAL_CHARS,
                    f"Illegal characters found in parameter '{name}'; legal range is '{pattern}'.",
                )


def check_timestamp(params: dict[str, str], now_ms: int | None = None) -> None:
    """`timestamp` within `recvWindow` of the server's wall clock, as Binance checks it."""
    if not params.get("timestamp"):
        raise ExchangeError(
            MANDATORY_PARAM,
            "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
        )
    window = int(params.get("recvWindow") or DEFAULT_RECV_WINDOW_MS)
    if window > MAX_RECV_WINDOW_MS:
        raise ExchangeError(BAD_RECV_WINDOW, f"recvWindow must be less than {MAX_RECV_WINDOW_MS}")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    stamp = int(params["timestamp"])
    if stamp >= now + AHEAD_TOLERANCE_MS:
        raise ExchangeError(
            BAD_TIMESTAMP, "Timestamp for this request was 1000ms ahead of the server's time."
        )
    if now - stamp > window:
        raise ExchangeError(
            BAD_TIMESTAMP, "Timestamp for this request is outside of the recvWindow."
        )


def check_integer(value: str | None, name: str) -> int | None:
    """An unsigned integer parameter of a public endpoint (klines, /_local/step)."""
    if value is None:
        return None
    if not _PATTERNS[INTEGER_PATTERN].match(value):
        raise ExchangeError(
            ILLEGAL_CHARS,
            f"Illegal characters found in parameter '{name}'; legal range is '{INTEGER_PATTERN}'.",
        )
    return int(value)


def check_price(value: str | None, name: str) -> None:
    """PRICE_FILTER: minPrice <= price <= maxPrice, a whole number of tickSize."""
    if value is None or value == "":
        return
    price = Decimal(value)
    if price < MIN_PRICE or price > MAX_PRICE or price % TICK_SIZE != 0:
        raise ExchangeError(
            FILTER_FAILURE,
            f"Filter failure: PRICE_FILTER ({name} {value}: minPrice {MIN_PRICE}, maxPrice "
            f"{MAX_PRICE}, tickSize {TICK_SIZE})",
        )


def check_quantity(value: str | None, step: float) -> None:
    """LOT_SIZE: minQty (one step) <= quantity <= maxQty, a whole number of stepSize."""
    if value is None or value == "":
        return
    quantity, lot = Decimal(value), Decimal(repr(step))
    if quantity < lot or quantity > MAX_QTY or quantity % lot != 0:
        raise ExchangeError(
            FILTER_FAILURE,
            f"Filter failure: LOT_SIZE (quantity {value}: minQty {lot}, maxQty {MAX_QTY}, "
            f"stepSize {lot})",
        )


def check_order_filters(
    params: dict[str, str], step: float, min_notional: float, market_price: float | None
) -> None:
    """The filters of an order or order list: every price it names, its quantity, and the
    NOTIONAL minimum at each of its prices (a market order: at the price it would fill at)."""
    prices = [params[name] for name in PRICE_PARAMS if params.get(name)]
    for name in PRICE_PARAMS:
        check_price(params.get(name), name)
    check_quantity(params.get("quantity"), step)
    if min_notional <= 0 or not params.get("quantity"):
        return
    levels = [float(p) for p in prices] or ([market_price] if market_price else [])
    quantity = float(params["quantity"])
    if any(quantity * level < min_notional for level in levels):
        raise ExchangeError(
            FILTER_FAILURE,
            f"Filter failure: NOTIONAL (quantity {params['quantity']} x price under "
            f"minNotional {min_notional:g})",
        )
