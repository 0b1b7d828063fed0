"""Risk limits in the live portfolio (live/portfolios.GuardedPortfolio), in process: the dry-run
exchange, the order manager and the quote portfolios wired by the live runtime as the node wires
them, fed bars and signals by hand.

The numbers (exact in binary): 10 BTC, no fees, risk 0.25 and a stop 0.15625 below: an entry
at 0.3125 buys 0.25 x 10 / 0.15625 = 16 ETH (5 BTC), its stop at 0.15625 is never reached. A bar closing at 0.28125 marks them at 4.5: equity 9.5,
5% lost on the day. A limit of 5% breaches there, not at 0.28126 (equity 9.50016)."""

from __future__ import annotations

import datetime as dt

import pytest

from actors.messages import BarClosed, ExitSpec, SignalRaised
from actors.order_manager import OrderManager
from actors.weighted_portfolio import PortfolioMember
from core.vocabulary import OrderRole, TradeStatus
from live.actor_group import ActorGroup
from live.dry_run import DryRunExchange
from live.node import LiveSettings
from live.portfolios import GuardedPortfolio, QuotePortfolios, quote_portfolios
from live.risk_limits import OnBreach, RiskLimits
from live.runtime import EXCHANGE, LiveRuntime
from store.risk import clear_risk, load_risk
from strategies.registry import make_strategy

STEP = 300 * 10**9  # 5m in ns
T0 = int(dt.datetime(2024, 3, 1, 10, tzinfo=dt.UTC).timestamp()) * 10**9
DAY = 86_400 * 10**9
LIMITS = RiskLimits(max_daily_loss=0.05)


def members() -> list[PortfolioMember]:
    strategy = make_strategy("sr_breakout", {})
    return [PortfolioMember(label, strategy, "ETH/BTC", "5m") for label in ("a", "b")]


class Desk:
    """The node's wiring in process: exchange first, then the orders and the portfolio."""

    def __init__(self, db_url: str, limits: RiskLimits = LIMITS) -> None:
        settings = LiveSettings(
            "binance", None, db_url, cash=10.0, fee_bps=0.0, risk=0.25, min_notional=0.0,
            cash_buffer=0.0, limits=limits,
        )  # fmt: skip
        self.runtime = LiveRuntime(None)
        routes = {m.label: m.series for m in members()}
        self.portfolios = quote_portfolios(settings, members())
        for name, actor in (
            (EXCHANGE, DryRunExchange(0.0, 0.0, routes)),
            ("orders", OrderManager()),
            ("portfolio", self.portfolios),
        ):
            group = ActorGroup([(name, actor)])
            self.runtime.add(name, group, group.subscriptions())
        self.k = 0

    @property
    def book(self) -> GuardedPortfolio:
        return self.portfolios.portfolios["BTC"]

    def bar(self, open_: float, close: float, ts: int | None = None) -> None:
        ts = T0 + self.k * STEP if ts is None else ts
        self.k += 1
        high, low = max(open_, close), min(open_, close)
        self.runtime.on_bars(
            [BarClosed(ts, "ETH/BTC", "5m", ts - STEP, open_, high, low, close, 1.0)]
        )

    def signal(self, strategy: str, action: str, price: float = 0.3125) -> list:
        ts = T0 + (self.k - 1) * STEP
        self.seen: list = []
        self.runtime.observers.append(self.seen.append)
        try:
            exits = ExitSpec(stop_distance=0.15625) if action == "enter" else None
            msg = SignalRaised(ts, self.k, strategy, "ETH/BTC", "5m", "long", action, price, exits)
            self.runtime.deliver([msg])
        finally:
            self.runtime.observers.pop()
        return [m for m in self.seen if type(m).__name__ in ("SignalRejected", "OpenTrade")]

    def trades(self) -> list[dict]:
        return self.runtime.query("orders", "orders", "trades")


def opened(desk: Desk, close: float) -> Desk:
    """a enters at 0.3125 (16 ETH), the next bar opens there (the fill) and closes at `close`."""
    desk.bar(0.3125, 0.3125)
    [open_trade] = desk.signal("a", "enter")
    assert type(open_trade).__name__ == "OpenTrade" and open_trade.quantity == 16.0
    desk.bar(0.3125, close)
    return desk


