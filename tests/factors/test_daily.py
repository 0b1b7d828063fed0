import numpy as np
import pandas as pd
import pytest

from factors.daily import DAILY_COLUMNS, daily_bars, daily_context
from factors.volatility import FactorError


def bars_at(times: list[str], rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    index = pd.DatetimeIndex(pd.to_datetime(times, utc=True), name="timestamp")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index)
    frame["volume"] = 1.0
    return frame


@pytest.fixture
def three_days() -> pd.DataFrame:
    # Day 1: H 12, L 9, C 11. Day 2: H 13, L 10, C 12. Day 4 (day 3 missing): opens at 12.6.
    return bars_at(
        [
            "2024-01-01 10:00",
            "2024-01-01 16:00",
            "2024-01-01 23:00",
            "2024-01-02 00:00",
            "2024-01-02 12:00",
            "2024-01-02 23:59",
            "2024-01-04 03:00",
            "2024-01-04 04:00",
        ],
        [
            (10, 12, 9.0, 10.5),
            (10.5, 11, 10, 10.8),
            (10.8, 11.2, 10.7, 11),
            (11.2, 12, 11, 11.5),
            (11.5, 13, 10, 12.5),
            (12.5, 12.5, 11.8, 12),
            (12.6, 13, 12.4, 12.8),
            (12.8, 12.9, 12.7, 12.75),
        ],
    )


def test_first_day_has_no_previous_values(three_days):
    ctx = daily_context(three_days)
    assert list(ctx.columns) == list(DAILY_COLUMNS)
    first = ctx.iloc[:3]
    for col in ("prev_day_high", "prev_day_close", "prev_day_range", "day_gap", "prev_day_atr"):
        assert first[col].isna().all()
    assert (first["day_open"] == 10.0).all()
    assert first["bar_of_day"].tolist() == [0, 1, 2]


def test_previous_day_visible_from_first_bar_of_next_day(three_days):
    ctx = daily_context(three_days)
    day2 = ctx.iloc[3:6]
    assert (day2["prev_day_high"] == 12).all() and (day2["prev_day_low"] == 9).all()
    assert (day2["prev_day_close"] == 11).all()
    np.testing.assert_allclose(day2["prev_day_range"], 3 / 11)
    np.testing.assert_allclose(day2["day_gap"], 11.2 / 11 - 1)
    assert day2["prev_day_return"].isna().all()  # no day before day 1
    assert (day2["day_open"] == 11.2).all()
    assert day2["bar_of_day"].tolist() == [0, 1, 2]


def test_missing_calendar_day_uses_previous_day_present(three_days):
    day4 = daily_context(three_days).iloc[6:]
    assert (day4["prev_day_close"] == 12).all()
    np.testing.assert_allclose(day4["prev_day_range"], 3 / 12)
    np.testing.assert_allclose(day4["prev_day_return"], 12 / 11 - 1)
    np.testing.assert_allclose(day4["day_gap"], 12.6 / 12 - 1)
    assert day4["bar_of_day"].tolist() == [0, 1]


def test_prev_day_atr_is_mean_daily_true_range_of_14_completed_days():
    # One bar per day: day k has high 10+k+2, low 10+k-1, close 10+k (true range 3 every day,
    # except the gap structure below on day 5).
    days = pd.date_range("2024-01-01", periods=17, freq="D", tz="UTC").strftime("%Y-%m-%d 12:00")
    rows = [(10.0 + k, 12.0 + k, 9.0 + k, 10.0 + k) for k in range(17)]
    rows[5] = (20.0, 21.0, 20.0, 20.5)  # true range = max(1, |21-14|, |20-14|) = 7
    ctx = daily_context(bars_at(list(days), rows))
    assert ctx["prev_day_atr"].iloc[:14].isna().all()
    # Day 15 sees days 1..14 (index 0..13): TR 3 except day index 5 (7) and 6:
    # day 6: high 18, low 15, prev close 20.5 -> max(3, 2.5, 5.5) = 5.5
    expected = (3 * 12 + 7 + 5.5) / 14
    assert ctx["prev_day_atr"].iloc[14] == pytest.approx(expected)
    # Day 16 sees days 2..15: drops day 1 (TR 3), adds day 15 (TR 3).
    assert ctx["prev_day_atr"].iloc[15] == pytest.approx(expected)


def test_daily_bars_aggregates_each_utc_day(three_days):
    daily = daily_bars(three_days)
    assert daily["bars"].tolist() == [3, 3, 2]
    assert daily["high"].tolist() == [12, 13, 13]
    assert daily["open"].tolist() == [10, 11.2, 12.6]


def test_empty_frame_gives_empty_context():
    empty = bars_at([], [])
    assert list(daily_context(empty).columns) == list(DAILY_COLUMNS)
    assert len(daily_context(empty)) == 0


def test_index_must_be_datetimes():
    frame = pd.DataFrame({c: [1.0] for c in ("open", "high", "low", "close", "volume")})
    with pytest.raises(FactorError, match="DatetimeIndex"):
        daily_context(frame)
