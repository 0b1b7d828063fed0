"""`cli.py data ...` through typer's CliRunner, on SQLite and PostgreSQL."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from factors.synthetic import random_walk_bars
from store.bars import list_series, load_bars
from store.db import StoreError

runner = CliRunner()


def _run(*args):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_import_list_and_reimport(db_url, sample_dir):
    file = str(sample_dir / "XRP_ETH-1m.csv.gz")
    out = _run("data", "import", file, "-s", "XRP/ETH", "-i", "1m", "--db", db_url)
    assert "2469 bars, 2469 new" in out and "676 gaps (1091 missing bars), largest 8m" in out
    out = _run("data", "import", file, "-s", "XRP/ETH", "-i", "1m", "--db", db_url)
    assert "2469 bars, 0 new, 2469 already stored" in out
    out = _run("data", "list", "--db", db_url)
    assert "XRP/ETH" in out and "2469" in out and "676" in out and "8m" in out


def test_resample_stores_complete_buckets(db_url, sample_dir):
    file = str(sample_dir / "XRP_ETH-1m.csv.gz")
    _run("data", "import", file, "-s", "XRP/ETH", "-i", "1m", "--db", db_url)
    out = _run("data", "resample", "-s", "XRP/ETH", "--from", "1m", "--to", "5m", "--db", db_url)
    one = load_bars(db_url, "binance", "XRP/ETH", "1m")
    five = load_bars(db_url, "binance", "XRP/ETH", "5m")
    counts = one.groupby(one.index.floor("5min")).size()
    assert list(five.index) == list(counts[counts == 5].index)
    assert f"{len(five)} complete bars" in out


def test_unreachable_database_is_one_clear_error():
    result = runner.invoke(
        app, ["data", "list", "--db", "postgresql+psycopg://u:secret@127.0.0.1:1/x"]
    )
    assert isinstance(result.exception, StoreError)
    assert "cannot open database" in str(result.exception)
    assert "secret" not in str(result.exception)


def test_demo_imports_samples_and_a_synthetic_market_and_registers_instances(sqlite_url):
    from store.instances import list_instances, set_enabled

    out = _run("data", "demo", "--days", "7", "--db", sqlite_url)
    assert "demo strategy instances" in out
    series = {(s["exchange"], s["symbol"], s["interval"]) for s in list_series(sqlite_url)}
    assert {("binance", "ETH/BTC", "5m"), ("binance", "XRP/ETH", "1m")} <= series
    assert not any(symbol.startswith("UNITTEST") for _, symbol, _ in series)  # test data only
    synthetic = {(sym, iv) for ex, sym, iv in series if ex == "synthetic"}
    assert synthetic == {("ALPHA/USD", "1m"), ("BETA/USD", "1m"), ("GAMMA/USD", "1m")}
    alpha = load_bars(sqlite_url, "synthetic", "ALPHA/USD", "1m")
    assert 7 * 1440 - 12 * 181 <= len(alpha) < 7 * 1440  # a week of minutes, outages missing
    assert "(generated, seed 11)" in out
    assert len(load_bars(sqlite_url, "binance", "ETH/BTC", "1h")) > 400  # resampled on the fly
    # every family on every interval of the three synthetic pairs
    assert len(list_instances(sqlite_url, exchange="synthetic")) == 5 * 5 * 3
    assert len(list_instances(sqlite_url, exchange="binance")) == 70
    again = _run("data", "demo", "--days", "7", "--db", sqlite_url)
    assert again.count("(0 new, 0 re-enabled)") == 2 and "(0 new) on exchange" in again
    # `cli.py weights` disabled some instances: `data demo` turns every demo instance back on
    demo = list_instances(sqlite_url)
    for inst in demo[:5]:
        set_enabled(sqlite_url, inst.id, False)
    out = _run("data", "demo", "--no-synthetic", "--db", sqlite_url)
    assert "(0 new, 5 re-enabled)" in out and "synthetic" not in out
    assert len(list_instances(sqlite_url, enabled_only=True)) == len(demo)


# --- download: a local server speaking binance's REST API to the real ccxt client ----------

START = pd.Timestamp("2024-01-01", tz="UTC")
SERVED = random_walk_bars(2_500, "1m", start="2024-01-01", seed=9)


class _Binance(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/api/v3/exchangeInfo":
            body = _exchange_info()
        elif parts.path == "/api/v3/klines":
            type(self).requests.append(query)
            body = _klines(int(query.get("startTime", 0)), int(query.get("limit", 500)))
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _klines(start_ms, limit):
    ts = SERVED.index.as_unit("ms").asi8
    rows = SERVED[ts >= start_ms].iloc[: min(limit, 1000)]
    return [
        [
            int(t.value // 1_000_000),
            repr(float(r.open)),
            repr(float(r.high)),
            repr(float(r.low)),
            repr(float(r.close)),
            repr(float(r.volume)),
            int(t.value // 1_000_000) + 59_999,
            "0",
            1,
            "0",
            "0",
            "0",
        ]
        for t, r in rows.iterrows()
    ]


def _exchange_info():
    filters = [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": "0.01",
            "maxPrice": "1000000",
            "tickSize": "0.01",
        },
        {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
    ]
    market = {
        "symbol": "BTCUSDT",
        "status": "TRADING",
        "baseAsset": "BTC",
        "baseAssetPrecision": 8,
        "quoteAsset": "USDT",
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": filters,
        "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
    }
    return {"timezone": "UTC", "serverTime": 1704067200000, "rateLimits": [], "symbols": [market]}


@pytest.fixture
def binance_server():
    _Binance.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Binance)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_download_pages_through_klines_and_stores_bars(db_url, binance_server):
    out = _run(
        "data",
        "download",
        "--symbol",
        "BTC/USDT",
        "--interval",
        "1m",
        "--since",
        "2024-01-01",
        "--until",
        "2024-01-03",
        "--api-url",
        binance_server,
        "--db",
        db_url,
    )
    assert "downloaded 2500 bars" in out
    starts = [int(r["startTime"]) for r in _Binance.requests]
    assert len(starts) >= 3  # 1000 + 1000 + 500, then an empty page
    assert starts[:3] == [START.value // 10**6 + k * 60_000 for k in (0, 1000, 2000)]
    stored = load_bars(db_url, "binance", "BTC/USDT", "1m")
    pd.testing.assert_frame_equal(stored, SERVED, check_freq=False, check_index_type=False)


def test_download_with_a_bad_date_is_one_clear_error(sqlite_url):
    result = runner.invoke(
        app, ["data", "download", "-s", "BTC/USDT", "--since", "someday", "--db", sqlite_url]
    )
    assert result.exit_code != 0 and isinstance(result.exception, ValueError)
    assert str(result.exception).startswith("--since 'someday' is not a date/time")


def test_reimport_with_other_values_keeps_the_stored_bars_and_says_so(db_url, tmp_path):
    index = pd.date_range("2024-01-01", periods=4, freq="5min", tz="UTC")
    rows = {
        "open": [10.0, 11, 12, 13],
        "high": [11.0, 12, 13, 14],
        "low": [9.0, 10, 11, 12],
        "close": [10.5, 11.5, 12.5, 13.5],
        "volume": [1.0, 1, 1, 1],
    }
    first = tmp_path / "first.csv"
    pd.DataFrame(rows, index=index.as_unit("ms").asi8).rename_axis("timestamp").to_csv(first)
    changed = dict(rows, close=[10.5, 11.6, 12.5, 13.6])  # bars 1 and 3 disagree
    second = tmp_path / "second.csv"
    pd.DataFrame(changed, index=index.as_unit("ms").asi8).rename_axis("timestamp").to_csv(second)
    _run("data", "import", str(first), "-s", "X/Y", "-i", "5m", "--db", db_url)
    out = _run("data", "import", str(second), "-s", "X/Y", "-i", "5m", "--db", db_url)
    assert "0 new, 4 already stored" in out
    assert "2 of the already stored bars differ from the file" in out
    assert list(load_bars(db_url, "binance", "X/Y", "5m")["close"]) == rows["close"]
