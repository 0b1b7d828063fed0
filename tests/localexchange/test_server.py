"""The local exchange against the unmodified ccxt clients (REST and ccxt.pro), on a free port."""

from __future__ import annotations

import asyncio

import ccxt
import pytest

from live.venues.ccxt_clients import rest_client, ws_client
from localexchange.server_thread import ExchangeThread
from tests.live.helpers import KEY, SECRET, T0, bars, market_of

MS = 1_000_000
# bar 0 opens at 100; bar 1 touches both 95 and 110; bar 2 gaps down to 90
ROWS = [(100, 101, 99, 100), (100, 111, 94, 100), (90, 92, 88, 91), (91, 93, 90, 92)]


@pytest.fixture
def exchange():
    with ExchangeThread(market_of(bars(ROWS)), {"ETH": 10.0, "BTC": 1000.0}) as ex:
        yield ex


def client(ex, secret: str = SECRET):
    c = rest_client("binance", ex.url, (KEY, secret))
    c.load_markets()
    return c


def bar_ms(i: int) -> int:
    return int((T0.value + i * 300 * 10**9) // MS)


def test_markets_klines_and_a_funded_account(exchange) -> None:
    c = client(exchange)
    assert list(c.markets) == ["ETH/BTC"]
    exchange.step(1)
    rows = c.fetch_ohlcv("ETH/BTC", "5m")
    # the closed bar, then the bar in progress showing only its open (as Binance does)
    assert rows == [
        [bar_ms(0), 100.0, 101.0, 99.0, 100.0, 1.0],
        [bar_ms(1), 100.0, 100.0, 100.0, 100.0, 0.0],
    ]
    balance = c.fetch_balance()
    assert balance["ETH"]["free"] == 10.0 and balance["BTC"]["free"] == 1000.0


def test_market_order_fills_at_the_open_of_the_bar_in_progress(exchange) -> None:
    c = client(exchange)
    exchange.step(1)  # bar 0 closed: bar 1 (open 100) is in progress
    order = c.create_order("ETH/BTC", "market", "buy", 2.0)
    assert order["status"] == "closed" and order["price"] == 100.0 and order["filled"] == 2.0
    assert order["timestamp"] == bar_ms(1)
    balance = c.fetch_balance()
    assert balance["ETH"]["free"] == pytest.approx(12.0)
    assert balance["BTC"]["free"] == pytest.approx(1000.0 - 200.0 - 0.2)  # fee 10 bps in quote


def test_a_second_resting_sell_of_the_same_coins_is_refused(exchange) -> None:
    c = client(exchange)
    c.create_order("ETH/BTC", "market", "sell", 4.0)  # ETH 10 -> 6
    c.create_order("ETH/BTC", "market", "sell", 6.0, None, {"stopLossPrice": 95.0})
    with pytest.raises(ccxt.InsufficientFunds, match="insufficient balance"):  # Binance's -2010
        c.create_order("ETH/BTC", "limit", "sell", 6.0, 110.0)
    assert c.fetch_balance()["ETH"]["used"] == 6.0


def test_stop_before_target_in_one_bar_and_the_other_leg_cancelled(exchange) -> None:
    c = client(exchange)
    c.create_order("ETH/BTC", "market", "buy", 1.0)  # bar 0 open 100
    oco = c.privatePostOrderListOco(
        {
            "symbol": "ETHBTC",
            "side": "SELL",
            "quantity": "11",
            "aboveType": "LIMIT_MAKER",
            "abovePrice": "110",
            "belowType": "STOP_LOSS",
            "belowStopPrice": "95",
        }
    )
    assert len(oco["orders"]) == 2
    exchange.step(1)  # bar 0: range 99..101 touches neither
    assert len(c.fetch_open_orders("ETH/BTC")) == 2
    exchange.step(1)  # bar 1: low 94 <= stop 95 and high 111 >= 110: the stop fills, first
    orders = {o["info"]["type"]: o for o in c.fetch_orders("ETH/BTC")}
    assert orders["STOP_LOSS"]["status"] == "closed" and orders["STOP_LOSS"]["price"] == 95.0
    assert orders["LIMIT_MAKER"]["status"] in ("expired", "canceled")
    assert c.fetch_open_orders("ETH/BTC") == []


def test_stop_fills_at_its_price_or_at_the_open_after_a_gap(exchange) -> None:
    c = client(exchange)
    exchange.step(1)  # bar 1 (open 100, low 94) in progress
    inside = c.create_order("ETH/BTC", "market", "sell", 1.0, None, {"stopLossPrice": 96.0})
    gapped = c.create_order("ETH/BTC", "market", "sell", 1.0, None, {"stopLossPrice": 93.0})
    exchange.step(1)  # bar 1 closes: 96 is inside its range -> fills at 96; 93 is not reached
    assert c.fetch_order(inside["id"], "ETH/BTC")["price"] == 96.0
    assert c.fetch_order(gapped["id"], "ETH/BTC")["status"] == "open"
    exchange.step(1)  # bar 2 opens at 90, below 93: a gap through the stop fills at the open
    filled = c.fetch_order(gapped["id"], "ETH/BTC")
    assert filled["status"] == "closed" and filled["price"] == 90.0
    assert int(filled["info"]["updateTime"]) == bar_ms(2)  # the fill is stamped with its bar


def test_signature_and_key_are_checked(exchange) -> None:
    with pytest.raises(ccxt.AuthenticationError):
        client(exchange, secret="wrong").fetch_balance()
    anonymous = rest_client("binance", exchange.url)
    anonymous.load_markets()
    with pytest.raises(ccxt.AuthenticationError):
        anonymous.fetch_balance()


def test_each_key_has_its_own_account(exchange) -> None:
    client(exchange).create_order("ETH/BTC", "market", "sell", 5.0)
    other = rest_client("binance", exchange.url, ("another-key", SECRET))
    assert other.fetch_balance()["ETH"]["free"] == 10.0


def test_watch_orders_reports_a_stop_fill(exchange) -> None:
    c = client(exchange)
    stop = c.create_order(
        "ETH/BTC",
        "market",
        "sell",
        1.0,
        None,
        {"stopLossPrice": 95.0, "clientOrderId": "rt1-0-sl-0"},
    )

    async def watch() -> list:
        pro = ws_client("binance", exchange.url, (KEY, SECRET))
        try:
            first = asyncio.ensure_future(pro.watch_orders("ETH/BTC"))
            await asyncio.sleep(0.5)
            await asyncio.get_running_loop().run_in_executor(None, exchange.step, 2)
            return await asyncio.wait_for(first, 10)
        finally:
            await pro.close()

    updates = asyncio.run(watch())
    assert [(o["id"], o["clientOrderId"], o["status"], o["price"]) for o in updates] == [
        (stop["id"], "rt1-0-sl-0", "closed", 95.0)
    ]


def test_after_the_data_ends_it_keeps_serving(exchange) -> None:
    c = client(exchange)
    assert exchange.step(10) == len(ROWS)
    assert exchange.exchange.market.ended
    assert len(c.fetch_ohlcv("ETH/BTC", "5m")) == len(ROWS)
    with pytest.raises(ccxt.ExchangeError):
        c.create_order("ETH/BTC", "market", "buy", 1.0)
