"""One backtest in-process: run the actor graph, build trades/equity, write the public files.

trades.csv (docs/design.md#tradescsv): one row per closed trade, ordered by trade_id.
- entry_time / exit_time: ISO-8601 UTC of the bar in which the fill happened (the bar's open
  time, the timestamp of the bar frame); the prices are the fill prices of docs/design.md#fill-semantics.
- fees: entry fee + exit fee. pnl: NET of both fees, so sum(pnl) == final equity - cash.
- return_pct: pnl / entry notional (quantity * entry_price), as a FRACTION (0.01 = 1 %).
equity.csv: one row per bar, `timestamp` the bar's timestamp, values at that bar's close:
cash, and equity = cash + open positions marked at the close.
results.json: run_id, strategy, symbol, interval, params, start, end, bars, metrics.
factors.csv (when write_outputs gets the bars): trade_id, entry_time and the factor values
known at each trade's signal bar, the last bar closed at the entry fill (no lookahead).

Order for a caller that also stores the run (the CLI): `prepare_out_dir(out)` BEFORE running
(a bad --out fails at once, nothing computed), then run, then `write_outputs`, and only then
store the run in the database, so a failed write never leaves a stored run without its files.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actors.kernel import KernelOutput, run_kernel
from analysis.columns import (  # noqa: F401 (TIME_FORMAT re-exported)
    EQUITY_COLUMNS,
    TIME_FORMAT,
    TRADE_COLUMNS,
    iso_utc,
    quote_currency,
)
from backtest.account import MIN_NOTIONAL_FRACTION, AccountSettings  # noqa: F401 (re-exported)
from backtest.csv_text import write_equity_csv
from core.errors import UserError
from core.vocabulary import Side, TradeStatus
from strategies.base import Strategy

ENGINE_VERSION = "raytrader-engine/2"  # 2: dust orders refused, annualised metrics need 30 days
RESULT_KEYS = ("run_id", "strategy", "symbol", "interval", "params", "start", "end", "bars")


@dataclass(frozen=True)
class BacktestConfig(AccountSettings):
    """The account settings of a backtest (backtest/account.py), checked when built."""

    def __post_init__(self) -> None:
        self.check("backtest setting")


@dataclass
class BacktestResult:
    run_id: str
    strategy: str
    symbol: str
    interval: str
    params: dict
    start: pd.Timestamp
    end: pd.Timestamp
    bars: int
    trades: pd.DataFrame
    equity: pd.DataFrame
    orders: list[dict]
    metrics: dict
    rejections: list[dict] = field(default_factory=list)
    config: BacktestConfig = field(default_factory=BacktestConfig)


def run_backtest(
    strategy: Strategy,
    bars: pd.DataFrame,
    symbol: str,
    interval: str,
    config: BacktestConfig = BacktestConfig(),
    mode: str = "fast",
) -> BacktestResult:
    """Backtest `strategy` on `bars` (a bar frame of factors/bars.py) in this process."""
    output = run_kernel(strategy, bars, symbol, interval, config, mode)
    return assemble_result(strategy, bars, symbol, interval, config, output)


def assemble_result(
    strategy: Strategy,
    bars: pd.DataFrame,
    symbol: str,
    interval: str,
    config: BacktestConfig,
    output: KernelOutput,
) -> BacktestResult:
    trades = trades_frame(output.trades)
    equity = equity_curve(bars, output.trades, config.cash)
    return BacktestResult(
        run_id=uuid.uuid4().hex,
        strategy=strategy.name,
        symbol=symbol,
        interval=interval,
        params=strategy.param_dict(),
        start=bars.index[0],
        end=bars.index[-1],
        bars=len(bars),
        trades=trades,
        equity=equity,
        orders=output.orders,
        metrics=metrics_for(trades, equity, config.cash),
        rejections=output.portfolio["rejections"],
        config=config,
    )


def trades_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Closed trades of the order manager as the trades.csv columns, ordered by trade_id."""
    closed = sorted(
        (r for r in records if r["status"] == TradeStatus.CLOSED), key=lambda r: r["trade_id"]
    )
    if not closed:
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in TRADE_COLUMNS})
        for c in ("entry_time", "exit_time"):
            frame[c] = pd.to_datetime(frame[c], utc=True)
        return frame
    raw = pd.DataFrame.from_records(closed)
    notional = raw["quantity"] * raw["entry_price"]
    return pd.DataFrame(
        {
            "trade_id": raw["trade_id"].astype("int64"),
            "strategy": raw["strategy"],
            "symbol": raw["symbol"],
            "interval": raw["interval"],
            "side": raw["side"],
            "entry_time": pd.to_datetime(raw["entry_ts"].astype("int64"), utc=True),
            "entry_price": raw["entry_price"].astype(float),
            "exit_time": pd.to_datetime(raw["exit_ts"].astype("int64"), utc=True),
            "exit_price": raw["exit_price"].astype(float),
            "quantity": raw["quantity"].astype(float),
            "fees": (raw["entry_fee"] + raw["exit_fee"]).astype(float),
            "pnl": raw["pnl"].astype(float),
            "return_pct": (raw["pnl"] / notional).astype(float),
            "exit_reason": raw["exit_reason"],
        }
    )


