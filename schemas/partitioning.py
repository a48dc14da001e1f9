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
>>> partitions_for(["pred-42", "p7", ""], 8).tolist() == [partition_for(k, 8) for k in ["pred-42", "p7", ""]]
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from aiokafka.partitioner import murmur2

_SEED = 0x9747B28C
_M = np.uint32(0x5BD1E995)


def partition_for(prediction_id: str, partitions: int) -> int:
    """Kafka's default partition for the key ``prediction_id``."""
    return (murmur2(prediction_id.encode()) & 0x7FFFFFFF) % partitions


def partitions_for(prediction_ids: Sequence[str], partitions: int) -> np.ndarray:
    """:func:`partition_for` of each key at once: murmur2 over the keys of each byte length
    as uint32 columns (it wraps as Java's ints do), instead of aiokafka's pure-Python murmur2
    per key, which dominated the SDK's packing (docs/performance.md). The keys' bytes are
    one buffer, and each length's rows are gathered from it by index arrays: encoding and
    joining the keys one by one in Python cost as much as the hashing."""
    joined = "".join(prediction_ids)
    if joined.isascii():  # a character is a byte: one encode for every key
        data = np.frombuffer(joined.encode(), dtype=np.uint8)
        lengths = np.fromiter(map(len, prediction_ids), dtype=np.int64, count=len(prediction_ids))
    else:
        keys = [pid.encode() for pid in prediction_ids]
        data = np.frombuffer(b"".join(keys), dtype=np.uint8)
        lengths = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
    starts = np.cumsum(lengths) - lengths
    hashes = np.empty(len(lengths), dtype=np.uint32)
    for length in np.flatnonzero(np.bincount(lengths)).tolist():  # the lengths there are, in O(n)
        rows = np.flatnonzero(lengths == length)
        hashes[rows] = _murmur2(data[starts[rows, None] + np.arange(length)])
    return (hashes & np.uint32(0x7FFFFFFF)).astype(np.int64) % partitions


def _murmur2(data: np.ndarray) -> np.ndarray:
    """Kafka's murmur2 of each row of ``data`` (keys of one length, as uint8 rows)."""
    n, length = data.shape
    h = np.full(n, _SEED ^ length, dtype=np.uint32)
    blocks = np.ascontiguousarray(data[:, : length // 4 * 4]).view("<u4")
    for j in range(length // 4):
        k = blocks[:, j] * _M
        k ^= k >> np.uint32(24)
        k *= _M
        h *= _M
        h ^= k
    tail = length % 4
    base = length // 4 * 4
    if tail >= 3:
        h ^= data[:, base + 2].astype(np.uint32) << np.uint32(16)
    if tail >= 2:
        h ^= data[:, base + 1].astype(np.uint32) << np.uint32(8)
    if tail >= 1:
        h ^= data[:, base].astype(np.uint32)
        h *= _M
    h ^= h >> np.uint32(13)
    h *= _M
    h ^= h >> np.uint32(15)
    return h


def group_by_partition(
    events: Sequence[Mapping[str, Any]], partitions: int
) -> dict[int, list[Mapping[str, Any]]]:
    """Split events by the partition of their ``prediction_id``, keeping their order."""
    groups: dict[int, list[Mapping[str, Any]]] = {}
    for event, partition in zip(events, partitions_for([event["prediction_id"] for event in events], partitions).tolist()):
        groups.setdefault(partition, []).append(event)
    return groups
