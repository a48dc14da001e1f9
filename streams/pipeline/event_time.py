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
>>> buffer.add((0, 1), 17, {"pred": {"pid": ["b", "a", "c"], "ts": [5.0, 5.0, 12.0], "features": {"x": [1, 2, 3]}}}, again=False)
(3, 0)
>>> released = buffer.release(10.0)
>>> released["pred"]["pid"], released["pred"]["features"], len(buffer), buffer.oldest_offset()
(['a', 'b'], {'x': [2, 1]}, 1, 17)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from schemas.columns import concat_columns

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

    def due(self, now: float) -> float | None:
        """When :meth:`value` may next move with time alone (an idle join partition vouching
        for a watermark once ``idle_after_s`` has passed since it was seen): later than
        ``now``; ``None`` when only more progress can move it (no partition is idle)."""
        if not any(idle for _, idle in self.progress.values()):
            return None
        for when, _ in self._history:
            if when > now - self.idle_after_s:
                return when + self.idle_after_s
        return None

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


#: A payload's identity on ``monitor-input``: (join partition, join batch sequence number).
PayloadId = tuple[int, int]


class ReorderBuffer:
    """One model's events not applied yet, per sequence (``pred``, ``pairs``), each chunk
    tagged with its payload and that payload's ``monitor-input`` offset; :meth:`release`
    hands out those below a frontier in canonical order.

    The events themselves live in the log, not in the model's saved state: a checkpoint
    saves the offset of the oldest payload still held (:meth:`oldest_offset`), a recovery
    reads from there, and :meth:`add` takes again only what lies past the last event
    released of each sequence (:attr:`released`, which is saved)."""

    def __init__(self, released: Mapping[str, Any] | None = None) -> None:
        self.chunks: dict[str, list[_Chunk]] = {kind: [] for kind in KINDS}
        #: per sequence, the canonical key ``(ts, pid)`` of the last event released
        self.released: dict[str, tuple[float, str] | None] = {
            kind: (None if (released or {}).get(kind) is None else (float(released[kind][0]), str(released[kind][1])))
            for kind in KINDS
        }
        #: payloads with events held -> their offset
        self.held: dict[PayloadId, int] = {}

    def __len__(self) -> int:
        return sum(len(chunk.ts) for chunks in self.chunks.values() for chunk in chunks)

    def oldest_offset(self) -> int | None:
        """The ``monitor-input`` offset of the oldest payload with events held."""
        return min(self.held.values(), default=None)

    def add(self, payload: PayloadId, offset: int, parts: Mapping[str, dict[str, Any] | None], *, again: bool) -> tuple[int, int]:
        """Hold a payload's column batches (``parts``: sequence -> columns). ``again``: a
        payload this model took before (read again after a recovery, or sent again by the
        join): only its events past the last one released are held, and nothing if it is
        held already. Returns ``(held, late)``: the events held, and those of them below an
        event already released (a new payload's: they go with the next release)."""
        if payload in self.held:
            return 0, 0
        held = late = 0
        for kind, columns in parts.items():
            if not columns or not columns["ts"]:
                continue
            chunk = _Chunk.of(columns, payload, offset)
            last = self.released[kind]
            if last is not None and chunk.ts[0] <= last[0]:
                # in canonical order, the events up to the last one released are a prefix
                ts, ids = chunk.ts, columns["pid"]
                below = int(np.searchsorted(ts, last[0], side="left"))
                while below < len(ts) and ts[below] == last[0] and str(ids[chunk.row(below)]) <= last[1]:
                    below += 1
                if again:
                    if below == len(ts):
                        continue
                    chunk = chunk.cut(below)[1]
                else:
                    late += below
            self.chunks[kind].append(chunk)
            held += len(chunk.ts)
        if held:
            self.held[payload] = offset
        return held, late

    def release(self, frontier: float) -> dict[str, Any] | None:
        """The events below ``frontier`` (all of them at ``+inf``), each sequence in
        canonical order, as a monitor batch; ``None`` when there are none. Each chunk's
        times are held sorted, so the events due are a prefix of them: cutting it costs a
        binary search, however many chunks stay held; the events are gathered once, here."""
        batch: dict[str, Any] = {}
        for kind in KINDS:
            out: list[_Chunk] = []
            keep = []
            for chunk in self.chunks[kind]:
                ts = chunk.ts
                if ts[0] >= frontier:
                    keep.append(chunk)
                elif ts[-1] < frontier:
                    out.append(chunk)
                else:
                    due, rest = chunk.cut(int(np.searchsorted(ts, frontier, side="left")))
                    out.append(due)
                    keep.append(rest)
            if not out:
                continue
            self.chunks[kind] = keep
            columns = batch[kind] = _merge(out)
            key = (float(columns["ts"][-1]), str(columns["pid"][-1]))
            last = self.released[kind]
            self.released[kind] = key if last is None else max(last, key)
        if batch:
            self.held = {chunk.payload: chunk.offset for chunks in self.chunks.values() for chunk in chunks}
        return batch or None

    def to_state(self) -> dict[str, Any]:
        return {"released": {kind: None if key is None else list(key) for kind, key in self.released.items()}}

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None) -> ReorderBuffer:
        return cls((state or {}).get("released"))


