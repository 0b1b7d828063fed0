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

# fmt: off
ExchangeOpt = Annotated[str, typer.Option("--exchange", "-e", help="Exchange id (ccxt spelling).")]
UrlOpt = Annotated[str | None, typer.Option("--url", help="Exchange base URL, e.g. "
                   "http://127.0.0.1:8765 for `cli.py exchange serve` (default: the exchange's own).")]
DbOpt = Annotated[str | None, typer.Option("--db", help="Database URL (default: $RAYTRADER_DB or "
                  "sqlite:///raytrader.db).")]
FamilyOpt = Annotated[str | None, typer.Option("--family", help="Only instances of this family.")]
SymbolOpt = Annotated[str | None, typer.Option("--symbol", help="Only instances on this symbol.")]
IntervalOpt = Annotated[str | None, typer.Option("--interval", help="Only this interval.")]
InstancesOpt = Annotated[str | None, typer.Option("--instances", help="Only these instance ids, "
                         "e.g. 3,7.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Trade the instances and weights "
                      "of this prod.json instead of the database's enabled instances.")]
RealOpt = Annotated[bool, typer.Option("--real", help="Send real orders (keys from "
                    "RAYTRADER_<EXCHANGE>_API_KEY/_SECRET or RAYTRADER_API_KEY/_SECRET).")]
CashOpt = Annotated[float, typer.Option("--cash", help="Dry run: starting cash of the account.")]
RiskOpt = Annotated[float, typer.Option("--risk", help="Fraction of equity risked per trade.")]
FeeOpt = Annotated[float, typer.Option("--fee-bps", help="Dry run: fee per fill, bps.")]
SlippageOpt = Annotated[float, typer.Option("--slippage-bps", help="Dry run: slippage, bps.")]
DurationOpt = Annotated[float | None, typer.Option("--duration", help="Stop after this many "
                        "seconds (default: run until Ctrl-C or SIGTERM).")]
ModelUrlOpt = Annotated[str | None, typer.Option("--model-url", help="Ask the instances' models "
                        "over HTTP at this `cli.py model run` API, e.g. http://127.0.0.1:8766 "
                        "(default: the model files of the store, in process).")]
ModelFallbackOpt = Annotated[str, typer.Option("--model-fallback", help="When the model API is "
                             "down, slow or refuses: trade (as without a model) or skip the signal.")]
ModelTimeoutOpt = Annotated[float, typer.Option("--model-timeout", help="Seconds the model API may "
                            "take for one prediction before the fallback applies.")]
MinNotionalOpt = Annotated[float | None, typer.Option("--min-notional", help="Smallest order "
                           "notional, quote units (default: the exchange's minimum for the "
                           "traded markets, else 0.01% of the cash as in backtests).")]
LotSizeOpt = Annotated[float | None, typer.Option("--lot-size", help="Quantity step, base units "
                       "(default: the exchange's amount step for the traded markets).")]
NoModelOpt = Annotated[bool, typer.Option("--no-model", help="Trade without the trained models.")]
# fmt: on


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
    cash: CashOpt = 10_000.0,
    risk: RiskOpt = 0.01,
    fee_bps: FeeOpt = 10.0,
    slippage_bps: SlippageOpt = 0.0,
    duration: DurationOpt = None,
    model_url: ModelUrlOpt = None,
    model_fallback: ModelFallbackOpt = "trade",
    model_timeout: ModelTimeoutOpt = 0.5,
    no_model: NoModelOpt = False,
    min_notional: MinNotionalOpt = None,
    lot_size: LotSizeOpt = None,
) -> None:
    """Trade live until Ctrl-C or SIGTERM (dry run: the simulated exchange fed live bars)."""
    if ctx.invoked_subcommand is not None:
        return
    from live.ccxt_clients import api_keys, rest_client
    from live.node import LiveSettings
    from live.setup import check_exchange, select_members, warm_up
    from store.db import resolve_url

    ids = _ids(instances)
    _check_model_options(model_url, model_fallback, model_timeout, no_model)
    for name, value in (("--min-notional", min_notional), ("--lot-size", lot_size)):
        if value is not None and not value >= 0:
            raise UserError(f"{name} must be a number >= 0 (0: none), got {value}")
    if not 0 < risk <= 1:
        raise UserError(f"--risk must be in (0, 1], got {risk}")
    keys = api_keys(exchange) if real else None
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
    limits = _limits(client, members, min_notional, lot_size)
    settings = LiveSettings(exchange, url, url_db, cash, fee_bps, slippage_bps, risk, real=real,
                            min_notional=limits[0], lot_size=limits[1])  # fmt: skip
    models = None if no_model else _models(url_db, members, config, model_url, model_fallback,
                                           model_timeout)  # fmt: skip
    _run(settings, members, warm, duration, models)


