"""The vectorised partitioner gives Kafka's default partition of every key, exactly."""

from __future__ import annotations

import random
import string

import pytest
from aiokafka.partitioner import murmur2

from schemas.partitioning import group_by_partition, partition_for, partitions_for


def _keys(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = string.printable + "äöü€😀"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(n)]


@pytest.mark.parametrize("partitions", [1, 3, 4, 12, 100])
def test_partitions_for_matches_aiokafkas_murmur2_key_by_key(partitions: int) -> None:
    keys = _keys(5_000, partitions) + [f"p{i}" for i in range(2_000)] + ["", "a", "ab", "abc", "abcd"]
    got = partitions_for(keys, partitions).tolist()
    assert got == [(murmur2(k.encode()) & 0x7FFFFFFF) % partitions for k in keys]
    assert got == [partition_for(k, partitions) for k in keys]


def test_group_by_partition_keeps_each_partitions_events_in_order() -> None:
    events = [{"prediction_id": f"p{i}", "n": i} for i in range(1_000)]
    groups = group_by_partition(events, 4)
    assert sorted(e["n"] for g in groups.values() for e in g) == list(range(1_000))
    for partition, group in groups.items():
        assert [e["n"] for e in group] == sorted(e["n"] for e in group)
        assert {partition_for(e["prediction_id"], 4) for e in group} == {partition}
    assert partitions_for([], 4).tolist() == []
