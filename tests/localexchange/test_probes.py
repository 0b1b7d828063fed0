"""The bad requests of issue 24 replayed against the real local exchange: each is refused as
Binance refuses it (HTTP status and Binance code), and no balance went NaN, negative or grew.

Order placement goes through the real ccxt client (its signing, timestamp and recvWindow);
probes ccxt cannot send (a stale timestamp, a repeated parameter, a non-UTF-8 body) are signed
by hand as Binance's docs describe.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import re
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

import aiohttp
import ccxt
import pytest

from live.venues.ccxt_clients import rest_client
from localexchange.rate_limit import WeightLimit
from localexchange.server_thread import ExchangeThread
from tests.live.helpers import KEY, SECRET, bars, market_of

ROWS = [(100, 101, 99, 100), (100, 111, 94, 100), (90, 92, 88, 91), (91, 93, 90, 92)]
FUNDING = {"ETH": 10.0, "BTC": 1000.0}
NAN_ORDERS = [  # (ccxt implicit method, params): the NaN probes on ccxt's own path
    ("privatePostOrder", {"side": "BUY", "type": "MARKET", "quantity": "NaN"}),
    ("privatePostOrder", {"side": "BUY", "type": "LIMIT", "quantity": "1", "price": "NaN"}),
    (
        "privatePostOrder",
        {"side": "SELL", "type": "STOP_LOSS", "quantity": "1", "stopPrice": "NaN"},
    ),
    (
        "privatePostOrderListOco",
        {
            "side": "SELL",
            "quantity": "1",
            "aboveType": "LIMIT_MAKER",
            "abovePrice": "NaN",
            "belowType": "STOP_LOSS",
            "belowStopPrice": "95",
        },
    ),
    ("sapiPostMarginOrder", {"side": "BUY", "type": "MARKET", "quantity": "NaN"}),
    (
        "sapiPostMarginOrderOco",
        {"side": "SELL", "quantity": "1", "price": "NaN", "stopPrice": "95"},
    ),
    ("sapiPostMarginBorrowRepay", {"asset": "ETH", "type": "REPAY", "amount": "NaN"}),
]
BAD_ORDERS = [  # (params over a MARKET BUY of 1 ETHBTC, Binance's code)
    ({"quantity": "inf"}, -1100),
    ({"quantity": "-5"}, -1100),
    ({"quantity": "abc"}, -1100),
    ({"quantity": "0x10"}, -1100),
    ({"quantity": "1e-300"}, -1100),
    ({"quantity": "0"}, -1013),  # LOT_SIZE: below minQty
    ({"quantity": "0.000000001"}, -1013),  # LOT_SIZE: not a whole stepSize
    ({"quantity": "90000000"}, -1013),  # LOT_SIZE: above maxQty
    ({"type": "LIMIT", "side": "SELL", "price": "inf"}, -1100),
    ({"type": "LIMIT", "price": "0.000000015"}, -1013),  # PRICE_FILTER: off the tick
    ({"type": "LIMIT", "price": "2000000"}, -1013),  # PRICE_FILTER: above maxPrice
    ({"newClientOrderId": "x" * 37}, -1100),
    ({"newClientOrderId": "bad id!"}, -1100),
    ({"newClientOrderId": "x" * 900 * 1024}, -1100),
    ({"recvWindow": "-5"}, -1100),
    ({"recvWindow": "999999999"}, -1131),
]


@pytest.fixture
def exchange():
    with ExchangeThread(market_of(bars(ROWS)), FUNDING) as ex:
        ex.step(1)  # bar 1 in progress: market orders can fill
        yield ex


def client(ex: ExchangeThread, key: str = KEY, secret: str = SECRET) -> ccxt.binance:
    c = rest_client("binance", ex.url, (key, secret))
    c.load_markets()
    return c


def refusal(exc: ccxt.BaseError) -> int:
    """Binance's code in a refusal ccxt raised (ccxt quotes the body in its message)."""
    found = re.search(r'"code":\s*(-?\d+)', str(exc))
    assert found, f"no Binance code in {exc}"
    return int(found[1])


