"""One portfolio per quote currency in one live node.

A pair's price and cash are in its quote currency: ETH/BTC is bought with BTC, LTC/ETH with ETH.
An account holds each currency apart, so instances quoted in BTC and in ETH cannot share one
cash figure: each quote currency has its own LivePortfolio, sized on its own cash (dry run: the
starting cash of that currency; real mode: the account's free balance of it), with its own equity
and positions. `LivePortfolio` obeys the commands of the control (live/ops/control.py): an
instance disabled or enabled while running. It lives here, not beside the control, because the
portfolio actor's Ray process imports this module: it must not load pandas as the control does.

`QuotePortfolios` is the node's one "portfolio" actor (in process and on Ray, inside an
ActorGroup, which hands every message of a subscribed type to every member): it sends each
message to the portfolio of the message's quote currency, from the message's symbol, or for the
messages that name only an instance (DisableInstance, EnableInstance) from that instance's
pair. The node and the control call it as they called the one LivePortfolio; calls about cash
take one amount per quote currency.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from actors.messages import (
    BarClosed,
    CloseTrade,
    DisableInstance,
    EnableInstance,
    OpenTrade,
    SignalRaised,
    SignalRejected,
    TradeClosed,
    TradeOpened,
)
from actors.weighted_portfolio import PortfolioMember, WeightedPortfolio
from core.vocabulary import OrderRole, SignalAction
from live.risk_limits import Breach, OnBreach, RiskGuard, RiskLimits, SqlRiskStore

if TYPE_CHECKING:
    from live.node import LiveSettings
    from live.ops.recovery import Restored


class LivePortfolio(WeightedPortfolio):
    """WeightedPortfolio that obeys DisableInstance / EnableInstance, and whose cash is set again
    after a restart (live/ops/recovery.py)."""

    handlers = {
        **WeightedPortfolio.handlers,
        DisableInstance: "on_disable",
        EnableInstance: "on_enable",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.disabled: set[str] = set()

    def on_signal(self, msg: SignalRaised) -> list:
        if msg.action == SignalAction.ENTER and msg.strategy in self.disabled:
            self.marks[msg.symbol] = msg.price
            return self._reject(msg, f"instance {msg.strategy} is disabled: no new entries")
        return super().on_signal(msg)

    def on_disable(self, msg: DisableInstance) -> list:
        self.disabled.add(msg.strategy)
        if not msg.close_positions:
            return []
        return [
            CloseTrade(msg.ts, p.trade_id, OrderRole.DISABLED)
            for p in self.open_positions(msg.strategy)
        ]

    def on_enable(self, msg: EnableInstance) -> list:
        self.disabled.discard(msg.strategy)
        if msg.weight is not None:
            self.weights[msg.strategy] = float(msg.weight)
        if msg.hedge:
            self.hedged = self.hedged | {msg.strategy}
        if msg.position_limit is not None:
            self.position_limits[msg.strategy] = int(msg.position_limit)
        return []

    def reset_cash(self, value: float) -> float:
        """After a restart in real mode: the cash is what the account really holds."""
        self._cash.add(float(value) - self.cash)
        return self.cash

    def book(self, flows: list[float]) -> float:
        """After a restart in dry run: the cash flows of the trades closed before the stop."""
        for flow in flows:
            self._cash.add(flow)
        return self.cash


def quote_of(symbol: str) -> str:
    """The quote currency of a ccxt spot symbol BASE/QUOTE."""
    return symbol.split("/")[1]


def quotes_of(members: Iterable[PortfolioMember]) -> list[str]:
    """The quote currencies the instances trade, sorted."""
    return sorted({quote_of(m.symbol) for m in members})


class QuotePortfolios:
    """LivePortfolios by quote currency, answering as one portfolio actor."""

    def __init__(self, portfolios: Mapping[str, LivePortfolio], labels: Mapping[str, str]) -> None:
        """`portfolios`: quote currency -> its portfolio; `labels`: instance label -> symbol."""
        self.portfolios = dict(portfolios)
        self.quote_of_label = {label: quote_of(symbol) for label, symbol in labels.items()}
        kinds: dict[type, None] = {}
        for portfolio in self.portfolios.values():
            kinds.update(dict.fromkeys(portfolio.subscriptions()))
        self._kinds = tuple(kinds)

    def subscriptions(self) -> tuple[type, ...]:
        return self._kinds

    def handle(self, msg: Any) -> list:
        symbol = getattr(msg, "symbol", None)
        quote = quote_of(symbol) if symbol is not None else self.quote_of_label.get(msg.strategy)
        portfolio = self.portfolios.get(quote) if quote is not None else None
        if portfolio is not None:
            return portfolio.handle(msg)
        if type(msg) is SignalRaised and msg.action == SignalAction.ENTER:
            # an instance adopted while running on a pair of a currency this run has no cash in
            traded = ", ".join(self.portfolios)
            reason = f"no cash in {quote}: this run's portfolios hold {traded} (restart to add)"
            return [
                SignalRejected(msg.ts, msg.signal_id, msg.strategy, msg.symbol, msg.side, reason)
            ]
        return []

    def add_instance(self, label: str, symbol: str) -> None:
        """An instance enabled while running: its commands go to its pair's portfolio."""
        self.quote_of_label[label] = quote_of(symbol)

    # -- the node's calls ---------------------------------------------------------------------
    def reset_cash(self, cash: Mapping[str, float]) -> dict[str, float]:
        """Real mode, at start: each portfolio's cash is the account's free balance of it."""
        return {q: p.reset_cash(cash.get(q, 0.0)) for q, p in self.portfolios.items()}

    def book(self, flows: Mapping[str, list[float]]) -> dict[str, float]:
        """Dry run, at a restart: each quote's closed trades' cash flows."""
        return {q: p.book(flows.get(q, [])) for q, p in self.portfolios.items()}

    def state(self) -> dict[str, Any]:
        """Per quote currency (cash, equity, positions), and in all: positions and rejections.
        `cash` and `equity` at the top are the one quote's when one is traded (an amount in
        BTC and one in ETH do not add up), else None."""
        per = {q: p.state() for q, p in self.portfolios.items()}
        rejections = sorted(
            (r for s in per.values() for r in s["rejections"]),
            key=lambda r: r["ts"],
        )
        only = next(iter(per.values())) if len(per) == 1 else None
        shown = ("cash", "equity", "positions", "limits", "breached", "breaches")
        return {
            "cash": only["cash"] if only else None,
            "equity": only["equity"] if only else None,
            "positions": sum(s["positions"] for s in per.values()),
            "rejections": rejections,
            "quotes": {q: {k: s[k] for k in shown if k in s} for q, s in per.items()},
        }


