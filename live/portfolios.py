"""One portfolio per quote currency in one live node.

A pair's price and cash are in its quote currency: ETH/BTC is bought with BTC, LTC/ETH with ETH.
An account holds each currency apart, so instances quoted in BTC and in ETH cannot share one
cash figure: each quote currency has its own LivePortfolio (live/ops/control.py), sized on its
own cash (dry run: the starting cash of that currency; real mode: the account's free balance of
it), with its own equity and positions.

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

from actors.messages import SignalRaised, SignalRejected
from actors.portfolio_kernel import PortfolioMember
from core.vocabulary import SignalAction
from live.ops.control import LivePortfolio

if TYPE_CHECKING:
    from live.node import LiveSettings
    from live.ops.recovery import Restored


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
        return {
            "cash": only["cash"] if only else None,
            "equity": only["equity"] if only else None,
            "positions": sum(s["positions"] for s in per.values()),
            "rejections": rejections,
            "quotes": {
                q: {"cash": s["cash"], "equity": s["equity"], "positions": s["positions"]}
                for q, s in per.items()
            },
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
        by_quote[quote] = LivePortfolio(own, weights, {}, hedged, position_limits=limits)
    return QuotePortfolios(by_quote, {m.label: m.symbol for m in members})


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
