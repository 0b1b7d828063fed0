"""Rolling re-selection, backtested out of sample (docs/analysis.md#rolling-re-selection).

At every re-selection time t (00:00 UTC, every `every` days from the first full lookback) the
weights are chosen with `weights`' method and fitness rule (analysis/weights.py) on the trades that
EXITED in [t - lookback, t) only, and held until the next re-selection. A trade belongs to the
selection in force at its entry and runs to its exit under it.

Everything works on day x instance arrays built once from the stored trades; the window figures
are exactly those of analysis.metrics.compute_metrics over each instance's window trades (equity
rebuilt from `cash` at the first entry, daily returns on the calendar from the first entry's day to
the last exit's day), so the vectorised rule gives the weights of
`compute_weights(per_instance_metrics(window trades))` (a test checks it against that path).

The random-selection baseline and the comparison use the selection's returns: each trade's return
on its own instance's equity (cash plus that run's earlier pnl, as the DSR/PBO statistics measure
a run), weighted by its instance's share of the selection in force at the trade's entry, summed by
the day of exit. A draw picks, at each re-selection, as many instances as the rolling selection
chose, at random, and gives them the rolling selection's weights in random order.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.weights import KEY_COLUMNS, METHODS, FitnessRule, WeightsError
from core.intervals import DAY_NS

PERIODS_PER_YEAR = 365  # analysis.metrics: sortino annualised by sqrt(365)
EVERY_CHOICES = (1, 7, 30)  # days between re-selections
MIN_DRAWS = 200
NO_ENTRY = np.iinfo(np.int64).max


def parse_days(text: str, flag: str, choices: tuple[int, ...] | None = None) -> int:
    """'7d' -> 7: a whole positive number of days; one UserError naming the flag otherwise."""
    value = str(text).strip().lower()
    number = value[:-1] if value.endswith("d") else ""
    if not number.isdigit() or int(number) <= 0:
        example = "7d" if choices else "60d"
        raise WeightsError(f"{flag} {text!r} is not a number of days like {example}")
    days = int(number)
    if choices is not None and days not in choices:
        allowed = ", ".join(f"{c}d" for c in choices)
        raise WeightsError(f"{flag} {text!r} is not supported; use one of {allowed}")
    return days


@dataclass(frozen=True)
class Market:
    """The stored trades on one calendar of UTC days: arrays of trades and of days x instances."""

    keys: list[tuple]  # instance keys (KEY_COLUMNS, params as canonical text), one per column
    day0: pd.Timestamp  # 00:00 UTC of the first entry's day
    cash: float
    owner: np.ndarray  # per trade: instance column (trades sorted by exit, then entry)
    entry_ns: np.ndarray
    exit_ns: np.ndarray
    pnl: np.ndarray
    trade_return: np.ndarray  # pnl / the run's own equity before the exit's day
    single_equity: np.ndarray  # the run's own equity at the entry (cash + pnl exited before)
    day_pnl: np.ndarray  # (T, N) pnl of trades that exited that day
    day_trades: np.ndarray  # (T, N) trades that exited that day
    day_first_entry: np.ndarray  # (T, N) earliest entry (ns) of the trades exiting that day
    day_last_exit: np.ndarray  # (T, N) latest exit (ns) of the trades exiting that day
    rows: pd.DataFrame  # the trades in the order of the arrays (index 0..n-1)

    @property
    def days(self) -> int:
        return self.day_pnl.shape[0]

    def day_of(self, ns: np.ndarray) -> np.ndarray:
        return (np.asarray(ns, dtype=np.int64) - self.day0.value) // DAY_NS


def market(trades: pd.DataFrame, keys: list[tuple], cash: float) -> Market:
    """The arrays of `trades` (trades.csv of `backtest --all`, params canonical) of the runs
    `keys`; trades of other runs are ignored. Needs at least one trade."""
    keys = list(dict.fromkeys(keys))
    index = pd.MultiIndex.from_tuples(keys, names=list(KEY_COLUMNS))
    owner = index.get_indexer(pd.MultiIndex.from_frame(trades[list(KEY_COLUMNS)].astype(str)))
    mine = trades[owner >= 0].assign(_owner=owner[owner >= 0])
    if mine.empty:
        raise WeightsError("no trades of the runs in results.csv: nothing to select from")
    entry = pd.DatetimeIndex(mine["entry_time"]).as_unit("ns").asi8
    exit_ = pd.DatetimeIndex(mine["exit_time"]).as_unit("ns").asi8
    order = np.lexsort((entry, exit_))
    owner, entry, exit_ = mine["_owner"].to_numpy()[order], entry[order], exit_[order]
    pnl = mine["pnl"].to_numpy(dtype=float)[order]
    day0 = pd.Timestamp(int(entry.min()), tz="UTC").floor("D")
    exit_day = (exit_ - day0.value) // DAY_NS
    shape = (int(exit_day.max()) + 1, len(keys))
    day_pnl, day_trades = np.zeros(shape), np.zeros(shape)
    np.add.at(day_pnl, (exit_day, owner), pnl)
    np.add.at(day_trades, (exit_day, owner), 1.0)
    first, last = np.full(shape, NO_ENTRY), np.full(shape, -1, dtype=np.int64)
    np.minimum.at(first, (exit_day, owner), entry)
    np.maximum.at(last, (exit_day, owner), exit_)
    own = cash + np.cumsum(day_pnl, axis=0)  # each run's own equity at the end of each day
    before_exit = np.where(exit_day > 0, own[np.maximum(exit_day - 1, 0), owner], cash)
    with np.errstate(divide="ignore", invalid="ignore"):
        trade_return = np.where(before_exit != 0, pnl / before_exit, 0.0)
    return Market(
        keys,
        day0,
        float(cash),
        owner,
        entry,
        exit_,
        pnl,
        trade_return,
        _equity_at_entries(owner, entry, exit_, pnl, cash),
        day_pnl,
        day_trades,
        first,
        last,
        mine.iloc[order].reset_index(drop=True),
    )


def _equity_at_entries(owner, entry, exit_, pnl, cash) -> np.ndarray:
    """Per trade: cash + pnl of its run's trades that exited before its entry (the run's own
    equity when its signal was sized, whenever it held nothing else)."""
    out = np.empty(len(owner))
    for run in np.unique(owner):
        where = np.flatnonzero(owner == run)  # in exit order
        realised = np.concatenate(([0.0], np.cumsum(pnl[where])))
        out[where] = cash + realised[np.searchsorted(exit_[where], entry[where], "left")]
    return out


# ---------------------------------------------------------------- the rule over one window


@dataclass(frozen=True)
class WindowFigures:
    """Each instance's compute_metrics figures over the trades that exited in one window."""

    trades: np.ndarray
    expectancy: np.ndarray  # nan without trades
    sortino: np.ndarray  # nan when undefined (short sample, no downside)
    volatility: np.ndarray
    span_days: np.ndarray
    daily_returns: np.ndarray


