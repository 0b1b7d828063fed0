"""One portfolio per quote currency (live/portfolios.py): a BTC-quoted and an ETH-quoted
instance set in one live node, on the stepped local exchange (speed 0 + /_local/step, real ccxt
clients), in dry run and in real mode. Each quote currency's entries are sized on its own cash
(10 BTC and 100 ETH, the local exchange's default funding): the first entry of each is checked by
hand, risk x cash / stop distance in that currency; real mode has no order refused for
insufficient funds. A router that sends every message to the first quote's portfolio fails."""

from __future__ import annotations

import json
import math
import urllib.request
from collections.abc import Iterator

import pytest

from actors.messages import BarClosed, OpenTrade, SignalRaised
from actors.portfolio import stop_distance
from actors.weighted_portfolio import PortfolioMember
from core.vocabulary import OrderStatus, SignalAction
from live.node import LiveSettings
from live.portfolios import QuotePortfolios
from live.session import FromExchange, LiveSession
from live.venues.ccxt_clients import rest_client
from localexchange.replay import ReplayMarket
from localexchange.server_thread import DEFAULT_FUNDING, ExchangeThread
from strategies.registry import make_strategy
from tests.live.helpers import KEY, SECRET, sample

N = 140  # bars per series: every instance set opens and closes trades
STEP_MS = 300_000
RISK = 0.001
SERIES = {"NXT/BTC": "NXT_BTC-5m.csv.gz", "XRP/ETH": "XRP_ETH-5m.csv.gz"}
FAMILIES = [("sr_breakout", {}), ("reversal_breakout", {}), ("sr_breakout", {"lookback": 10})]


@pytest.fixture
def exchange() -> Iterator[ExchangeThread]:
    """NXT/BTC and XRP/ETH 5m on one clock (the XRP/ETH sample's bars on NXT/BTC's times)."""
    market = ReplayMarket()
    btc = sample(SERIES["NXT/BTC"], N)
    eth = sample(SERIES["XRP/ETH"], N)
    eth.index = btc.index
    market.add("NXT/BTC", "5m", btc)
    market.add("XRP/ETH", "5m", eth)
    market.start_at(None)
    with ExchangeThread(market, keys={KEY: SECRET}) as ex:
        yield ex


def members() -> list[PortfolioMember]:
    return [
        PortfolioMember(f"#{k} {family} {symbol}", make_strategy(family, params), symbol, "5m")
        for symbol in SERIES
        for k, (family, params) in enumerate(FAMILIES, 1)
    ]


Entries = list[tuple[SignalRaised, OpenTrade]]


def run(url: str, db: str, real: bool) -> tuple[LiveSession, Entries, dict]:
    """A session stepped to the end of the data; returns it (stopped), each entry the
    portfolios sent with the signal it came from, and the node's last status."""
    client = rest_client("binance", url, None)
    settings = LiveSettings("binance", url, db, risk=RISK, quiet_s=1.0, real=real)
    keys = (KEY, SECRET) if real else None
    said: list[str] = []
    session = LiveSession(
        settings,
        members(),
        from_exchange=FromExchange(keys=keys, funding=DEFAULT_FUNDING),
        say=said.append,
    )
    session.prepare()
    if not real:
        assert [s for s in said if s.startswith("dry run")] == [
            "dry run starting cash: 10 BTC (the local exchange's default funding)",
            "dry run starting cash: 100 ETH (the local exchange's default funding)",
        ]
    session.start()
    signals: dict[tuple[str, int], SignalRaised] = {}
    entries: list[tuple[SignalRaised, OpenTrade]] = []

    def observe(msg: object) -> None:
        if type(msg) is SignalRaised and msg.action == SignalAction.ENTER:
            signals[(msg.strategy, msg.signal_id)] = msg
        elif type(msg) is OpenTrade:
            entries.append((signals[(msg.strategy, msg.signal_id)], msg))

    session.node.runtime.observers.append(observe)
    last = {s: session.warm.last_ms.get((s, "5m"), -1) for s in SERIES}
    try:
        while True:
            request = urllib.request.Request(f"{url}/_local/step?n=1", method="POST")
            with urllib.request.urlopen(request) as reply:
                state = json.load(reply)
            bars = []
            for symbol in SERIES:
                rows = client.fetch_ohlcv(symbol, "5m", last[symbol] + 1, 1000)
                closed = [r for r in rows if r[0] + STEP_MS <= state["now"]]
                bars.extend(_bar(symbol, r) for r in closed)
                if closed:
                    last[symbol] = int(closed[-1][0])
            session.deliver(sorted(bars, key=lambda b: (b.ts, b.symbol)))
            if state["closed"] == 0:
                break
        status = session.node.status()  # before the stop: the portfolios' state
    finally:
        session.stop()
    return session, entries, status


def _bar(symbol: str, row: list) -> BarClosed:
    t, o, h, low, c, v = (float(x) for x in row[:6])
    ns = int(t) * 1_000_000
    return BarClosed(ns + STEP_MS * 1_000_000, symbol, "5m", ns, o, h, low, c, v)