def test_the_daily_loss_breaches_at_its_threshold_and_not_before(sqlite_url) -> None:
    desk = opened(Desk(sqlite_url), 0.28126)
    assert desk.book.marked_equity() == pytest.approx(9.50016) and desk.book.guard.blocked() is None
    desk.bar(0.28126, 0.28125)
    assert desk.book.marked_equity() == 9.5
    breach = desk.book.guard.blocked()
    assert breach is not None and breach.kind == "daily_loss" and breach.scope == "BTC"
    state = desk.portfolios.state()["quotes"]["BTC"]
    assert state["breached"] and state["limits"] == "daily loss 5%; on breach block"
    assert state["breaches"] == [
        "risk limit daily_loss breached (BTC): lost 5% of the day's starting equity 10 (limit 5%)"
    ]


def test_after_a_breach_entries_are_refused_with_the_reason_and_exits_still_fill(
    sqlite_url,
) -> None:
    desk = opened(Desk(sqlite_url), 0.28125)
    [refused] = desk.signal("b", "enter", 0.28125)
    assert type(refused).__name__ == "SignalRejected"
    assert refused.reason.startswith("risk limit daily_loss breached (BTC): lost 5%")
    assert "no new entries" in refused.reason
    desk.signal("a", "exit", 0.28125)  # the signal exit goes out ...
    desk.bar(0.25, 0.25)  # ... and fills at the next open
    [trade] = desk.trades()
    assert trade["status"] == TradeStatus.CLOSED and trade["exit_reason"] == OrderRole.SIGNAL
    assert trade["exit_price"] == 0.25 and desk.book.positions == {}
    assert desk.book.cash == 9.0  # 5 + 16 x 0.25


def test_on_breach_close_flattens_at_the_next_bar(sqlite_url) -> None:
    desk = opened(
        Desk(sqlite_url, RiskLimits(max_daily_loss=0.05, on_breach=OnBreach.CLOSE)), 0.28125
    )
    desk.bar(0.25, 0.25)  # the exit sent at the breach fills at this open
    [trade] = desk.trades()
    assert trade["status"] == TradeStatus.CLOSED and trade["exit_reason"] == OrderRole.RISK_LIMIT
    assert trade["exit_price"] == 0.25
    # the same breach under block: the trade stays open
    kept = opened(Desk(sqlite_url.replace(".db", "-block.db")), 0.28125)
    kept.bar(0.25, 0.25)
    assert [t["status"] for t in kept.trades()] == [TradeStatus.ACTIVE]


def test_a_breach_survives_a_restart_until_the_day_rolls_or_reset_limits(db_url) -> None:
    opened(Desk(db_url), 0.28125)
    stored = load_risk(db_url, "binance", "dry-run")
    assert stored["BTC"]["breach_kind"] == "daily_loss" and stored["BTC"]["day_start"] == 10.0
    again = Desk(db_url)  # a restart: the same day, still stopped
    again.bar(0.3125, 0.3125)
    [refused] = again.signal("b", "enter")
    assert type(refused).__name__ == "SignalRejected" and "daily_loss breached" in refused.reason
    tomorrow = Desk(db_url)  # a restart the next UTC day: the daily loss is forgotten
    tomorrow.bar(0.3125, 0.3125, ts=T0 + DAY)
    tomorrow.k = 1 + DAY // STEP
    [entry] = tomorrow.signal("b", "enter")
    assert type(entry).__name__ == "OpenTrade"
    assert load_risk(db_url, "binance", "dry-run")["BTC"]["breach_kind"] is None


def test_reset_limits_clears_a_drawdown_breach_for_the_next_start(db_url) -> None:
    limits = RiskLimits(max_drawdown=0.05)
    opened(Desk(db_url, limits), 0.28125)
    assert load_risk(db_url, "binance", "dry-run")["BTC"]["breach_kind"] == "drawdown"
    tomorrow = Desk(db_url, limits)
    tomorrow.bar(0.3125, 0.3125, ts=T0 + DAY)
    assert tomorrow.book.guard.blocked() is not None  # a drawdown does not roll with the day
    [line] = clear_risk(db_url)
    assert line.startswith("binance dry-run BTC: drawdown 5% from the high-water mark 10")
    fresh = Desk(db_url, limits)
    fresh.bar(0.3125, 0.3125)
    [entry] = fresh.signal("b", "enter")
    assert type(entry).__name__ == "OpenTrade"