def signed(
    ex: ExchangeThread,
    method: str,
    path: str,
    params: list[tuple[str, str]],
    secret: str = SECRET,
    key: str = KEY,
) -> tuple[int, dict]:
    """A request signed as Binance's docs say (HMAC SHA256 of the query), sent by hand."""
    query = urlencode(params)
    signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    body = f"{query}&signature={signature}".encode()
    return send(ex, method, path, body, {"X-MBX-APIKEY": key})


def send(
    ex: ExchangeThread, method: str, path: str, body: bytes = b"", headers: dict | None = None
) -> tuple[int, dict]:
    url, data = ex.url + path, None
    if method in ("GET", "DELETE") and body:
        url += "?" + body.decode()
    elif body:
        data = body
    request = urllib.request.Request(url, data, headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def now_ms() -> int:
    return int(time.time() * 1000)


def assert_balances_untouched(ex: ExchangeThread) -> None:
    """No balance went NaN or negative, and none grew: no probe traded."""
    for book in (ex.exchange.engine.accounts, ex.exchange.engine.margin_accounts):
        for acct in book.values():
            assert acct.trades == []
            for asset, (free, locked) in acct.balances.items():
                assert math.isfinite(free) and math.isfinite(locked), asset
                assert free >= 0 and locked >= 0, asset
                assert free + locked <= FUNDING.get(asset, 0.0) + 1e-9, asset


@pytest.mark.parametrize(("method", "params"), NAN_ORDERS, ids=[m for m, _ in NAN_ORDERS])
def test_a_nan_quantity_or_price_is_refused_and_no_balance_turns_nan(
    exchange, method, params
) -> None:
    c = client(exchange)
    with pytest.raises(ccxt.BadRequest) as refused:
        getattr(c, method)({"symbol": "ETHBTC", **params})
    assert refusal(refused.value) == -1100
    assert_balances_untouched(exchange)


def test_bad_numbers_filters_and_client_ids_are_refused_with_binances_codes(exchange) -> None:
    c = client(exchange)
    for extra, code in BAD_ORDERS:
        params = {"symbol": "ETHBTC", "side": "BUY", "type": "MARKET", "quantity": "1", **extra}
        with pytest.raises(ccxt.ExchangeError) as refused:
            c.privatePostOrder(params)
        assert refusal(refused.value) == code, extra if len(str(extra)) < 99 else "long id"
    assert_balances_untouched(exchange)
    # the same order within the filters and with a Binance-shaped client id trades
    placed = c.privatePostOrder(
        {"symbol": "ETHBTC", "side": "BUY", "type": "MARKET", "quantity": "0.5"}
        | {"newClientOrderId": "rt-1234abcd-1700000000000-en-0"}
    )
    assert placed["status"] == "FILLED"


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/api/v3/order", [("orderId", "abc")]),
        ("/api/v3/myTrades", [("fromId", "abc")]),
        ("/api/v3/myTrades", [("orderId", "0x10")]),
    ],
)
def test_a_bad_id_is_a_400_not_a_500(exchange, path, query) -> None:
    params = [("symbol", "ETHBTC"), *query, ("timestamp", str(now_ms()))]
    status, body = signed(exchange, "GET", path, params)
    assert (status, body["code"]) == (400, -1100)


@pytest.mark.parametrize(
    ("stamp", "window", "code"),
    [
        ("1000", None, -1021),  # 1970
        (lambda: str(now_ms() - 86_400_000), None, -1021),  # signed a day ago
        (lambda: str(now_ms() + 3_600_000), None, -1021),  # an hour ahead
        (None, None, -1102),  # missing
        ("abc", None, -1100),
        (lambda: str(now_ms() - 100), "0", -1021),
        (lambda: str(now_ms()), "-5", -1100),
        (lambda: str(now_ms()), "999999999", -1131),
    ],
)
def test_timestamp_within_recv_window_of_the_servers_clock(exchange, stamp, window, code) -> None:
    params = [("symbol", "ETHBTC"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "1")]
    if stamp is not None:
        params.append(("timestamp", stamp() if callable(stamp) else stamp))
    if window is not None:
        params.append(("recvWindow", window))
    status, body = signed(exchange, "POST", "/api/v3/order", params)
    assert (status, body["code"]) == (400, code)
    assert_balances_untouched(exchange)


