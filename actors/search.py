"""Where a resting order triggers: the fast-mode exchange's search over one column of bars.

The answer is usually a few hundred bars ahead of the start (median ~190 on 1m bars with a 1%
stop), sometimes far away or never. The search runs twice per trade, so it is a compiled loop
(numba): it stops at the first hit instead of comparing whole chunks, and it skips a block of
_BLOCK bars at once when the block's extreme (lowest low, highest high) cannot reach the level.
numpy chunks did the same work in about six array calls per search, whose fixed costs were a
tenth of a backtest's time per trade. numba is loaded on the first search, so processes that
never run a fast-mode backtest (the CLI's light commands, live trading) never import it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_BLOCK = 256  # bars per block of the block extremes


def block_extremes(values: np.ndarray, below: bool) -> np.ndarray:
    """min (below) or max of values[k*_BLOCK : (k+1)*_BLOCK] for every block k, NaN ignored."""
    if len(values) == 0:
        return values.copy()
    starts = np.arange(0, len(values), _BLOCK)
    return (np.fmin if below else np.fmax).reduceat(values, starts)


def first_hit(
    values: np.ndarray,
    start: int,
    level: float,
    below: bool,
    blocks: np.ndarray | None = None,
    stop: int | None = None,
) -> int:
    """First index in [start, stop) with values <= level (below) or >= level; -1 if none.

    NaN never hits. `blocks`: block_extremes(values, below), kept by the caller for the whole
    series; `stop` (default: the end) bounds the search of a later bracket leg.
    """
    if blocks is None:
        blocks = block_extremes(values, below)
    search = _search or _compile()
    return search(values, start, len(values) if stop is None else stop, float(level), below, blocks)


_search: Callable[..., int] | None = None


def _compile() -> Callable[..., int]:
    global _search
    from numba import njit  # here: loading numba costs ~0.2 s, only searches need it

    # cache=True: the machine code is kept next to this file (or in numba's user cache dir),
    # so later processes load it instead of compiling it again (~1 s)
    try:
        _search = njit(cache=True, nogil=True)(_first_hit_loop)
    except RuntimeError:  # no writable cache location (a read-only install): compile per process
        _search = njit(nogil=True)(_first_hit_loop)
    return _search


def _first_hit_loop(
    values: np.ndarray, start: int, stop: int, level: float, below: bool, blocks: np.ndarray
) -> int:
    """first_hit over values[start:stop], compiled. The bars up to the end of the next block
    are read one by one (most hits are near); after that a whole block is skipped when its
    extreme does not reach the level, and only a block whose extreme does is read bar by bar."""
    end = min(stop, (start // _BLOCK + 2) * _BLOCK)
    for i in range(start, end):
        if values[i] <= level if below else values[i] >= level:
            return i
    if end >= stop:
        return -1
    block = end // _BLOCK  # a block boundary past start
    while block * _BLOCK < stop and block < len(blocks):
        extreme = blocks[block]
        if extreme <= level if below else extreme >= level:
            for i in range(block * _BLOCK, min(stop, (block + 1) * _BLOCK)):
                if values[i] <= level if below else values[i] >= level:
                    return i
        block += 1
    return -1
