"""live/setup.py: the order limits of live trading come from the exchange's markets (real ccxt
against the local exchange's exchangeInfo filters) unless the user gave them."""

from __future__ import annotations

import re

import pytest

from actors.weighted_portfolio import PortfolioMember, WeightedPortfolio
from live.node import LiveSettings
from live.setup import check_exchange, market_limits, order_limits
from live.venues.ccxt_clients import rest_client
from localexchange.replay import ReplayMarket
from localexchange.server_thread import ExchangeThread
from strategies.registry import make_strategy
from tests.live.helpers import sample

STRATEGY = make_strategy("sr_breakout", {})


def members(*symbols: str) -> list[PortfolioMember]:
    return [PortfolioMember(s, STRATEGY, s, "5m") for s in symbols]


def served(limits: dict[str, tuple[float, float]]) -> ReplayMarket:
    market = ReplayMarket(limits=limits)
    for symbol in ("ETH/BTC", "LTC/BTC"):
        market.add(symbol, "5m", sample(n=20))
    market.start_at(None)
    return market


@pytest.fixture(scope="module")
def exchange():
    limits = {"ETH/BTC": (0.0005, 0.001), "LTC/BTC": (0.0002, 0.01)}
    with ExchangeThread(served(limits)) as ex:
        client = rest_client("binance", ex.url)
        check_exchange(client, ex.url, members("ETH/BTC", "LTC/BTC"))  # loads the markets
        yield client


def test_the_limits_are_read_from_the_exchange_filters(exchange) -> None:
    eth = market_limits(exchange, members("ETH/BTC"))
    assert (eth.min_notional, eth.lot_size) == (0.0005, 0.001)
    # one account, one setting: the strictest of the traded markets
    both = market_limits(exchange, members("ETH/BTC", "LTC/BTC"))
    assert (both.min_notional, both.lot_size) == (0.0005, 0.01)
    assert "ETH/BTC, LTC/BTC" in both.source


def test_the_users_values_win_and_reach_the_live_portfolio(exchange) -> None:
    market = market_limits(exchange, members("ETH/BTC"))
    assert order_limits(None, None, market) == (0.0005, 0.001)
    assert order_limits(0.0, 0.5, market) == (0.0, 0.5)  # given: used, even 0 (no minimum)
    notional, lot = order_limits(None, None, market)
    settings = LiveSettings("binance", None, "sqlite://", min_notional=notional, lot_size=lot)
    portfolio = WeightedPortfolio(settings, {"ETH/BTC": 1.0}, {}, frozenset())
    assert (portfolio.min_notional, portfolio.lot_size) == (0.0005, 0.001)


def test_without_a_notional_filter_the_backtest_default_applies() -> None:
    with ExchangeThread(served({})) as ex:
        client = rest_client("binance", ex.url)
        check_exchange(client, ex.url, members("ETH/BTC"))
        limits = market_limits(client, members("ETH/BTC"))
    assert (limits.min_notional, limits.lot_size) == (None, 1e-8)
    settings = LiveSettings(
        "binance", None, "sqlite://", cash=5_000.0, min_notional=limits.min_notional
    )
    assert settings.min_order_notional() == pytest.approx(0.5)  # 0.01% of the cash


# -- --cash: one amount, or one per quote currency (live/portfolios.py) ----------------------
def test_cash_is_one_amount_or_one_per_quote_currency() -> None:
    from live.setup import parse_cash

    assert parse_cash(None) is None
    assert parse_cash("2.5") == 2.5
    assert parse_cash("BTC=1,ETH=10") == {"BTC": 1.0, "ETH": 10.0}
    assert parse_cash(" btc = 1 , eth=1e1 ") == {"BTC": 1.0, "ETH": 10.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "'0' is not a positive, finite amount"),
        ("-1", "'-1' is not a positive, finite amount"),
        ("inf", "'inf' is not a positive, finite amount"),
        ("nan", "'nan' is not a positive, finite amount"),
        ("ten", "'ten' is not a positive, finite amount"),
        ("BTC=", "'' is not a positive, finite amount"),
        ("BTC=1,ETH=abc", "'abc' is not a positive, finite amount"),
        ("=1", "'=1' is not QUOTE=AMOUNT"),
        ("BTC=1,ETH", "'ETH' is not QUOTE=AMOUNT"),
        ("BTC=1,,ETH=2", "'' is not QUOTE=AMOUNT"),
        ("B-TC=1", "'B-TC=1' is not QUOTE=AMOUNT"),
        ("BTC=1,btc=2", "gives BTC twice"),
    ],
)
def test_bad_cash_is_one_clear_error(text: str, message: str) -> None:
    from core.errors import UserError
    from live.setup import parse_cash

    with pytest.raises(UserError, match=re.escape(message)):
        parse_cash(text)


@pytest.mark.parametrize(
    ("cash", "message"),
    [
        (
            5.0,
            "--cash 5 is one amount, but the instances trade pairs quoted in BTC, ETH: give "
            "one per quote currency, e.g. --cash BTC=AMOUNT,ETH=AMOUNT",
        ),
        (
            {"BTC": 1.0},
            "--cash BTC=1: no amount for ETH (the instances trade pairs quoted in BTC, ETH)",
        ),
        ({"BTC": 1.0, "ETH": 2.0, "USDT": 3.0}, "USDT is not the quote of a traded pair"),
    ],
)
def test_cash_must_name_the_traded_quote_currencies(cash: object, message: str) -> None:
    from core.errors import UserError
    from live.setup import starting_cash

    members = [
        PortfolioMember(s, make_strategy("sr_breakout", {}), s, "5m")
        for s in ("ETH/BTC", "XRP/ETH")
    ]
    with pytest.raises(UserError, match=re.escape(message)):
        starting_cash(None, None, members, cash, {})
