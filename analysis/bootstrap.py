"""Monte Carlo bands of a strategy's own figures: a circular block bootstrap over days.

The trades are cut into UTC days by exit time (a day without an exit is a day of zero pnl, from
the first entry's day to the last exit's day, as analysis/metrics.py rebuilds equity from
trades). A draw is a new sequence of as many days, made of blocks of `block_days` consecutive
days starting at uniformly drawn days (circular: a block running past the last day continues at
the first). Whole days move together, with their trades in exit order, so the day-to-day
dependence inside a block (a losing week stays a losing week) survives the resampling; drawing
single days or single trades would break it and understate drawdowns and losing streaks.

Each draw is replayed from the initial cash: equity at the end of each day, then
- sortino: sqrt(365) x mean / downside deviation of the daily returns (analysis.metrics.sortino);
- max drawdown: max(1 - equity / running peak) over the end-of-day equity (the metrics table's
  figure sees every exit, so it can be a little higher than this end-of-day one);
- longest losing streak: consecutive trades with pnl < 0 across the concatenated days.
The bands are the 5th, 50th and 95th percentiles over the draws (numpy's linear interpolation);
"observed" is the same statistic on the days in their real order. All draws are computed at once
as draws x days matrices; only the losing streak walks the days (vectorised over draws).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.metrics import PERIODS_PER_YEAR, _normalise_trades

DEFAULT_DRAWS = 1_000
MIN_DRAWS = 1_000
DEFAULT_SEED = 0
PERCENTILES = (5.0, 50.0, 95.0)
STATISTICS = ("sortino", "max_drawdown", "longest_losing_streak")


@dataclass(frozen=True)
class DailyTrades:
    """The trades of one run as a calendar of days: the unit the bootstrap resamples."""

    pnl: np.ndarray  # per day: realised pnl (0 on a day without an exit)
    n: np.ndarray  # per day: trades exited
    prefix: np.ndarray  # per day: losing trades before its first non-losing one
    suffix: np.ndarray  # per day: losing trades after its last non-losing one
    inner: np.ndarray  # per day: its longest losing streak
    initial_cash: float

    @property
    def days(self) -> int:
        return len(self.pnl)


@dataclass
class Bands:
    """p5/p50/p95 of each statistic, its observed value and how the draws were made."""

    draws: int
    seed: int
    block_days: int
    days: int
    observed: dict[str, float | None]
    bands: dict[str, tuple[float | None, float | None, float | None]]
    undefined: dict[str, int] = field(default_factory=dict)  # draws without a value, e.g. sortino

    def to_json(self) -> dict[str, Any]:
        return {
            "draws": self.draws,
            "seed": self.seed,
            "block_days": self.block_days,
            "days": self.days,
            "method": "circular block bootstrap of days",
            "statistics": {
                name: {
                    "observed": self.observed[name],
                    **dict(zip(("p5", "p50", "p95"), self.bands[name], strict=True)),
                    "undefined_draws": self.undefined.get(name, 0),
                }
                for name in STATISTICS
            },
        }


def daily_trades(trades: pd.DataFrame | None, initial_cash: float) -> DailyTrades:
    """Per-day pnl and losing-run pieces of `trades` (columns entry_time, exit_time, pnl)."""
    frame = _normalise_trades(trades)
    if frame.empty:
        empty = np.zeros(0)
        return DailyTrades(empty, empty.astype(int), *(empty.astype(int),) * 3, initial_cash)
    first = frame["entry_time"].min().floor("D")
    calendar = pd.date_range(first, frame["exit_time"].max().floor("D"), freq="D")
    day = calendar.get_indexer(frame["exit_time"].dt.floor("D"))
    days = len(calendar)
    pnl = np.bincount(day, frame["pnl"].to_numpy(float), days)
    n = np.bincount(day, minlength=days)
    prefix, suffix, inner = (np.zeros(days, dtype=int) for _ in range(3))
    losing = (frame["pnl"].to_numpy(float) < 0).tolist()
    for d, flags in _by_day(day, losing):
        prefix[d] = _leading(flags)
        suffix[d] = _leading(flags[::-1])
        inner[d] = _longest(flags)
    return DailyTrades(pnl, n, prefix, suffix, inner, float(initial_cash))


def _by_day(day: np.ndarray, losing: list[bool]):
    start = 0
    for end in range(1, len(day) + 1):
        if end == len(day) or day[end] != day[start]:
            yield int(day[start]), losing[start:end]
            start = end


def _leading(flags: list[bool]) -> int:
    count = 0
    for flag in flags:
        if not flag:
            break
        count += 1
    return count


def _longest(flags: list[bool]) -> int:
    best = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best


def default_block_days(days: int) -> int:
    """About the cube root of the sample (the usual order for block length), at least 1."""
    return max(1, round(days ** (1 / 3))) if days else 1


def block_indices(days: int, draws: int, block_days: int, rng: np.random.Generator) -> np.ndarray:
    """draws x days indices: consecutive runs of `block_days` days from random starts, wrapping."""
    blocks = -(-days // block_days)
    starts = rng.integers(0, days, size=(draws, blocks))
    idx = (starts[:, :, None] + np.arange(block_days)[None, None, :]) % days
    return idx.reshape(draws, blocks * block_days)[:, :days]


def statistics(series: DailyTrades, order: np.ndarray) -> dict[str, np.ndarray]:
    """The three statistics of each row of `order` (draws x days indices into the days)."""
    pnl = series.pnl[order]
    equity = series.initial_cash + np.cumsum(pnl, axis=1)
    previous = np.concatenate([np.full((len(order), 1), series.initial_cash), equity[:, :-1]], 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        daily = np.where(previous != 0, equity / previous - 1.0, 0.0)
        downside = np.sqrt((np.minimum(daily, 0.0) ** 2).mean(axis=1))
        sortino = np.where(
            (downside > 1e-15) & (order.shape[1] >= 2),
            math.sqrt(PERIODS_PER_YEAR) * daily.mean(axis=1) / downside,
            np.nan,
        )
        peak = np.maximum.accumulate(np.concatenate([previous[:, :1], equity], 1), axis=1)
        values = np.concatenate([previous[:, :1], equity], 1)
        drawdown = np.where(peak > 0, 1 - values / peak, 0.0).max(axis=1)
    return {
        "sortino": sortino,
        "max_drawdown": drawdown,
        "longest_losing_streak": _streaks(series, order),
    }


def _streaks(series: DailyTrades, order: np.ndarray) -> np.ndarray:
    """Longest run of losing trades across the days of each row, one day column at a time."""
    run = np.zeros(len(order), dtype=int)
    best = np.zeros(len(order), dtype=int)
    for column in order.T:
        n, prefix = series.n[column], series.prefix[column]
        whole = (n > 0) & (prefix == n)  # every trade of the day lost: the run goes on
        best = np.maximum(best, np.maximum(series.inner[column], run + prefix))
        run = np.where(whole, run + n, np.where(n > 0, series.suffix[column], run))
    return np.maximum(best, run).astype(float)


def bootstrap(
    trades: pd.DataFrame | None,
    initial_cash: float,
    draws: int = DEFAULT_DRAWS,
    seed: int = DEFAULT_SEED,
    block_days: int | None = None,
) -> Bands | None:
    """Bands of `trades` on `initial_cash`; None without trades (nothing to resample)."""
    series = daily_trades(trades, initial_cash)
    if series.days == 0:
        return None
    block = block_days or default_block_days(series.days)
    rng = np.random.default_rng(seed)
    drawn = statistics(series, block_indices(series.days, draws, block, rng))
    real = statistics(series, np.arange(series.days)[None, :])
    observed = {name: _value(values[0]) for name, values in real.items()}
    bands, undefined = {}, {}
    for name, values in drawn.items():
        defined = values[np.isfinite(values)]
        undefined[name] = int(len(values) - len(defined))
        if len(defined):
            p5, p50, p95 = np.percentile(defined, PERCENTILES)
            bands[name] = (_value(p5), _value(p50), _value(p95))
        else:
            bands[name] = (None, None, None)
    return Bands(draws, seed, block, series.days, observed, bands, undefined)


def _value(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
