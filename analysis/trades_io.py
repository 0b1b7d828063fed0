"""Read and validate trades for analysis: a trades.csv (ours or a user's) or a backtest directory.

Every problem raises TradesFileError (a ValueError) with one line naming the file, the row or
column, and how to fix it; `cli.py` prints it as `error: ...`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.columns import TRADE_COLUMNS as TRADES_COLUMNS  # the one definition
from analysis.metrics import DEFAULT_CASH
from core.errors import UserError

REQUIRED_COLUMNS = ("entry_time", "exit_time", "pnl")
NUMERIC_COLUMNS = ("entry_price", "exit_price", "quantity", "fees", "pnl", "return_pct")
LABEL_COLUMNS = ("strategy", "symbol", "interval", "side", "exit_reason")
# Columns that identify one backtest (strategy instance) in a combined trades file.
INSTANCE_COLUMNS = ("strategy", "symbol", "interval", "params")


class TradesFileError(UserError):
    """A trades file or backtest directory that cannot be analysed."""


@dataclass
class TradeSet:
    """Trades ready for analysis, with the equity curve when the source had one."""

    trades: pd.DataFrame
    equity: pd.DataFrame | None
    initial_cash: float
    source: str
    notes: list[str] = field(default_factory=list)
    results: dict | None = None  # results.json of a single backtest directory
    # initial cash of each backtest when the equity was rebuilt from several (None otherwise)
    cash_per_run: float | None = None

    @property
    def equity_rebuilt(self) -> bool:
        return self.equity is None


def read_trades(path: Path, allow_empty: bool = False) -> pd.DataFrame:
    """A validated trades frame: UTC datetimes, float numbers, labels filled with "-"."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such trades file")
    if path.is_dir():
        raise TradesFileError(f"{path} is a directory; give a trades.csv file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise TradesFileError(
            f"{path} is empty; a trades file needs a header row with at least "
            f"{', '.join(REQUIRED_COLUMNS)}"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TradesFileError(f"{path} is not a readable CSV file: {first}") from None
    return validate_trades(frame, str(path), allow_empty=allow_empty)


def validate_trades(frame: pd.DataFrame, where: str, allow_empty: bool = False) -> pd.DataFrame:
    """Check and convert a frame of text cells read from `where` (see read_trades)."""
    frame = frame.rename(columns=lambda c: str(c).strip().lower())
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise TradesFileError(
            f"{where}: missing column(s) {', '.join(missing)}; a trades file needs "
            f"{', '.join(REQUIRED_COLUMNS)} (the full layout is {','.join(TRADES_COLUMNS)})"
        )
    if frame.empty and not allow_empty:
        raise TradesFileError(f"{where} has a header but no trades; nothing to analyse")
    out = frame.copy()
    for col in ("entry_time", "exit_time"):
        out[col] = _parse_times(out[col], col, where)
    for col in NUMERIC_COLUMNS:
        if col in out.columns:
            out[col] = _parse_numbers(out[col], col, where, required=col == "pnl")
    late = out["exit_time"] < out["entry_time"]
    if late.any():
        row = int(late.to_numpy().nonzero()[0][0])
        raise TradesFileError(
            f"{where} row {row + 2}: exit_time {out['exit_time'].iloc[row].isoformat()} is before "
            f"entry_time {out['entry_time'].iloc[row].isoformat()}; fix or drop that trade"
        )
    for col in LABEL_COLUMNS:
        out[col] = out[col].replace("", "-") if col in out.columns else "-"
    if "fees" not in out.columns:
        out["fees"] = 0.0
    if "trade_id" not in out.columns:
        out["trade_id"] = [str(i + 1) for i in range(len(out))]
    return out


def _parse_times(values: pd.Series, col: str, where: str) -> pd.Series:
    text = values.astype(str).str.strip()
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    bad = parsed.isna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise TradesFileError(
            f"{where} row {row + 2}: {col} {text.iloc[row]!r} is not a date; use ISO-8601 UTC "
            f"such as 2024-01-31T13:05:00Z ({int(bad.sum())} bad value(s) in {col})"
        )
    return parsed


def _parse_numbers(values: pd.Series, col: str, where: str, required: bool) -> pd.Series:
    text = values.astype(str).str.strip()
    parsed = pd.to_numeric(text, errors="coerce").astype(float)
    bad = parsed.isna() & (text != "") if not required else parsed.isna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise TradesFileError(
            f"{where} row {row + 2}: {col} {text.iloc[row]!r} is not a number "
            f"({int(bad.sum())} bad value(s) in {col})"
        )
    return parsed


def read_equity(path: Path) -> pd.DataFrame:
    """equity.csv: timestamp, equity[, cash]."""
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise TradesFileError(
            f"{path} is empty; expected columns timestamp, equity, cash"
        ) from None
    if "timestamp" not in frame.columns or "equity" not in frame.columns:
        raise TradesFileError(f"{path}: expected columns timestamp, equity, cash")
    stamps = pd.to_datetime(
        frame["timestamp"].astype(str), utc=True, format="ISO8601", errors="coerce"
    )
    if stamps.isna().any():
        row = int(stamps.isna().to_numpy().nonzero()[0][0])
        raise TradesFileError(f"{path} row {row + 2}: timestamp is not a date")
    frame["timestamp"] = stamps
    return frame


def load_trade_set(path: Path, cash: float | None = None) -> TradeSet:
    """A trades.csv, or a directory holding trades.csv (+ equity.csv, results.json)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        return _load_directory(path, cash)
    trades = read_trades(path)
    # a combined trades.csv of `backtest --all` (it has run_id) next to its results.csv
    sibling = path.parent / "results.csv" if "run_id" in trades.columns else None
    return _rebuilt(trades, cash, str(path), _done_runs(sibling, trades))


def _load_directory(path: Path, cash: float | None) -> TradeSet:
    trades_path = path / "trades.csv"
    if not trades_path.exists():
        raise TradesFileError(
            f"{path} has no trades.csv; give a backtest output directory or a trades file"
        )
    equity_path = path / "equity.csv"
    results = _read_results_json(path / "results.json")
    if not equity_path.exists():
        # a backtest (results.json) or fan-out (results.csv) directory may have no trades at all
        known_run = results is not None or (path / "results.csv").exists()
        trades = read_trades(trades_path, allow_empty=known_run)
        return _rebuilt(trades, cash, str(path), _done_runs(path / "results.csv", trades))
    trades = read_trades(trades_path, allow_empty=True)
    equity = read_equity(equity_path)
    metrics = (results or {}).get("metrics") or {}
    # the run's own cash wins over --cash: the curve already starts from it
    start_cash = metrics.get("initial_cash") or cash
    if start_cash is None:
        start_cash = float(equity["equity"].iloc[0]) if len(equity) else DEFAULT_CASH
    return TradeSet(trades, equity, float(start_cash), str(path), results=results)


def _read_results_json(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TradesFileError(f"{path} is not valid JSON: {exc}") from None


def instance_count(trades: pd.DataFrame) -> int:
    """Number of distinct backtests (strategy instances) in a trades frame."""
    cols = [c for c in INSTANCE_COLUMNS if c in trades.columns]
    if trades.empty or not cols:
        return 1
    return max(1, len(trades.groupby(cols, sort=False)))


def _done_runs(results_csv: Path | None, trades: pd.DataFrame) -> int | None:
    """How many backtests ran (status done) per the results.csv of `backtest --all`, so runs
    without trades still count towards the initial cash; None when there is no usable file or it
    does not describe these trades (a trade's run_id missing from it)."""
    if results_csv is None or not results_csv.is_file():
        return None
    try:
        runs = pd.read_csv(results_csv, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return None
    if "status" in runs.columns:
        runs = runs[runs["status"].isin(("done", ""))]
    if "run_id" in runs.columns and "run_id" in trades.columns and len(trades):
        if not set(trades["run_id"].astype(str)) <= set(runs["run_id"]):
            return None
    return len(runs) or None


def _rebuilt(
    trades: pd.DataFrame, cash: float | None, source: str, runs: int | None = None
) -> TradeSet:
    """No equity curve: every backtest (`runs`, else one per instance in the file) starts with
    `cash`; the curve is cash plus cumulative pnl at exit times."""
    per_run = float(cash) if cash is not None else DEFAULT_CASH
    counted = "" if runs is None else " in results.csv"
    runs = runs if runs is not None else instance_count(trades)
    total = per_run * runs
    note = (
        f"no equity curve: equity rebuilt from initial cash {total:,.2f}"
        + (f" ({runs} backtests{counted} x {per_run:,.2f})" if runs > 1 else "")
        + " plus cumulative pnl at exit times; drawdowns between exits are not seen"
    )
    return TradeSet(trades, None, total, source, notes=[note], cash_per_run=per_run)