def _limits(client, members, min_notional: float | None, lot_size: float | None):
    """(min notional, lot size): the user's, else the exchange's for the traded markets."""
    from live.setup import market_limits, order_limits

    market = market_limits(client, members)
    chosen = order_limits(min_notional, lot_size, market)
    notional = "0.01% of the cash" if chosen[0] is None else f"{chosen[0]:g}"
    console.print(f"order limits: min notional {notional}, lot size {chosen[1]:g} (given, or "
                  f"from {market.source})")  # fmt: skip
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
        console.print(f"model: {len(gates.models)} of {len(members)} instance(s) ask their "
                      f"trained model at each signal, {how}")  # fmt: skip
    elif url is not None:
        console.print("warning: --model-url given, but no instance traded here has a trained "
                      "model (`cli.py model train`); trading without models")  # fmt: skip
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


def _run(settings, members, warm, duration: float | None, models=None) -> None:
    from live.node import LiveNode, ray_for_live
    from live.setup import commit_warmup

    commit_warmup(settings.db_url, settings.exchange, warm)
    stopping = {"now": False}
    with ray_for_live(console) as ray:
        # after Ray started: its driver installs a SIGTERM handler of its own that aborts
        previous = signal.signal(signal.SIGTERM, lambda *_: stopping.update(now=True))
        node = LiveNode(settings, members, warm, ray, models=models)
        node.start()
        mode = "REAL orders" if settings.real else "dry run"
        console.print(f"live {mode} on {settings.exchange} ({settings.url or 'default URL'}): "
                      f"{len(members)} instance(s); Ctrl-C stops")  # fmt: skip
        deadline = None if duration is None else time.monotonic() + duration
        try:
            with Live(_status(node), console=console, refresh_per_second=2, transient=False) as bar:
                while not stopping["now"] and (deadline is None or time.monotonic() < deadline):
                    node.pump(0.5)
                    bar.update(_status(node))
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            _summary(node)
            node.stop()


def _status(node) -> Text:
    s = node.status()
    return Text(
        f"{node.settings.exchange} connected | bars {s['bars']} | open {s['positions']} | "
        f"equity {s['equity']:,.2f} | orders/min {s['orders_last_minute']} | "
        f"closed {s['trades_closed']}"
    )


def _summary(node) -> None:
    trades = node.trades()
    closed = [t for t in trades if t["status"] == "CLOSED"]
    active = [t for t in trades if t["status"] == "ACTIVE"]
    if not console.is_terminal:
        console.print()  # the status line's last frame has no line end
    console.print(f"stopped: {node.bars} bars, {len(closed)} trade(s) closed, "
                  f"{len(active)} position(s) and their exchange orders left as they are")  # fmt: skip
    for t in closed:
        print(f"trade {t['strategy']} {t['side']} entry {_iso(t['entry_ts'])} @ "
              f"{t['entry_price']:.8g} exit {_iso(t['exit_ts'])} @ {t['exit_price']:.8g} "
              f"{t['exit_reason']} pnl {t['pnl']:.8g}")  # fmt: skip
    for t in active:
        print(f"open  {t['strategy']} {t['side']} entry {_iso(t['entry_ts'])} @ "
              f"{t['entry_price']:.8g} quantity {t['quantity']:.8g}")  # fmt: skip


def _iso(ns: int) -> str:
    import pandas as pd

    from analysis.columns import iso_utc

    return iso_utc(pd.Timestamp(ns, tz="UTC"))
