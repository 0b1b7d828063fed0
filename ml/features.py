"""Features known at a signal bar, in named groups, computed for chosen bar positions.

A signal raised at the close of bar t may use bars <= t only. Every group below respects that,
and tests/ml/test_dataset.py proves it per group by truncating the bars at t and comparing
(`check_no_lookahead`). Groups:
- factors: the factor table of factors/engine.py (volatility, trend families) at t; ATR and true
  range as fractions of close_t, so a model sees the same scale on any market;
- daily: the daily-context columns (previous closed UTC day: range, return, gap, ATR, ...), price
  levels (prev_day_high/low/close, day_open) as distances from close_t;
- time: hour of day, minute of day (also as sine/cosine of the day's angle) and day of week of
  the bar's CLOSE (the signal time);
- higher: multi-interval context, a few factors of the next higher intervals (e.g. @1h), shown
  on a bar only once that higher bar closed;
- tsfresh: tsfresh features over the window of the `window` log returns ending at t (and the
  log volume), computed with n_jobs=0 (inside Ray tasks tsfresh must not start its own pool).
  The default set "lean" is six cheap calculators (mean, median, standard deviation, maximum,
  minimum, skewness: about MinimalFCParameters' cost, ~1 ms per window here); "minimal" is
  tsfresh's MinimalFCParameters and "efficient" its EfficientFCParameters (~50 ms per window:
  only for small datasets).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.errors import UserError
from core.intervals import interval_ns
from factors.bars import INTERVALS, interval_delta
from factors.daily import DAILY_COLUMNS
from factors.engine import compute_factors, factor_names

GROUPS = ("factors", "daily", "time", "higher", "tsfresh")
TSFRESH_SETS = ("lean", "minimal", "efficient", "none")
PRICE_LEVELS = ("prev_day_high", "prev_day_low", "prev_day_close", "day_open")
HIGHER_FACTORS = ("range_20", "trend_20", "slope_20", "atr_14")
LEAN_CALCULATORS: dict = {
    "mean": None,
    "median": None,
    "standard_deviation": None,
    "maximum": None,
    "minimum": None,
    "skewness": None,
}


@dataclass(frozen=True)
class FeatureConfig:
    """Which feature groups to build and how; recorded with every model and result."""

    groups: tuple[str, ...] = GROUPS
    window: int = 30  # bars before (and including) the signal bar seen by tsfresh
    tsfresh: str = "lean"
    higher: tuple[str, ...] | None = None  # None: the two next higher intervals (up to 1d)

    def __post_init__(self) -> None:
        unknown = [g for g in self.groups if g not in GROUPS]
        if unknown:
            raise UserError(f"unknown feature group(s) {unknown}; use some of {', '.join(GROUPS)}")
        if self.tsfresh not in TSFRESH_SETS:
            raise UserError(f"unknown tsfresh set {self.tsfresh!r}; use {', '.join(TSFRESH_SETS)}")
        if self.window < 3:
            raise UserError(f"feature window {self.window} is too short; use >= 3 bars")

    @classmethod
    def from_dict(cls, data: dict | None) -> FeatureConfig:
        """The inverse of as_dict (an empty dict: the defaults)."""
        if not data:
            return cls()
        higher = data.get("higher")
        return cls(
            tuple(data["groups"]),
            int(data["window"]),
            data["tsfresh"],
            tuple(higher) if higher is not None else None,
        )

    def as_dict(self) -> dict:
        return {
            "groups": list(self.groups),
            "window": self.window,
            "tsfresh": self.tsfresh,
            "higher": list(self.higher) if self.higher is not None else None,
        }


def higher_intervals(interval: str, chosen: Sequence[str] | None = None) -> list[str]:
    """The intervals above `interval` whose context is added (default: the first two at least
    4x longer that it divides, e.g. 5m -> 30m, 1h)."""
    if chosen is not None:
        return list(chosen)
    own = interval_delta(interval)
    above = [
        n for n, size in INTERVALS.items() if size >= 4 * own and size % own == pd.Timedelta(0)
    ]
    return above[:2]


# -- groups ---------------------------------------------------------------------------------
def factor_group(bars: pd.DataFrame, interval: str, cfg: FeatureConfig) -> pd.DataFrame:
    names = [n for n in factor_names() if n not in DAILY_COLUMNS]
    table = compute_factors(bars, names, interval=interval)
    close = bars["close"].to_numpy(np.float64)
    for column in [c for c in table.columns if c.startswith(("atr_", "true_range"))]:
        table[column] = table[column].to_numpy(np.float64) / close  # price units -> fraction
    return table.add_prefix("f_")


def daily_group(bars: pd.DataFrame, interval: str, cfg: FeatureConfig) -> pd.DataFrame:
    table = compute_factors(bars, list(DAILY_COLUMNS), interval=interval)
    close = bars["close"].to_numpy(np.float64)
    for column in PRICE_LEVELS:  # levels -> distance from the current close (scale-free)
        table[column] = table[column].to_numpy(np.float64) / close - 1.0
    table["prev_day_atr"] = table["prev_day_atr"].to_numpy(np.float64) / close
    return table.add_prefix("d_")


def time_group(bars: pd.DataFrame, interval: str, cfg: FeatureConfig) -> pd.DataFrame:
    closes = pd.DatetimeIndex(bars.index) + interval_delta(interval)
    angle = 2 * np.pi * (closes.hour * 60 + closes.minute).to_numpy(np.float64) / 1440.0
    return pd.DataFrame(
        {
            "t_hour": closes.hour.astype(float),
            "t_day_sin": np.sin(angle),  # the day as a circle: 23:55 is next to 00:00
            "t_day_cos": np.cos(angle),
            "t_minute_of_day": (closes.hour * 60 + closes.minute).astype(float),
            "t_day_of_week": closes.dayofweek.astype(float),
        },
        index=bars.index,
    )


def higher_group(bars: pd.DataFrame, interval: str, cfg: FeatureConfig) -> pd.DataFrame:
    names = [f"{n}@{h}" for h in higher_intervals(interval, cfg.higher) for n in HIGHER_FACTORS]
    if not names:
        return pd.DataFrame(index=bars.index)
    table = compute_factors(bars, names, interval=interval)
    for column in [c for c in table.columns if c.startswith("atr_")]:
        table[column] = table[column] / bars["close"]  # ATR in price units -> a fraction
    return table.add_prefix("h_")


BarGroup = Callable[[pd.DataFrame, str, FeatureConfig], pd.DataFrame]
BAR_GROUPS: dict[str, BarGroup] = {
    "factors": factor_group,
    "daily": daily_group,
    "time": time_group,
    "higher": higher_group,
}


def tsfresh_group(bars: pd.DataFrame, positions: np.ndarray, cfg: FeatureConfig) -> pd.DataFrame:
    """tsfresh features of the `window` bars ending at each position (rows: positions)."""
    if cfg.tsfresh == "none" or len(positions) == 0:
        return pd.DataFrame(index=pd.Index(positions, name="position"))
    from tsfresh import extract_features
    from tsfresh.feature_extraction import EfficientFCParameters, MinimalFCParameters

    params = {
        "lean": LEAN_CALCULATORS,
        "minimal": MinimalFCParameters(),
        "efficient": EfficientFCParameters(),
    }[cfg.tsfresh]
    close = bars["close"].to_numpy(np.float64)
    returns = np.concatenate([[np.nan], np.diff(np.log(close))])
    volume = np.log1p(bars["volume"].to_numpy(np.float64)) if "volume" in bars else None
    w = cfg.window
    ok = positions[positions >= w]  # a full window of returns exists (return 0 is undefined)
    if len(ok) == 0:  # tsfresh fails on an empty frame; these rows are all missing anyway
        return pd.DataFrame(index=pd.Index(positions, name="position"))
    offsets = ok[:, None] - np.arange(w - 1, -1, -1)[None, :]
    data = {
        "id": np.repeat(ok, w),
        "step": np.tile(np.arange(w), len(ok)),
        "ret": returns[offsets].ravel(),
    }
    if volume is not None:
        data["vol"] = volume[offsets].ravel()
    frame = extract_features(
        pd.DataFrame(data),
        column_id="id",
        column_sort="step",
        default_fc_parameters=params,
        n_jobs=0,
        disable_progressbar=True,
    )
    frame.columns = [f"ts_{c}" for c in frame.columns]
    return frame.reindex(pd.Index(positions, name="position"))


# -- assembly -------------------------------------------------------------------------------
@dataclass
class FeatureBuilder:
    """Builds the feature rows of chosen bar positions of one series; extra groups (tests) are
    bar-group functions added by name. The tables of the last series seen (every bar group, and
    the tsfresh rows of every position asked so far) are kept, so the instances of one series
    in a batch compute them once (the series object is held, so its identity cannot be reused)."""

    cfg: FeatureConfig = field(default_factory=FeatureConfig)
    extra: dict[str, BarGroup] = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def rows(self, bars: pd.DataFrame, interval: str, positions: Sequence[int]) -> pd.DataFrame:
        """One row per position (index: the position), float64 columns."""
        positions = np.asarray(positions, dtype=np.int64)
        index = pd.Index(positions, name="position")
        cache = self._series_cache(bars, interval)
        parts: list[pd.DataFrame] = []
        groups = {**{g: BAR_GROUPS[g] for g in self.cfg.groups if g in BAR_GROUPS}, **self.extra}
        for name, function in groups.items():
            if name not in cache:
                cache[name] = function(bars, interval, self.cfg)
            part = cache[name].iloc[positions].reset_index(drop=True)
            part.index = index
            parts.append(part)
        if "tsfresh" in self.cfg.groups:
            parts.append(self._tsfresh(cache, bars, positions))
        if not parts:
            return pd.DataFrame(index=index)
        return pd.concat(parts, axis=1).astype(np.float64)

    def _series_cache(self, bars: pd.DataFrame, interval: str) -> dict:
        if self._cache.get("bars") is not bars or self._cache.get("interval") != interval:
            self._cache.clear()
            self._cache.update(bars=bars, interval=interval)
        return self._cache

    def _tsfresh(self, cache: dict, bars: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
        known: pd.DataFrame | None = cache.get("tsfresh")
        wanted = np.unique(positions)
        missing = wanted if known is None else wanted[~np.isin(wanted, known.index.to_numpy())]
        if len(missing) or known is None:
            fresh = tsfresh_group(bars, missing, self.cfg)
            known = fresh if known is None else pd.concat([known, fresh]).sort_index()
            cache["tsfresh"] = known
        return known.reindex(pd.Index(positions, name="position"))


def signal_positions(bars: pd.DataFrame, interval: str, entry_times: Sequence) -> np.ndarray:
    """The signal bar of each entry: the last bar that had CLOSED at the entry fill time (a
    signal at t fills at the open of t+1 = the close of t)."""
    close_ns = pd.DatetimeIndex(bars.index).as_unit("ns").asi8 + interval_ns(interval)
    stamps = pd.to_datetime(pd.Series(list(entry_times)), utc=True, format="ISO8601")
    entry_ns = stamps.dt.as_unit("ns").to_numpy(np.int64)
    return np.searchsorted(close_ns, entry_ns, "right").astype(np.int64) - 1


def check_no_lookahead(
    builder: FeatureBuilder, bars: pd.DataFrame, interval: str, positions: Sequence[int]
) -> list[str]:
    """The columns whose value at some position changes when the bars end at that position
    (empty: no lookahead). Costs one feature build per position: use a few positions."""
    full = builder.rows(bars, interval, positions)
    leaking: set[str] = set()
    for p in positions:
        cut = builder.rows(bars.iloc[: int(p) + 1], interval, [int(p)])
        a, b = full.loc[[p]].reindex(columns=cut.columns), cut
        differs = ~np.isclose(a.to_numpy(), b.to_numpy(), rtol=1e-9, atol=1e-12, equal_nan=True)
        leaking |= {c for c, bad in zip(cut.columns, differs[0], strict=True) if bad}
        leaking |= set(full.columns) - set(cut.columns)
    return sorted(leaking)
