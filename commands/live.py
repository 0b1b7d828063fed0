"""`cli.py live`: trade the enabled instances (or a prod.json) live; dry run by default."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.text import Text

from commands.errors import UserError

app = typer.Typer(invoke_without_command=True)
console = Console(stderr=True, soft_wrap=True)

ExchangeOpt = Annotated[str, typer.Option("--exchange", "-e", help="Exchange id (ccxt spelling).")]
UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Exchange base URL, e.g. "
        "http://127.0.0.1:8765 for `cli.py exchange serve` (default: the exchange's own).",
    ),
]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: $RAYTRADER_DB or sqlite:///raytrader.db)."),
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
        "of this prod.json instead of the database's enabled instances.",
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
    float | None,
    typer.Option(
        "--cash",
        help="Dry run: starting cash, in the "
        "quote currency of the traded pairs (default: the account's free balance of it "
        "when API keys are set, else the local exchange's default funding: 10 BTC, "
        "100 ETH, 100000 USDT).",
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


@app.callback()
def live(
    ctx: typer.Context,
    exchange: ExchangeOpt = "binance",
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
) -> None:
    """Trade live until Ctrl-C or SIGTERM (dry run: the simulated exchange fed live bars)."""
    if ctx.invoked_subcommand is not None:
        return
    from live.node import LiveSettings
    from live.setup import check_exchange, select_members, warm_up
    from live.venues.ccxt_clients import api_keys, rest_client
    from store.db import resolve_url

    ids = _ids(instances)
    _check_choices(market, on_disable, risk, reconcile_every, cash)
    _check_model_options(model_url, model_fallback, model_timeout, no_model)
    for name, value in (("--min-notional", min_notional), ("--lot-size", lot_size)):
        if value is not None and not value >= 0:
            raise UserError(f"{name} must be a number >= 0 (0: none), got {value}")
    keys = api_keys(exchange)
    if real and keys is None:
        up = exchange.upper()
        raise UserError(
            f"--real needs API keys in the environment: RAYTRADER_{up}_API_KEY and "
            f"RAYTRADER_{up}_API_SECRET (or RAYTRADER_API_KEY and RAYTRADER_API_SECRET)"
        )
    client = rest_client(exchange, url, keys)  # an unknown exchange fails here, first
    url_db = resolve_url(db)
    members = select_members(url_db, exchange, config, family, symbol, interval, ids)
    check_exchange(client, url, members)
    warm = warm_up(client, url_db, exchange, members)
    if not real:
        cash = _dry_run_cash(client, keys, members, cash)
    limits = _limits(client, members, min_notional, lot_size)
    settings = LiveSettings(
        exchange,
        url,
        url_db,
        cash=cash or 0.0,
        fee_bps=fee_bps,
        slippage_bps=slippage_bps,
        risk=risk,
        real=real,
        market=market,
        min_notional=limits[0],
        lot_size=limits[1],
        reconcile_every=reconcile_every,
    )
    models = (
        None
        if no_model
        else _models(url_db, members, config, model_url, model_fallback, model_timeout)
    )
    control = {
        "on_disable": on_disable,
        "config": config,
        "adopt": None if config else _adopter(family, symbol, interval, ids),
    }
    _run(settings, members, warm, duration, control, models)


def _check_choices(
    market: str, on_disable: str, risk: float, reconcile_every: float, cash: float | None
) -> None:
    """The plain option values, before anything is opened or asked."""
    if market not in ("spot", "margin"):
        raise UserError(f"--market must be spot or margin, got {market!r}; shorts need margin")
    if on_disable not in ("keep", "close"):
        raise UserError(f"--on-disable must be keep or close, got {on_disable!r}")
    if not 0 < risk <= 1:
        raise UserError(f"--risk must be in (0, 1], got {risk}")
    if not reconcile_every >= 0:
        raise UserError(f"--reconcile-every must be minutes >= 0, got {reconcile_every}")
    if cash is not None and not cash > 0:
        raise UserError(f"--cash must be a positive amount of the quote currency, got {cash}")


def _dry_run_cash(client, keys, members, cash: float | None) -> float:
    """The dry run's starting cash in the quote currency of the traded pairs (one account)."""
    from localexchange.server_thread import DEFAULT_FUNDING

    quotes = sorted({m.symbol.split("/")[-1] for m in members})
    if len(quotes) > 1:
        raise UserError(
            f"the instances trade pairs quoted in {', '.join(quotes)}, but a dry run has one "
            "account in one currency; narrow them with --symbol or --instances"
        )
    quote = quotes[0]
    where = "--cash"
    if cash is None and keys is not None:
        import ccxt

        try:
            cash = float(client.fetch_balance().get(quote, {}).get("free") or 0.0) or None
        except ccxt.BaseError as exc:
            raise UserError(
                f"cannot read the account's {quote} balance with the API keys in the environment "
                f"({type(exc).__name__}); fix the keys or pass --cash AMOUNT (in {quote})"
            ) from None
        where = "the account's free balance"
    if cash is None and quote in DEFAULT_FUNDING:
        cash, where = DEFAULT_FUNDING[quote], "the local exchange's default funding"
    if cash is None:
        raise UserError(
            f"no starting cash for a dry run in {quote}: pass --cash AMOUNT (in {quote})"
        )
    console.print(f"dry run starting cash: {cash:g} {quote} ({where})")
    return cash


def _adopter(family, symbol, interval, ids):
    """Which instances enabled while running this run takes on: those its filters allow."""

    def adopt(row) -> bool:
        return (
            (not family or row.family == family)
            and (not symbol or row.symbol == symbol)
            and (not interval or row.interval == interval)
            and (not ids or row.id in ids)
        )

    return adopt


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