def test_a_signed_request_sent_again_after_its_window_is_refused(exchange) -> None:
    params = [("symbol", "ETHBTC"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "1")]
    params += [("timestamp", str(now_ms())), ("recvWindow", "300")]
    query = urlencode(params)
    signature = hmac.new(SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
    body = f"{query}&signature={signature}".encode()
    headers = {"X-MBX-APIKEY": KEY}
    assert send(exchange, "POST", "/api/v3/order", body, headers)[0] == 200
    time.sleep(0.4)
    status, answer = send(exchange, "POST", "/api/v3/order", body, headers)
    assert (status, answer["code"]) == (400, -1021)
    assert len(exchange.exchange.engine.accounts[KEY].trades) == 1


def test_a_repeated_parameter_and_a_non_utf8_body_are_refused(exchange) -> None:
    params = [("symbol", "ETHBTC"), ("symbol", "NOPEBTC"), ("side", "BUY"), ("type", "MARKET")]
    params += [("quantity", "1"), ("timestamp", str(now_ms()))]
    status, body = signed(exchange, "POST", "/api/v3/order", params)
    assert (status, body["code"]) == (400, -1101)
    raw = b"symbol=ETHBTC&quantity=\xff\xfe&signature=00"
    status, body = send(exchange, "POST", "/api/v3/order", raw, {"X-MBX-APIKEY": KEY})
    assert (status, body["code"]) == (400, -1100)
    assert_balances_untouched(exchange)


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/api/v3/klines?symbol=ETHBTC&interval=5m&startTime=abc", -1100),
        ("/api/v3/klines?symbol=ETHBTC&interval=5m&limit=-5", -1100),
        ("/api/v3/klines?symbol=ETHBTC&interval=5m&limit=0", -1100),
        ("/api/v3/klines?symbol=ETHBTC&interval=5m&limit=1001", -1100),
        ("/api/v3/klines?symbol=NOPE&interval=5m", -1121),
        ("/api/v3/klines?symbol=ETHBTC&interval=7m", -1120),
        ("/api/v3/klines?symbol=ETHBTC&symbol=ETHBTC&interval=5m", -1101),
        ("/api/v3/ticker/24hr?symbol=NOPE", -1121),
        ("/api/v3/ticker/price?symbol=NOPE", -1121),
    ],
)
def test_public_endpoints_refuse_bad_parameters(exchange, path, code) -> None:
    status, body = send(exchange, "GET", path)
    assert (status, body["code"]) == (400, code)


def test_local_step_refuses_a_bad_count(exchange) -> None:
    status, body = send(exchange, "POST", "/_local/step?n=abc")
    assert (status, body["code"]) == (400, -1100)
    assert send(exchange, "POST", "/_local/step?n=1")[0] == 200


def test_market_stream_requests_are_checked_as_binance_does(exchange) -> None:
    async def ask(*messages: str) -> list[dict]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(exchange.url.replace("http", "ws") + "/ws") as ws:
                answers = []
                for text in messages:
                    await ws.send_str(text)
                    answers.append(json.loads((await ws.receive(timeout=10)).data))
                return answers

    many = [f"s{i}@kline_5m" for i in range(2000)]
    answers = asyncio.run(
        ask(
            json.dumps({"method": "SUBSCRIBE", "params": many, "id": 1}),
            json.dumps({"method": "NOPE", "params": [], "id": 2}),
            "not json",
            json.dumps({"method": "SUBSCRIBE", "params": ["ethbtc@kline_5m"], "id": 4}),
            json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 5}),
        )
    )
    assert [a.get("error", {}).get("code") for a in answers[:3]] == [2, 2, 3]
    assert answers[3] == {"result": None, "id": 4}
    assert answers[4] == {"result": ["ethbtc@kline_5m"], "id": 5}


