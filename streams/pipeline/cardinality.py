"""Bounded cardinality: how many models a worker monitors, and exports series for.

100,000 distinct ``model_id``s once took 3.0 GB (about 29 KB of monitor state each) and made
100,142 Prometheus series. So:

- :class:`ModelCap` admits at most ``max_models`` models per ``monitor-input`` partition
  (``DRIFTSTREAM_MAX_MODELS``), in the order their first payload sits in the partition's log,
  so a replay of the log admits the same ones. A model past the cap is never given state:
  its payloads are dead-lettered (``too_many_models``) with their origin. Models with saved
  state stay admitted after a restart or a rebalance.
- :class:`SeriesCap` exports per-model series for at most ``max_models`` models per worker
  (``DRIFTSTREAM_MAX_MODEL_SERIES``); the others are counted in
  ``driftstream_model_series_capped_models``, their alerts and drift events still published.
- :class:`IdleModels` names the models with no event for ``model_idle_evict_s``
  (``DRIFTSTREAM_MODEL_IDLE_EVICT_S``), which the worker drops from memory once their state
  is saved: their next event loads it again from the changelog. Wall-clock time decides
  only when memory is freed, never a result, since the state loaded is the state saved.

>>> cap = ModelCap(2, partitions=1)
>>> [cap.admit(key, lambda p: ()) for key in ("a", "b", "a", "c")]
[True, True, True, False]
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from schemas import codec
from schemas.parsing import RecordError, dead_letter_record
from schemas.partitioning import partition_for

#: Dead-letter reason of a payload of a model past DRIFTSTREAM_MAX_MODELS.
TOO_MANY_MODELS = "too_many_models"


class ModelCap:
    """At most ``max_models`` admitted model keys per ``monitor-input`` partition (of
    ``partitions``, partitioned by the model key as the producer does)."""

    def __init__(self, max_models: int, partitions: int) -> None:
        if max_models < 1:
            raise ValueError(f"max_models must be >= 1, got {max_models}")
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        self.max_models = max_models
        self.partitions = partitions
        self._admitted: dict[int, set[str]] = {}

    def partition_of(self, key: str) -> int:
        return partition_for(key, self.partitions)

    def admit(self, key: str, saved: Callable[[int], Iterable[str]]) -> bool:
        """Whether model ``key`` is (or now becomes) admitted. ``saved(partition)``: the
        model keys with saved state, read once per partition (after :meth:`reset`)."""
        partition = self.partition_of(key)
        admitted = self._admitted.get(partition)
        if admitted is None:
            admitted = self._admitted[partition] = {k for k in saved(partition) if self.partition_of(k) == partition}
        if key in admitted:
            return True
        if len(admitted) >= self.max_models:
            return False
        admitted.add(key)
        return True

    def reset(self) -> None:
        """Forget the admitted sets (a rebalance: they are read again from saved state)."""
        self._admitted.clear()

    def dead_letter(self, key: str, topic: str, partition: int | None, offset: int | None, payload: Any, now: float) -> dict[str, Any]:
        """The ``dead-letter`` record of a payload of model ``key``, refused."""
        message = (f"monitor-input: model {key!r} is past the {self.max_models} models a monitor-input partition "
                   f"may hold (DRIFTSTREAM_MAX_MODELS); its events are not monitored")
        raw = payload if isinstance(payload, bytes) else codec.dumps(payload)
        return dead_letter_record(topic, partition, offset, RecordError(None, TOO_MANY_MODELS, message, raw), now)


class SeriesCap:
    """Per-model Prometheus series for at most ``max_models`` models, the first seen.

    >>> series = SeriesCap(1)
    >>> series.exports("a"), series.exports("b"), series.exports("a"), series.capped
    (True, False, True, 1)
    """

    def __init__(self, max_models: int) -> None:
        if max_models < 1:
            raise ValueError(f"max_models must be >= 1, got {max_models}")
        self.max_models = max_models
        self._exported: set[str] = set()
        self._capped: set[str] = set()

    @property
    def capped(self) -> int:
        return len(self._capped)

    def exports(self, model_id: str) -> bool:
        if model_id in self._exported:
            return True
        if len(self._exported) < self.max_models:
            self._exported.add(model_id)
            return True
        self._capped.add(model_id)
        return False

    def reset(self) -> None:
        """The per-model series were cleared (a rebalance)."""
        self._exported.clear()
        self._capped.clear()


class IdleModels:
    """When each model last had an event, oldest first; which have been idle ``idle_s``.

    >>> idle = IdleModels(10.0)
    >>> idle.touch("a", 0.0); idle.touch("b", 5.0); idle.touch("a", 6.0)
    >>> idle.idle(15.5), idle.idle(16.0)
    (['b'], ['b', 'a'])
    """

    def __init__(self, idle_s: float) -> None:
        if not idle_s > 0:
            raise ValueError(f"idle_s must be > 0, got {idle_s}")
        self.idle_s = idle_s
        self._last: OrderedDict[str, float] = OrderedDict()  # least recently touched first

    def touch(self, key: str, now: float) -> None:
        self._last[key] = now
        self._last.move_to_end(key)

    def idle(self, now: float) -> list[str]:
        """The models idle for ``idle_s`` or more at ``now``, least recently touched first."""
        out = []
        for key, last in self._last.items():
            if now - last < self.idle_s:
                break
            out.append(key)
        return out

    def forget(self, key: str) -> None:
        self._last.pop(key, None)

    def clear(self) -> None:
        self._last.clear()


__all__ = ["IdleModels", "ModelCap", "SeriesCap", "TOO_MANY_MODELS"]
