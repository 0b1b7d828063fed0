"""Before trading: which instances, checks against the exchange, warm-up bars.

Everything here reads; nothing is written until every check passed (`commit_warmup` then saves
the bars fetched from the exchange). Start-up order (docs/live.md#start-up-order): load instances and
weights -> check the exchange (reachable, symbols listed, intervals served) -> catch up bars
(REST) -> warm the strategies -> start the streams.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UserError

if TYPE_CHECKING:
    from ccxt import Exchange

    from live.venues.ccxt_clients import CcxtJson

import pandas as pd

from actors.weighted_portfolio import PortfolioMember
from core.intervals import interval_ns

SeriesKey = tuple[str, str]
MS = 1_000_000


class LiveSetupError(UserError):
    """A live start-up problem the user can fix; the message says what, where and how."""


@dataclass
class Warmup:
    frames: dict[SeriesKey, pd.DataFrame] = field(default_factory=dict)
    fetched: dict[SeriesKey, list[list]] = field(default_factory=dict)  # REST bars, to store
    last_ms: dict[SeriesKey, int] = field(default_factory=dict)  # last closed bar per series


def select_members(
    db_url: str,
    exchange: str,
    config: Path | None,
    family: str | None,
    symbol: str | None,
    interval: str | None,
    ids: list[int] | None,
    first: str | None = None,
) -> list[PortfolioMember]:
    """Instances to trade: those of a prod.json, else the enabled ones in the database.
    `first`: several exchanges in one node (live/multi.py), the first of them; the instances
    are then only those `exchange_of` routes to `exchange` (a prod.json's entries without an
    exchange of their own go to the first). None: one exchange, every entry of a prod.json."""
    from backtest.portfolio_config import build_members, instance_label, load_portfolio_config

    if config is not None:
        entries = load_portfolio_config(config)
        # labels over the whole file: unique across its exchanges, so are client order ids
        pairs = [
            (m, e)
            for m, e in zip(build_members(entries), entries, strict=True)
            if _keep(m.strategy.name, m.symbol, m.interval, family, symbol, interval)
            and (first is None or exchange_of(e.exchange, first) == exchange)
        ]
        members = [m for m, e in pairs if not ids or e.instance_id in ids]
    else:
        from store.instances import list_instances, live_states
        from strategies.registry import make_strategy

        tradable = live_states(db_url, exchange)  # enabled, and its pair not disabled
        rows = list_instances(db_url, True, family, symbol, interval)
        rows = [
            r
            for r in rows
            if (r.exchange if first is None else exchange_of(r.exchange, first)) == exchange
            and (not ids or r.id in ids)
            and tradable.get(r.id, (False, 0.0))[0]
        ]
        members = []
        for r in rows:
            strategy = make_strategy(r.family, r.params)
            label = f"#{r.id} {instance_label(strategy, r.symbol, r.interval)}"
            members.append(PortfolioMember(label, strategy, r.symbol, r.interval, r.weight))
    if not members:
        given = ", ".join(
            f"{k}={v}"
            for k, v in (
                ("family", family),
                ("symbol", symbol),
                ("interval", interval),
                ("instances", ids),
            )
            if v
        )
        where = f"in {config}" if config else f"enabled for {exchange} in the database"
        raise LiveSetupError(
            f"no strategy instances {where}"
            + (f" matching {given}" if given else "")
            + "; register some with `cli.py strategies add ...` or `cli.py data demo`, "
            "enable them with `cli.py strategies enable ID`, or pass --config prod.json"
        )
    return members


def exchange_of(declared: str | None, first: str) -> str:
    """The exchange an instance trades on in a node of several: its own (a database row's, a
    prod.json entry's or the file's), else the first exchange given. The one router of
    instances to exchanges: an instance's orders go to its node's broker only."""
    return declared or first


def _keep(
    name: str, sym: str, ivl: str, family: str | None, symbol: str | None, interval: str | None
) -> bool:
    return (
        (not family or name == family)
        and (not symbol or sym == symbol)
        and (not interval or ivl == interval)
    )


def check_exchange(client: Exchange, url: str | None, members: list[PortfolioMember]) -> None:
    """The exchange answers, lists every symbol and serves every interval."""
    import ccxt

    where = url or f"{client.id}'s own servers"
    try:
        client.load_markets()
    except ccxt.NetworkError as exc:
        raise LiveSetupError(
            f"cannot reach exchange {client.id} at {where} ({type(exc).__name__}); start a local "
            "one with `cli.py exchange serve --data data/sample` or fix --url"
        ) from None
    for m in members:
        if m.symbol not in client.markets:
            listed = ", ".join(sorted(client.markets)[:8])
            raise LiveSetupError(
                f"symbol {m.symbol} (instance {m.label}) is not listed on {client.id} at {where}; "
                f"listed: {listed}...; fix the instance or use --symbol"
            )
        if m.interval not in (client.timeframes or {}):
            raise LiveSetupError(
                f"interval {m.interval} (instance {m.label}) is not offered by {client.id}; "
                f"offered: {', '.join(client.timeframes or {})}"
            )


def warm_up(client: Exchange, db_url: str, exchange: str, members: list[PortfolioMember]) -> Warmup:
    """Stored bars plus the exchange's latest closed bars, per series, up to the exchange's now."""
    import ccxt

    out = Warmup()
    for key in sorted({m.series for m in members}):
        try:
            rows = client.fetch_ohlcv(key[0], key[1], None, 1000)
        except ccxt.BadRequest as exc:
            raise LiveSetupError(
                f"{client.id} does not serve {key[1]} bars for {key[0]} ({exc}); choose an "
                "interval it has (the local exchange serves each standard interval that "
                "complete UTC buckets of its stored bars can build)"
            ) from None
        closed = [r for r in rows[:-1]]  # the newest row is the bar in progress
        now_ms = int(rows[-1][0]) if rows else None
        stored = _stored(db_url, exchange, key, now_ms)
        fetched = _frame(closed)
        frame = pd.concat([stored[~stored.index.isin(fetched.index)], fetched]).sort_index()
        out.frames[key] = frame
        out.fetched[key] = closed
        if len(frame):
            out.last_ms[key] = int(pd.DatetimeIndex(frame.index[-1:]).as_unit("ns").asi8[0]) // MS
    return out


def _stored(db_url: str, exchange: str, key: SeriesKey, before_ms: int | None) -> pd.DataFrame:
    from store.bars import BarDataError, load_bars

    try:
        frame = load_bars(db_url, exchange, key[0], key[1])
    except BarDataError:
        return _frame([])
    frame = frame.loc[:, ["open", "high", "low", "close", "volume"]]
    if before_ms is not None:  # bars the exchange has not closed yet are not history
        limit = pd.Timestamp(before_ms, unit="ms", tz="UTC")
        frame = frame[frame.index + pd.Timedelta(interval_ns(key[1]), "ns") <= limit]
    return frame


def _frame(rows: list[list]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [r[:6] for r in rows], columns=["timestamp", "open", "high", "low", "close", "volume"]
    )
    index = pd.to_datetime(frame.pop("timestamp").astype("int64"), unit="ms", utc=True)
    frame.index = pd.DatetimeIndex(index, name="timestamp")
    return frame.astype("float64")


def commit_warmup(db_url: str, exchange: str, warm: Warmup) -> None:
    """Store the bars fetched for the warm-up (after every check passed)."""
    from live.venues.bar_stream import save_live_bars

    for key, rows in warm.fetched.items():
        if rows:
            save_live_bars(db_url, exchange, key, rows)


@dataclass(frozen=True)
class StartingCash:
    """A dry run's starting cash in one quote currency of the traded pairs."""

    amount: float
    quote: str
    source: str  # where it came from, for the start-up line


