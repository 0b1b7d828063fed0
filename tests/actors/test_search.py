"""The trigger search of the fast-mode exchange: it must agree with a plain scan."""

from __future__ import annotations

import numpy as np

from actors.search import block_extremes, first_hit


def test_first_hit_chunks() -> None:
    values = np.full(10_000, 5.0)
    values[7_777] = 1.0
    assert first_hit(values, 0, 2.0, below=True) == 7_777
    assert first_hit(values, 7_778, 2.0, below=True) == -1
    assert first_hit(values, 0, 5.0, below=False) == 0


def test_first_hit_with_block_extremes_matches_a_plain_scan() -> None:
    rng = np.random.default_rng(3)
    values = 100.0 + np.cumsum(rng.normal(0, 0.05, 20_000))
    values[[50, 9_000, 15_000]] = np.nan  # NaN never triggers and never hides a hit
    lows, highs = block_extremes(values, True), block_extremes(values, False)
    for start in (0, 1, 255, 256, 700, 12_345, 19_999):
        for level in (90.0, 95.0, 99.5, 100.5, 105.0, 110.0):
            for below, blocks in ((True, lows), (False, highs)):
                with np.errstate(invalid="ignore"):
                    hits = values[start:] <= level if below else values[start:] >= level
                want = start + int(hits.argmax()) if hits.any() else -1
                got = first_hit(values, start, level, below, blocks)
                assert got == want, (start, level, below)
    # a shorter view with the full series' block table (the bounded search of a later leg)
    for bound in (300, 5_000, 5_120, 5_121):
        view = values[:bound]
        with np.errstate(invalid="ignore"):
            hits = view[10:] <= 99.5
        want = 10 + int(hits.argmax()) if hits.any() else -1
        assert first_hit(view, 10, 99.5, True, lows) == want, bound
    # a deliberately wrong block table (a max where a min belongs) misses a far hit
    far = np.full(5_000, 5.0)
    far[4_000] = 1.0
    assert first_hit(far, 0, 2.0, True, block_extremes(far, True)) == 4_000
    assert first_hit(far, 0, 2.0, True, block_extremes(far, False)) == -1
