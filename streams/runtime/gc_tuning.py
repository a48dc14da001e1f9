"""Python's cyclic garbage collector, tuned for a long-running pipeline.

CPython runs a young-generation collection every 700 new container objects (its default
``gc.set_threshold(700, 10, 10)``), and every so often a full one over the whole heap. The
join keeps up to a join window of pending entries alive, and each micro-batch allocates
tens of thousands of short-lived ones, so with the default the collector ran hundreds of
times a second over a large heap (the throughput it cost: docs/performance.md). Reference
cycles are still freed, just in larger, rarer passes.

>>> import gc
>>> saved = gc.get_threshold()
>>> tune_gc(50_000)
>>> gc.get_threshold()[0]
50000
>>> gc.set_threshold(*saved)
"""

from __future__ import annotations

import gc


def tune_gc(threshold: int) -> None:
    """Collect the young generation every ``threshold`` new container objects; the older
    generations keep CPython's default ratios."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)
