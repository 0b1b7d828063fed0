"""`cli.py strategies add|enable|disable|list-instances|load`: strategy instances in the database.

An instance is one strategy family with one parameter set on one market and interval. Its
parameters are stored complete (defaults filled in), so `add sr_breakout` and
`add sr_breakout --param lookback=20` name the same instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from commands.errors import UserError
from commands.options import DbOpt, ExchangeIdOpt

# The store (SQLAlchemy) and the strategies (pandas) are imported inside each command:
# `cli.py --help` and the other commands stay fast (issue 13: start-up under 0.4 s of CPU).

console = Console(soft_wrap=True)  # long lines and tables are never cut in pipes or logs


def add(
    family: str = typer.Argument(..., help="Built-in strategy name or path/to/file.py:ClassName."),
    symbol: str = typer.Option(..., "--symbol", "-s", help="Market, e.g. ETH/BTC."),
    interval: str = typer.Option(..., "--interval", "-i", help="Bar interval, e.g. 5m."),
    exchange: ExchangeIdOpt = "binance",
    param: list[str] = typer.Option([], "--param", "-p", help="key=value, repeatable."),
    weight: float = typer.Option(1.0, "--weight"),
    disabled: bool = typer.Option(False, "--disabled", help="Register without enabling."),
    db: DbOpt = None,
) -> None:
    """Register a strategy instance (idempotent: an identical one is reported, not duplicated)."""
    from store.db import resolve_url
    from store.instances import add_instance
    from strategies.registry import parse_param_args

    params = strategy_params(family, interval, parse_param_args(param))
    inst = add_instance(
        resolve_url(db), family, exchange, symbol, interval, params, not disabled, weight
    )
    console.print(f"instance {inst.id}: {family} {exchange} {symbol} {interval} {inst.params_json}")


IdArg = typer.Argument(..., help="Instance id (`cli.py strategies list-instances`).")


def enable(instance_id: str = IdArg, db: DbOpt = None) -> None:
    """Enable a strategy instance."""
    _set_enabled(instance_id, db, True)


def disable(instance_id: str = IdArg, db: DbOpt = None) -> None:
    """Disable a strategy instance (kept, but not run)."""
    _set_enabled(instance_id, db, False)


# enable/disable take their id as text (and unknown options as that text, see cli.py), so
# `disable -1` and `enable abc` get one `error:` line rather than typer's usage box.
ID_CONTEXT = {"ignore_unknown_options": True}


def _set_enabled(text: str, db: str | None, enabled: bool) -> None:
    from store.db import require_existing, resolve_url
    from store.instances import set_enabled

    instance_id = _instance_id(text)
    url = resolve_url(db)
    require_existing(url, "no instances are registered there; check --db (or RAYTRADER_DB)")
    inst = set_enabled(url, instance_id, enabled)
    console.print(f"instance {inst.id} {'enabled' if enabled else 'disabled'}")


def _instance_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(
            f"instance id {text!r} is not an id (a whole number >= 1); "
            "`cli.py strategies list-instances` shows them"
        )
    return value


def list_instances_cmd(
    family: str | None = typer.Option(None, "--family"),
    symbol: str | None = typer.Option(None, "--symbol", "-s"),
    interval: str | None = typer.Option(None, "--interval", "-i"),
    enabled_only: bool = typer.Option(False, "--enabled-only"),
    db: DbOpt = None,
) -> None:
    """Show registered strategy instances."""
    from store.db import resolve_url
    from store.instances import list_instances

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
    file: Path = typer.Argument(..., help="YAML file of instances."), db: DbOpt = None
) -> None:
    """Register many instances from a YAML file (see data/strategies_demo.yaml).

    Declarative: every instance the file lists ends up enabled (or with the file's own
    `enabled` / `weight`), also one that `cli.py weights` or `strategies disable` turned off."""
    from store.db import resolve_url

    loaded = load_instances_file(resolve_url(db), file)
    console.print(f"{loaded.total} instances in {file.name} ({loaded.describe()})")


def strategy_params(family: str, interval: str, given: dict[str, Any]) -> dict[str, Any]:
    """The complete, coerced parameter dict (raises StrategyError for a bad family/parameter)."""
    from strategies.registry import make_strategy

    strategy = make_strategy(family, given)
    if interval not in type(strategy).intervals:
        raise UserError(
            f"strategy {family!r} does not run on {interval}; its intervals: "
            f"{', '.join(type(strategy).intervals)}"
        )
    return strategy.param_dict()


@dataclass(frozen=True)
class LoadedInstances:
    """What loading a strategies file did: instances listed, created, re-enabled, changed."""

    total: int
    created: int
    reenabled: int
    changed: int  # weight set, or disabled by the file

    def describe(self) -> str:
        parts = [f"{self.created} new", f"{self.reenabled} re-enabled"]
        if self.changed:
            parts.append(f"{self.changed} updated")
        return ", ".join(parts)


def load_instances_file(url: str, file: Path) -> LoadedInstances:
    """Make the database match a strategies file. Layout:

    exchange: binance            # default for every entry
    families: all                # or a list of names; combined with every pair x interval
    pairs: [{symbol: ETH/BTC, intervals: [5m, 15m, 1h]}]
    instances: [{family: sr_breakout, symbol: ETH/BTC, interval: 5m, params: {...}, weight: 1}]
    Families that do not support an interval are skipped for it. Every listed instance ends up
    enabled unless its entry says `enabled: false`; its weight is set only when the entry gives
    one (a new instance gets 1).
    """
    import yaml

    from store.instances import declare_instance

    if Path(file).is_dir():
        raise FileNotFoundError(f"instances file {str(file)!r} is a directory; give a .yaml file")
    if not Path(file).is_file():
        raise FileNotFoundError(f"instances file {str(file)!r} not found")
    try:
        spec = yaml.safe_load(Path(file).read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{file}: not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(spec, dict):
        raise UserError(
            f"{file}: expected a mapping with keys exchange, families, pairs, instances"
        )
    changes: dict[int, str] = {}
    for entry in list(_expand(spec, file)):
        params = strategy_params(entry["family"], entry["interval"], entry.get("params") or {})
        weight = entry.get("weight")
        inst, change = declare_instance(
            url,
            entry["family"],
            entry["exchange"],
            entry["symbol"],
            entry["interval"],
            params,
            _flag(entry.get("enabled", True), file, entry),
            None if weight is None else _weight(weight, file, entry),
        )
        if changes.get(inst.id, "unchanged") == "unchanged":  # the first change is the news
            changes[inst.id] = change
    counts = list(changes.values())
    return LoadedInstances(
        len(changes), counts.count("new"), counts.count("re-enabled"), counts.count("changed")
    )


def _flag(value: Any, file: Path, entry: dict) -> bool:
    if isinstance(value, bool):
        return value
    raise UserError(f"{file}: enabled must be true or false in {entry!r}, got {value!r}")


def _weight(value: Any, file: Path, entry: dict) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{file}: weight must be a number in {entry!r}, got {value!r}") from None


def _expand(spec: dict, file: Path):
    from strategies.registry import BUILTIN

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


def _yaml_problem(exc: Exception) -> str:
    """PyYAML's multi-line message as one line: the problem and where (line, column)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}; check the indentation and brackets there"
