"""The local exchange's market: stored bar series replayed as if live.

Every series (symbol, interval) is a frame of bars. The market keeps one cursor over the close
times of all series merged: `step()` closes the next bar(s) and opens the following ones, so at
any moment each series has closed bars (served by REST klines, announced on the kline stream)
and at most one bar in progress (its open is known: market orders fill there). Bars before the
replay start are history from the beginning.

Orders are matched per symbol on its finest series (localexchange/accounts.py); the replay only says
which bars closed and which bar is in progress.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import UserError
from core.intervals import interval_ns

_FILE_NAME = re.compile(r"^(?P<base>[A-Za-z0-9]+)_(?P<quote>[A-Za-z0-9]+)-(?P<interval>\d+[mhdw])")
MS = 1_000_000  # ns per ms
MINUTE_MS = 60_000
# Binance's kline intervals the local exchange serves for every symbol (ms per bar); those not
# stored are built from the symbol's finest stored series (complete UTC buckets only).
STANDARD_INTERVALS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "1d": 1440 * MINUTE_MS,
}


@dataclass
class Series:
    symbol: str  # unified, e.g. ETH/BTC
    interval: str
    open_ms: np.ndarray  # int64 open times
    values: np.ndarray  # float64 (n, 5): open high low close volume
    step_ms: int
    closed: int = 0  # bars [0, closed) have closed

    @property
    def market_id(self) -> str:
        return self.symbol.replace("/", "")

    def close_ms(self, i: int) -> int:
        return int(self.open_ms[i]) + self.step_ms

    def forming(self) -> int | None:
        """Index of the bar in progress (the one after the last closed), if any."""
        return self.closed if self.closed < len(self.open_ms) else None

    def kline(self, i: int) -> list:
        o, h, low, c, v = (float(x) for x in self.values[i])
        return [int(self.open_ms[i]), o, h, low, c, v]


@dataclass
class Closed:
    """One bar that just closed, and the bar now in progress in that series (if any)."""

    series: Series
    index: int
    next_index: int | None


@dataclass
class ReplayMarket:
    series: dict[tuple[str, str], Series] = field(default_factory=dict)
    now_ms: int = 0  # market time: every bar with close <= now has closed
    ended: bool = False
    # symbol -> (min notional in quote units, lot size in base units), published in exchangeInfo
    # as Binance's NOTIONAL and LOT_SIZE filters (default: no minimum, a step of 1e-8)
    limits: dict[str, tuple[float, float]] = field(default_factory=dict)

    # -- building -----------------------------------------------------------------------------
    def add(self, symbol: str, interval: str, frame: pd.DataFrame) -> None:
        index = pd.DatetimeIndex(frame.index).as_unit("ns").asi8 // MS
        values = frame[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)
        step = STANDARD_INTERVALS.get(interval) or interval_ns(interval) // MS
        self.series[(symbol, interval)] = Series(
            symbol, interval, index.astype(np.int64), values, step
        )

    def add_standard_intervals(self) -> None:
        """Serve every standard interval, as Binance does: each one not stored is resampled as
        `cli.py data resample` and store/bars.py do it (UTC buckets, complete ones only) from
        the coarsest stored series that divides it (a stored 5m bar is complete even when a
        minute without trades is missing from the 1m series)."""
        from store.resample import resample_by_length

        for symbol in self.symbols():
            stored = [s for (sym, _), s in self.series.items() if sym == symbol]
            for interval, step in STANDARD_INTERVALS.items():
                sources = [s for s in stored if s.step_ms < step and step % s.step_ms == 0]
                if (symbol, interval) in self.series or not sources:
                    continue
                source = max(sources, key=lambda s: s.step_ms)
                frame = pd.DataFrame(
                    source.values,
                    columns=["open", "high", "low", "close", "volume"],
                    index=pd.to_datetime(source.open_ms, unit="ms", utc=True),
                )
                coarse = resample_by_length(frame, step // source.step_ms, step)
                if len(coarse):  # an interval without one complete bucket has no bars to serve
                    self.add(symbol, interval, coarse)

    def start_at(self, start_ms: int | None) -> None:
        """Bars closing at or before `start_ms` are history; default: the first bar's open."""
        if not self.series:
            raise UserError("the local exchange has no bar series to replay")
        first = min(int(s.open_ms[0]) for s in self.series.values())
        self.now_ms = first if start_ms is None else max(first, int(start_ms))
        self._close_history()

    def start_where_most_data(self) -> None:
        """Start at the first bar after which the most symbols have data (the latest first bar
        of the symbols that overlap most), so no symbol waits market months for its first bar."""
        if not self.series:
            raise UserError("the local exchange has no bar series to replay")
        spans = [(int(s.open_ms[0]), int(s.open_ms[-1])) for s in self._finest_series()]
        best = max(
            sorted({first for first, _ in spans}),
            key=lambda t: sum(first <= t <= last for first, last in spans),
        )
        self.now_ms = best
        self._close_history()

    def end_ms(self) -> int:
        """When the last bar of the data closes."""
        return max(s.close_ms(len(s.open_ms) - 1) for s in self.series.values())

    def next_open_ms(self) -> int | None:
        """The open of the earliest bar not yet closed: later than now in a span without data."""
        opens = [int(s.open_ms[s.closed]) for s in self.series.values() if s.forming() is not None]
        return min(opens) if opens else None

    def _finest_series(self) -> list[Series]:
        return [s for s in (self.finest(symbol) for symbol in self.symbols()) if s is not None]

    def _close_history(self) -> None:
        for s in self.series.values():
            s.closed = int(np.searchsorted(s.open_ms + s.step_ms, self.now_ms, "right"))

    # -- time ---------------------------------------------------------------------------------
    def next_close_ms(self) -> int | None:
        times = [s.close_ms(s.closed) for s in self.series.values() if s.forming() is not None]
        return min(times) if times else None

    def step(self) -> list[Closed]:
        """Close every bar that closes at the next close time; [] when the data has ended."""
        due = self.next_close_ms()
        if due is None:
            self.ended = True
            return []
        self.now_ms = due
        out = []
        for s in sorted(self.series.values(), key=lambda x: -x.step_ms):  # coarse first
            while s.forming() is not None and s.close_ms(s.closed) <= due:
                s.closed += 1
                out.append(Closed(s, s.closed - 1, s.forming()))
        # finest series last so that a symbol's book sees its finest bar after coarser ones
        out.sort(key=lambda c: -c.series.step_ms)
        self.ended = self.next_close_ms() is None
        return out

    # -- queries ------------------------------------------------------------------------------
    def symbols(self) -> list[str]:
        return sorted({symbol for symbol, _ in self.series})

    def intervals(self, symbol: str) -> list[str]:
        return [i for s, i in self.series if s == symbol]

    def all_intervals(self) -> list[str]:
        """Every interval some symbol has, shortest first."""
        found = {i: s.step_ms for (_, i), s in self.series.items()}
        return sorted(found, key=lambda i: found[i])

    def finest(self, symbol: str) -> Series | None:
        found = [s for (sym, _), s in self.series.items() if sym == symbol]
        return min(found, key=lambda s: s.step_ms) if found else None

    def klines(
        self, symbol: str, interval: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[list]:
        """Closed bars (and the bar in progress, as Binance does) within [start, end]."""
        s = self.series.get((symbol, interval))
        if s is None:
            return []
        last = s.closed + (1 if s.forming() is not None else 0)
        lo = 0 if start_ms is None else int(np.searchsorted(s.open_ms[:last], start_ms, "left"))
        hi = last if end_ms is None else int(np.searchsorted(s.open_ms[:last], end_ms, "right"))
        if start_ms is None and hi - lo > limit:
            lo = hi - limit
        return [self.kline_row(s, i) for i in range(lo, min(hi, lo + limit))]

    def kline_row(self, s: Series, i: int) -> list:
        """A bar as Binance's kline row; the bar in progress shows only its open."""
        t, o, h, low, c, v = s.kline(i)
        if i >= s.closed:
            h = low = c = o
            v = 0.0
        close_time = t + s.step_ms - 1
        return [t, _num(o), _num(h), _num(low), _num(c), _num(v), close_time, "0", 0, "0", "0", "0"]

    def last_price(self, symbol: str) -> float | None:
        s = self.finest(symbol)
        if s is None:
            return None
        i = s.forming()
        if i is not None:
            return float(s.values[i][0])  # the open of the bar in progress
        return float(s.values[s.closed - 1][3]) if s.closed else None


def _num(x: float) -> str:
    return f"{x:.10f}".rstrip("0").rstrip(".") or "0"


def symbol_from_file(path: Path) -> tuple[str, str] | None:
    """('ETH/BTC', '5m') from a file named like ETH_BTC-5m.csv.gz, else None."""
    m = _FILE_NAME.match(path.name)
    if not m:
        return None
    return f"{m['base'].upper()}/{m['quote'].upper()}", m["interval"]


def load_market(data: Path, symbol: str | None = None, interval: str | None = None) -> ReplayMarket:
    """A ReplayMarket from a bar file or a directory of files named BASE_QUOTE-INTERVAL.*."""
    from store.bar_files import read_bar_file

    market = ReplayMarket()
    files = sorted(data.iterdir()) if data.is_dir() else [data]
    for file in files:
        if not file.name.endswith((".csv", ".csv.gz", ".parquet")):
            continue
        named = symbol_from_file(file)
        sym = symbol if (symbol and not data.is_dir()) else (named[0] if named else None)
        ivl = interval if (interval and not data.is_dir()) else (named[1] if named else None)
        if symbol and data.is_dir() and named and named[0] != symbol:
            continue
        if interval and data.is_dir() and named and named[1] != interval:
            continue
        if sym is None or ivl is None:
            raise UserError(
                f"{file}: cannot tell its symbol and interval from the name; name it like "
                "ETH_BTC-5m.csv.gz or pass --symbol and --interval"
            )
        frame, _gaps = read_bar_file(file, ivl)
        market.add(sym, ivl, frame)
    market.add_standard_intervals()
    if not market.series:
        raise UserError(
            f"no bar files in {data} (expected BASE_QUOTE-INTERVAL.csv[.gz] or .parquet"
            + (f" for {symbol}" if symbol else "")
            + (f" {interval}" if interval else "")
            + ")"
        )
    return market
