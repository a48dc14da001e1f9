"""streams.runtime.alignment: which join partitions a worker pauses while its monitors hold too much."""

from __future__ import annotations

import math

import pytest

from streams.runtime.alignment import Alignment, merge_progress


def test_nothing_pauses_below_the_bound_however_far_apart_the_partitions_are() -> None:
    align = Alignment(max_held=1_000)
    assert align.paused(999, {0: (1e9, False)}, {1: (0.0, False)}, sources=2) == set()


def test_the_slowest_partition_is_never_paused_so_the_frontier_moves() -> None:
    align = Alignment(max_held=10)
    seen = {0: (5.0, False), 1: (9.0, False), 2: (7.0, False)}
    own = {0: (5.0, False), 1: (9.0, False)}
    assert align.paused(50, own, seen, sources=3) == {1}
    # this worker's own progress is newer than what monitor-input showed of it
    assert align.paused(50, {0: (8.0, False), 1: (9.0, False)}, seen, sources=3) == {0, 1}  # 2 is the slowest


def test_a_partition_not_heard_of_yet_is_the_slowest() -> None:
    align = Alignment(max_held=10)
    assert align.paused(10, {0: (5.0, False)}, {0: (5.0, False)}, sources=2) == {0}
    # one with no state here yet (no watermark) is never paused: it may be the slowest
    assert align.paused(10, {0: (5.0, False), 1: (None, False)}, {}, sources=2) == {0}


def test_idle_partitions_neither_hold_back_nor_get_paused() -> None:
    align = Alignment(max_held=10)
    seen = {0: (5.0, False), 1: (None, True), 2: (3.0, True)}
    assert align.paused(10, {0: (5.0, False), 2: (3.0, True)}, seen, sources=3) == set()  # 0 is the slowest busy one


def test_pausing_ends_only_once_the_held_events_fall_to_half_the_bound() -> None:
    align = Alignment(max_held=100)
    own, seen = {0: (9.0, False)}, {1: (1.0, False)}
    assert [bool(align.paused(held, own, seen, sources=2)) for held in (99, 100, 80, 51, 50, 99)] == \
        [False, True, True, True, False, False]


def test_a_bad_bound_is_refused() -> None:
    with pytest.raises(ValueError):
        Alignment(0)


def test_merge_keeps_the_latest_progress_of_each_partition() -> None:
    views = [{0: (5.0, False), 1: (-math.inf, False)}, {0: (3.0, False), 1: (2.0, True)}, {0: (5.0, True)}]
    assert merge_progress(views) == {0: (5.0, True), 1: (2.0, True)}
    assert merge_progress([{0: (-math.inf, False)}]) == {0: (None, False)}


def test_no_partition_waits_longer_than_max_pause_then_it_fetches_a_while() -> None:
    """Each worker sees the others' progress late: whatever it believes, a pause ends."""
    align = Alignment(max_held=10, max_pause_s=2.0, rest_s=1.0)
    own, seen = {0: (9.0, False)}, {1: (1.0, False)}  # 1 looks slowest for ever (a stale view)
    assert [bool(align.paused(50, own, seen, sources=2, now=t)) for t in (0.0, 1.9, 2.0, 2.9, 3.0, 4.9, 5.0)] == \
        [True, True, False, False, True, True, False]
