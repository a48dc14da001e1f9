"""Event time across partitions: what lets every model see its events in one order.

The join runs per input partition, and a model's events come from all of them, at the paces
the consumer reads them. So that no model's result depends on those paces, each join
partition sends **progress** records to every ``monitor-input`` partition, after its
outputs: a watermark below which it will send nothing more (the smaller of its two input
topics' largest event times, leaving out a topic with nothing unread on the broker), or
*idle* when neither topic has anything unread (the lag check of Kafka Streams' task
idling; Flink's idle sources). A :class:`Frontier` per ``monitor-input`` partition keeps the
latest progress of each join partition, and its :meth:`Frontier.value` is the event time
below which every join partition has sent everything. Each model keeps what it received
above it in a :class:`ReorderBuffer`, and applies it once the frontier passes, in the
**canonical order**: predictions by ``(timestamp, prediction_id)``, joined pairs by
``(the later of the two event times, prediction_id)``.

The order depends on event times alone, so the number of partitions, which worker owns
which, how far behind each is and how records were batched change nothing. An event that
arrives below the frontier (a producer that published it later than events it precedes,
after its topic had gone idle) applies at once and is counted as late.

>>> frontier = Frontier()
>>> frontier.update(progress_payload(0, 2, 10.0, False)), frontier.value()
(True, -inf)
>>> _ = frontier.update(progress_payload(1, 2, 7.0, False)); frontier.value()
7.0
>>> _ = frontier.update(progress_payload(1, 2, None, True)); frontier.value()   # 1 is idle
10.0
>>> buffer = ReorderBuffer()
>>> _ = buffer.add("pred", {"pid": ["b", "a", "c"], "ts": [5.0, 5.0, 12.0], "features": {"x": [1, 2, 3]}})
>>> released = buffer.release(10.0)
>>> released["pred"]["pid"], released["pred"]["features"], len(buffer)
(['a', 'b'], {'x': [2, 1]}, 1)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from schemas.columns import concat_columns, take

__all__ = ["PROGRESS_KEY", "Frontier", "ReorderBuffer", "is_progress", "progress_payload"]

#: The key of progress records on ``monitor-input`` (a model key never starts with a NUL).
PROGRESS_KEY = b"\x00progress"

#: The two sequences of a model, in the order they apply at equal event time.
KINDS = ("pred", "pairs")


def progress_payload(source: int, sources: int, watermark: float | None, idle: bool) -> dict[str, Any]:
    """A progress record of join partition ``source`` (of ``sources``): nothing it sends
    later has an event time below ``watermark``; ``idle``: it has nothing to send."""
    return {"progress": True, "source": source, "sources": sources,
            "watermark": None if watermark is None or not math.isfinite(watermark) else float(watermark),
            "idle": bool(idle)}


def is_progress(payload: Mapping[str, Any]) -> bool:
    return payload.get("progress") is True


class Frontier:
    """The latest progress of each join partition seen on one ``monitor-input`` partition.

    An idle join partition (nothing unread on the broker) holds nothing back, but only as
    far as the others had got ``idle_after_s`` ago, by this monitor's clock: a producer
    writes every partition, and what it wrote to one that long ago it has written to the
    others by now. So a partition that wakes up with the events of the moment is not passed
    by another's (the wait adds latency, never changes a result while data is there to read).
    """

    def __init__(self, sources: int = 0, progress: dict[int, tuple[float, bool]] | None = None,
                 *, idle_after_s: float = 0.0) -> None:
        self.sources = sources
        #: join partition -> (watermark, idle)
        self.progress: dict[int, tuple[float, bool]] = dict(progress or {})
        self.idle_after_s = idle_after_s
        #: (when, the largest watermark any partition had then), oldest first
        self._history: deque[tuple[float, float]] = deque()

    def update(self, payload: Mapping[str, Any], now: float = 0.0) -> bool:
        """Apply a progress record; whether :meth:`value` may have changed. A watermark never
        goes back (a record read again after a rebalance, a join partition's new owner)."""
        source = int(payload["source"])
        self.sources = max(self.sources, int(payload["sources"]))
        watermark = payload["watermark"]
        old = self.progress.get(source, (-math.inf, False))
        new = (max(old[0], -math.inf if watermark is None else float(watermark)), bool(payload["idle"]))
        self.progress[source] = new
        if new[0] != old[0]:
            self._history.append((now, max(wm for wm, _ in self.progress.values())))
            while len(self._history) > 1 and self._history[1][0] <= now - self.idle_after_s:
                self._history.popleft()
        return new != old

    def value(self, now: float = math.inf) -> float:
        """Every join partition has sent all it will of the event times below this: ``-inf``
        until each has reported, ``+inf`` when all are idle."""
        if not self.sources or len(self.progress) < self.sources:
            return -math.inf
        then = -math.inf  # how far the partitions had got idle_after_s ago
        for when, reached in self._history:
            if when > now - self.idle_after_s:
                break
            then = reached
        marks = [watermark if not idle else max(watermark, then) for watermark, idle in self.progress.values()]
        if all(idle for _, idle in self.progress.values()):
            return math.inf  # each waited idle_after_s with nothing unread before saying so
        return min(marks)

    def to_state(self) -> dict[str, Any]:
        return {"sources": self.sources, "progress": {str(source): [None if not math.isfinite(wm) else wm, idle]
                                                      for source, (wm, idle) in self.progress.items()}}

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None, *, idle_after_s: float = 0.0) -> Frontier:
        if not state:
            return cls(idle_after_s=idle_after_s)
        return cls(int(state["sources"]), {int(source): (-math.inf if wm is None else float(wm), bool(idle))
                                            for source, (wm, idle) in state["progress"].items()},
                   idle_after_s=idle_after_s)


