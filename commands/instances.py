"""`cli.py strategies add|enable|disable|list-instances|load`: strategy instances in the database.

An instance is one strategy family with one parameter set on one market and interval. Its
parameters are stored complete (defaults filled in), so `add sr_breakout` and
`add sr_breakout --param lookback=20` name the same instance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from commands.errors import UserError
from store.db import resolve_url
from store.instances import add_instance, list_instances, set_enabled
from strategies.registry import BUILTIN, make_strategy, parse_param_args

console = Console(soft_wrap=True)  # long lines and tables are never cut in pipes or logs

DbOption = typer.Option(
    None, "--db", help="SQLAlchemy URL (default: $RAYTRADER_DB or sqlite:///raytrader.db)"
)


def add(
    family: str = typer.Argument(..., help="Built-in strategy name or path/to/file.py:ClassName."),
    symbol: str = typer.Option(..., "--symbol", "-s", help="Market, e.g. ETH/BTC."),
    interval: str = typer.Option(..., "--interval", "-i", help="Bar interval, e.g. 5m."),
    exchange: str = typer.Option("binance", "--exchange", "-e"),
    param: list[str] = typer.Option([], "--param", "-p", help="key=value, repeatable."),
    weight: float = typer.Option(1.0, "--weight"),
    disabled: bool = typer.Option(False, "--disabled", help="Register without enabling."),
    db: str | None = DbOption,
) -> None:
    """Register a strategy instance (idempotent: an identical one is reported, not duplicated)."""
    params = strategy_params(family, interval, parse_param_args(param))
    inst = add_instance(
        resolve_url(db), family, exchange, symbol, interval, params, not disabled, weight
    )
    console.print(f"instance {inst.id}: {family} {exchange} {symbol} {interval} {inst.params_json}")


def enable(instance_id: int = typer.Argument(...), db: str | None = DbOption) -> None:
    """Enable a strategy instance."""
    inst = set_enabled(resolve_url(db), instance_id, True)
    console.print(f"instance {inst.id} enabled")


def disable(instance_id: int = typer.Argument(...), db: str | None = DbOption) -> None:
    """Disable a strategy instance (kept, but not run)."""
    inst = set_enabled(resolve_url(db), instance_id, False)
    console.print(f"instance {inst.id} disabled")


def list_instances_cmd(
    family: str | None = typer.Option(None, "--family"),
    symbol: str | None = typer.Option(None, "--symbol", "-s"),
    interval: str | None = typer.Option(None, "--interval", "-i"),
    enabled_only: bool = typer.Option(False, "--enabled-only"),
    db: str | None = DbOption,
) -> None:
    """Show registered strategy instances."""
    rows = list_instances(resolve_url(db), enabled_only, family, symbol, interval)
    if not rows:
        console.print(
            "no strategy instances; add with `cli.py strategies add` or `strategies load FILE.yaml`"
        )
        return
    table = Table("id", "family", "exchange", "symbol", "interval", "enabled", "weight", "params")
    for r in rows:
        table.add_row(
            str(r.id),
            r.family,
            r.exchange,
            r.symbol,
            r.interval,
            "yes" if r.enabled else "no",
            f"{r.weight:g}",
            r.params_json,
        )
    Console(width=max(console.width, 160)).print(table)
    console.print(f"{len(rows)} instances")


def load(
    file: Path = typer.Argument(..., help="YAML file of instances."), db: str | None = DbOption
) -> None:
    """Register many instances from a YAML file (see data/strategies_demo.yaml)."""
    created, total = load_instances_file(resolve_url(db), file)
    console.print(f"{total} instances in {file.name} ({created} new)")


def strategy_params(family: str, interval: str, given: dict[str, Any]) -> dict[str, Any]:
    """The complete, coerced parameter dict (raises StrategyError for a bad family/parameter)."""
    strategy = make_strategy(family, given)
    if interval not in type(strategy).intervals:
        raise UserError(
            f"strategy {family!r} does not run on {interval}; its intervals: "
            f"{', '.join(type(strategy).intervals)}"
        )
    return strategy.param_dict()


def load_instances_file(url: str, file: Path) -> tuple[int, int]:
    """(new instances, instances in file). Layout:

    exchange: binance            # default for every entry
    families: all                # or a list of names; combined with every pair x interval
    pairs: [{symbol: ETH/BTC, intervals: [5m, 15m, 1h]}]
    instances: [{family: sr_breakout, symbol: ETH/BTC, interval: 5m, params: {...}, weight: 1}]
    Families that do not support an interval are skipped for it.
    """
    if not Path(file).is_file():
        raise FileNotFoundError(f"instances file {str(file)!r} not found")
    try:
        spec = yaml.safe_load(Path(file).read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{file}: not valid YAML: {exc}") from None
    if not isinstance(spec, dict):
        raise UserError(
            f"{file}: expected a mapping with keys exchange, families, pairs, instances"
        )
    entries = list(_expand(spec, file))
    before = {i.id for i in list_instances(url)}
    seen = set()
    for entry in entries:
        params = strategy_params(entry["family"], entry["interval"], entry.get("params") or {})
        inst = add_instance(
            url,
            entry["family"],
            entry["exchange"],
            entry["symbol"],
            entry["interval"],
            params,
            bool(entry.get("enabled", True)),
            float(entry.get("weight", 1.0)),
        )
        seen.add(inst.id)
    return len(seen - before), len(seen)


def _expand(spec: dict, file: Path):
    exchange = spec.get("exchange", "binance")
    families = spec.get("families", [])
    names = sorted(BUILTIN) if families == "all" else list(families or [])
    for pair in spec.get("pairs", []) or []:
        if not isinstance(pair, dict) or "symbol" not in pair:
            raise UserError(f"{file}: each entry of pairs needs a symbol, got {pair!r}")
        for interval in pair.get("intervals", []):
            for name in names:
                cls = BUILTIN.get(name)
                if cls is not None and interval not in cls.intervals:
                    continue
                yield {
                    "family": name,
                    "exchange": pair.get("exchange", exchange),
                    "symbol": pair["symbol"],
                    "interval": interval,
                    "params": (spec.get("params") or {}).get(name, {}),
                }
    for entry in spec.get("instances", []) or []:
        missing = [k for k in ("family", "symbol", "interval") if k not in (entry or {})]
        if missing:
            raise UserError(f"{file}: instance {entry!r} lacks {', '.join(missing)}")
        yield {"exchange": exchange, **entry}
