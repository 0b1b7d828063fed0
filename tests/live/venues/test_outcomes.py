"""live/venues/outcomes.py: ccxt's errors as the project's outcomes, and when "not found" of a
lost order is final."""

from __future__ import annotations

import ccxt
import pytest

from core.vocabulary import CallOutcome
from live.venues.outcomes import CallSettings, Doubt, classify, retry_after_s, wall_ms

REFUSED = [
    ccxt.InsufficientFunds("binance Account has insufficient balance for requested action."),
    ccxt.InvalidOrder("binance Filter failure: LOT_SIZE"),
    ccxt.BadRequest("binance Invalid quantity."),
    ccxt.AuthenticationError("binance Invalid API-key"),
    ccxt.PermissionDenied("binance not allowed"),
    ccxt.OrderNotFound("binance Order does not exist."),  # named by a create: refused
]
UNKNOWN = [
    ccxt.NetworkError("binance POST ... ServerDisconnectedError"),
    ccxt.RequestTimeout("binance POST ... timed out"),
    ccxt.ExchangeNotAvailable("binance 503 Service Unavailable"),
    ccxt.OperationFailed('binance {"code":-1001,"msg":"Internal error"}'),
    ccxt.InvalidNonce("binance Timestamp for this request is outside of the recvWindow."),
    ccxt.InvalidOrder("binance Duplicate order sent."),  # it exists: look it up
    RuntimeError("anything else"),
]


@pytest.mark.parametrize("exc", REFUSED, ids=lambda e: type(e).__name__)
def test_a_definite_refusal_is_refused(exc) -> None:
    assert classify(exc) is CallOutcome.REFUSED


@pytest.mark.parametrize("exc", UNKNOWN, ids=lambda e: f"{type(e).__name__}:{str(e)[:20]}")
def test_a_lost_answer_is_unknown(exc) -> None:
    assert classify(exc) is CallOutcome.UNKNOWN


def test_rate_limits_are_retried_and_a_5xx_is_unknown_whatever_its_body() -> None:
    assert classify(ccxt.DDoSProtection("binance 429 Too Many Requests")) is CallOutcome.RETRY
    assert classify(ccxt.RateLimitExceeded("binance 418")) is CallOutcome.RETRY
    # a body ccxt read as a refusal, with a 5xx status: the work may have been done
    assert classify(ccxt.BadRequest("binance ..."), status=502) is CallOutcome.UNKNOWN
    # looking an order up (not creating it): not found is not a refusal of anything
    assert classify(ccxt.OrderNotFound("x"), creating=False) is CallOutcome.UNKNOWN


def test_retry_after_in_seconds_else_the_default() -> None:
    assert retry_after_s({"Retry-After": "7"}, 1.0) == 7.0
    assert retry_after_s({"retry-after": "0.5"}, 1.0) == 0.5
    assert retry_after_s({}, 2.0) == 2.0 and retry_after_s({"Retry-After": "soon"}, 2.0) == 2.0


def test_not_found_is_final_only_after_the_last_send_plus_recv_window_and_margin() -> None:
    calls = CallSettings(recv_window_ms=5_000, margin_ms=1_000)
    before = wall_ms()
    doubt = Doubt.after_send([], [], "RequestTimeout", calls)
    assert before + 6_000 <= doubt.final_ms <= wall_ms() + 6_000
    assert not doubt.final()
    doubt.final_ms = wall_ms() - 1
    assert doubt.final()


def test_live_clients_run_the_limiter_with_the_recv_window_and_timeout_given() -> None:
    from live.venues.ccxt_clients import rest_client, ws_client

    for client in (rest_client("binance"), ws_client("binance")):
        assert client.enableRateLimit is True and client.rateLimit == 50  # Binance's weights
        assert client.timeout == 10_000 and client.options["recvWindow"] == 5_000
    short = CallSettings(timeout_ms=300, recv_window_ms=200, rate_limit=False)
    client = rest_client("binance", None, None, short)
    assert (client.enableRateLimit, client.timeout, client.options["recvWindow"]) == (
        False,
        300,
        200,
    )
