"""`cli.py live`: trade the enabled instances (or a prod.json) live; dry run by default."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.live import Live
from rich.text import Text

from commands.errors import UserError
from commands.options import DbOpt
from core.vocabulary import TradeStatus

if TYPE_CHECKING:
    from live.risk_limits import RiskLimits

app = typer.Typer(invoke_without_command=True)
console = Console(stderr=True, soft_wrap=True)


UrlOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--url",
        help="Exchange base URL, e.g. "
        "http://127.0.0.1:8765 for `cli.py exchange serve` (default: the exchange's own); with "
        "several --exchange, one --url each, in the same order.",
    ),
]
ExchangesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--exchange",
        "-e",
        help="Exchange id (ccxt spelling; default binance); repeat it to trade several "
        "exchanges in one node, e.g. --exchange binance --url URL1 --exchange binanceus --url URL2.",
    ),
]
FamilyOpt = Annotated[str | None, typer.Option("--family", help="Only instances of this family.")]
SymbolOpt = Annotated[str | None, typer.Option("--symbol", help="Only instances on this symbol.")]
IntervalOpt = Annotated[str | None, typer.Option("--interval", help="Only this interval.")]
InstancesOpt = Annotated[
    str | None, typer.Option("--instances", help="Only these instance ids, e.g. 3,7.")
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Trade the instances and weights "
        "of this prod.json instead of the database's enabled instances; the file is followed "
        "while running (`cli.py deploy` rewrites it).",
    ),
]
RealOpt = Annotated[
    bool,
    typer.Option(
        "--real",
        help="Send real orders (keys from "
        "RAYTRADER_<EXCHANGE>_API_KEY/_SECRET or RAYTRADER_API_KEY/_SECRET).",
    ),
]
MarketOpt = Annotated[
    str,
    typer.Option(
        "--market",
        help="--real: spot (longs only; a short "
        "entry is refused) or margin (cross margin: shorts borrow their coins).",
    ),
]
CashOpt = Annotated[
    str | None,
    typer.Option(
        "--cash",
        help="Dry run: starting cash, in the "
        "quote currency of the traded pairs: AMOUNT when one is traded, else one per quote "
        "currency, e.g. BTC=1,ETH=10 (default: the account's free balance of each when API "
        "keys are set, else the local exchange's default funding: 10 BTC, 100 ETH, "
        "100000 USDT).",
    ),
]
CashBufferOpt = Annotated[
    float,
    typer.Option(
        "--cash-buffer",
        help="Fraction of each quote currency's cash never committed to entries (a market buy "
        "fills at the next open, which may be above the signal's close).",
    ),
]
RiskOpt = Annotated[float, typer.Option("--risk", help="Fraction of equity risked per trade.")]
FeeOpt = Annotated[float, typer.Option("--fee-bps", help="Dry run: fee per fill, bps.")]
SlippageOpt = Annotated[float, typer.Option("--slippage-bps", help="Dry run: slippage, bps.")]
DurationOpt = Annotated[
    float | None,
    typer.Option(
        "--duration", help="Stop after this many seconds (default: run until Ctrl-C or SIGTERM)."
    ),
]
OnDisableOpt = Annotated[
    str,
    typer.Option(
        "--on-disable",
        help="An instance disabled while "
        "running (`cli.py strategies disable ID`, or its pair disabled): keep its "
        "positions (managed by their exits) or close them at market.",
    ),
]
ModelUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--model-url",
        help="Ask the instances' models "
        "over HTTP at this `cli.py model run` API, e.g. http://127.0.0.1:8766 "
        "(default: the model files of the store, in process).",
    ),
]
ModelFallbackOpt = Annotated[
    str,
    typer.Option(
        "--model-fallback",
        help="When the model API is "
        "down, slow or refuses: trade (as without a model) or skip the signal.",
    ),
]
ModelTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--model-timeout",
        help="Seconds the model API may take for one prediction before the fallback applies.",
    ),
]
MinNotionalOpt = Annotated[
    float | None,
    typer.Option(
        "--min-notional",
        help="Smallest order "
        "notional, quote units (default: the exchange's minimum for the "
        "traded markets, else 0.01% of the cash as in backtests).",
    ),
]
LotSizeOpt = Annotated[
    float | None,
    typer.Option(
        "--lot-size",
        help="Quantity step, base units "
        "(default: the exchange's amount step for the traded markets).",
    ),
]
NoModelOpt = Annotated[bool, typer.Option("--no-model", help="Trade without the trained models.")]
ReconcileOpt = Annotated[
    float,
    typer.Option(
        "--reconcile-every",
        help="Real mode: minutes "
        "between audits of the exchange for orders and fills the database does "
        "not know (0: only at start).",
    ),
]

# risk limits (live/risk_limits.py, docs/live.md#risk-limits): all off unless given here or in
# the prod.json's "limits" object (these flags win over it)
MaxDailyLossOpt = Annotated[
    float | None,
    typer.Option(
        "--max-daily-loss",
        help="Stop new entries when the "
        "equity lost this fraction of the UTC day's starting equity (e.g. 0.05), until the day rolls.",
    ),
]
MaxDrawdownOpt = Annotated[
    float | None,
    typer.Option(
        "--max-drawdown",
        help="Stop new entries at this "
        "drawdown from the equity's high-water mark (e.g. 0.2), until `live reset-limits`.",
    ),
]
MaxOpenOpt = Annotated[
    int | None,
    typer.Option("--max-open", help="Most positions open (or pending) per quote currency."),
]
MaxOrderNotionalOpt = Annotated[
    float | None,
    typer.Option(
        "--max-order-notional", help="Refuse an entry above this fraction of equity (e.g. 0.25)."
    ),
]
MaxOrdersPerMinuteOpt = Annotated[
    int | None,
    typer.Option(
        "--max-orders-per-minute",
        help="More entries in a minute stop new entries until `live reset-limits`.",
    ),
]
OnBreachOpt = Annotated[
    str | None,
    typer.Option(
        "--on-breach",
        help="A limit breached: block new "
        "entries (positions kept, with their exits) or also close the positions at market "
        "(default: block).",
    ),
]


@app.callback()
def live(
    ctx: typer.Context,
    exchange: ExchangesOpt = None,
    url: UrlOpt = None,
    db: DbOpt = None,
    family: FamilyOpt = None,
    symbol: SymbolOpt = None,
    interval: IntervalOpt = None,
    instances: InstancesOpt = None,
    config: ConfigOpt = None,
    real: RealOpt = False,
    market: MarketOpt = "spot",
    cash: CashOpt = None,
    cash_buffer: CashBufferOpt = 0.02,
    risk: RiskOpt = 0.01,
    fee_bps: FeeOpt = 10.0,
    slippage_bps: SlippageOpt = 0.0,
    duration: DurationOpt = None,
    on_disable: OnDisableOpt = "keep",
    model_url: ModelUrlOpt = None,
    model_fallback: ModelFallbackOpt = "trade",
    model_timeout: ModelTimeoutOpt = 0.5,
    no_model: NoModelOpt = False,
    min_notional: MinNotionalOpt = None,
    lot_size: LotSizeOpt = None,
    reconcile_every: ReconcileOpt = 5.0,
    max_daily_loss: MaxDailyLossOpt = None,
    max_drawdown: MaxDrawdownOpt = None,
    max_open: MaxOpenOpt = None,
    max_order_notional: MaxOrderNotionalOpt = None,
    max_orders_per_minute: MaxOrdersPerMinuteOpt = None,
    on_breach: OnBreachOpt = None,
) -> None:
    """Trade live until Ctrl-C or SIGTERM (dry run: the simulated exchange fed live bars)."""
    if ctx.invoked_subcommand is not None:
        return
    limits = risk_limits(
        config,
        max_daily_loss=max_daily_loss,
        max_drawdown=max_drawdown,
        max_open=max_open,
        max_order_notional=max_order_notional,
        max_orders_per_minute=max_orders_per_minute,
        on_breach=on_breach,
    )
    from live.multi import exchanges_given
    from live.node import LiveSettings
    from live.ray_live import ray_for_live
    from live.session import FromExchange, LiveSession, ModelChoice, Selection
    from live.setup import parse_cash
    from live.venues.ccxt_clients import api_keys
    from localexchange.server_thread import DEFAULT_FUNDING
    from store.db import resolve_url

    ids = _ids(instances)
    exchanges, urls = exchanges_given(exchange or [], url or [], config)
    for one in urls:
        _check_url(one)
    _check_choices(market, on_disable, risk, reconcile_every, cash_buffer)
    given_cash = parse_cash(cash)
    _check_costs(fee_bps, slippage_bps, duration)
    _check_model_options(model_url, model_fallback, model_timeout, no_model)
    for name, value in (("--min-notional", min_notional), ("--lot-size", lot_size)):
        if value is not None and not 0 <= value < math.inf:
            raise UserError(f"{name} must be a number >= 0 (0: none), got {value}")
    keys = {}
    for name in exchanges:  # each exchange's own keys (RAYTRADER_<EXCHANGE>_API_KEY ...)
        keys[name] = api_keys(name)
        if real and keys[name] is None:
            up = name.upper()
            raise UserError(
                f"--real needs API keys in the environment: RAYTRADER_{up}_API_KEY and "
                f"RAYTRADER_{up}_API_SECRET (or RAYTRADER_API_KEY and RAYTRADER_API_SECRET)"
            )
    settings = [
        LiveSettings(
            name,
            address,
            resolve_url(db),
            fee_bps=fee_bps,
            slippage_bps=slippage_bps,
            risk=risk,
            real=real,
            market=market,
            reconcile_every=reconcile_every,
            cash_buffer=cash_buffer,
            limits=limits,
        )
        for name, address in zip(exchanges, urls or [None] * len(exchanges), strict=True)
    ]
    common = {
        "models": None if no_model else ModelChoice(model_url, model_fallback, model_timeout),
        "on_disable": on_disable,
        "say": console.print,
    }
    selection = Selection(config, family, symbol, interval, tuple(ids) if ids else None)
    funding = {
        name: FromExchange(given_cash, min_notional, lot_size, keys[name], DEFAULT_FUNDING)
        for name in exchanges
    }
    if len(settings) == 1:  # one exchange: the session of before, outputs unchanged
        session = LiveSession(
            settings[0],
            selection,
            start_ray=lambda: ray_for_live(console),
            from_exchange=funding[exchanges[0]],
            stop_on_sigterm=True,
            **common,
        )
    else:
        from live.multi import MultiSession

        session = MultiSession(
            settings,
            selection,
            start_ray=lambda: ray_for_live(console),
            from_exchange=funding,
            stop_on_sigterm=True,
            **common,
        )
    session.prepare()  # every check before Ray starts or anything is written
    _run(session, duration)


def risk_limits(config: Path | None, **flags: object) -> RiskLimits:
    """The run's risk limits: the prod.json's "limits" object, with every flag given over it."""
    from backtest.portfolio_config import load_limits
    from live.risk_limits import RiskLimits

    given = {key: value for key, value in flags.items() if value is not None}
    RiskLimits.parse(given)  # a bad flag is named as the flag
    if config is None:
        return RiskLimits.parse(given)
    written = load_limits(config)
    RiskLimits.parse(written, f'{config} "limits": ')
    return RiskLimits.parse({**written, **given})


@app.command("reset-limits")
def reset_limits(
    db: DbOpt = None,
    exchange: Annotated[
        str | None, typer.Option("--exchange", "-e", help="Only this exchange.")
    ] = None,
) -> None:
    """Clear every risk-limit breach and baseline (day-start equity, high-water mark): trading
    resumes, also in a running trader (within 2 s), measured from the equity it has now."""
    from store.db import resolve_url
    from store.risk import clear_risk

    cleared = clear_risk(resolve_url(db), exchange)
    for line in cleared:
        print(f"cleared: {line}")
    if not cleared:
        print("no risk limit was breached; baselines cleared")


def _check_choices(
    market: str, on_disable: str, risk: float, reconcile_every: float, cash_buffer: float
) -> None:
    """The plain option values, before anything is opened or asked."""
    if market not in ("spot", "margin"):
        raise UserError(f"--market must be spot or margin, got {market!r}; shorts need margin")
    if on_disable not in ("keep", "close"):
        raise UserError(f"--on-disable must be keep or close, got {on_disable!r}")
    if not 0 < risk <= 1:
        raise UserError(f"--risk must be in (0, 1], got {risk}")
    if not 0 <= reconcile_every < math.inf:
        raise UserError(f"--reconcile-every must be minutes >= 0, got {reconcile_every}")
    if not 0 <= cash_buffer < 1:
        raise UserError(f"--cash-buffer must be a fraction in [0, 1), got {cash_buffer}")


def _check_url(url: str | None) -> None:
    """An http(s) base URL with a host: anything else reaches ccxt as a path and fails there."""
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(
            f"--url {url!r} is not an http(s) URL with a host; give e.g. "
            "http://127.0.0.1:8765 (`cli.py exchange serve`) or leave it out for the exchange's own"
        )
    try:
        parts.port  # noqa: B018 (parsing the port is the check: 'host:abc' raises)
    except ValueError:
        raise UserError(f"--url {url!r} has no valid port; e.g. http://127.0.0.1:8765") from None


def _check_costs(fee_bps: float, slippage_bps: float, duration: float | None) -> None:
    """A negative fee or slippage would pay the dry run for trading; a duration must pass."""
    for name, value in (("--fee-bps", fee_bps), ("--slippage-bps", slippage_bps)):
        if not 0 <= value < 10_000:
            raise UserError(f"{name} must be basis points in [0, 10000), got {value}")
    if duration is not None and not 0 < duration < math.inf:
        raise UserError(
            f"--duration must be seconds > 0 (leave it out to run until Ctrl-C), got {duration}"
        )


@app.command("status")
def status(
    db: DbOpt = None,
    exchange: Annotated[
        str | None, typer.Option("--exchange", "-e", help="Only this exchange.")
    ] = None,
    day: Annotated[
        str | None,
        typer.Option(
            "--day",
            help="UTC day of the pnl per instance, "
            "YYYY-MM-DD (default: today; a replay trades on its data's days).",
        ),
    ] = None,
) -> None:
    """Print the running system's state from the database (positions, open orders, the day's
    pnl per instance); reads only, never disturbs the trader."""
    import datetime as dt

    from live.ops.status import read_status, status_lines
    from store.db import resolve_url

    try:
        when = dt.date.fromisoformat(day) if day else None
    except ValueError:
        raise UserError(f"--day {day!r} must be a date YYYY-MM-DD, e.g. 2024-03-01") from None
    for line in status_lines(read_status(resolve_url(db), exchange, when)):
        print(line)


def _check_model_options(url: str | None, fallback: str, timeout: float, no_model: bool) -> None:
    if fallback not in ("trade", "skip"):
        raise UserError(f"--model-fallback {fallback!r}: use trade or skip")
    if url is not None and not url.startswith(("http://", "https://")):
        raise UserError(f"--model-url {url!r} must be an http(s) URL, e.g. http://127.0.0.1:8766")
    if not timeout > 0:
        raise UserError(f"--model-timeout must be > 0 seconds, got {timeout}")
    if no_model and url is not None:
        raise UserError("--no-model and --model-url contradict each other; give one")


def _ids(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(
            f"--instances {text!r} must be instance ids separated by commas, e.g. 3,7"
        ) from None


def _run(multi, duration: float | None) -> None:
    """Start, run with a status line, stop with a summary: one exchange as before; several
    (a live/multi.MultiSession) with one status part, start line and summary per exchange."""
    from live.ops.status import late_text

    sessions = list(getattr(multi, "sessions", {"": multi}).values())
    several = len(sessions) > 1
    with multi:
        for session in sessions:
            _recovered(session)
            settings = session.settings
            mode = f"REAL orders ({settings.market})" if settings.real else "dry run"
            console.print(
                f"live {mode} on {settings.exchange} ({settings.url or 'default URL'}): "
                f"{len(session.members)} instance(s); Ctrl-C stops"
            )
        limits = sessions[0].settings.limits
        if limits.active():
            console.print(f"risk limits: {limits.text()}", highlight=False)
        said: dict[str, set[str]] = {s.settings.exchange: set() for s in sessions}
        try:
            with Live(
                _line(sessions), console=console, refresh_per_second=2, transient=False
            ) as bar:

                def after_pump() -> None:
                    states = {}
                    for session in sessions:
                        node, name = session.node, session.settings.exchange
                        where = f"{name}: " if several else ""
                        for warning in session.take_warnings():  # found by the periodic audit
                            console.print(
                                f"[bold red]warning:[/] {where}{warning}", highlight=False
                            )
                        for late in node.bar_watch.newly_late():  # once per series that stopped
                            text = late_text([late], node.bar_watch.now_ms())
                            console.print(f"[bold red]warning:[/] {where}{text}", highlight=False)
                        states[name] = s = node.status()
                        for text in new_breaches(s["quotes"], said[name]):  # once per breach
                            console.print(f"[bold red]warning:[/] {where}{text}", highlight=False)
                    bar.update(_line(sessions, states))

                multi.run(duration, after_pump)
        except KeyboardInterrupt:
            pass
        finally:
            for k, session in enumerate(sessions):
                where = f"{session.settings.exchange}: " if several else ""
                _summary(session.node, where, newline=k == 0)


def _line(sessions: list, states: dict | None = None) -> Text:
    """The status line: one part per exchange (one exchange: the line of before)."""
    parts = [_status(s, None if states is None else states[s.settings.exchange]) for s in sessions]
    return Text(" || ").join(parts) if len(parts) > 1 else parts[0]


def _recovered(session) -> None:
    """What came back from the database, and anything at the exchange it does not know."""
    restored = session.node.restored
    if restored.orders or restored.trades:
        console.print(
            f"recovered from the database: {len(restored.trades)} open trade(s), "
            f"{len(restored.orders)} open order(s)"
        )
    for warning in session.take_warnings():
        console.print(f"[bold red]warning:[/] {warning}", highlight=False)


def new_breaches(quotes: dict, said: set[str]) -> list[str]:
    """The breaches in the portfolios' state not said yet (one warning line each, not one per
    bar); a breach cleared (the day rolled, reset-limits) may be said again."""
    now = {text for state in quotes.values() for text in state.get("breaches", ())}
    new = sorted(now - said)
    said.intersection_update(now)
    said.update(new)
    return new


def _status(session, s: dict | None = None) -> Text:
    from live.ops.status import late_text
    from live.portfolios import equity_text

    s = s if s is not None else session.node.status()
    breached = sum(bool(q.get("breached")) for q in s["quotes"].values())
    off = sum(not on for on in session.control.active.values()) if session.control else 0
    late = late_text(s["late"], s["market_ms"])
    return Text(  # a late series first: a narrow terminal cuts the line's end
        f"{session.settings.exchange} connected | "
        + (f"{late} | " if late else "")
        + f"bars {s['bars']} | open {s['positions']} | "
        f"equity {equity_text(s['quotes'])} | orders/min {s['orders_last_minute']} | "
        + (f"requests/min {s['requests_last_minute']} | " if session.settings.real else "")
        + f"closed {s['trades_closed']}"
        + (f" | disabled {off}" if off else "")
        + (f" | RISK LIMIT BREACHED ({breached})" if breached else "")
    )


def _summary(node, where: str = "", newline: bool = True) -> None:
    trades = node.trades()
    closed = [t for t in trades if t["status"] == TradeStatus.CLOSED]
    active = [t for t in trades if t["status"] == TradeStatus.ACTIVE]
    if newline and not console.is_terminal:
        console.print()  # the status line's last frame has no line end
    console.print(
        f"{where}stopped: {node.bars} bars, {len(closed)} trade(s) closed, "
        f"{len(active)} position(s) and their exchange orders left as they are"
    )
    limits = node.settings.limits
    if limits.active():  # what guarded this run, and whether it stopped it
        quotes = node.portfolio()["quotes"]
        said = [text for q in quotes.values() for text in q.get("breaches", ())]
        console.print(
            f"{where}risk limits: {limits.text()}; "
            + (f"BREACHED: {'; '.join(said)}" if said else "not breached"),
            highlight=False,
        )
    for t in closed:
        print(
            f"{where}trade {t['strategy']} {t['side']} entry {_iso(t['entry_ts'])} @ "
            f"{t['entry_price']:.8g} exit {_iso(t['exit_ts'])} @ {t['exit_price']:.8g} "
            f"{t['exit_reason']} pnl {t['pnl']:.8g}"
        )
    for t in active:
        print(
            f"{where}open  {t['strategy']} {t['side']} entry {_iso(t['entry_ts'])} @ "
            f"{t['entry_price']:.8g} quantity {t['quantity']:.8g}"
        )


def _iso(ns: int) -> str:
    import pandas as pd

    from analysis.columns import iso_utc

    return iso_utc(pd.Timestamp(ns, tz="UTC"))
