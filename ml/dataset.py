"""One row per trade of a backtest run: the features known at its signal bar, and its outcome.

Targets: `won` = pnl > 0 (classification) and `returns` = return_pct (for regression models and
the trading fitness functions). Rows are in time order of the signal. Features come from
ml/features.py (groups, tsfresh set and window in FeatureConfig).

Cleaning (label-free, so doing it on the whole dataset leaks nothing): +-inf becomes missing;
columns that are all missing, constant, or exact duplicates of an earlier column are dropped,
each with its reason in `Dataset.dropped`. Remaining missing values stay NaN: the model pipeline
imputes them with medians learned in-sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.intervals import interval_ns
from ml.features import FeatureBuilder, signal_positions


@dataclass
class Dataset:
    features: pd.DataFrame  # rows 0..n-1 in signal-time order
    won: np.ndarray  # int 0/1
    returns: np.ndarray  # return_pct of the trade (fraction)
    signal_ns: np.ndarray  # close time of the signal bar, int ns UTC
    exit_ns: np.ndarray  # exit fill time, int ns UTC
    trade_ids: np.ndarray
    dropped: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.won)

    def subset(self, rows: np.ndarray) -> Dataset:
        return Dataset(
            self.features.iloc[rows].reset_index(drop=True),
            self.won[rows],
            self.returns[rows],
            self.signal_ns[rows],
            self.exit_ns[rows],
            self.trade_ids[rows],
            self.dropped,
        )

    def longest_trade_ns(self) -> int:
        """Longest span from signal to exit: the purge gap walk-forward needs at least."""
        return int((self.exit_ns - self.signal_ns).max()) if len(self) else 0


def build_dataset(
    trades: pd.DataFrame,
    bars: pd.DataFrame,
    interval: str,
    builder: FeatureBuilder | None = None,
) -> Dataset:
    """The dataset of `trades` (trades.csv columns) of a backtest over `bars`."""
    builder = builder or FeatureBuilder()
    if len(trades) == 0:
        empty = np.array([], dtype=np.int64)
        return Dataset(pd.DataFrame(), empty, np.array([]), empty, empty, empty)
    entry = pd.to_datetime(trades["entry_time"], utc=True, format="ISO8601").dt.as_unit("ns")
    order = np.argsort(entry.to_numpy(np.int64), kind="stable")
    trades = trades.iloc[order].reset_index(drop=True)
    positions = signal_positions(bars, interval, trades["entry_time"])
    if (positions < 0).any():
        raise ValueError("a trade entered before the first bar closed: trades and bars differ")
    rows = builder.rows(bars, interval, positions).reset_index(drop=True)
    features, dropped = clean_features(rows)
    close_ns = pd.DatetimeIndex(bars.index).as_unit("ns").asi8 + interval_ns(interval)
    exit_ns = pd.to_datetime(trades["exit_time"], utc=True, format="ISO8601").dt.as_unit("ns")
    return Dataset(
        features=features,
        won=(trades["pnl"].to_numpy(np.float64) > 0).astype(np.int64),
        returns=trades["return_pct"].to_numpy(np.float64),
        signal_ns=close_ns[positions],
        exit_ns=exit_ns.to_numpy(np.int64),
        trade_ids=trades["trade_id"].to_numpy(),
        dropped=dropped,
    )


def clean_features(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """(cleaned copy, {reason: [columns dropped]}); see the module docstring."""
    frame = frame.replace([np.inf, -np.inf], np.nan)
    dropped: dict[str, list[str]] = {"all_missing": [], "constant": [], "duplicate": []}
    keep: list[str] = []
    seen: dict[bytes, str] = {}
    for column in frame.columns:
        values = frame[column]
        if values.isna().all():
            dropped["all_missing"].append(column)
            continue
        if values.nunique(dropna=True) <= 1 and not values.isna().any():
            dropped["constant"].append(column)
            continue
        key = np.nan_to_num(values.to_numpy(np.float64), nan=np.pi * 1e300).tobytes()
        if key in seen:
            dropped["duplicate"].append(column)
            continue
        seen[key] = column
        keep.append(column)
    return frame[keep].copy(), dropped


def distribution_report(ds: Dataset) -> dict[str, Any]:
    """Class balance and a summary of every feature (missing share, mean, std, min, max)."""
    summary = {
        column: {
            "missing": float(values.isna().mean()),
            "mean": _num(values.mean()),
            "std": _num(values.std(ddof=0)),
            "min": _num(values.min()),
            "max": _num(values.max()),
        }
        for column, values in ds.features.items()
    }
    n = len(ds)
    return {
        "trades": n,
        "wins": int(ds.won.sum()),
        "win_rate": float(ds.won.mean()) if n else None,
        "mean_return": float(ds.returns.mean()) if n else None,
        "features": len(ds.features.columns),
        "dropped": {k: list(v) for k, v in ds.dropped.items()},
        "summary": summary,
    }


def report_text(report: dict[str, Any], limit: int = 12) -> str:
    """A few lines for the console: class balance, dropped columns, the first features."""
    lines = [
        f"{report['trades']} trades, {report['wins']} won "
        f"(win rate {_pct(report['win_rate'])}), {report['features']} features",
    ]
    for reason, columns in report["dropped"].items():
        if columns:
            lines.append(f"dropped {len(columns)} {reason}: {', '.join(columns[:6])}")
    for name, s in list(report["summary"].items())[:limit]:
        lines.append(
            f"  {name:32s} missing {s['missing']:5.1%}  mean {_g(s['mean'])}  std {_g(s['std'])}"
        )
    return "\n".join(lines)


def _num(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _g(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
