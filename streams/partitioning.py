"""Which partition an event belongs to, so that a prediction and its label always meet.

Predictions and ground truth are partitioned by ``prediction_id`` with Kafka's default
(murmur2) partitioner, the one the Java client, aiokafka, and kcat with
``-X topic.partitioner=murmur2_random`` use. Our SDK packs many events into one record
per partition; a foreign producer sends one event per record keyed by ``prediction_id``.
Both land in the same partition, so the join never crosses partitions.

>>> partition_for("pred-42", 8) == partition_for("pred-42", 8)
True
>>> sorted(group_by_partition([{"prediction_id": "a"}, {"prediction_id": "b"}], 1))
[0]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.partitioner import murmur2


def partition_for(prediction_id: str, partitions: int) -> int:
    """Kafka's default partition for the key ``prediction_id``."""
    return (murmur2(prediction_id.encode()) & 0x7FFFFFFF) % partitions


def group_by_partition(
    events: Iterable[Mapping[str, Any]], partitions: int
) -> dict[int, list[Mapping[str, Any]]]:
    """Split events by the partition of their ``prediction_id``, keeping their order."""
    groups: dict[int, list[Mapping[str, Any]]] = {}
    for event in events:
        groups.setdefault(partition_for(event["prediction_id"], partitions), []).append(event)
    return groups
