"""Factor names -> functions: the registry of factor families and `compute_factors`.

Names: range_N, atr_N, true_range (volatility); trend_N, slope_N, r2_N (trend); the daily-context
columns (daily). Any name may carry a higher interval, e.g. range_20@1h: the factor is computed
on bars resampled to 1h and shown on each lower bar only once that 1h bar closed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from factors.align import align_higher, infer_interval, resample_bars
from factors.bars import INTERVALS, interval_delta
from factors.daily import DAILY_COLUMNS, daily_context
from factors.trend import slope_r2, trend_n
from factors.volatility import FactorError, atr, range_n, true_range

WINDOWS = (10, 20, 30, 50, 100)
ATR_WINDOW = 14


@dataclass(frozen=True)
class FactorSpec:
    """One parsed factor name."""

    name: str  # the full name as requested, e.g. "slope_30@1h"
    kind: str  # "range", "atr", "true_range", "trend", "slope", "r2" or "daily"
    window: int | None
    interval: str | None  # higher interval, or None for the bars' own interval

    @property
    def family(self) -> str:
        return FAMILY_OF_KIND[self.kind]


FAMILY_OF_KIND = {
    "range": "volatility",
    "atr": "volatility",
    "true_range": "volatility",
    "trend": "trend",
    "slope": "trend",
    "r2": "trend",
    "daily": "daily",
}

# The default factor set of each family (what `factors list` shows and export computes).
FAMILIES: dict[str, list[str]] = {
    "volatility": [f"range_{n}" for n in WINDOWS] + [f"atr_{ATR_WINDOW}", "true_range"],
    "trend": [f"{kind}_{n}" for n in WINDOWS for kind in ("trend", "slope", "r2")],
    "daily": list(DAILY_COLUMNS),
}

DEFAULT_FACTORS: list[str] = [name for names in FAMILIES.values() for name in names]

_WINDOWED = re.compile(r"^(range|atr|trend|slope|r2)_(\d+)$")


def parse_name(name: str) -> FactorSpec:
    """Parse `base[@interval]`; raise FactorError naming the known forms."""
    base, _, interval = name.strip().partition("@")
    if interval and interval not in INTERVALS:
        raise FactorError(
            f"factor {name!r}: unknown interval {interval!r}; use one of {', '.join(INTERVALS)}"
        )
    higher = interval or None
    if base in DAILY_COLUMNS:
        return FactorSpec(name, "daily", None, higher)
    if base == "true_range":
        return FactorSpec(name, "true_range", None, higher)
    match = _WINDOWED.match(base)
    if match:
        window = int(match.group(2))
        minimum = 2 if match.group(1) in ("slope", "r2") else 1
        if window < minimum:
            raise FactorError(f"factor {name!r}: window must be >= {minimum}")
        return FactorSpec(name, match.group(1), window, higher)
    raise FactorError(
        f"unknown factor {name!r}; use range_N, atr_N, true_range, trend_N, slope_N, r2_N "
        f"(N a bar count, optionally @interval like range_20@1h) or one of "
        f"{', '.join(DAILY_COLUMNS)}; `cli.py factors list` shows them"
    )


def _compute_base(bars: pd.DataFrame, specs: list[FactorSpec]) -> dict[str, pd.Series]:
    """Compute specs (all on `bars` itself); slope and r2 of one window share one fit."""
    out: dict[str, pd.Series] = {}
    fits: dict[int, tuple[pd.Series, pd.Series]] = {}
    daily: pd.DataFrame | None = None
    for spec in specs:
        base = spec.name.partition("@")[0]
        if spec.kind == "range":
            out[spec.name] = range_n(bars, spec.window)
        elif spec.kind == "atr":
            out[spec.name] = atr(bars, spec.window)
        elif spec.kind == "true_range":
            out[spec.name] = true_range(bars)
        elif spec.kind == "trend":
            out[spec.name] = trend_n(bars["close"], spec.window)
        elif spec.kind in ("slope", "r2"):
            if spec.window not in fits:
                fits[spec.window] = slope_r2(bars["close"], spec.window)
            out[spec.name] = fits[spec.window][0 if spec.kind == "slope" else 1]
        else:
            daily = daily_context(bars) if daily is None else daily
            out[spec.name] = daily[base]
    return out


def compute_factors(
    bars: pd.DataFrame, names: list[str] | None = None, interval: str | None = None
) -> pd.DataFrame:
    """Factor table aligned to `bars.index`, one float64 column per name (default: all families).

    `interval` is the bars' own interval; it is only needed for names with @interval and is
    inferred from the index spacing when omitted.
    """
    specs = [parse_name(n) for n in (DEFAULT_FACTORS if names is None else names)]
    if len(set(s.name for s in specs)) != len(specs):
        raise FactorError(f"factor names repeat in {names}; list each factor once")
    columns: dict[str, pd.Series] = {}
    own = [s for s in specs if s.interval is None]
    columns.update(_compute_base(bars, own))
    higher_intervals = sorted({s.interval for s in specs if s.interval}, key=interval_delta)
    if higher_intervals and len(bars):
        lower = interval or infer_interval(bars.index)
        for higher in higher_intervals:
            if interval_delta(higher) <= interval_delta(lower):
                raise FactorError(f"@{higher} must be a higher interval than the bars' own {lower}")
            chosen = [s for s in specs if s.interval == higher]
            resampled = resample_bars(bars, higher)
            table = pd.DataFrame(_compute_base(resampled, chosen), index=resampled.index)
            columns.update(align_higher(bars.index, lower, table, higher).items())
    nan = float("nan")
    return pd.DataFrame({s.name: columns.get(s.name, nan) for s in specs}, index=bars.index)


def factor_names(family: str | None = None) -> list[str]:
    """Default factor names, all or of one family."""
    if family is None:
        return list(DEFAULT_FACTORS)
    if family not in FAMILIES:
        raise FactorError(f"unknown factor family {family!r}; use one of {', '.join(FAMILIES)}")
    return list(FAMILIES[family])
