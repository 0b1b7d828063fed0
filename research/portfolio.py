"""Portfolio backtest: every instance of a prod.json trades ONE shared account.

`cli.py backtest --portfolio prod.json --out DIR` loads each instance's bars, runs all instances
in one actor graph (actors/portfolio_kernel.py: one Portfolio, one OrderManager, one exchange,
one strategy host per instance, one runtime ordered by time across symbols and intervals) and
writes:
- trades.csv, equity.csv, results.json as a single backtest (same columns; `strategy` is the
  family name), results.json adding `by_strategy` (per instance: weight, trades, pnl, rejected
  signals, metrics on the shared cash) and `instances`;
- portfolio_trades.csv: the combined trades layout (trades.csv columns + params, run_id) plus
  `instance` (label such as "sr_breakout[ETH/BTC 5m lookback=30]"), `weight`, `instance_id`;
- rejections.csv: every signal the account refused (compliance or no size left) and why.

Sizing: an instance risks `risk x weight` of the account equity per trade (see
WeightedPortfolio); cash and exposure caps are account-wide. With `use_ray` the signals of the
instances are computed in parallel by Ray actors (research/portfolio_ray.py), one batch per actor;
the account itself always runs in this process and gives the same trades.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actors.portfolio_kernel import PortfolioMember, SeriesKey, run_portfolio_kernel
from factors.bars import interval_ns
from research.backtest import (
    EQUITY_COLUMNS,
    TIME_FORMAT,
    TRADE_COLUMNS,
    BacktestConfig,
    metrics_for,
    trades_frame,
)
from research.exports import params_text
from strategies.base import Strategy
from strategies.registry import make_strategy

PORTFOLIO_EXTRA_COLUMNS = ("params", "run_id", "instance", "weight", "instance_id")
REJECTION_COLUMNS = ("time", "instance", "symbol", "side", "reason")


class PortfolioConfigError(ValueError):
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


@dataclass
class PortfolioResult:
    run_id: str
    members: list[PortfolioMember]
    entries: list[PortfolioEntry]
    start: pd.Timestamp
    end: pd.Timestamp
    trades: pd.DataFrame  # trades.csv columns, strategy = family name
    portfolio_trades: pd.DataFrame  # + params, run_id, instance, weight, instance_id
    equity: pd.DataFrame
    orders: list[dict]
    rejections: list[dict]
    metrics: dict
    by_strategy: dict[str, dict]
    config: BacktestConfig = field(default_factory=BacktestConfig)
    source: str = ""


# -- config -------------------------------------------------------------------------------------
def load_portfolio_config(path: Path) -> list[PortfolioEntry]:
    """The instances of a prod.json (written by `cli.py weights`), validated."""
    path = Path(path)
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
    return [_entry(path, i, item, default_exchange) for i, item in enumerate(raw)]


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


def load_series(entries: list[PortfolioEntry], db_url: str, exchange: str, start: Any,
                end: Any) -> dict[SeriesKey, pd.DataFrame]:  # fmt: skip
    """Each distinct (symbol, interval) once, from the database (resampled when not stored)."""
    from store.bars import load_bars

    series: dict[SeriesKey, pd.DataFrame] = {}
    for entry in entries:
        key = (entry.symbol, entry.interval)
        if key not in series:
            series[key] = load_bars(db_url, entry.exchange or exchange, *key, start, end)
    return series


# -- running ------------------------------------------------------------------------------------
def run_portfolio(
    members: list[PortfolioMember],
    series: dict[SeriesKey, pd.DataFrame],
    config: BacktestConfig = BacktestConfig(),
    entries: list[PortfolioEntry] | None = None,
    signals: dict[str, pd.DataFrame] | None = None,
) -> PortfolioResult:
    """Run the members on one shared account in this process; `signals` (label -> frame of
    Strategy.compute) skips computing them here (they were computed on Ray)."""
    if signals is not None:
        from research.portfolio_ray import with_signals

        members = [
            PortfolioMember(
                m.label, with_signals(m.strategy, signals[m.label]), m.symbol, m.interval, m.weight
            )  # fmt: skip
            for m in members
        ]
    output = run_portfolio_kernel(members, series, config)
    run_id = uuid.uuid4().hex
    labelled = trades_frame(output.trades)
    equity = portfolio_equity(series, output.trades, config.cash)
    rejections = output.portfolio["rejections"]
    trades = _family_trades(labelled, members)
    return PortfolioResult(
        run_id=run_id,
        members=list(members),
        entries=list(entries or []),
        start=min(frame.index[0] for frame in series.values()),
        end=max(frame.index[-1] for frame in series.values()),
        trades=trades,
        portfolio_trades=_portfolio_trades(labelled, trades, members, entries, run_id),
        equity=equity,
        orders=output.orders,
        rejections=rejections,
        metrics=metrics_for(trades, equity, config.cash),
        by_strategy=by_strategy(labelled, members, entries, rejections, config.cash),
        config=config,
    )


def run_portfolio_backtest(
    config_path: Path,
    out_dir: Path,
    db_url: str,
    start: Any,
    end: Any,
    config: BacktestConfig,
    ray_address: str | None = None,
    use_ray: bool = False,
    exchange: str = "binance",
    quiet: bool = False,
) -> PortfolioResult:
    """Load prod.json and its bars, run the portfolio, write the files into out_dir."""
    if out_dir is None:
        raise PortfolioConfigError(
            "backtest --portfolio needs --out DIR; e.g. cli.py backtest --portfolio prod.json "
            "--out out/portfolio"
        )
    entries = load_portfolio_config(config_path)
    members = build_members(entries)
    series = load_series(entries, db_url, exchange, start, end)
    signals = None
    if use_ray or ray_address:
        from research.portfolio_ray import compute_signals_on_ray

        signals = compute_signals_on_ray(members, series, ray_address)
    result = run_portfolio(members, series, config, entries, signals)
    result.source = str(config_path)
    write_portfolio_outputs(result, Path(out_dir))
    if not quiet:
        _summary(result, Path(out_dir))
    return result


# -- results ------------------------------------------------------------------------------------
def portfolio_equity(series: dict[SeriesKey, pd.DataFrame], records: list[dict[str, Any]],
                     cash: float) -> pd.DataFrame:  # fmt: skip
    """Cash and equity at every bar close of any series, rebuilt vectorized from the fills.

    Rows are the union of the bar close times; `timestamp` = close time - the finest interval
    (so a one-series portfolio gives exactly a single backtest's equity.csv). A fill in a bar of
    series s counts from that bar's close; a position is marked at the latest close of its own
    series (the rule of research.backtest.equity_curve, per series).
    """
    step = min(interval_ns(interval) for _symbol, interval in series)
    closes = {key: _ns(frame.index) + interval_ns(key[1]) for key, frame in series.items()}
    at = np.unique(np.concatenate(list(closes.values())))
    cash_delta = np.zeros(len(at))
    held_value = np.zeros(len(at))
    grouped: dict[SeriesKey, list[dict[str, Any]]] = {}
    for r in records:
        grouped.setdefault((r["symbol"], r["interval"]), []).append(r)
    for key, recs in grouped.items():
        frame, close_ns = series[key], closes[key]
        open_ns = _ns(frame.index)
        qty_delta = np.zeros(len(frame))
        for r in recs:
            sign = 1.0 if r["side"] == "long" else -1.0
            e = int(np.searchsorted(open_ns, r["entry_ts"], "right")) - 1
            qty_delta[e] += sign * r["quantity"]
            cash_delta[np.searchsorted(at, close_ns[e])] -= (
                sign * r["quantity"] * r["entry_price"] + r["entry_fee"]
            )
            if r["status"] == "CLOSED":
                x = int(np.searchsorted(open_ns, r["exit_ts"], "right")) - 1
                qty_delta[x] -= sign * r["quantity"]
                cash_delta[np.searchsorted(at, close_ns[x])] += (
                    sign * r["quantity"] * r["exit_price"] - r["exit_fee"]
                )
        held = np.cumsum(qty_delta)
        held[np.abs(held) < 1e-12] = 0.0  # exact zero when flat despite float sums
        j = np.searchsorted(close_ns, at, "right") - 1
        mark = frame["close"].to_numpy(np.float64)
        held_value += np.where(j >= 0, held[np.maximum(j, 0)] * mark[np.maximum(j, 0)], 0.0)
    cash_curve = cash + np.cumsum(cash_delta)
    unit = pd.DatetimeIndex(next(iter(series.values())).index).unit  # as the bar frames
    return pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex(pd.to_datetime(at - step, utc=True)).as_unit(unit),
            "equity": cash_curve + held_value,
            "cash": cash_curve,
        }
    )


def _family_trades(labelled: pd.DataFrame, members: list[PortfolioMember]) -> pd.DataFrame:
    family = {m.label: m.strategy.name for m in members}
    trades = labelled.copy()
    trades["strategy"] = trades["strategy"].map(family)
    return trades


def _portfolio_trades(labelled, trades, members, entries, run_id) -> pd.DataFrame:
    meta = _member_meta(members, entries)
    out = trades.copy()
    out["params"] = [meta[label]["params_text"] for label in labelled["strategy"]]
    out["run_id"] = run_id
    out["instance"] = labelled["strategy"].to_numpy()
    out["weight"] = [meta[label]["weight"] for label in labelled["strategy"]]
    out["instance_id"] = pd.array(
        [meta[label]["instance_id"] for label in labelled["strategy"]], dtype="Int64"
    )
    return out.reindex(columns=[*TRADE_COLUMNS, *PORTFOLIO_EXTRA_COLUMNS])


def _member_meta(members, entries) -> dict[str, dict[str, Any]]:
    entries = entries or [None] * len(members)
    return {
        m.label: {
            "family": m.strategy.name,
            "symbol": m.symbol,
            "interval": m.interval,
            "params": m.strategy.param_dict(),
            "params_text": params_text(m.strategy.param_dict()),
            "weight": m.weight,
            "instance_id": e.instance_id if e is not None else None,
        }
        for m, e in zip(members, entries, strict=True)
    }


def by_strategy(labelled: pd.DataFrame, members, entries, rejections, cash: float) -> dict:
    """Per instance: its trades' metrics on the shared starting cash (equity from its pnl)."""
    from research.metrics import compute_metrics

    meta = _member_meta(members, entries)
    refused: dict[str, int] = {}
    for r in rejections:
        refused[r["strategy"]] = refused.get(r["strategy"], 0) + 1
    out = {}
    for label, info in meta.items():
        mine = labelled[labelled["strategy"] == label]
        out[label] = {
            **{k: v for k, v in info.items() if k != "params_text"},
            "trades": len(mine),
            "pnl": float(mine["pnl"].sum()) if len(mine) else 0.0,
            "signals_rejected": refused.get(label, 0),
            "metrics": compute_metrics(mine, None, cash),
        }
    return out


def write_portfolio_outputs(result: PortfolioResult, out_dir: Path) -> None:
    """trades.csv, equity.csv, results.json, portfolio_trades.csv, rejections.csv."""
    out_dir.mkdir(parents=True, exist_ok=True)
    trades = result.trades.loc[:, list(TRADE_COLUMNS)].copy()
    portfolio = result.portfolio_trades.copy()
    for frame in (trades, portfolio):
        for column in ("entry_time", "exit_time"):
            frame[column] = _iso(frame[column])
    trades.to_csv(out_dir / "trades.csv", index=False)
    portfolio.to_csv(out_dir / "portfolio_trades.csv", index=False)
    equity = result.equity.loc[:, list(EQUITY_COLUMNS)].copy()
    equity["timestamp"] = _iso(equity["timestamp"])
    equity.to_csv(out_dir / "equity.csv", index=False)
    rejected = pd.DataFrame(
        [
            {"time": pd.Timestamp(r["ts"], tz="UTC").strftime(TIME_FORMAT),
             "instance": r["strategy"], "symbol": r["symbol"], "side": r["side"],
             "reason": r["reason"]}
            for r in result.rejections
        ],
        columns=list(REJECTION_COLUMNS),
    )  # fmt: skip
    rejected.to_csv(out_dir / "rejections.csv", index=False)
    document = results_document(result)
    (out_dir / "results.json").write_text(json.dumps(document, indent=2, default=str) + "\n")


def results_document(result: PortfolioResult) -> dict[str, Any]:
    symbols = list(dict.fromkeys(m.symbol for m in result.members))
    intervals = list(dict.fromkeys(m.interval for m in result.members))
    return {
        "run_id": result.run_id,
        "strategy": "portfolio",
        "symbol": ",".join(symbols),
        "interval": ",".join(intervals),
        "params": {"config": result.source, "instances": len(result.members)},
        "start": pd.Timestamp(result.start).strftime(TIME_FORMAT),
        "end": pd.Timestamp(result.end).strftime(TIME_FORMAT),
        "bars": len(result.equity),
        "metrics": result.metrics,
        "signals_rejected": len(result.rejections),
        "settings": asdict(result.config),
        "by_strategy": result.by_strategy,
    }


def _summary(result: PortfolioResult, out: Path) -> None:
    from rich.console import Console

    total = result.metrics.get("total_return")
    text = f"{total:.2%}" if isinstance(total, float) else "n/a"
    Console().print(
        f"portfolio of {len(result.members)} instance(s): {len(result.trades)} trades, "
        f"{len(result.rejections)} signals rejected, total return {text}; wrote trades.csv, "
        f"portfolio_trades.csv, equity.csv, results.json, rejections.csv to {out} "
        f"(run {result.run_id})",
        highlight=False,
    )


def _iso(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True).dt.strftime(TIME_FORMAT)


def _ns(index: Any) -> np.ndarray:
    return pd.DatetimeIndex(index).as_unit("ns").asi8