def equity_curve(bars: pd.DataFrame, records: list[dict[str, Any]], cash: float) -> pd.DataFrame:
    """Cash and equity at every bar close, rebuilt vectorized from the fills of the trades.

    A fill in bar k (at its open or intrabar) is in the cash of close k; a position entered in
    bar e and exited in bar x is marked at the closes of bars e .. x-1.
    """
    open_ns = pd.DatetimeIndex(bars.index).as_unit("ns").asi8
    close = bars["close"].to_numpy(np.float64)
    n = len(open_ns)
    cash_delta = np.zeros(n)
    qty_delta = np.zeros(n)
    if records:
        # Entry then exit of each trade, in record order: np.add.at adds in that order, so the
        # sums are bit for bit those of a loop over the records.
        bar, cash_change, qty_change = _fill_changes(open_ns, records)
        np.add.at(cash_delta, bar, cash_change)
        np.add.at(qty_delta, bar, qty_change)
    cash_curve = cash + np.cumsum(cash_delta)
    held = np.cumsum(qty_delta)
    held[np.abs(held) < 1e-12] = 0.0  # exact zero when flat despite float sums
    return pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex(bars.index, name=None),
            "equity": cash_curve + held * close,
            "cash": cash_curve,
        }
    )


def _fill_changes(
    open_ns: np.ndarray, records: list[dict[str, Any]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bar index, cash change, quantity change) of every fill, entries and exits interleaved."""
    closed = np.array([r["status"] == TradeStatus.CLOSED for r in records])
    sign = np.array([1.0 if r["side"] == Side.LONG else -1.0 for r in records])
    qty = np.array([r["quantity"] for r in records], dtype=np.float64)
    entry_ts = np.array([r["entry_ts"] for r in records], dtype=np.int64)
    entry_value = np.array([r["entry_price"] for r in records], dtype=np.float64)
    entry_fee = np.array([r["entry_fee"] for r in records], dtype=np.float64)
    exit_ts = np.array([r["exit_ts"] or 0 for r in records], dtype=np.int64)  # None: still open
    exit_value = np.array([r["exit_price"] or 0.0 for r in records], dtype=np.float64)
    exit_fee = np.array([r["exit_fee"] for r in records], dtype=np.float64)
    entry_bar = np.searchsorted(open_ns, entry_ts, "right") - 1
    exit_bar = np.searchsorted(open_ns, exit_ts, "right") - 1
    bars = np.stack([entry_bar, exit_bar], axis=1).ravel()
    cash = np.stack(
        [-(sign * qty * entry_value + entry_fee), sign * qty * exit_value - exit_fee], axis=1
    ).ravel()
    held = np.stack([sign * qty, -(sign * qty)], axis=1).ravel()
    keep = np.stack([np.ones_like(closed), closed], axis=1).ravel()
    return bars[keep], cash[keep], held[keep]


def metrics_for(trades: pd.DataFrame, equity: pd.DataFrame, cash: float) -> dict[str, Any]:
    from analysis.metrics import compute_metrics

    return compute_metrics(trades, equity, cash)


class OutDirError(UserError):
    """An output directory that cannot be used; the message says which and how to fix it."""


def prepare_out_dir(path: str | Path | None) -> Path:
    """The output directory, created if missing (with its parents), checked writable.

    Call it before running a backtest so a bad `--out` fails at once. Raises OutDirError for an
    empty path, an existing non-directory, a parent that is a file, or no write permission.
    """
    if path is None or not str(path).strip():
        raise OutDirError("--out is empty; give an output directory, e.g. --out out/run1")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutDirError(
            f"--out {str(out)!r} exists and is not a directory; give a directory path "
            "(it is created if missing) or remove that file"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutDirError(
            f"cannot create output directory {str(out)!r}: {exc.strerror or exc}; "
            "check that every parent is a writable directory"
        ) from None
    if not os.access(out, os.W_OK | os.X_OK) or not _can_create_file(out):
        raise OutDirError(f"output directory {str(out)!r} is not writable; choose another --out")
    return out


def _can_create_file(directory: Path) -> bool:
    """A real probe: os.access says yes to root on a read-only mount or directory."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".raytrader-probe-"):
            return True
    except OSError:
        return False


def write_outputs(result: BacktestResult, out_dir: Path, bars: pd.DataFrame | None = None) -> None:
    """trades.csv, equity.csv and results.json into out_dir (created if missing); with the
    backtest's `bars` also factors.csv: the factors known at each trade's signal bar.
    OutDirError (a ValueError) when the directory cannot be created or written."""
    out_dir = prepare_out_dir(out_dir)
    try:
        write_trades_equity(result.trades, result.equity, out_dir)
        text = json.dumps(results_document(result), indent=2) + "\n"
        (out_dir / "results.json").write_text(text)
        if bars is not None:
            from analysis.exports import write_factors_csv

            write_factors_csv(result.trades, bars, result.interval, out_dir)
    except OSError as exc:
        raise OutDirError(
            f"cannot write the backtest files into {str(out_dir)!r}: {exc.strerror or exc} "
            f"({exc.filename or out_dir}); choose another --out"
        ) from None


def write_trades_equity(trades: pd.DataFrame, equity: pd.DataFrame, out_dir: Path) -> None:
    """trades.csv and equity.csv (docs/design.md#public-formats columns, ISO-8601 UTC times)."""
    out_dir = prepare_out_dir(out_dir)
    iso_times(trades.loc[:, list(TRADE_COLUMNS)]).to_csv(out_dir / "trades.csv", index=False)
    write_equity_csv(equity, out_dir / "equity.csv")


def results_document(result: BacktestResult) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "strategy": result.strategy,
        "symbol": result.symbol,
        "interval": result.interval,
        "params": result.params,
        "start": iso_utc(result.start),
        "end": iso_utc(result.end),
        "bars": int(result.bars),
        "metrics": result.metrics,
        "currency": quote_currency(result.symbol),  # of cash, equity, pnl and fees
    }


def iso_times(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with its time columns (entry_time, exit_time, timestamp) as ISO-8601 UTC text."""
    frame = frame.copy()
    for column in ("entry_time", "exit_time", "timestamp"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True).dt.strftime(TIME_FORMAT)
    return frame
