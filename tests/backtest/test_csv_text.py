"""The vectorized equity.csv writer produces the bytes pandas' to_csv produced before it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.columns import EQUITY_COLUMNS
from backtest.csv_text import write_equity_csv
from backtest.run import iso_times


def pandas_bytes(frame: pd.DataFrame, path) -> bytes:
    iso_times(frame.loc[:, list(EQUITY_COLUMNS)]).to_csv(path, index=False)
    return path.read_bytes()


def equity_frame(values: list[float], start_ns: int, step_s: int) -> pd.DataFrame:
    n = len(values)
    stamps = pd.to_datetime(start_ns + np.arange(n, dtype=np.int64) * step_s * 10**9, utc=True)
    cash = np.array(values, dtype=np.float64)
    cash[1::3] = cash[0] if n else 0.0  # runs of equal values, the common case of cash
    return pd.DataFrame({"timestamp": stamps, "equity": values, "cash": cash})


floats = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from(
    [0.0, -0.0, 1e-5, 1e16, 1.5e16, 10_000.0, 0.1 + 0.2, 123456789012.5, 1e-300]
)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(floats, min_size=0, max_size=40),
    start_ns=st.integers(0, 4_000_000_000 * 10**9),
    step_s=st.sampled_from([1, 60, 300, 3600, 86_400]),
)
def test_equity_csv_bytes_equal_pandas(tmp_path_factory, values, start_ns, step_s) -> None:
    folder = tmp_path_factory.mktemp("equity")
    frame = equity_frame(values, start_ns, step_s)
    write_equity_csv(frame, folder / "fast.csv")
    assert (folder / "fast.csv").read_bytes() == pandas_bytes(frame, folder / "pandas.csv")


def test_sub_second_times_are_truncated_like_strftime(tmp_path) -> None:
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(
                ["2024-01-31T12:05:00.999", "2024-02-01T00:00:00.000"], utc=True
            ),
            "equity": [1.0, 2.0],
            "cash": [1.0, 1.0],
        }
    )
    write_equity_csv(frame, tmp_path / "e.csv")
    assert (tmp_path / "e.csv").read_text() == (
        "timestamp,equity,cash\n2024-01-31T12:05:00Z,1.0,1.0\n2024-02-01T00:00:00Z,2.0,1.0\n"
    )
    assert (tmp_path / "e.csv").read_bytes() == pandas_bytes(frame, tmp_path / "p.csv")
