"""A disk cache of factor tables: parquet files keyed by series, factor set and data fingerprint.

The key hashes (series id, sorted factor names, fingerprint of the bars' index and OHLCV bytes),
so any change in the data or in the requested factors is a miss, and a repeated request is a hit.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from factors.bars import OHLCV
from factors.engine import DEFAULT_FACTORS, compute_factors

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = ".factor_cache"
# Bump when a factor's definition changes so old cached tables are not reused.
CACHE_VERSION = "1"


def data_fingerprint(bars: pd.DataFrame) -> str:
    """sha256 of the index (epoch ns) and the OHLCV float64 bytes."""
    digest = hashlib.sha256()
    index = pd.DatetimeIndex(bars.index)
    digest.update(index.as_unit("ns").asi8.astype(np.int64).tobytes())
    for name in OHLCV:
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(bars[name].to_numpy(dtype=np.float64)).tobytes())
    return digest.hexdigest()


def cache_key(series_id: str, names: list[str], fingerprint: str) -> str:
    text = "\n".join([CACHE_VERSION, series_id, ",".join(sorted(names)), fingerprint])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class FactorCache:
    """get_or_compute returns the factor table, from disk when the same thing was computed before."""

    def __init__(self, directory: str | os.PathLike[str] = DEFAULT_CACHE_DIR) -> None:
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0

    def path_for(self, key: str) -> Path:
        return self.directory / f"{key}.parquet"

    def get_or_compute(
        self,
        series_id: str,
        bars: pd.DataFrame,
        names: list[str] | None = None,
        compute: Callable[[pd.DataFrame, list[str]], pd.DataFrame] = compute_factors,
    ) -> pd.DataFrame:
        names = list(DEFAULT_FACTORS if names is None else names)
        key = cache_key(series_id, names, data_fingerprint(bars))
        path = self.path_for(key)
        if path.exists():
            try:
                table = pd.read_parquet(path)
            except Exception as exc:  # a torn or foreign file: recompute and overwrite it
                log.warning("factor cache entry %s unreadable (%s); recomputing", path, exc)
            else:
                self.hits += 1
                log.info("factor cache hit %s %s (%d factors)", series_id, key, len(names))
                # Same fingerprint -> same index; reuse the caller's (keeps unit and freq).
                table.index = bars.index
                return table[names]
        self.misses += 1
        log.info("factor cache miss %s %s (%d factors)", series_id, key, len(names))
        table = compute(bars, names)
        self._write(path, table)
        return table

    def _write(self, path: Path, table: pd.DataFrame) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a concurrent reader never sees half a file.
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        table.to_parquet(tmp)
        os.replace(tmp, path)
