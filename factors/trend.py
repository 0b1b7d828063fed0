"""Trend factors over the last N closes: efficiency ratio, OLS slope and its r^2.

Every value at bar t depends only on closes <= t (see factors/volatility.window_sum for why the
window sums are computed per window).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factors.volatility import check_window, window_sum


def _values(close: pd.Series) -> np.ndarray:
    return close.to_numpy(dtype=np.float64)


def trend_n(close: pd.Series, n: int) -> pd.Series:
    """Efficiency ratio |close_t - close_{t-n}| / sum |delta close| over the last n bars.

    1 = a straight move, 0 = no net progress. A perfectly flat window (no movement at all) is 0.
    NaN until n + 1 closes exist.
    """
    n = check_window(n, "trend")
    y = _values(close)
    move = np.full(len(y), np.nan)
    step = np.full(len(y), np.nan)
    if len(y) > n:
        move[n:] = np.abs(y[n:] - y[:-n])
    if len(y) > 1:
        step[1:] = np.abs(np.diff(y))
    path = window_sum(step, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(path > 0, move / path, np.where(np.isnan(path), np.nan, 0.0))
    # The triangle inequality bounds the ratio by 1; clip the last-ulp excess of rounding.
    ratio = np.minimum(ratio, 1.0)
    ratio[np.isnan(move)] = np.nan
    return pd.Series(ratio, index=close.index, name=f"trend_{n}")


def slope_r2(close: pd.Series, n: int) -> tuple[pd.Series, pd.Series]:
    """OLS fit of close on bar number over the last n closes.

    Returns (slope_n, r2_n): slope per bar divided by close_t (a fraction of price per bar) and
    the fit's r^2 in [0, 1]. A flat window has slope 0 and r^2 0. NaN before n closes.
    """
    n = check_window(n, "slope", minimum=2)
    y = _values(close)
    slope = np.full(len(y), np.nan)
    r2 = np.full(len(y), np.nan)
    if len(y) >= n:
        # Centred x makes sum(x) = 0, so the slope is sum(xc * y) / sum(xc^2) with no
        # cancellation against the price level.
        xc = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
        sxx = float(np.dot(xc, xc))
        sxy = np.correlate(y, xc, "valid")
        # pandas' rolling variance is exactly 0 for constant windows and is computed forwards
        # from the series start, so truncated data gives the same values.
        ssy = pd.Series(y).rolling(n, min_periods=n).var(ddof=0).to_numpy()[n - 1 :] * n
        # A flat window fits exactly 0, not the rounding residue of sum(xc * y).
        beta = np.where(ssy > 0, sxy / sxx, np.where(np.isnan(ssy), np.nan, 0.0))
        slope[n - 1 :] = beta / y[n - 1 :]
        with np.errstate(divide="ignore", invalid="ignore"):
            fit = np.where(ssy > 0, sxy * sxy / (sxx * ssy), 0.0)
        fit[np.isnan(ssy) | np.isnan(sxy)] = np.nan
        r2[n - 1 :] = np.clip(fit, 0.0, 1.0)
    index = close.index
    return pd.Series(slope, index=index, name=f"slope_{n}"), pd.Series(
        r2, index=index, name=f"r2_{n}"
    )
