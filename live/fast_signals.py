"""Each built-in family's signals at the LAST bar of a live series, in numpy, from a SeriesBook.

`Strategy.compute` is vectorized over a whole frame: right for a backtest, but its pandas
overhead (2-12 ms whatever the length) paid per instance per live bar is what made 100
instances take seconds. Here each family's rule is evaluated at the newest bar only, over the
bars it provably depends on (all its windows are finite):
- sr_breakout: the previous `lookback` bars;
- reversal_breakout: the previous `lookback` / `swing` bars and atr_n + 1 true ranges;
- orb, trend_day: the current UTC day's bars (the session resets everything at 00:00);
- volatility_breakout: the current day's bars and the previous days' daily rows, kept by the
  book for the whole history (daily_context is computed on one row per day: same values).
Every float is computed with the same operations in the same order as the strategy's pandas
code (rolling max/min are exact; window sums go through the same `window_sum`; pandas'
groupby cumsum is Kahan-compensated, so the trend-day sums are too), so the values are
identical, not close: tests/live/test_hosts_fast.py compares every family with
`Strategy.compute` over long series at every bar. Classes not listed here (user strategies,
subclasses) have no fast path: the host recomputes them over its kept bars.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from factors.daily import daily_context
from factors.volatility import window_sum
from live.series_book import DAY_NS, SeriesBook
from strategies.base import Strategy
from strategies.orb import OpenRangeBreakout
from strategies.reversal_breakout import ReversalBreakout
from strategies.sr_breakout import SRBreakout
from strategies.trend_day import TrendDay
from strategies.volatility_breakout import VolatilityBreakout

NAN = float("nan")
MINUTE_NS = 60 * 10**9
# (enter_long, exit_long, enter_short, exit_short, stop_distance, target_distance); a distance
# is None when the strategy has no such column
Row = tuple[bool, bool, bool, bool, float | None, float | None]
Evaluator = Callable[[Any, SeriesBook], Row]


def _first(flags: np.ndarray) -> bool:
    """first_in_session at the last bar: it is True and no earlier bar of the day was."""
    return bool(flags[-1]) and not bool(flags[:-1].any())


def _max_before(values: np.ndarray, n: int) -> float:
    """values.shift(1).rolling(n, min_periods=n).max() at the last bar."""
    i = len(values) - 1
    return float(values[i - n : i].max()) if i >= n else NAN


def _min_before(values: np.ndarray, n: int) -> float:
    i = len(values) - 1
    return float(values[i - n : i].min()) if i >= n else NAN


def _minutes(book: SeriesBook) -> np.ndarray:
    return (book.open_ns[book.day_start :] // MINUTE_NS) % 1440


def sr_breakout(p: Any, book: SeriesBook) -> Row:
    close = float(book.close[-1])
    resistance = _max_before(book.high, p.lookback)
    support = _min_before(book.low, p.lookback)
    return (close > resistance, False, (close < support) and p.allow_short, False, None, None)


def _atr_last_two(book: SeriesBook, n: int) -> tuple[float, float]:
    """(ATR_{t-1}, ATR_t) as factors.volatility.atr computes them over the whole history."""
    lo = max(0, book.n - n - 2)
    high, low, close = book.high[lo:], book.low[lo:], book.close[lo:]
    prev = np.empty_like(close)
    prev[0] = np.nan  # right at the history's first bar (lo == 0), as true_range has it
    prev[1:] = close[:-1]
    # when lo > 0, row lo's true range is wrong (its previous close is cut off) but it is in
    # neither window: they cover the last n + 1 rows of the n + 2 taken.
    tr = np.fmax(high - low, np.fmax(np.abs(high - prev), np.abs(low - prev)))
    sums = window_sum(tr, n) / n
    atr_now = float(sums[-1])
    atr_prev = float(sums[-2]) if len(sums) >= 2 else NAN
    return atr_prev, atr_now


def reversal_breakout(p: Any, book: SeriesBook) -> Row:
    high, low, close = book.high, book.low, book.close
    c = float(close[-1])
    atr_prev, atr_now = _atr_last_two(book, p.atr_n)
    reach = p.move_atr * atr_prev
    prev_close = float(close[-2]) if len(close) >= 2 else NAN
    fell = _max_before(high, p.lookback) - prev_close
    rose = prev_close - _min_before(low, p.lookback)
    swing_high, swing_low = _max_before(high, p.swing), _min_before(low, p.swing)
    return (
        (fell >= reach) and (c > swing_high),
        (c < swing_low) and p.swing_exit,
        (rose >= reach) and (c < swing_low),
        (c > swing_high) and p.swing_exit,
        p.stop_atr * atr_now if p.stop_atr > 0 else None,
        p.target_atr * atr_now if p.target_atr > 0 else None,
    )


def orb(p: Any, book: SeriesBook) -> Row:
    s = book.day_start
    minute = _minutes(book)
    in_range = minute < p.range_minutes
    range_high = np.fmax.accumulate(np.where(in_range, book.high[s:], np.nan))
    range_low = np.fmin.accumulate(np.where(in_range, book.low[s:], np.nan))
    close = book.close[s:]
    above = (close > range_high) & ~in_range
    below = (close < range_low) & ~in_range
    can_enter = minute < p.entry_cutoff_minutes
    stop = p.range_stop * (float(range_high[-1]) - float(range_low[-1]))
    return (
        _first(above & can_enter),
        bool(below[-1]) and p.exit_on_opposite,
        _first(below & can_enter),
        bool(above[-1]) and p.exit_on_opposite,
        stop if p.range_stop > 0 else None,
        None,
    )


def _session_r2(book: SeriesBook) -> float:
    """trend_day.session_r2 at the last bar, from Kahan sums over the day (as pandas' cumsum)."""
    s = book.day_start
    day_open = float(book.open[s])
    x = _minutes(book) / 60.0
    y = book.close[s:] / day_open - 1.0
    sums = np.array(_kahan([np.ones(len(x)), x, y, x * x, y * y, x * y]))
    n, sx, sy, sxx, syy, sxy = (sums[k : k + 1] for k in range(6))
    var_x = sxx - sx**2 / n
    var_y = syy - sy**2 / n
    cov = sxy - sx * sy / n
    if not (var_x[0] > 1e-12 and var_y[0] > 1e-18):
        return NAN
    return float(np.clip(cov**2 / (var_x * var_y), 0.0, 1.0)[0])


def _kahan(columns: list[np.ndarray]) -> list[float]:
    out = []
    for values in columns:
        total = comp = 0.0
        for v in values.tolist():
            y = v - comp
            t = total + y
            comp = t - total - y
            total = t
        out.append(total)
    return out


def trend_day(p: Any, book: SeriesBook) -> Row:
    s = book.day_start
    day_open = float(book.open[s])
    close = float(book.close[-1])
    move = close / day_open - 1
    decision = _first(_minutes(book) >= p.decision_minutes)
    strong = decision and book.memo("session_r2", lambda: _session_r2(book)) >= p.min_r2
    return (
        strong and move >= p.min_move,
        (close < day_open) and p.exit_on_reversal,
        strong and move <= -p.min_move,
        (close > day_open) and p.exit_on_reversal,
        None,
        None,
    )


def _day_context(book: SeriesBook) -> dict[str, float]:
    """daily_context at the current day, on one bar per day (the previous 17 days and today).

    Only per-day aggregates enter prev_day_* and day_open; the 14-day ATR needs 15 completed
    days (a true range uses the day before), so 17 rows are more than enough.
    """
    days, rows = book.days[-18:], book.day_rows[-18:]
    index = pd.DatetimeIndex(pd.to_datetime(np.array(days, dtype=np.int64) * DAY_NS, utc=True))
    values = np.array(rows, dtype=np.float64)
    frame = pd.DataFrame(
        {
            "open": values[:, 0],
            "high": values[:, 1],
            "low": values[:, 2],
            "close": values[:, 3],
            "volume": 0.0,
        },
        index=index,
    )
    last = daily_context(frame).iloc[-1]
    return {
        k: float(last[k]) for k in ("day_open", "prev_day_range", "prev_day_close", "prev_day_atr")
    }


def volatility_breakout(p: Any, book: SeriesBook) -> Row:
    day = book.days[-1]
    ctx = book.memo_day(("day_context", day), lambda: _day_context(book))
    if p.basis == "atr":
        basis = ctx["prev_day_atr"]
    else:
        basis = ctx["prev_day_range"] * ctx["prev_day_close"]
    distance = p.k * basis
    day_open = ctx["day_open"]
    close = book.close[book.day_start :]
    c = float(close[-1])
    return (
        _first(close > day_open + distance),
        (c < day_open) and p.exit_at_open,
        _first(close < day_open - distance),
        (c > day_open) and p.exit_at_open,
        p.stop_k * basis if p.stop_k > 0 else None,
        None,
    )


EVALUATORS: dict[type, Evaluator] = {
    SRBreakout: sr_breakout,
    ReversalBreakout: reversal_breakout,
    OpenRangeBreakout: orb,
    TrendDay: trend_day,
    VolatilityBreakout: volatility_breakout,
}


def bars_needed(strategy: Strategy, interval_ns: int) -> int:
    """Bars of history the fast path reads (the book must keep at least this many)."""
    p = strategy.params
    if type(strategy) is SRBreakout:
        return p.lookback + 2
    if type(strategy) is ReversalBreakout:
        return max(p.lookback, p.swing, p.atr_n + 1) + 3
    return DAY_NS // interval_ns + 2  # session families: the whole current day


def evaluator_for(strategy: Strategy) -> Evaluator | None:
    """The fast path of this exact class (not of subclasses: they may change `signals`)."""
    return EVALUATORS.get(type(strategy))


def last_row(strategy: Strategy, evaluate: Evaluator, book: SeriesBook) -> Row:
    """The strategy's signals at the book's last bar, shared by identical instances."""
    key = (type(strategy), strategy.params)
    el, xl, es, xs, stop, target = book.memo(key, lambda: evaluate(strategy.params, book))
    # Strategy.compute's normalisation: a side the parameters forbid never enters
    return (el and strategy.allows_long(), xl, es and strategy.allows_short(), xs, stop, target)