def test_max_open_and_order_notional_refuse_one_entry_each(sqlite_url) -> None:
    desk = Desk(sqlite_url, RiskLimits(max_open=1, max_order_notional=0.5))
    assert BarClosed not in desk.book.subscriptions()  # no equity limit: no bar needed
    desk.k = 1
    [first] = desk.signal("a", "enter")  # 5 BTC = 50% of 10: allowed exactly
    assert type(first).__name__ == "OpenTrade"
    [second] = desk.signal("b", "enter")
    assert second.reason == "risk limit open_positions: 1 positions open or pending, 1 allowed"
    over = Desk(sqlite_url, RiskLimits(max_order_notional=0.49999))
    over.k = 1
    [refused] = over.signal("a", "enter")
    assert refused.reason.startswith("risk limit order_notional: order notional 5 > 49.999%")


def test_no_limit_set_is_the_portfolio_of_before(sqlite_url) -> None:
    desk = Desk(sqlite_url, RiskLimits())
    assert type(desk.book).__name__ == "LivePortfolio" and isinstance(
        desk.portfolios, QuotePortfolios
    )
    assert "breached" not in desk.portfolios.state()["quotes"]["BTC"]


def test_an_instance_breach_closes_only_that_instances_trade(sqlite_url) -> None:
    """a long and b short 16 ETH each at 0.3125: at 0.28125 a lost 0.5 (5% of the account's
    10), b won 0.5, the account is flat: only a's trade is closed, only a is stopped."""
    desk = Desk(sqlite_url, RiskLimits(max_daily_loss=0.05, on_breach=OnBreach.CLOSE))
    desk.bar(0.3125, 0.3125)
    [long] = desk.signal("a", "enter")
    ts = T0
    short = SignalRaised(
        ts, 99, "b", "ETH/BTC", "5m", "short", "enter", 0.3125, ExitSpec(stop_distance=0.15625)
    )
    desk.runtime.deliver([short])
    desk.bar(0.3125, 0.28125)
    assert desk.book.marked_equity() == 10.0
    [breach] = desk.book.guard.breaches()
    assert breach.scope == "BTC a" and "lost 5% of the day's starting equity 10" in breach.reason
    desk.bar(0.25, 0.25)
    by = {t["strategy"]: t for t in desk.trades()}
    assert by["a"]["exit_reason"] == OrderRole.RISK_LIMIT and by["a"]["exit_price"] == 0.25
    assert by["b"]["status"] == TradeStatus.ACTIVE and by["b"]["quantity"] == 16.0
    assert desk.book.guard.blocked("b") is None and desk.book.guard.blocked("a") is breach


def test_an_instance_breach_is_stored_without_its_pnl_baselines(sqlite_url) -> None:
    desk = Desk(sqlite_url, RiskLimits(max_daily_loss=0.05))
    desk.bar(0.3125, 0.3125)
    desk.signal("a", "enter")
    desk.runtime.deliver(
        [
            SignalRaised(
                T0,
                99,
                "b",
                "ETH/BTC",
                "5m",
                "short",
                "enter",
                0.3125,
                ExitSpec(stop_distance=0.15625),
            )
        ]
    )
    desk.bar(0.3125, 0.28125)
    stored = load_risk(sqlite_url, "binance", "dry-run")
    assert stored["BTC a"]["breach_kind"] == "daily_loss" and stored["BTC a"]["day_start"] is None
    assert stored["BTC"]["breach_kind"] is None and stored["BTC"]["day_start"] == 10.0
    again = Desk(sqlite_url, RiskLimits(max_daily_loss=0.05))  # a restart: a stays stopped
    again.bar(0.3125, 0.3125)
    [refused] = again.signal("a", "enter")
    assert "risk limit daily_loss breached (BTC a)" in refused.reason
    [entry] = again.signal("b", "enter")
    assert type(entry).__name__ == "OpenTrade"