def quote_portfolios(
    settings: LiveSettings,
    members: list[PortfolioMember],
    free: Mapping[str, float] | None = None,
) -> QuotePortfolios:
    """A LivePortfolio per quote currency of the instances, each with the settings given for
    that currency (`settings.quotes`) and, in real mode, the account's `free` balance of it
    as its cash."""
    by_quote = {}
    for quote in quotes_of(members):
        own = dataclasses.replace(settings, **settings.quotes.get(quote, {}))
        if free is not None:
            own = dataclasses.replace(own, cash=float(free.get(quote, 0.0)))
        mine = [m for m in members if quote_of(m.symbol) == quote]
        weights = {m.label: m.weight for m in mine}
        hedged = frozenset(m.label for m in mine if m.strategy.hedge)
        limits = {m.label: m.strategy.entry_limit() for m in mine if m.strategy.pyramiding}
        risk = getattr(settings, "limits", RiskLimits())
        if risk.active():
            mode = "real" if settings.real else "dry-run"
            store = SqlRiskStore(settings.db_url, settings.exchange, mode)
            guard = RiskGuard(risk, quote, store)
            by_quote[quote] = GuardedPortfolio(
                own, weights, {}, hedged, position_limits=limits, guard=guard
            )
        else:  # no limit set: the portfolio of before, not even marked on bars
            by_quote[quote] = LivePortfolio(own, weights, {}, hedged, position_limits=limits)
    return QuotePortfolios(by_quote, {m.label: m.symbol for m in members})