@dataclass(slots=True)
class _Chunk:
    """Events of one payload held for one sequence: its columns as they came, and their
    canonical order, gathered only when released (:func:`_merge`), so an event is moved
    once. ``ts``: the times in canonical order; ``rows``: the rows of ``columns`` in that
    order, ``None`` when they are all of them, in order."""

    columns: dict[str, Any]
    ts: np.ndarray
    rows: np.ndarray | None
    payload: PayloadId
    offset: int

    @classmethod
    def of(cls, columns: dict[str, Any], payload: PayloadId, offset: int) -> _Chunk:
        ts = np.asarray(columns["ts"], dtype=float)
        if len(ts) < 2 or _increasing(columns["ts"] if len(ts) <= SMALL else ts):
            return cls(columns, ts, None, payload, offset)
        rows = _canonical_order(ts, lambda: columns["pid"])
        return cls(columns, ts[rows], rows, payload, offset)

    def row(self, i: int) -> int:
        return i if self.rows is None else int(self.rows[i])

    def cut(self, at: int) -> tuple[_Chunk, _Chunk]:
        """The chunk's first ``at`` events, and the rest. An ordered chunk's columns are
        sliced; a reordered chunk's are shared, and gathered once a cut leaves less than
        half of them (so a chunk cut many times is not copied whole each time)."""
        if self.rows is None:
            n = len(self.ts)
            return (_Chunk(_slice(self.columns, 0, at), self.ts[:at], None, self.payload, self.offset),
                    _Chunk(_slice(self.columns, at, n), self.ts[at:], None, self.payload, self.offset))
        due = _Chunk(self.columns, self.ts[:at], self.rows[:at], self.payload, self.offset)
        rest = _Chunk(self.columns, self.ts[at:], self.rows[at:], self.payload, self.offset)
        if 2 * len(rest.ts) < len(next(iter(_flat(self.columns)))):
            rest = _Chunk(_rows(self.columns, rest.rows), rest.ts, None, self.payload, self.offset)
        return due, rest


def _flat(columns: Mapping[str, Any]) -> Any:
    """The columns of a column batch other than ``features``."""
    return (values for name, values in columns.items() if name != "features")


def _slice(columns: Mapping[str, Any], start: int, stop: int) -> dict[str, Any]:
    """Rows ``start:stop`` of a column batch (``features`` included)."""
    return {name: {f: v[start:stop] for f, v in values.items()} if name == "features" else values[start:stop]
            for name, values in columns.items()}


