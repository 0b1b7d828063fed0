"""Export formats around backtests, shared by `backtest`, `backtest --all` and the ML layer.

- Combined trades CSV: the trades.csv columns plus `params` (canonical JSON) and `run_id`, so the
  trades of many backtests can be split apart and combined again. `--separate` writes one CSV per
  backtest instead (same columns).
- results.csv: one row per backtest with RESULTS_COLUMNS (run columns, then every metric).
- factors.csv: factor values known at each trade's entry (factors.engine.compute_factors).
- portfolio_trades.csv: written by backtest/portfolio.py (combined layout + portfolio columns).
- trades_by_model.csv: reserved for the ML layer: the combined layout plus `model_id`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.columns import TRADE_COLUMNS as TRADES_COLUMNS
from analysis.columns import iso_utc
from analysis.metrics import METRIC_KEYS

RUN_COLUMNS = (
    "run_id",
    "run_key",
    "instance_id",
    "strategy",
    "symbol",
    "interval",
    "params",
    "start",
    "end",
    "bars",
    "status",
    "error",
)
RESULTS_COLUMNS = RUN_COLUMNS + METRIC_KEYS
COMBINED_TRADES_COLUMNS = (*TRADES_COLUMNS, "params", "run_id")
MODEL_TRADES_COLUMNS = (*COMBINED_TRADES_COLUMNS, "model_id")


def params_text(params: dict[str, Any] | str | None) -> str:
    """Canonical JSON of a parameter set (sorted keys, compact): equal sets give equal text."""
    if isinstance(params, str):
        params = json.loads(params) if params.strip() else {}
    return json.dumps(params or {}, sort_keys=True, separators=(",", ":"), default=str)


def tagged_trades(result: Any) -> pd.DataFrame:
    """A BacktestResult's trades in the combined layout (instance columns filled from the run)."""
    trades = result.trades.copy()
    for col in TRADES_COLUMNS:
        if col not in trades.columns:
            trades[col] = None
    trades["strategy"] = result.strategy
    trades["symbol"] = result.symbol
    trades["interval"] = result.interval
    trades["params"] = params_text(result.params)
    trades["run_id"] = result.run_id
    for col in ("entry_time", "exit_time"):
        trades[col] = [iso_utc(v) for v in trades[col]]
    return trades[list(COMBINED_TRADES_COLUMNS)]


def separate_name(run: Any) -> str:
    """File name of one backtest's trades under --separate: family_symbol_interval_runid.csv."""
    symbol = str(run.symbol).replace("/", "-").replace(":", "-")
    family = Path(str(run.strategy).rsplit(":", 1)[-1]).name
    return f"{family}_{symbol}_{run.interval}_{run.run_id}.csv"


def write_trades(results: Sequence[Any], out_dir: Path, separate: bool = False) -> list[Path]:
    """All backtests' trades into out_dir/trades.csv, or one CSV each under out_dir/trades/."""
    out_dir = Path(out_dir)
    if not separate:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "trades.csv"
        frames = [tagged_trades(r) for r in results]
        frames = [f for f in frames if len(f)] or [pd.DataFrame(columns=COMBINED_TRADES_COLUMNS)]
        pd.concat(frames, ignore_index=True).to_csv(path, index=False)
        return [path]
    folder = out_dir / "trades"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for result in results:
        path = folder / separate_name(result)
        tagged_trades(result).to_csv(path, index=False)
        paths.append(path)
    return paths


def write_results_csv(rows: Iterable[dict], path: Path) -> Path:
    """results.csv with RESULTS_COLUMNS first (extra keys of the rows follow); None -> empty."""
    frame = pd.DataFrame(list(rows))
    extra = [c for c in frame.columns if c not in RESULTS_COLUMNS]
    frame = frame.reindex(columns=[*RESULTS_COLUMNS, *extra])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return Path(path)


def factors_at_entry(
    trades: pd.DataFrame, bars: pd.DataFrame, interval: str, names: list[str] | None = None
) -> pd.DataFrame:
    """Factor values known when each trade was entered: those of the last bar that had CLOSED at
    or before entry_time (a signal at bar t fills at the open of t+1 = the close of t)."""
    from factors.bars import interval_delta
    from factors.engine import compute_factors

    table = compute_factors(bars, names, interval=interval)
    closes = table.index + interval_delta(interval)
    known = table.reset_index(drop=True).assign(_known_at=closes.as_unit("ns"))
    trade_ids = trades["trade_id"].to_numpy() if "trade_id" in trades else range(len(trades))
    stamps = pd.to_datetime(trades["entry_time"], utc=True, format="ISO8601").dt.as_unit("ns")
    # positional frame: the output keeps the input's row order whatever its index
    entries = pd.DataFrame({"trade_id": trade_ids, "entry_time": stamps.reset_index(drop=True)})
    order = entries["entry_time"].argsort(kind="stable")
    merged = pd.merge_asof(
        entries.iloc[order], known, left_on="entry_time", right_on="_known_at", direction="backward"
    )
    merged.index = entries.index[order]
    merged = merged.sort_index().drop(columns="_known_at")
    merged["entry_time"] = [iso_utc(v) for v in merged["entry_time"]]
    return merged


def write_factors_csv(
    trades: pd.DataFrame, bars: pd.DataFrame, interval: str, out_dir: Path, names=None
) -> Path:
    """factors.csv next to trades.csv."""
    path = Path(out_dir) / "factors.csv"
    factors_at_entry(trades, bars, interval, names).to_csv(path, index=False)
    return path


def write_trades_by_model(trades: pd.DataFrame, model_id: str, out_dir: Path) -> Path:
    """trades_by_model.csv (ML layer): the combined layout plus the model that took the trade."""
    path = Path(out_dir) / "trades_by_model.csv"
    frame = trades.reindex(columns=list(COMBINED_TRADES_COLUMNS)).assign(model_id=model_id)
    if path.exists():  # several models append to one file
        frame.to_csv(path, mode="a", header=False, index=False)
    else:
        frame.to_csv(path, index=False)
    return path
