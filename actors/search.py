"""Where a resting order triggers: the fast-mode exchange's search over one column of bars.

The answer is usually a few hundred bars ahead of the start, sometimes far away or never; the
search is written for that pattern (a near chunk first, then per-block extremes, see first_hit).
"""

from __future__ import annotations

import numpy as np

_FIRST_CHUNK = 256
_MAX_CHUNK = 1 << 16
_BLOCK = 256  # bars per block of the block extremes (fast search over long quiet stretches)


def block_extremes(values: np.ndarray, below: bool) -> np.ndarray:
    """min (below) or max of values[k*_BLOCK : (k+1)*_BLOCK] for every block k, NaN ignored."""
    if len(values) == 0:
        return values.copy()
    starts = np.arange(0, len(values), _BLOCK)
    return (np.fmin if below else np.fmax).reduceat(values, starts)


def first_hit(
    values: np.ndarray, start: int, level: float, below: bool, blocks: np.ndarray | None = None
) -> int:
    """First index >= start with values <= level (below) or >= level; -1 if none.

    Scans the next few hundred values directly (most triggers are close); beyond that, with
    `blocks` (block_extremes of values), it finds the first block whose extreme reaches the
    level and scans only that block, so a level hit far away (or never) costs a few small
    slices instead of a scan of the whole tail. Without blocks it searches growing chunks.
    """
    n = len(values)
    if blocks is None:
        return _scan(values, start, n, level, below, _FIRST_CHUNK)
    end = min(n, (start // _BLOCK + 2) * _BLOCK)  # to a block boundary, >= _BLOCK values
    if start >= end:
        return -1
    segment = values[start:end]  # inlined _scan of one chunk: the common, near case
    hits = segment <= level if below else segment >= level
    k = int(hits.argmax())
    if hits[k]:
        return start + k
    if end >= n:
        return -1
    block = _scan(blocks, end // _BLOCK, len(blocks), level, below, 16)
    if block < 0:
        return -1
    return _scan(values, block * _BLOCK, n, level, below, _BLOCK)


def _scan(values: np.ndarray, i: int, n: int, level: float, below: bool, chunk: int) -> int:
    """First index in [i, n) with values <= level (below) or >= level, chunks growing 4x."""
    while i < n:
        segment = values[i : min(i + chunk, n)]
        hits = segment <= level if below else segment >= level
        k = int(hits.argmax())
        if hits[k]:
            return i + k
        i += chunk
        chunk = min(chunk * 4, _MAX_CHUNK)
    return -1