def _rows(columns: Mapping[str, Any], index: np.ndarray | list[int]) -> dict[str, Any]:
    """Rows ``index`` of a column batch (``features`` included): one getter built for all
    the columns (a third faster than gathering each through a numpy object array)."""
    if len(index) == 1:
        return _slice(columns, int(index[0]), int(index[0]) + 1)
    get = itemgetter(*(index if isinstance(index, list) else index.tolist()))
    return {name: {f: list(get(v)) for f, v in values.items()} if name == "features" else list(get(values))
            for name, values in columns.items()}


def _canonical_order(ts: np.ndarray, pids: Callable[[], Any]) -> np.ndarray:
    """The order that sorts events by ``(ts, pid)``; ``pids`` gives the events' ids, asked
    for only when times are equal (rare: gathering them costs as much as the sort)."""
    order = np.argsort(ts, kind="stable")
    if bool((np.diff(ts[order]) == 0).any()):  # equal times: the ids decide (a string sort)
        order = np.lexsort((np.asarray(pids(), dtype=str), ts))
    return order


def _merge(chunks: list[_Chunk]) -> dict[str, Any]:
    """The events of ``chunks``, each held in canonical order, as one column batch in
    canonical order: end to end where they do not overlap in time (an ordered chunk alone
    is handed out as it is), else sorted once by the times at hand (a stable sort of sorted
    runs, which numpy's does in about linear time); the rows are gathered in one pass."""
    if len(chunks) == 1 and chunks[0].rows is None:
        return chunks[0].columns
    chunks.sort(key=lambda chunk: float(chunk.ts[0]))
    columns = concat_columns([chunk.columns for chunk in chunks])
    if sum(len(chunk.ts) for chunk in chunks) <= SMALL:
        small = _small_order(chunks)
        if small is not None:
            return columns if small == list(range(len(small))) and len(columns["ts"]) == len(small) else _rows(columns, small)
    index, start = [], 0
    for chunk in chunks:
        size = len(next(iter(_flat(chunk.columns))))
        index.append((np.arange(len(chunk.ts)) if chunk.rows is None else chunk.rows) + start)
        start += size
    rows = np.concatenate(index)
    ts = np.concatenate([chunk.ts for chunk in chunks])
    if len(ts) > 1 and not bool((np.diff(ts) > 0).all()):
        rows = rows[_canonical_order(ts, lambda: itemgetter(*rows.tolist())(columns["pid"]))]
    if len(rows) == start and bool((np.diff(rows) == 1).all()):
        return columns
    return _rows(columns, rows)


#: At most this many events, a release is ordered in Python: many models each get a few
#: events per release, and numpy's fixed cost per call was most of what a merge cost them.
SMALL = 64


def _increasing(ts: Any) -> bool:
    """Whether ``ts`` strictly increases (``False`` at a NaN, as numpy's test says)."""
    if isinstance(ts, np.ndarray):
        return bool((np.diff(ts) > 0).all())
    return all(a < b for a, b in zip(ts, ts[1:]))


def _small_order(chunks: list[_Chunk]) -> list[int] | None:
    """:func:`_merge`'s row order for a few events, by the same rule in Python: the chunks
    end to end, stably sorted by time where they overlap. ``None`` at equal times (the ids
    decide there, as :func:`_canonical_order` decides) or at a time that is not a number."""
    keyed: list[tuple[float, int]] = []
    start = 0
    for chunk in chunks:
        rows = range(len(chunk.ts)) if chunk.rows is None else chunk.rows.tolist()
        keyed += zip(chunk.ts.tolist(), [start + row for row in rows])
        start += len(next(iter(_flat(chunk.columns))))
    times = [t for t, _ in keyed]
    if not _increasing(times):
        if any(t != t for t in times):
            return None
        keyed.sort(key=itemgetter(0))
        times = [t for t, _ in keyed]
        if not _increasing(times):
            return None
    return [row for _, row in keyed]
