"""streams.align: the join's inputs merged by record timestamp, waiting for a lagging topic."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from streams.align import InputAligner

TOPICS = ["predictions", "ground-truth"]


def _records(topic: str, partition: int, stamps: list[float], first_offset: int = 0) -> list[SimpleNamespace]:
    return [SimpleNamespace(topic=topic, partition=partition, offset=first_offset + i, timestamp=t) for i, t in enumerate(stamps)]


def _seen(records: list[SimpleNamespace]) -> list[tuple[str, int]]:
    return [(r.topic, r.offset) for r in records]


def test_any_arrival_order_comes_out_in_timestamp_order_once_everything_is_fetched() -> None:
    pick = random.Random(7)
    stamps = sorted(pick.uniform(0, 100) for _ in range(400))
    roles = [pick.choice(TOPICS) for _ in stamps]
    by_topic = {t: _records(t, 0, [s for s, r in zip(stamps, roles, strict=True) if r == t]) for t in TOPICS}
    fetched = {t: 0 for t in TOPICS}

    def caught_up(topic: str, partition: int) -> bool:
        return fetched[topic] == len(by_topic[topic])

    aligner = InputAligner(TOPICS, caught_up, max_idle_s=1e9)
    out = []
    while any(fetched[t] < len(by_topic[t]) for t in TOPICS):  # fetches of random sizes, one topic at a time
        topic = pick.choice([t for t in TOPICS if fetched[t] < len(by_topic[t])])
        n = pick.randint(1, 60)
        aligner.add(by_topic[topic][fetched[topic] : fetched[topic] + n], now=0.0)
        fetched[topic] = min(fetched[topic] + n, len(by_topic[topic]))
        out += aligner.take(now=0.0)
    out += aligner.take(now=0.0)
    assert [r.timestamp for r in out] == stamps
    assert aligner.holding() == 0


def test_a_topic_that_never_arrives_holds_the_other_for_max_idle_s_only() -> None:
    aligner = InputAligner(TOPICS, lambda topic, partition: False, max_idle_s=2.0)
    aligner.add(_records("predictions", 0, [1.0, 2.0]), now=10.0)
    assert aligner.take(now=10.0) == []  # the wait starts
    assert aligner.take(now=11.9) == []
    assert _seen(aligner.take(now=12.0)) == [("predictions", 0), ("predictions", 1)]
    # with nothing held, the next wait (labels for predictions, now) starts from scratch
    aligner.add(_records("ground-truth", 0, [3.0]), now=12.5)
    assert aligner.take(now=12.5) == []
    assert _seen(aligner.take(now=14.5)) == [("ground-truth", 0)]


def test_partitions_wait_independently_and_equal_timestamps_go_in_topic_order() -> None:
    lagging = {("ground-truth", 1)}
    aligner = InputAligner(TOPICS, lambda topic, partition: (topic, partition) not in lagging, max_idle_s=60.0)
    aligner.add(_records("ground-truth", 0, [5.0]) + _records("predictions", 0, [5.0]) + _records("predictions", 1, [1.0]), now=0.0)
    assert _seen(aligner.take(now=0.0)) == [("predictions", 0), ("ground-truth", 0)]
    assert aligner.holding() == 1  # partition 1 waits for its labels
    lagging.clear()
    assert [(r.topic, r.partition) for r in aligner.take(now=0.0)] == [("predictions", 1)]


def test_clear_forgets_what_is_held_and_the_offsets_added() -> None:
    aligner = InputAligner(TOPICS, lambda topic, partition: False, max_idle_s=60.0)
    aligner.add(_records("predictions", 3, [1.0, 2.0]), now=0.0)
    assert aligner.last_offset("predictions", 3) == 1 and aligner.last_offset("ground-truth", 3) is None
    aligner.clear()
    assert aligner.holding() == 0 and aligner.last_offset("predictions", 3) is None


def test_bad_arguments_and_foreign_topics_are_refused() -> None:
    with pytest.raises(ValueError, match="two topics"):
        InputAligner(["predictions"], lambda topic, partition: True, max_idle_s=1.0)
    with pytest.raises(ValueError, match="max_idle_s"):
        InputAligner(TOPICS, lambda topic, partition: True, max_idle_s=0.0)
    aligner = InputAligner(TOPICS, lambda topic, partition: True, max_idle_s=1.0)
    with pytest.raises(ValueError, match="not one of"):
        aligner.add(_records("alerts", 0, [1.0]), now=0.0)


def test_the_broker_is_asked_once_per_topic_and_partition_per_take() -> None:
    asked: list[tuple[str, int]] = []

    def caught_up(topic: str, partition: int) -> bool:
        asked.append((topic, partition))
        return True

    aligner = InputAligner(TOPICS, caught_up, max_idle_s=60.0)
    aligner.add(_records("predictions", 0, [float(t) for t in range(100)]), now=0.0)
    assert len(aligner.take(now=0.0)) == 100
    assert asked == [("ground-truth", 0)]
