"""Portfolio config (prod.json, as `cli.py weights` writes it): load, validate, build members.

Each instance of the config becomes a PortfolioMember (actors/portfolio_kernel.py) labelled by
its family, series and the parameters that differ from the defaults; each distinct
(symbol, interval) is loaded once from the database.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from actors.weighted_portfolio import PortfolioMember, SeriesKey
from analysis.columns import quote_currency
from analysis.exports import params_text
from core.errors import UserError
from strategies.base import Strategy
from strategies.registry import make_strategy


class PortfolioConfigError(UserError):
    """A portfolio config (prod.json) that cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class PortfolioEntry:
    """One instance of the config, validated."""

    family: str
    params: dict[str, Any]
    symbol: str
    interval: str
    weight: float
    instance_id: int | None = None
    exchange: str | None = None


def load_portfolio_config(path: Path) -> list[PortfolioEntry]:
    """The instances of a prod.json (written by `cli.py weights`), validated."""
    path = Path(path)
    if path.is_dir():
        raise PortfolioConfigError(f"{path} is a directory; give the prod.json file in it")
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such portfolio config; write one with `cli.py weights`"
        )
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PortfolioConfigError(f"{path} is not valid JSON ({exc}); give a prod.json") from None
    raw = document.get("instances") if isinstance(document, dict) else document
    if not isinstance(raw, list) or not raw:
        raise PortfolioConfigError(
            f'{path} lists no instances; expected {{"instances": [{{"family": ..., "symbol": '
            '..., "interval": ..., "params": {...}, "weight": ...}]}} as `cli.py weights` '
            "writes"
        )
    default_exchange = document.get("exchange") if isinstance(document, dict) else None
    entries = [_entry(path, i, item, default_exchange) for i, item in enumerate(raw)]
    check_one_currency(entries, path)
    return entries


def load_limits(path: Path) -> dict[str, Any]:
    """The optional top-level "limits" object of a prod.json (live risk limits, validated by
    live/risk_limits.RiskLimits.parse), {} when it has none; a prod.json without it loads
    unchanged. A file that cannot be read is left to load_portfolio_config to report."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    limits = document.get("limits") if isinstance(document, dict) else None
    if limits is None:
        return {}
    if not isinstance(limits, dict):
        raise PortfolioConfigError(
            f'{path}: "limits" must be an object like {{"max_drawdown": 0.2, "max_open": 10}}'
        )
    return limits


def check_one_currency(entries: list[PortfolioEntry], path: Path | str) -> str | None:
    """The account's quote currency; PortfolioConfigError when instances are quoted in several
    (adding BTC and ETH pnl into one cash would be a sum of different units)."""
    by_currency: dict[str, list[str]] = {}
    for entry in entries:
        currency = quote_currency(entry.symbol) or "?"
        by_currency.setdefault(currency, [])
        if entry.symbol not in by_currency[currency]:
            by_currency[currency].append(entry.symbol)
    if len(by_currency) <= 1:
        return next(iter(by_currency), None)
    listing = "; ".join(
        f"{currency}: {', '.join(symbols)}" for currency, symbols in sorted(by_currency.items())
    )
    biggest = max(by_currency, key=lambda c: len(by_currency[c]))
    raise PortfolioConfigError(
        f"{path}: one account holds one currency, but the instances are quoted in "
        f"{len(by_currency)} ({listing}); split the config into one portfolio per quote "
        f"currency (e.g. keep the {biggest}-quoted instances only)"
    )


def _entry(path: Path, i: int, item: Any, exchange: str | None) -> PortfolioEntry:
    where = f"{path} instance #{i + 1}"
    if not isinstance(item, dict):
        raise PortfolioConfigError(f"{where} must be an object with family, symbol, interval")
    missing = [k for k in ("family", "symbol", "interval") if not item.get(k)]
    if missing:
        raise PortfolioConfigError(f"{where} has no {', '.join(missing)}; add it to the config")
    params = item.get("params") or {}
    if isinstance(params, str):
        params = json.loads(params_text(params))
    if not isinstance(params, dict):
        raise PortfolioConfigError(f'{where}: params must be an object like {{"lookback": 20}}')
    weight = item.get("weight", 1.0)
    if (
        isinstance(weight, bool)
        or not isinstance(weight, int | float)
        or not (math.isfinite(weight) and weight > 0)
    ):
        raise PortfolioConfigError(f"{where}: weight must be a positive number, got {weight!r}")
    instance_id = item.get("instance_id")
    return PortfolioEntry(
        family=str(item["family"]),
        params=params,
        symbol=str(item["symbol"]),
        interval=str(item["interval"]),
        weight=float(weight),
        instance_id=int(instance_id) if instance_id is not None else None,
        exchange=item.get("exchange") or exchange,
    )


def instance_label(strategy: Strategy, symbol: str, interval: str) -> str:
    """e.g. "sr_breakout[ETH/BTC 5m lookback=30]": parameters that differ from the defaults."""
    defaults = {k: d for k, (_t, d) in type(strategy).parameters().items()}
    changed = [f"{k}={v}" for k, v in strategy.param_dict().items() if defaults.get(k) != v]
    inner = " ".join([symbol, interval, *([",".join(changed)] if changed else [])])
    return f"{strategy.name}[{inner}]"


def build_members(entries: list[PortfolioEntry]) -> list[PortfolioMember]:
    members: list[PortfolioMember] = []
    seen: dict[str, int] = {}
    for entry in entries:
        strategy = make_strategy(entry.family, entry.params)
        label = instance_label(strategy, entry.symbol, entry.interval)
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:  # the same instance twice in the config: keep both, apart
            label = f"{label}#{seen[label]}"
        members.append(PortfolioMember(label, strategy, entry.symbol, entry.interval, entry.weight))
    return members


def load_series(
    entries: list[PortfolioEntry], db_url: str, exchange: str, start: Any, end: Any
) -> dict[SeriesKey, pd.DataFrame]:
    """Each distinct (symbol, interval) once, from the database (resampled when not stored)."""
    from store.bars import load_bars

    series: dict[SeriesKey, pd.DataFrame] = {}
    for entry in entries:
        key = (entry.symbol, entry.interval)
        if key not in series:
            series[key] = load_bars(db_url, entry.exchange or exchange, *key, start, end)
    return series


def window_warnings(series: dict[SeriesKey, pd.DataFrame]) -> list[str]:
    """Warnings when the series' data windows leave gaps of no data between them (a portfolio
    over data 21 months apart): the metrics then count only the time with data."""
    from analysis.spans import data_gaps

    frames = [frame.index for frame in series.values() if len(frame)]
    if not frames:
        return []
    union = frames[0].append(frames[1:]).unique().sort_values() if len(frames) > 1 else frames[0]
    gaps = data_gaps(union)
    if not gaps:
        return []
    windows = "; ".join(
        f"{symbol} {interval} {_day(f.index[0])}..{_day(f.index[-1])}"
        for (symbol, interval), f in series.items()
        if len(f)
    )
    holes = ", ".join(
        f"{_day(a)}..{_day(b)} ({(b - a) / pd.Timedelta(days=1):.0f} days)" for a, b in gaps[:3]
    )
    more = f" and {len(gaps) - 3} more" if len(gaps) > 3 else ""
    return [
        f"the instances' data windows are disjoint ({windows}): no bars at all in {holes}{more}; "
        "metrics count only the time with data (span_days), not the gaps; for one continuous "
        "test, choose instances with overlapping data or narrow --start/--end"
    ]


def _day(stamp: pd.Timestamp) -> str:
    return pd.Timestamp(stamp).strftime("%Y-%m-%d")