class ReorderBuffer:
    """One model's column batches not applied yet, per sequence (``pred``, ``pairs``);
    :meth:`release` hands out those below a frontier in canonical order."""

    def __init__(self, chunks: dict[str, list[dict[str, Any]]] | None = None) -> None:
        self.chunks: dict[str, list[dict[str, Any]]] = {kind: list((chunks or {}).get(kind, ())) for kind in KINDS}
        #: the largest event time released so far: an event added below it is late
        self.released_to = -math.inf

    def __len__(self) -> int:
        return sum(len(chunk["ts"]) for chunks in self.chunks.values() for chunk in chunks)

    def add(self, kind: str, columns: dict[str, Any]) -> int:
        """Hold a column batch of sequence ``kind``; returns how many of its events are late
        (below an event already released: they go with the next release)."""
        if columns and columns["ts"]:
            self.chunks[kind].append(columns)
            if self.released_to > -math.inf:
                return int((np.asarray(columns["ts"], dtype=float) < self.released_to).sum())
        return 0

    def release(self, frontier: float) -> dict[str, Any] | None:
        """The events below ``frontier`` (all of them at ``+inf``), each sequence in
        canonical order, as a monitor batch; ``None`` when there are none."""
        batch: dict[str, Any] = {}
        for kind in KINDS:
            out, keep = [], []
            for chunk in self.chunks[kind]:
                ts = np.asarray(chunk["ts"], dtype=float)
                below = ts < frontier
                if below.all():
                    out.append(chunk)
                elif below.any():
                    out.append(_rows(chunk, np.flatnonzero(below)))
                    keep.append(_rows(chunk, np.flatnonzero(~below)))
                else:
                    keep.append(chunk)
            self.chunks[kind] = keep
            if out:
                batch[kind] = _canonical(concat_columns(out))
                self.released_to = max(self.released_to, batch[kind]["ts"][-1])
        return batch or None

    def to_state(self) -> dict[str, Any]:
        return {"chunks": self.chunks, "released_to": self.released_to if math.isfinite(self.released_to) else None}

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None) -> ReorderBuffer:
        buffer = cls((state or {}).get("chunks"))
        released_to = (state or {}).get("released_to")
        buffer.released_to = -math.inf if released_to is None else float(released_to)
        return buffer


def _rows(columns: Mapping[str, Any], index: np.ndarray) -> dict[str, Any]:
    """Rows ``index`` of a column batch (``features`` included)."""
    return {name: {f: take(v, index) for f, v in values.items()} if name == "features" else take(values, index)
            for name, values in columns.items()}


def _canonical(columns: dict[str, Any]) -> dict[str, Any]:
    """``columns`` sorted by ``(ts, pid)``; as they are when already in that order."""
    ts = np.asarray(columns["ts"], dtype=float)
    if len(ts) < 2 or bool((np.diff(ts) > 0).all()):
        return columns
    order = np.lexsort((np.asarray(columns["pid"], dtype=str), ts))
    return _rows(columns, order)