CashOption = float | Mapping[str, float]  # --cash AMOUNT, or --cash BTC=1,ETH=10


def parse_cash(text: str | None) -> CashOption | None:
    """`--cash`: one amount (one quote currency traded) or QUOTE=AMOUNT pairs, comma separated
    (one per quote currency); every amount positive and finite."""
    if text is None:
        return None
    text = text.strip()
    if "=" not in text:
        return _amount(text, text)
    out: dict[str, float] = {}
    for part in text.split(","):
        quote, sep, amount = (x.strip() for x in part.partition("="))
        if not sep or not quote or not quote.isalnum():
            raise LiveSetupError(
                f"--cash {text!r}: {part.strip()!r} is not QUOTE=AMOUNT; write e.g. "
                "--cash BTC=1,ETH=10 (or one amount when one quote currency is traded)"
            )
        quote = quote.upper()
        if quote in out:
            raise LiveSetupError(f"--cash {text!r} gives {quote} twice")
        out[quote] = _amount(amount, text)
    return out


def _amount(value: str, text: str) -> float:
    try:
        amount = float(value)
    except ValueError:
        amount = math.nan
    if not 0 < amount < math.inf:
        raise LiveSetupError(
            f"--cash {text!r}: {value!r} is not a positive, finite amount; write e.g. "
            "--cash 10 (one quote currency traded) or --cash BTC=1,ETH=10"
        )
    return amount


def starting_cash(
    client: Exchange,
    keys: tuple[str, str] | None,
    members: list[PortfolioMember],
    cash: CashOption | None,
    funding: Mapping[str, float],
) -> list[StartingCash]:
    """The dry run's starting cash per quote currency of the traded pairs (one portfolio each,
    live/portfolios.py): `cash` when given (one amount for one quote currency, else one per
    quote), else the account's free balance when API keys are set, else `funding` (the local
    exchange's default funding per quote currency)."""
    quotes = sorted({m.symbol.split("/")[-1] for m in members})
    given = _given_cash(cash, quotes)
    balance: Mapping[str, float] = {}
    if not given and keys is not None:
        balance = _free_balance(client, quotes)
    out = []
    for quote in quotes:
        if quote in given:
            out.append(StartingCash(given[quote], quote, "--cash"))
        elif balance.get(quote):
            out.append(StartingCash(balance[quote], quote, "the account's free balance"))
        elif quote in funding:
            out.append(StartingCash(funding[quote], quote, "the local exchange's default funding"))
        else:
            raise LiveSetupError(
                f"no starting cash for a dry run in {quote}: pass --cash AMOUNT (in {quote})"
                + (
                    f" or --cash {','.join(q + '=AMOUNT' for q in quotes)}"
                    if len(quotes) > 1
                    else ""
                )
            )
    return out


