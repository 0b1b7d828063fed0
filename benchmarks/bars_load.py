"""Bulk save/load speed of 1,000,000 1m bars on SQLite (temp file) and PostgreSQL (fresh db).

Run: .venv/bin/python benchmarks/bars_load.py [N]. Target: load 1M bars of one series < 2 s,
judged on the MEDIAN of LOADS timed loads (the best is printed too, never used for OK/SLOW).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from factors.synthetic import random_walk_bars  # noqa: E402
from store.bars import load_bars, save_bars  # noqa: E402
from store.db import dispose_engines  # noqa: E402

ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
LOADS = 3  # timed loads per database
TARGET_S = 2.0


def measure(label: str, url: str, bars) -> None:
    t0 = time.perf_counter()
    added = save_bars(url, "bench", "BTC/USDT", "1m", bars)
    t_save = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = save_bars(url, "bench", "BTC/USDT", "1m", bars)
    t_resave = time.perf_counter() - t0
    loads = []
    for _ in range(LOADS):
        t0 = time.perf_counter()
        loaded = load_bars(url, "bench", "BTC/USDT", "1m")
        loads.append(time.perf_counter() - t0)
    assert added == len(bars) and again == 0 and loaded.equals(bars)
    n = len(bars)
    median, best = statistics.median(loads), min(loads)
    verdict = "OK" if median < TARGET_S else "SLOW"
    print(
        f"{label:<10} save {t_save:6.2f} s ({n / t_save:>10,.0f} bars/s)  "
        f"re-save {t_resave:6.2f} s\n"
        f"{'':<10} load median {median:5.2f} s ({n / median:>10,.0f} bars/s), "
        f"best {best:5.2f} s, runs {', '.join(f'{t:.2f}' for t in loads)}  "
        f"{verdict} (median < {TARGET_S:g} s)"
    )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    bars = random_walk_bars(n, "1m", seed=42)
    print(f"{n:,} bars of one 1m series")
    with tempfile.TemporaryDirectory() as tmp:
        measure("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", bars)
        dispose_engines()
    try:
        import psycopg

        name = f"rt_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        print(f"postgresql skipped: {exc}")
        return
    try:
        measure("postgresql", f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", bars)
    finally:
        dispose_engines()
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