def check_sized_on_own_cash(session: LiveSession, entries: Entries, status: dict) -> None:
    """Both quote currencies traded; the first entry of each (its portfolio idle, its cash the
    starting 10 BTC or 100 ETH) is RISK x cash / stop distance, rounded down to the 1e-8 lot."""
    trades = session.trades()
    by_quote = {q: [t for t in trades if t["symbol"].endswith("/" + q)] for q in ("BTC", "ETH")}
    assert all(by_quote.values()), {q: len(t) for q, t in by_quote.items()}
    for quote, cash in (("BTC", 10.0), ("ETH", 100.0)):
        signal, order = next((s, o) for s, o in entries if o.symbol.endswith("/" + quote))
        distance = stop_distance(signal)
        assert distance is not None
        by_hand = RISK * cash / distance
        assert by_hand - 1e-8 <= order.quantity <= by_hand, (quote, order.quantity, by_hand)
    assert sorted(status["quotes"]) == ["BTC", "ETH"]
    assert status["equity"] is None  # BTC and ETH do not add up


def test_dry_run_trades_each_quote_on_its_own_cash(exchange, sqlite_url) -> None:
    from live.ops.recovery import Restored
    from live.portfolios import closed_flows

    session, entries, status = run(exchange.url, sqlite_url, real=False)
    check_sized_on_own_cash(session, entries, status)
    # a restart books each currency's closed trades on its own cash: BTC ends flat, so its
    # cash is the 10 BTC plus its closed trades' flows, read back from the database
    assert status["quotes"]["BTC"]["positions"] == 0
    flows = closed_flows(session.settings, members(), Restored())
    assert len(flows["BTC"]) == 2 * sum(t["symbol"] == "NXT/BTC" for t in session.trades())
    assert math.fsum([10.0, *flows["BTC"]]) == status["quotes"]["BTC"]["cash"]


def test_real_mode_sizes_each_quote_on_its_free_balance(exchange, sqlite_url, monkeypatch) -> None:
    monkeypatch.setenv("RAYTRADER_BINANCE_API_KEY", KEY)
    monkeypatch.setenv("RAYTRADER_BINANCE_API_SECRET", SECRET)
    session, entries, status = run(exchange.url, sqlite_url, real=True)
    check_sized_on_own_cash(session, entries, status)
    refused = [o for o in session.orders() if o["status"] == OrderStatus.REJECTED]
    assert refused == []  # InsufficientFunds (or anything else) never came back


def test_a_router_sending_everything_to_the_first_quote_fails(
    exchange, sqlite_url, monkeypatch
) -> None:
    def first_only(self: QuotePortfolios, msg: object) -> list:
        return next(iter(self.portfolios.values())).handle(msg)

    monkeypatch.setattr(QuotePortfolios, "handle", first_only)
    session, entries, status = run(exchange.url, sqlite_url, real=False)
    with pytest.raises(AssertionError):
        check_sized_on_own_cash(session, entries, status)


def test_messages_go_to_their_quote_and_the_live_buffer_is_set() -> None:
    from actors.messages import DisableInstance, ExitSpec
    from backtest.account import AccountSettings
    from live.portfolios import quote_portfolios

    settings = LiveSettings(
        "binance",
        None,
        "sqlite://",
        risk=0.01,
        quotes={"BTC": {"cash": 10.0}, "ETH": {"cash": 100.0}},
    )
    book = quote_portfolios(settings, members())
    assert {q: p.cash for q, p in book.portfolios.items()} == {"BTC": 10.0, "ETH": 100.0}
    assert {p.cash_buffer for p in book.portfolios.values()} == {0.02}  # live's default
    assert AccountSettings().cash_buffer == 0.0  # backtests: as they were

    def enter(label: str, symbol: str) -> list:
        exits = ExitSpec(stop_distance=0.1)
        return book.handle(SignalRaised(1, 1, label, symbol, "5m", "long", "enter", 1.0, exits))

    # 0.01 x 100 ETH / 0.1 = 10 units: ETH's cash, not BTC's (1 unit)
    assert enter("#1 sr_breakout XRP/ETH", "XRP/ETH")[0].quantity == pytest.approx(10.0)
    book.handle(DisableInstance(2, "#1 sr_breakout NXT/BTC"))  # no symbol: by its label
    assert book.portfolios["BTC"].disabled == {"#1 sr_breakout NXT/BTC"}
    assert book.portfolios["ETH"].disabled == set()
    refused = enter("#9 sr_breakout XRP/USDT", "XRP/USDT")[0]
    assert refused.reason == "no cash in USDT: this run's portfolios hold BTC, ETH (restart to add)"
    state = book.state()
    assert state["quotes"]["ETH"]["cash"] == 100.0 and state["equity"] is None


def test_a_quote_currencys_free_balance_is_cash_not_an_unknown_position() -> None:
    from core.vocabulary import TradeStatus
    from live.node import LiveNode
    from live.setup import Warmup
    from live.venues.reports import BalanceReport

    both = [
        PortfolioMember("#1 eth", make_strategy("sr_breakout", {}), "ETH/BTC", "5m"),
        PortfolioMember("#2 xrp", make_strategy("sr_breakout", {}), "XRP/ETH", "5m"),
    ]
    node = LiveNode(LiveSettings("binance", None, "sqlite://"), both, Warmup(), None)
    trade = {"status": TradeStatus.ACTIVE, "symbol": "ETH/BTC", "side": "long", "quantity": 0.5}
    node.trades = lambda: [trade]  # 0.5 ETH bought with BTC, its bracket locks it
    # 100 ETH free: the ETH portfolio's cash; 0.5 locked by the bracket: the position
    node._check_positions(BalanceReport({"ETH": 100.0, "BTC": 10.0}, {"ETH": 100.5, "BTC": 10.0}))
    assert node.warnings == []
    node._check_positions(BalanceReport({"ETH": 100.0}, {"ETH": 101.0}))  # 0.5 ETH unknown
    assert node.warnings == [
        "the account holds 1 ETH, the open trades in the database 0.5: the difference is not "
        "ours and is left untouched"
    ]