def _given_cash(cash: CashOption | None, quotes: list[str]) -> dict[str, float]:
    """--cash as an amount per quote currency; it must name exactly the traded ones."""
    if cash is None:
        return {}
    if not isinstance(cash, Mapping):
        if len(quotes) > 1:
            raise LiveSetupError(
                f"--cash {cash:g} is one amount, but the instances trade pairs quoted in "
                f"{', '.join(quotes)}: give one per quote currency, e.g. --cash "
                + ",".join(f"{q}=AMOUNT" for q in quotes)
            )
        return {quotes[0]: float(cash)}
    missing = [q for q in quotes if q not in cash]
    extra = sorted(set(cash) - set(quotes))
    if missing or extra:
        said = [f"no amount for {', '.join(missing)}"] if missing else []
        said += [f"{', '.join(extra)} is not the quote of a traded pair"] if extra else []
        raise LiveSetupError(
            f"--cash {','.join(f'{q}={a:g}' for q, a in cash.items())}: {'; '.join(said)} "
            f"(the instances trade pairs quoted in {', '.join(quotes)})"
        )
    return dict(cash)


def _free_balance(client: Exchange, quotes: list[str]) -> dict[str, float]:
    import ccxt

    try:
        balance = client.fetch_balance()
    except ccxt.BaseError as exc:
        raise LiveSetupError(
            f"cannot read the account's {', '.join(quotes)} balance with the API keys in the "
            f"environment ({type(exc).__name__}); fix the keys or pass --cash"
        ) from None
    return {q: float(balance.get(q, {}).get("free") or 0.0) for q in quotes}


def member_instances(members: list[PortfolioMember], config: Path | None) -> dict[str, int | None]:
    """label -> instance id (the key of its trained models): the "#id" prefix of a database
    instance's label, or the instance_id of its prod.json entry (None when it has none)."""
    import re

    by_label: dict[str, int | None] = {}
    if config is not None:
        from backtest.portfolio_config import build_members, load_portfolio_config

        entries = load_portfolio_config(config)
        by_label = {
            m.label: e.instance_id for m, e in zip(build_members(entries), entries, strict=True)
        }
    out: dict[str, int | None] = {}
    for m in members:
        found = re.match(r"#(\d+) ", m.label)
        out[m.label] = int(found.group(1)) if found else by_label.get(m.label)
    return out


@dataclass(frozen=True)
class MarketLimits:
    """The order limits of the traded markets, as the live portfolio applies them."""

    min_notional: float | None  # quote units; None: the exchange states none
    lot_size: float  # base units; 0: no step known
    source: str  # what they were read from, for the start-up line


def market_limits(client: Exchange, members: list[PortfolioMember]) -> MarketLimits:
    """Minimum notional (ccxt market limits.cost.min: Binance's NOTIONAL / MIN_NOTIONAL filter)
    and lot size (the amount step: LOT_SIZE stepSize) of the traded markets, read after
    `check_exchange` loaded them. One account trades them all with one setting, so the
    strictest wins: the largest minimum and the largest step (steps are powers of ten on
    Binance, so the largest is a whole multiple of the others)."""
    minimums, steps = [], []
    for symbol in sorted({m.symbol for m in members}):
        market = client.markets[symbol]
        cost = ((market.get("limits") or {}).get("cost") or {}).get("min")
        if cost:
            minimums.append(float(cost))
        step = _amount_step(client, market)
        if step:
            steps.append(step)
    where = f"{client.id} markets {', '.join(sorted({m.symbol for m in members}))}"
    return MarketLimits(max(minimums) if minimums else None, max(steps) if steps else 0.0, where)


def _amount_step(client: Exchange, market: CcxtJson) -> float | None:
    precision = (market.get("precision") or {}).get("amount")
    if precision is None:
        return None
    from ccxt.base.decimal_to_precision import TICK_SIZE

    return float(precision) if client.precisionMode == TICK_SIZE else 10.0 ** -float(precision)


def order_limits(
    min_notional: float | None, lot_size: float | None, market: MarketLimits
) -> tuple[float | None, float]:
    """The live settings' (min_notional, lot_size): the user's when given, else the market's
    (and without a market minimum, the backtests' default: None, a fraction of the cash)."""
    return (
        market.min_notional if min_notional is None else min_notional,
        market.lot_size if lot_size is None else lot_size,
    )