class GuardedPortfolio(LivePortfolio):
    """LivePortfolio under risk limits (live/risk_limits.py): every entry is checked before it
    is sized and sent, and with a limit on equity every closed bar marks the positions and
    checks the account and each instance. A latched breach refuses new entries (exits, stops
    and targets go on) and, with on_breach close, closes its scope's trades at market."""

    handlers = {**LivePortfolio.handlers, BarClosed: "on_bar"}

    def __init__(self, *args: Any, guard: RiskGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard
        # marks of the bars, apart from `marks` (those size entries as the backtest does)
        self.bar_marks: dict[str, float] = {}
        self.realised: dict[str, float] = {}  # instance -> pnl of its closed trades
        self._closing: set[int] = set()  # trades a breach is closing
        if not guard.limits.watches_equity():  # no bar needed: no call per bar on Ray
            self._table.pop(BarClosed)

    def subscriptions(self) -> tuple[type, ...]:
        return tuple(self._table)

    def marked_equity(self) -> float:
        """Cash plus the positions at their latest bar's close (else the portfolio's mark)."""
        values = [
            p.sign
            * p.quantity
            * self.bar_marks.get(p.symbol, self.marks.get(p.symbol, p.entry_price))
            for p in self.positions.values()
        ]
        return math.fsum([*self._cash.partials, *values])

    def instance_pnl(self) -> dict[str, float]:
        """Per instance that traded: closed trades' pnl plus open positions' at their marks."""
        out = dict(self.realised)
        for p in self.positions.values():
            mark = self.bar_marks.get(p.symbol, self.marks.get(p.symbol, p.entry_price))
            out[p.strategy] = out.get(p.strategy, 0.0) + p.sign * p.quantity * (
                mark - p.entry_price
            )
        return out

    def on_bar(self, msg: BarClosed) -> list:
        self.bar_marks[msg.symbol] = msg.close
        return self._watch(msg.ts)

    def _watch(self, ts: int) -> list:
        if not self.guard.limits.watches_equity():
            return []
        return self._flatten(ts, self.guard.mark(ts, self.marked_equity(), self.instance_pnl()))

    def _flatten(self, ts: int, breaches: list[Breach]) -> list:
        """on_breach close: the breached scope's open trades, closed at market."""
        if self.guard.limits.on_breach != OnBreach.CLOSE:
            return []
        out = []
        for breach in breaches:
            for p in list(self.positions.values()):
                if breach.scope in (self.guard.account, self.guard.scope(p.strategy)):
                    out.extend(self._close(ts, p.trade_id))
        return out

    def _close(self, ts: int, trade_id: int) -> list:
        if trade_id in self._closing:
            return []
        self._closing.add(trade_id)
        return [CloseTrade(ts, trade_id, OrderRole.RISK_LIMIT)]

    def on_signal(self, msg: SignalRaised) -> list:
        if msg.action != SignalAction.ENTER:
            return super().on_signal(msg)
        out = self._watch(msg.ts)  # checked before every entry, on the latest marks
        latched = self.guard.blocked(msg.strategy)
        breach = self.guard.before_entry(
            msg.ts, msg.strategy, len(self.positions) + len(self._reserved)
        )
        if breach is not None:
            if breach.latching and latched is None:  # latched by this entry (orders per minute)
                out.extend(self._flatten(msg.ts, [breach]))
            self.marks[msg.symbol] = msg.price
            return out + self._reject(msg, breach.refusal())
        result = super().on_signal(msg)
        if any(type(m) is OpenTrade for m in result):
            self.guard.entered(msg.ts)
        return out + result

    def size(self, msg: SignalRaised) -> tuple[float, str | None]:
        quantity, reason = super().size(msg)
        if reason is None:
            breach = self.guard.order_notional(msg.ts, quantity * msg.price, self.equity())
            if breach is not None:
                return 0.0, breach.refusal()
        return quantity, reason

    def on_trade_opened(self, msg: TradeOpened) -> list:
        out = super().on_trade_opened(msg)
        # an entry pending when the breach latched (or a trade restored at a start while
        # stopped): closed as soon as it exists
        breach = self.guard.blocked(msg.strategy)
        if breach is not None and breach.latching and self.guard.limits.on_breach == OnBreach.CLOSE:
            out = [*out, *self._close(msg.ts, msg.trade_id)]
        return out

    def on_trade_closed(self, msg: TradeClosed) -> list:
        if msg.trade_id in self.positions:
            self.realised[msg.strategy] = self.realised.get(msg.strategy, 0.0) + msg.pnl
        self._closing.discard(msg.trade_id)
        return super().on_trade_closed(msg)

    def state(self) -> dict[str, Any]:
        breaches = self.guard.breaches()
        return {
            **super().state(),
            "limits": self.guard.limits.text(),
            "breached": bool(breaches),
            "breaches": [b.text() for b in breaches],
        }


def closed_flows(
    settings: LiveSettings, members: list[PortfolioMember], restored: Restored
) -> dict[str, list[float]]:
    """Dry run restart: the cash flows of the trades closed before, per quote currency (the
    restored state's own list when one is traded; else read again per currency's instances)."""
    quotes = quotes_of(members)
    if len(quotes) == 1:
        return {quotes[0]: list(restored.cash_flows)}
    from live.ops.recovery import load_state

    return {
        quote: load_state(
            settings.db_url,
            settings.exchange,
            [m.label for m in members if quote_of(m.symbol) == quote],
            True,
        ).cash_flows
        for quote in quotes
    }


def equity_text(quotes: Mapping[str, Mapping[str, float]]) -> str:
    """The status line's equity: "10.02 BTC, 99.5 ETH" (one figure per quote currency)."""
    return ", ".join(
        f"{s['equity']:,.8g} {q}" if math.isfinite(s["equity"]) else f"? {q}"
        for q, s in quotes.items()
    )