def _limits(client, members, min_notional: float | None, lot_size: float | None):
    """(min notional, lot size): the user's, else the exchange's for the traded markets."""
    from live.setup import market_limits, order_limits

    market = market_limits(client, members)
    chosen = order_limits(min_notional, lot_size, market)
    notional = "0.01% of the cash" if chosen[0] is None else f"{chosen[0]:g}"
    console.print(
        f"order limits: min notional {notional}, lot size {chosen[1]:g} (given, or "
        f"from {market.source})"
    )
    return chosen


def _check_model_options(url: str | None, fallback: str, timeout: float, no_model: bool) -> None:
    if fallback not in ("trade", "skip"):
        raise UserError(f"--model-fallback {fallback!r}: use trade or skip")
    if url is not None and not url.startswith(("http://", "https://")):
        raise UserError(f"--model-url {url!r} must be an http(s) URL, e.g. http://127.0.0.1:8766")
    if not timeout > 0:
        raise UserError(f"--model-timeout must be > 0 seconds, got {timeout}")
    if no_model and url is not None:
        raise UserError("--no-model and --model-url contradict each other; give one")


def _models(db_url: str, members, config, url: str | None, fallback: str, timeout: float):
    """The instances' trained models (live/model_gates.py); None when none has one."""
    from live.model_gates import load_model_gates
    from live.setup import member_instances

    gates = load_model_gates(db_url, member_instances(members, config), url, fallback, timeout)
    if gates.models:
        how = f"over {gates.url} (fallback: {fallback})" if url else "in process"
        console.print(
            f"model: {len(gates.models)} of {len(members)} instance(s) ask their "
            f"trained model at each signal, {how}"
        )
    elif url is not None:
        console.print(
            "warning: --model-url given, but no instance traded here has a trained "
            "model (`cli.py model train`); trading without models"
        )
    return gates if gates.models else None


def _ids(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(
            f"--instances {text!r} must be instance ids separated by commas, e.g. 3,7"
        ) from None


def _run(settings, members, warm, duration: float | None, control: dict, models=None) -> None:
    from live.node import LiveNode
    from live.ops.control import LiveControl, declare_config, member_ids
    from live.ray_live import ray_for_live
    from live.setup import commit_warmup

    stopping = {"now": False}
    with ray_for_live(console) as ray:
        # after Ray started: its driver installs a SIGTERM handler of its own that aborts
        previous = signal.signal(signal.SIGTERM, lambda *_: stopping.update(now=True))
        node = LiveNode(settings, members, warm, ray, models=models)
        node.start(stream=False)  # restore and reconcile first: a failure writes nothing
        commit_warmup(settings.db_url, settings.exchange, warm)
        if control["config"] is not None:
            ids = declare_config(settings.db_url, settings.exchange, control["config"], members)
        else:
            ids = member_ids(members)
        node.start_stream()
        _recovered(node)
        watch = LiveControl(node, ids, control["on_disable"], control["adopt"], console.print)
        mode = f"REAL orders ({settings.market})" if settings.real else "dry run"
        console.print(
            f"live {mode} on {settings.exchange} ({settings.url or 'default URL'}): "
            f"{len(members)} instance(s); Ctrl-C stops"
        )
        deadline = None if duration is None else time.monotonic() + duration
        shown = len(node.warnings)
        try:
            with Live(
                _status(node, watch), console=console, refresh_per_second=2, transient=False
            ) as bar:
                while not stopping["now"] and (deadline is None or time.monotonic() < deadline):
                    node.pump(0.5)
                    watch.maybe_poll()  # enable/disable in the database: every ~2 s
                    for warning in node.warnings[shown:]:  # found by the periodic audit
                        console.print(f"[bold red]warning:[/] {warning}", highlight=False)
                    shown = len(node.warnings)
                    bar.update(_status(node, watch))
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            _summary(node)
            node.stop()


def _recovered(node) -> None:
    """What came back from the database, and anything at the exchange it does not know."""
    restored = node.restored
    if restored.orders or restored.trades:
        console.print(
            f"recovered from the database: {len(restored.trades)} open trade(s), "
            f"{len(restored.orders)} open order(s)"
        )
    for warning in node.warnings:
        console.print(f"[bold red]warning:[/] {warning}", highlight=False)


def _status(node, watch) -> Text:
    s = node.status()
    off = sum(not on for on in watch.active.values())
    return Text(
        f"{node.settings.exchange} connected | bars {s['bars']} | open {s['positions']} | "
        f"equity {s['equity']:,.8g} | orders/min {s['orders_last_minute']} | "
        f"closed {s['trades_closed']}" + (f" | disabled {off}" if off else "")
    )


def _summary(node) -> None:
    trades = node.trades()
    closed = [t for t in trades if t["status"] == "CLOSED"]
    active = [t for t in trades if t["status"] == "ACTIVE"]
    if not console.is_terminal:
        console.print()  # the status line's last frame has no line end
    console.print(
        f"stopped: {node.bars} bars, {len(closed)} trade(s) closed, "
        f"{len(active)} position(s) and their exchange orders left as they are"
    )
    for t in closed:
        print(
            f"trade {t['strategy']} {t['side']} entry {_iso(t['entry_ts'])} @ "
            f"{t['entry_price']:.8g} exit {_iso(t['exit_ts'])} @ {t['exit_price']:.8g} "
            f"{t['exit_reason']} pnl {t['pnl']:.8g}"
        )
    for t in active:
        print(
            f"open  {t['strategy']} {t['side']} entry {_iso(t['entry_ts'])} @ "
            f"{t['entry_price']:.8g} quantity {t['quantity']:.8g}"
        )


def _iso(ns: int) -> str:
    import pandas as pd

    from analysis.columns import iso_utc

    return iso_utc(pd.Timestamp(ns, tz="UTC"))