def test_each_key_signs_with_its_own_secret() -> None:
    keys = {"alice": "alice-secret", "bob": "bob-secret"}
    with ExchangeThread(market_of(bars(ROWS)), FUNDING, keys=keys) as ex:
        ex.step(1)
        assert client(ex, "alice", "alice-secret").fetch_balance()["ETH"]["free"] == 10.0
        with pytest.raises(ccxt.AuthenticationError) as refused:
            client(ex, "alice", "bob-secret").create_order("ETH/BTC", "market", "buy", 1.0)
        assert refusal(refused.value) == -1022
        with pytest.raises(ccxt.AuthenticationError) as refused:
            client(ex, "mallory", SECRET).fetch_balance()
        assert refusal(refused.value) == -2015
        assert_balances_untouched(ex)


def test_past_the_weight_limit_429_with_retry_after_then_418_for_a_client_that_keeps_going() -> (
    None
):
    limit = WeightLimit(30, window_s=30.0)
    with ExchangeThread(market_of(bars(ROWS)), FUNDING, weight_limit=limit) as ex:
        answers = [send(ex, "GET", "/api/v3/klines?symbol=ETHBTC&interval=5m") for _ in range(5)]
        assert [status for status, _ in answers] == [200] * 5  # 5 x weight 2
        status, info = send(ex, "GET", "/api/v3/exchangeInfo")  # weight 20: 30 spent
        assert status == 200 and info["rateLimits"][0]["limit"] == 30
        status, body = send(ex, "GET", "/api/v3/ping")
        assert (status, body["code"]) == (429, -1003)
        status, body = send(ex, "GET", "/api/v3/ping")  # not waiting as told: banned
        assert (status, body["code"]) == (418, -1003)
        request = urllib.request.Request(ex.url + "/api/v3/ping")
        with pytest.raises(urllib.error.HTTPError) as banned:
            urllib.request.urlopen(request, timeout=5)
        assert banned.value.code == 418 and int(banned.value.headers["Retry-After"]) >= 30


def test_local_control_answers_loopback_clients_only() -> None:
    import socket

    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))  # no packet is sent: picks the outward address
        address = probe.getsockname()[0]
    except OSError:
        pytest.skip("this machine has no non-loopback address")
    finally:
        probe.close()
    if address.startswith("127."):
        pytest.skip("this machine has no non-loopback address")
    with ExchangeThread(market_of(bars(ROWS)), FUNDING, host="0.0.0.0") as ex:
        outside = f"http://{address}:{ex.port}"
        request = urllib.request.Request(outside + "/_local/step", b"", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 403
        assert ex.exchange.market.now_ms == ex.exchange.market.series[("ETH/BTC", "5m")].open_ms[0]
        with urllib.request.urlopen(outside + "/api/v3/ping", timeout=5) as answer:
            assert answer.status == 200  # the API itself answers everyone
        assert send(ex, "POST", "/_local/step")[0] == 200  # loopback: ex.url is 0.0.0.0


def test_orders_under_the_published_minimum_notional_are_refused() -> None:
    market = market_of(bars(ROWS))
    market.limits["ETH/BTC"] = (50.0, 0.01)  # NOTIONAL 50 BTC, LOT_SIZE 0.01
    with ExchangeThread(market, FUNDING) as ex:
        ex.step(1)  # bar 1 (open 100) in progress
        c = client(ex)
        for params in (
            {"type": "MARKET", "quantity": "0.4"},  # 0.4 x 100 = 40 BTC
            {"type": "LIMIT", "quantity": "0.6", "price": "80"},  # 48 BTC
            {"type": "MARKET", "quantity": "0.555"},  # not a whole 0.01 lot
        ):
            with pytest.raises(ccxt.ExchangeError) as refused:
                c.privatePostOrder({"symbol": "ETHBTC", "side": "BUY", **params})
            assert refusal(refused.value) == -1013
        assert_balances_untouched(ex)
        placed = c.privatePostOrder(
            {"symbol": "ETHBTC", "side": "BUY", "type": "MARKET", "quantity": "0.51"}
        )
        assert placed["status"] == "FILLED"