def window_figures(m: Market, start: int, stop: int, rule: FitnessRule) -> WindowFigures:
    """Figures of the trades exiting on days [start, stop) (day indices of m)."""
    start, stop = max(start, 0), min(stop, m.days)
    pnl, count = m.day_pnl[start:stop], m.day_trades[start:stop]
    trades = count.sum(axis=0)
    equity = m.cash + np.cumsum(pnl, axis=0)
    previous = np.vstack([np.full((1, pnl.shape[1]), m.cash), equity[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = equity / previous - 1
        expectancy = np.where(trades > 0, pnl.sum(axis=0) / trades, np.nan)
    returns = np.where(np.isfinite(returns), returns, 0.0)  # as metrics.period_returns
    first = m.day_first_entry[start:stop].min(axis=0)
    last = m.day_last_exit[start:stop].max(axis=0)
    traded = trades > 0
    span = np.where(traded, (last - np.where(traded, first, 0)) / DAY_NS, 0.0)
    first_day = m.day_of(np.where(traded, first, m.day0.value))
    n = np.where(traded, m.day_of(np.maximum(last, 0)) - first_day + 1, 0).astype(float)
    safe = np.maximum(n, 1.0)
    mean = returns.sum(axis=0) / safe
    downside = np.sqrt((np.minimum(returns, 0.0) ** 2).sum(axis=0) / safe)
    variance = np.maximum((returns**2).sum(axis=0) / safe - mean**2, 0.0)
    long_enough = (n >= 2) & (span >= rule.min_days) & (n >= rule.min_daily_returns)
    root = math.sqrt(PERIODS_PER_YEAR)
    with np.errstate(divide="ignore", invalid="ignore"):
        sortino = np.where(long_enough & (downside > 1e-15), root * mean / downside, np.nan)
    volatility = np.where(long_enough, root * np.sqrt(variance), np.nan)
    return WindowFigures(trades, expectancy, sortino, volatility, span, n)


def choose(figures: WindowFigures, method: str, rule: FitnessRule) -> np.ndarray:
    """analysis.weights.compute_weights on these figures: one weight per instance."""
    if method not in METHODS:
        raise WeightsError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    with np.errstate(invalid="ignore"):
        passing = (
            (figures.trades >= rule.min_trades)
            & (figures.span_days >= rule.min_days)
            & (figures.daily_returns >= rule.min_daily_returns)
            & (figures.sortino > rule.min_sortino)
            & (figures.expectancy > rule.min_expectancy)
        )
    if method == "binary":
        return passing.astype(float)
    if method == "sortino":
        raw = np.where(passing, np.clip(np.nan_to_num(figures.sortino), 0.0, None), 0.0)
    else:
        vol = figures.volatility
        raw = np.where(passing & (vol > 0), 1.0 / np.where(vol > 0, vol, 1.0), 0.0)
    total = raw.sum()
    return raw / total if total > 0 else raw * 0.0


# ---------------------------------------------------------------- the schedule


@dataclass(frozen=True)
class Schedule:
    """Re-selection times (day indices of the market) and the weights chosen at each."""

    market: Market
    starts: np.ndarray  # (P,) day index of each re-selection (00:00 UTC of that day)
    weights: np.ndarray  # (P, N)
    every: int
    lookback: int

    @property
    def times(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.market.day0 + pd.to_timedelta(self.starts, unit="D"))

    def period_of(self, ns: np.ndarray) -> np.ndarray:
        """The re-selection in force at each time (-1 before the first)."""
        return np.searchsorted(self.starts, self.market.day_of(ns), "right") - 1

    def held(self, weights: np.ndarray) -> Schedule:
        """The same times with other weights (a static or equal selection)."""
        return Schedule(self.market, self.starts, weights, self.every, self.lookback)


def rolling_schedule(
    m: Market,
    every: int,
    lookback: int,
    method: str,
    rule: FitnessRule,
    chooser=None,
) -> Schedule:
    """Re-select at day0 + lookback, then every `every` days while trades still exit.
    `chooser(market, start, stop)` replaces the window rule (tests plant a broken one)."""
    first = lookback
    if first >= m.days:
        span = f"{m.days} day(s)"
        raise WeightsError(
            f"the trades span {span}, not more than --lookback {lookback}d: no time is left to "
            "select out of sample; give a shorter --lookback or more data"
        )
    starts = np.arange(first, m.days, every)
    pick = chooser or (lambda mk, a, b: choose(window_figures(mk, a, b, rule), method, rule))
    weights = np.vstack([pick(m, int(s) - lookback, int(s)) for s in starts])
    return Schedule(m, starts, weights, every, lookback)


def static_schedule(s: Schedule) -> Schedule:
    """The first lookback's weights, held to the end."""
    return s.held(np.broadcast_to(s.weights[:1], s.weights.shape).copy())


def equal_schedule(s: Schedule, method: str) -> Schedule:
    """Every instance, weight 1 (binary) or 1/N (normalised methods), as `weights --split`'s
    "all, equal" column."""
    n = s.weights.shape[1]
    value = 1.0 if method == "binary" else 1.0 / n
    return s.held(np.full(s.weights.shape, value))


# ---------------------------------------------------------------- selection returns


def trade_shares(s: Schedule, weights: np.ndarray) -> np.ndarray:
    """Per trade: its instance's share of the selection in force at its entry (0 before the
    first re-selection); `weights` (P, N) normalised per row here."""
    period = s.period_of(s.market.entry_ns)
    totals = weights.sum(axis=1, keepdims=True)
    shares = np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)
    out = np.zeros(len(period))
    inside = period >= 0
    out[inside] = shares[period[inside], s.market.owner[inside]]
    return out


def selection_returns(s: Schedule, weights: np.ndarray | None = None) -> np.ndarray:
    """Daily returns of the selection from the first re-selection's day to the last exit."""
    m = s.market
    share = trade_shares(s, s.weights if weights is None else weights)
    days = m.day_of(m.exit_ns) - int(s.starts[0])
    keep = days >= 0
    return np.bincount(
        days[keep], weights=(share * m.trade_return)[keep], minlength=m.days - int(s.starts[0])
    )


def sortino_rows(returns: np.ndarray) -> np.ndarray:
    """analysis.metrics.sortino of each row of daily returns (nan when undefined)."""
    returns = np.atleast_2d(returns)
    downside = np.sqrt((np.minimum(returns, 0.0) ** 2).mean(axis=1))
    mean = returns.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(downside > 1e-15, math.sqrt(PERIODS_PER_YEAR) * mean / downside, np.nan)
    return out if returns.shape[1] >= 2 else np.full(len(returns), np.nan)


def random_returns(s: Schedule, draws: int, seed: int) -> np.ndarray:
    """(draws, days) daily returns of random selections: at each re-selection as many instances
    as the schedule chose, at random, with its weights in random order."""
    m = s.market
    rng = np.random.default_rng(seed)
    n_days = m.days - int(s.starts[0])
    out = np.zeros((draws, n_days))
    period = s.period_of(m.entry_ns)
    exit_day = m.day_of(m.exit_ns) - int(s.starts[0])
    rows = np.arange(draws)[:, None]
    for p in range(len(s.starts)):
        chosen = np.flatnonzero(s.weights[p] > 0)
        trades = np.flatnonzero(period == p)
        if len(chosen) == 0 or len(trades) == 0:
            continue
        shares = s.weights[p, chosen] / s.weights[p, chosen].sum()
        picks = np.argsort(rng.random((draws, s.weights.shape[1])), axis=1)[:, : len(chosen)]
        drawn = np.zeros((draws, s.weights.shape[1]))
        drawn[rows, picks] = shares[
            rng.permuted(np.tile(np.arange(len(chosen)), (draws, 1)), axis=1)
        ]
        order = trades[np.argsort(exit_day[trades], kind="stable")]
        days, first = np.unique(exit_day[order], return_index=True)
        contributions = drawn[:, m.owner[order]] * m.trade_return[order]
        out[:, days] += np.add.reduceat(contributions, first, axis=1)
    return out


@dataclass(frozen=True)
class Band:
    draws: int
    seed: int
    p50: float
    p95: float
    rolling: float  # the rolling selection's sortino on the same basis

    @property
    def skill(self) -> bool:
        return bool(np.isfinite(self.rolling) and self.rolling > self.p95)

    @property
    def verdict(self) -> str:
        return "skill" if self.skill else "not distinguishable from random"


def random_band(s: Schedule, draws: int = MIN_DRAWS, seed: int = 0) -> Band:
    """The random draws' Sortino p50 / p95 against the rolling selection's."""
    values = sortino_rows(random_returns(s, draws, seed))
    values = np.where(np.isfinite(values), values, 0.0)  # an empty or flat draw: no skill
    rolling = float(sortino_rows(selection_returns(s))[0])
    return Band(draws, seed, *np.percentile(values, [50, 95]).tolist(), rolling)


def selections_frame(s: Schedule) -> pd.DataFrame:
    """selections.csv: time, instance, weight: the non-zero weights of every re-selection; one
    that chose nothing has one row with an empty instance and weight 0."""
    from analysis.columns import iso_utc

    labels = [instance_name(key) for key in s.market.keys]
    rows = []
    for p, when in enumerate(s.times):
        chosen = np.flatnonzero(s.weights[p] > 0)
        rows += [(iso_utc(when), labels[i], float(s.weights[p, i])) for i in chosen]
        if not len(chosen):
            rows.append((iso_utc(when), "", 0.0))
    return pd.DataFrame(rows, columns=["time", "instance", "weight"])


def instance_name(key: tuple) -> str:
    """e.g. "sr_breakout[ETH/BTC 5m lookback=30]", with every parameter (no strategy is built:
    the families' defaults are not looked up)."""
    family, symbol, interval, params = key
    try:
        pairs = json.loads(params).items()
    except (ValueError, AttributeError):
        pairs = []
    inner = " ".join(
        [symbol, interval, *([",".join(f"{k}={v}" for k, v in pairs)] if pairs else [])]
    )
    return f"{family}[{inner}]"
