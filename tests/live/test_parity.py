"""Parity: a stored series replayed through the local exchange and traded live in dry run gives
the same trades (entry/exit times, prices, reasons) as `cli.py backtest` on the same series, for
every strategy family. Real ccxt, real local server, real Ray."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from actors.weighted_portfolio import PortfolioMember
from cli import app
from live.node import LiveSettings
from live.session import LiveSession
from localexchange.server_thread import ExchangeThread
from strategies.registry import BUILTIN, make_strategy
from tests.live.helpers import market_of, sample

OFFSET, N = 150, 200  # 17 hours of NXT/BTC 5m bars over two UTC days: every family trades
SYMBOL, FILE = "NXT/BTC", "NXT_BTC-5m.csv.gz"
PARAMS = {"trend_day": {"min_move": 0.002, "min_r2": 0.3}}  # a trend day within the sample
INSTANCES = [(family, PARAMS.get(family, {})) for family in BUILTIN] + [
    ("sr_breakout", {"allow_short": True})
]
RISK = "0.001"  # small positions: the shared live account never limits an entry


@pytest.fixture(scope="module")
def ray_local(ray_shared):
    # the session's Ray: real mode reads its keys in the Ray worker, there RAY_KEY (tests/ray_local.py)
    return ray_shared


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return sample(FILE).iloc[OFFSET : OFFSET + N]


def backtest_trades(family: str, params: dict, bars: pd.DataFrame, tmp: Path) -> pd.DataFrame:
    tmp.mkdir(parents=True, exist_ok=True)
    data = tmp / "bars.csv"
    if not data.exists():
        out = bars.copy()
        out.insert(0, "timestamp", pd.DatetimeIndex(out.index).as_unit("ms").asi8)
        out.to_csv(data, index=False)
    out_dir = tmp / f"{family}-{'-'.join(params)}"
    args = [
        "backtest",
        "--strategy",
        family,
        "--data",
        str(data),
        "--symbol",
        SYMBOL,
        "--interval",
        "5m",
        "--out",
        str(out_dir),
        "--risk",
        RISK,
        "--db",
        f"sqlite:///{tmp / 'backtest.db'}",
    ]
    for key, value in params.items():
        args += ["--param", f"{key}={str(value).lower()}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return pd.read_csv(out_dir / "trades.csv")


def live_trades(ray, bars: pd.DataFrame, db_url: str) -> tuple[list[dict], list[PortfolioMember]]:
    members = [
        PortfolioMember(f"{family}-{'-'.join(params)}", make_strategy(family, params), SYMBOL, "5m")
        for family, params in INSTANCES
    ]
    with ExchangeThread(market_of(bars, SYMBOL)) as ex:
        settings = LiveSettings(
            "binance", ex.url, db_url, risk=float(RISK), quiet_s=1.0, hosts_per_actor=3
        )
        with LiveSession(settings, members, ray_module=ray) as session:
            ex.step(N)
            # the last bar is never confirmed closed: no later bar arrives after the data ends
            session.wait_for_bars(N - 1, timeout=120)
            return session.trades(), members


@pytest.mark.ray
def test_dry_run_trades_like_the_backtest_for_every_family(
    ray_local, bars, tmp_path, sqlite_url
) -> None:
    records, members = live_trades(ray_local, bars, sqlite_url)
    last_seen = bars.index[N - 2]  # the last bar the live run saw
    for (family, params), member in zip(INSTANCES, members, strict=True):
        expected = backtest_trades(family, params, bars, tmp_path)
        expected = expected[
            (expected.exit_reason != "end_of_data")
            & (pd.to_datetime(expected.exit_time) <= last_seen)
        ]
        assert len(expected) >= 1, f"{family}: pick a series where it trades"
        got = sorted(
            (t for t in records if t["strategy"] == member.label and t["status"] == "CLOSED"),
            key=lambda t: t["entry_ts"],
        )
        live = [
            (
                _iso(t["entry_ts"]),
                t["entry_price"],
                _iso(t["exit_ts"]),
                t["exit_price"],
                t["side"],
                t["exit_reason"],
            )
            for t in got
        ]
        back = [
            (r.entry_time, r.entry_price, r.exit_time, r.exit_price, r.side, r.exit_reason)
            for r in expected.itertuples()
        ]
        assert len(live) == len(back), family
        for a, b in zip(live, back, strict=True):
            assert a[0] == b[0] and a[2] == b[2] and a[4:] == b[4:], family
            assert a[1] == pytest.approx(b[1], rel=1e-12) and a[3] == pytest.approx(b[3], rel=1e-12)


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


REAL_N = 120
REAL_INSTANCES = [("sr_breakout", {}), ("reversal_breakout", {})]


def real_mode_trades(
    ray, bars: pd.DataFrame, db_url: str, instances: list, market: str, suffix: str
) -> tuple[list[dict], list[PortfolioMember], list]:
    """A real-mode node on the local exchange, stepped one bar at a time (orders reach the bar in
    progress); its trades, members and the client ids the exchange received."""
    members = [
        PortfolioMember(
            f"{family}-{'-'.join(params)}-{suffix}", make_strategy(family, params), SYMBOL, "5m"
        )
        for family, params in instances
    ]
    with ExchangeThread(market_of(bars, SYMBOL), {"BTC": 10.0}) as ex:
        settings = LiveSettings(
            "binance",
            ex.url,
            db_url,
            risk=float(RISK),
            quiet_s=1.0,
            real=True,
            market=market,
            hosts_per_actor=3,
        )
        with LiveSession(settings, members, ray_module=ray) as session:
            for k in range(1, len(bars)):
                ex.step(1)
                session.wait_for_bars(k, timeout=60)
            return session.trades(), members, ex.exchange.orders_at


def assert_backtest_trades(
    records: list[dict],
    members: list[PortfolioMember],
    instances: list,
    bars: pd.DataFrame,
    tmp: Path,
) -> None:
    """Each member's closed trades are its backtest's (times, side, reason; prices to the tick)."""
    last_seen = bars.index[len(bars) - 2]  # the last bar the live run saw closed
    for (family, params), member in zip(instances, members, strict=True):
        expected = backtest_trades(family, params, bars, tmp)
        expected = expected[
            (expected.exit_reason != "end_of_data")
            & (pd.to_datetime(expected.exit_time) <= last_seen)
        ]
        assert len(expected) >= 1, f"{family}: pick a series where it trades"
        got = sorted(
            (t for t in records if t["strategy"] == member.label and t["status"] == "CLOSED"),
            key=lambda t: t["entry_ts"],
        )
        live = [(_iso(t["entry_ts"]), _iso(t["exit_ts"]), t["side"], t["exit_reason"]) for t in got]
        back = [(r.entry_time, r.exit_time, r.side, r.exit_reason) for r in expected.itertuples()]
        assert live == back, family
        for t, r in zip(got, expected.itertuples(), strict=True):  # prices at 8 decimals (tick)
            assert t["entry_price"] == pytest.approx(r.entry_price, abs=2e-8), family
            assert t["exit_price"] == pytest.approx(r.exit_price, abs=2e-8), family


@pytest.mark.ray
def test_real_mode_trades_like_the_backtest(ray_local, tmp_path, sqlite_url) -> None:
    """--real through the ccxt broker and the balance-locking local exchange (spot: OCO
    brackets), bar by bar: the same trades as the backtest."""
    short = sample(FILE, n=REAL_N)
    records, members, sent = real_mode_trades(
        ray_local, short, sqlite_url, REAL_INSTANCES, "spot", "real"
    )
    cids = [cid for _t, cid in sent]
    assert all(cid.startswith("rt-") for cid in cids) and len(set(cids)) == len(cids)
    assert_backtest_trades(records, members, REAL_INSTANCES, short, tmp_path / "real")


@pytest.mark.ray
def test_real_mode_on_margin_trades_like_the_backtest_for_every_family(
    ray_local, bars, tmp_path, sqlite_url
) -> None:
    """Every family (and sr_breakout with shorts) in real mode through the ccxt broker on the
    local exchange's cross margin market (shorts borrow their coins), bar by bar: the backtest's
    trades. (Spot with its balance-locking OCO brackets: the test above.)"""
    records, members, _sent = real_mode_trades(
        ray_local, bars, sqlite_url, INSTANCES, "margin", "margin"
    )
    assert_backtest_trades(records, members, INSTANCES, bars, tmp_path)
