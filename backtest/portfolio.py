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
- rejections.csv: every signal the account refused (compliance or no size left) and why;
and stores the run in the database (strategy "portfolio", params = the config's instances) with
its trades and orders, as a single backtest is stored. The config side (prod.json loading and
validation, instance labels, loading the series) is backtest/portfolio_config.py.

Sizing: an instance risks `risk x weight` of the account equity per trade (see
WeightedPortfolio); cash and exposure caps are account-wide. With `use_ray` the signals of the
instances are computed in parallel by Ray actors (backtest/portfolio_ray.py), one batch per actor;
the account itself always runs in this process and gives the same trades.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actors.portfolio_kernel import run_portfolio_kernel
from actors.weighted_portfolio import PortfolioMember, SeriesKey
from analysis.columns import currency_of
from analysis.exports import params_text
from backtest.portfolio_config import (  # the config side, re-exported for callers
    PortfolioConfigError,
    PortfolioEntry,
    build_members,
    instance_label,
    load_portfolio_config,
    load_series,
    window_warnings,
)
from backtest.run import (
    ENGINE_VERSION,
    TIME_FORMAT,
    TRADE_COLUMNS,
    BacktestConfig,
    iso_times,
    metrics_for,
    trades_frame,
    write_trades_equity,
)
from core.intervals import interval_ns
from core.vocabulary import Side, TradeStatus

__all__ = [
    "PortfolioConfigError",
    "PortfolioEntry",
    "PortfolioResult",
    "build_members",
    "instance_label",
    "load_portfolio_config",
    "load_series",
    "run_portfolio",
    "run_portfolio_backtest",
    "write_portfolio_outputs",
]

PORTFOLIO_EXTRA_COLUMNS = ("params", "run_id", "instance", "weight", "instance_id")
REJECTION_COLUMNS = ("time", "instance", "symbol", "side", "reason")


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
    warnings: list[str] = field(default_factory=list)  # e.g. disjoint data windows


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
        from backtest.portfolio_ray import with_signals

        members = [
            PortfolioMember(
                m.label, with_signals(m.strategy, signals[m.label]), m.symbol, m.interval, m.weight
            )
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
        from backtest.portfolio_ray import compute_signals_on_ray

        signals = compute_signals_on_ray(members, series, ray_address)
    result = run_portfolio(members, series, config, entries, signals)
    result.source = str(config_path)
    result.warnings = window_warnings(series)
    write_portfolio_outputs(result, Path(out_dir))
    store_portfolio_run(db_url, result)
    if not quiet:
        _summary(result, Path(out_dir))
    return result


# -- results ------------------------------------------------------------------------------------
def portfolio_equity(
    series: dict[SeriesKey, pd.DataFrame], records: list[dict[str, Any]], cash: float
) -> pd.DataFrame:
    """Cash and equity at every bar close of any series, rebuilt vectorized from the fills.

    Rows are the union of the bar close times; `timestamp` = close time - the finest interval
    (so a one-series portfolio gives exactly a single backtest's equity.csv). A fill in a bar of
    series s counts from that bar's close; a position is marked at the latest close of its own
    series (the rule of backtest.run.equity_curve, per series).
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
            sign = 1.0 if r["side"] == Side.LONG else -1.0
            e = int(np.searchsorted(open_ns, r["entry_ts"], "right")) - 1
            qty_delta[e] += sign * r["quantity"]
            cash_delta[np.searchsorted(at, close_ns[e])] -= (
                sign * r["quantity"] * r["entry_price"] + r["entry_fee"]
            )
            if r["status"] == TradeStatus.CLOSED:
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
    from analysis.metrics import compute_metrics

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
            # no per-instance bar-close curve exists in a shared account: drawdown, sharpe and
            # sortino here come from equity stepped at this instance's trade exits
            "metrics_basis": "equity rebuilt from this instance's trades at their exit times",
        }
    return out


def write_portfolio_outputs(result: PortfolioResult, out_dir: Path) -> None:
    """trades.csv, equity.csv, results.json, portfolio_trades.csv, rejections.csv."""
    write_trades_equity(result.trades, result.equity, out_dir)
    iso_times(result.portfolio_trades).to_csv(out_dir / "portfolio_trades.csv", index=False)
    rejected = pd.DataFrame(
        [
            {
                "time": pd.Timestamp(r["ts"], tz="UTC").strftime(TIME_FORMAT),
                "instance": r["strategy"],
                "symbol": r["symbol"],
                "side": r["side"],
                "reason": r["reason"],
            }
            for r in result.rejections
        ],
        columns=list(REJECTION_COLUMNS),
    )
    rejected.to_csv(out_dir / "rejections.csv", index=False)
    document = results_document(result)
    (out_dir / "results.json").write_text(json.dumps(document, indent=2, default=str) + "\n")


def store_portfolio_run(db_url: str, result: PortfolioResult) -> None:
    """The run in the database as single backtests are: strategy "portfolio", params = the
    config's instances, with its trades (trades.csv rows) and orders."""
    from actors.order_store import order_rows
    from store.runs import save_backtest_run

    document = results_document(result)
    run = {
        "run_id": result.run_id,
        "run_key": None,
        "instance_id": None,
        "strategy": "portfolio",
        "symbol": _fit(document["symbol"], 64),  # the column widths of store.models.BacktestRun
        "interval": _fit(document["interval"], 8),
        "params": {"instances": [asdict(e) for e in result.entries]},
        "start": result.start,
        "end": result.end,
        "bars": document["bars"],
        "status": "done",
        "error": None,
        "metrics": result.metrics,
        "engine_version": ENGINE_VERSION,
    }
    # orders carry the family, as trades.csv does (instance labels can outgrow the column)
    family = {m.label: m.strategy.name for m in result.members}
    orders = [{**o, "strategy": family.get(o["strategy"], o["strategy"])} for o in result.orders]
    save_backtest_run(db_url, run, result.trades, order_rows(orders, result.run_id))


def _fit(joined: str, width: int) -> str:
    """Comma-joined symbols/intervals, or "mixed" when they do not fit the column."""
    return joined if len(joined) <= width else "mixed"


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
        "currency": currency_of(symbols),  # one per account (portfolio_config refuses several)
        "signals_rejected": len(result.rejections),
        "warnings": result.warnings,
        "settings": asdict(result.config),
        "by_strategy": result.by_strategy,
    }


def _summary(result: PortfolioResult, out: Path) -> None:
    from rich.console import Console

    total = result.metrics.get("total_return")
    text = f"{total:.2%}" if isinstance(total, float) else "n/a"
    currency = currency_of(m.symbol for m in result.members) or ""
    final = result.metrics.get("final_equity")
    money = f", equity {result.config.cash:,.2f} -> {final:,.2f} {currency}" if final else ""
    Console().print(
        f"portfolio of {len(result.members)} instance(s): {len(result.trades)} trades, "
        f"{len(result.rejections)} signals rejected, total return {text}{money}; wrote trades.csv, "
        f"portfolio_trades.csv, equity.csv, results.json, rejections.csv to {out} "
        f"(run {result.run_id})",
        highlight=False,
    )
    for warning in result.warnings:
        Console(stderr=True).print(f"[yellow]warning:[/] {warning}", highlight=False)


def _ns(index: Any) -> np.ndarray:
    return pd.DatetimeIndex(index).as_unit("ns").asi8
