"""The trigger search of the fast-mode exchange: it must agree with a plain scan."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.search import _BLOCK, block_extremes, first_hit


def plain_scan(values: np.ndarray, start: int, level: float, below: bool) -> int:
    with np.errstate(invalid="ignore"):
        hits = values[start:] <= level if below else values[start:] >= level
    return start + int(hits.argmax()) if hits.any() else -1


def test_first_hit_near_far_and_never() -> None:
    values = np.full(10_000, 5.0)
    values[7_777] = 1.0
    assert first_hit(values, 0, 2.0, below=True) == 7_777
    assert first_hit(values, 7_778, 2.0, below=True) == -1
    assert first_hit(values, 0, 5.0, below=False) == 0
    assert first_hit(values, 10_000, 5.0, below=False) == -1  # nothing left to search


def test_first_hit_with_block_extremes_matches_a_plain_scan() -> None:
    rng = np.random.default_rng(3)
    values = 100.0 + np.cumsum(rng.normal(0, 0.05, 20_000))
    values[[50, 9_000, 15_000]] = np.nan  # NaN never triggers and never hides a hit
    lows, highs = block_extremes(values, True), block_extremes(values, False)
    for start in (0, 1, 255, 256, 700, 12_345, 19_999):
        for level in (90.0, 95.0, 99.5, 100.5, 105.0, 110.0):
            for below, blocks in ((True, lows), (False, highs)):
                got = first_hit(values, start, level, below, blocks)
                assert got == plain_scan(values, start, level, below), (start, level, below)
    # a shorter view with the full series' block table (the bounded search of a later leg)
    for bound in (300, 5_000, 5_120, 5_121):
        want = plain_scan(values[:bound], 10, 99.5, True)
        assert first_hit(values, 10, 99.5, True, lows, stop=bound) == want, bound
    # a deliberately wrong block table (a max where a min belongs) misses a far hit
    far = np.full(5_000, 5.0)
    far[4_000] = 1.0
    assert first_hit(far, 0, 2.0, True, block_extremes(far, True)) == 4_000
    assert first_hit(far, 0, 2.0, True, block_extremes(far, False)) == -1


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=3 * _BLOCK + 40),
    start_at=st.floats(0.0, 1.0),
    bound_at=st.floats(0.0, 1.0),
    level=st.floats(-8.0, 8.0),
    below=st.booleans(),
)
def test_first_hit_equals_a_plain_scan_of_any_prefix(steps, start_at, bound_at, level, below):
    """Any walk, start and prefix (the bounded search of a later bracket leg): the compiled
    search up to `stop` finds what a plain scan of the prefix finds."""
    values = np.cumsum(np.array(steps))
    bound = int(bound_at * len(values))
    start = int(start_at * bound)
    got = first_hit(values, start, level, below, block_extremes(values, below), stop=bound)
    assert got == plain_scan(values[:bound], start, level, below)


def test_without_a_writable_cache_the_search_is_compiled_per_process(monkeypatch) -> None:
    """numba refuses cache=True when it finds no writable place for the cache (a read-only
    install, no writable home): the search is then compiled for the process, same answers."""
    from numba.core.dispatcher import Dispatcher

    import actors.search as search

    def no_cache_dir(self):  # what numba raises then
        raise RuntimeError("cannot cache function: no locator available")

    monkeypatch.setattr(Dispatcher, "enable_caching", no_cache_dir)
    monkeypatch.setattr(search, "_search", None)
    values = np.full(600, 5.0)
    values[550] = 1.0
    assert first_hit(values, 3, 2.0, True) == 550  # compiled without a cache, and right
