"""Join predictions with their labels by ``prediction_id``, in event time, per partition.

Pure logic, no Kafka: the live agent, ``replay`` and the offline ``backtest`` all run this.

Both halves may arrive in either order, twice, or never. A half waits in the pending
state until its partner arrives or the join window (event time) closes over it:

- prediction, then label (or label, then prediction): ``matched``, one joined pair;
- a second copy of either half: ``duplicate``, ignored;
- a prediction whose window closed without a label: ``expired`` (counts against coverage);
- a label whose prediction already expired: ``late``;
- a label whose prediction never came within the window: ``unmatched``.

State is bounded by the window: every entry leaves once the watermark (the largest
*prediction* event time seen in the partition) passes it by ``window_s`` (expired-prediction
markers, kept to tell ``late`` from ``unmatched`` and to recognise a copy of an expired
prediction, by ``2 * window_s``), rounded up to 1/64 of the window. The window closes as
soon as a prediction moves the watermark, before it applies, so how a stream (in a given
order) is cut into micro-batches never changes the outcome. The two input topics are read
at their own paces, so neither alone may close the window: labels do not move the
watermark (a label topic read ahead must not expire the predictions still to come), and the
window closes no further than the labels vouch for (``labels_through`` of :meth:`JoinState.apply`):
a prediction topic read days ahead of its labels must not expire the predictions whose
labels are still in the log. Event time is per partition: a partition that receives no
predictions keeps its pending halves until it does.

Persistence is a log of deltas, one per micro-batch, so a batch of 500 events costs one
changelog record rather than 500 table writes: ``JoinState.apply`` returns a
:class:`JoinBatch` whose ``delta`` adds and removes entries; deltas whose entries are all
gone can be deleted (their ``dead_deltas``), so the log stays bounded too.

A micro-batch comes as columns, one set for its predictions and one for its labels (the
normalised columns of :mod:`schemas.columns`), and applies in event-time order unless an
order is given; the join works a segment of the batch at a time with set operations over
its ids (:meth:`JoinState.apply`), with the outcome of applying the events one by one.

>>> state = JoinState(window_s=60.0)
>>> batch = state.apply(
...     {"prediction_id": ["a", "b"], "model_id": ["m", "m"], "model_version": [None, None],
...      "timestamp": [10.0, 11.0], "prediction": [1, 0], "score": [0.9, 0.2]},
...     {"prediction_id": ["a"], "label": [1], "timestamp": [15.0], "model_id": [None]},
... )
>>> batch.pairs["prediction_id"], batch.outcomes["matched"], batch.predictions
(['a'], 1, [0, 1])
>>> rebuilt = JoinState.from_deltas(60.0, [batch.delta])
>>> rebuilt.apply({}, {"prediction_id": ["a", "b"], "label": [1, 1], "timestamp": [16.0, 17.0],
...                    "model_id": [None, None]}).outcomes == {"matched": 1, "duplicate": 1}
True
"""

from __future__ import annotations

import functools
import heapq
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np

from schemas.columns import concat_columns, object_array, take

#: Sections of the pending state: predictions, labels, done (matched ids), expired markers.
SECTIONS = ("p", "l", "d", "x")

#: A micro-batch's validated events as normalised columns (:func:`schemas.columns.fast_columns`):
#: field name -> one value per event.
Columns = Mapping[str, Sequence[Any]]

#: The columns of joined pairs: the prediction's fields, its label and the label's event time
#: (``timestamp`` is the prediction's).
PAIR_FIELDS = ("prediction_id", "model_id", "model_version", "timestamp", "prediction", "score", "label", "label_timestamp")

#: The most events a segment of :meth:`JoinState.apply` spans (what :meth:`JoinState._segment_end`
#: scans ahead).
SEGMENT_MAX = 4096


def event_time_order(prediction_ts: Sequence[float], label_ts: Sequence[float]) -> np.ndarray:
    """Indices as :meth:`JoinState.apply` takes them (label ``j`` is ``len(prediction_ts) + j``)
    in event-time order, predictions first on ties, then in input order.

    >>> event_time_order([5.0, 1.0], [1.0, 0.5]).tolist()
    [3, 1, 2, 0]
    """
    ts = np.concatenate((np.asarray(prediction_ts, dtype=float), np.asarray(label_ts, dtype=float)))
    is_label = np.arange(len(ts)) >= len(prediction_ts)
    return np.lexsort((np.arange(len(ts)), is_label, ts))


class _Ids:
    """A segment's ids of one half, in order, and where each first occurs."""

    __slots__ = ("first", "ids")

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.first = dict(zip(reversed(ids), range(len(ids) - 1, -1, -1)))  # the first wins

    def firsts(self, subset: set[str]) -> tuple[list[str], np.ndarray]:
        """The ids of ``subset`` in order of first occurrence, and those positions."""
        if len(subset) == len(self.ids):  # every id, each once
            return self.ids, np.arange(len(self.ids))
        where = np.sort(np.fromiter(map(self.first.__getitem__, subset), np.intp, len(subset)))
        return [self.ids[k] for k in where.tolist()], where


class _Halves:
    """One micro-batch's predictions and labels, with the columns the join reads as arrays."""

    def __init__(self, predictions: Columns, labels: Columns) -> None:
        self.predictions = predictions
        self.labels = labels
        # a half without events may come as {}
        self.p_id = object_array(predictions.get("prediction_id", ()))
        self.l_id = object_array(labels.get("prediction_id", ()))
        self.n_p = len(self.p_id)
        self.p_ts = np.asarray(predictions.get("timestamp", ()), dtype=float)
        self.l_ts = np.asarray(labels.get("timestamp", ()), dtype=float)

    @functools.cached_property
    def _p_columns(self) -> list[np.ndarray]:
        return [object_array(self.predictions[f]) for f in ("model_id", "model_version", "prediction", "score")]

    @functools.cached_property
    def _label(self) -> np.ndarray:
        return object_array(self.labels["label"])

    @functools.cached_property
    def l_model(self) -> np.ndarray:
        return object_array(self.labels["model_id"])

    def predicted(self, index: np.ndarray) -> list[list[Any]]:
        """Columns model, version, prediction, score, event time of the predictions ``index``."""
        return [column[index].tolist() for column in self._p_columns] + [self.p_ts[index].tolist()]

    def labelled(self, index: np.ndarray) -> tuple[list[Any], list[float]]:
        """Columns label, event time of the labels ``index``."""
        return self._label[index].tolist(), self.l_ts[index].tolist()


def _pair_columns(
    ids: Sequence[str], model: Sequence[Any], version: Sequence[Any], ts: Sequence[float], prediction: Sequence[Any],
    score: Sequence[Any], label: Sequence[Any], label_ts: Sequence[float],
) -> dict[str, Sequence[Any]]:
    return dict(zip(PAIR_FIELDS, (ids, model, version, ts, prediction, score, label, label_ts)))


@dataclass(frozen=True, slots=True)
class JoinRecord:
    """A label that found no prediction (``late`` or ``unmatched``), or an expired prediction."""

    outcome: str
    prediction_id: str
    model_id: str | None
    timestamp: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "prediction_id": self.prediction_id,
            "model_id": self.model_id,
            "timestamp": self.timestamp,
            "detail": self.detail,
        }


@dataclass
class JoinBatch:
    """What one micro-batch did to the join."""

    #: the new predictions, in the order they applied: indices into the batch's predictions
    predictions: list[int] = field(default_factory=list)
    #: the joined pairs, in the order they completed: columns :data:`PAIR_FIELDS`
    pairs: dict[str, list[Any]] = field(default_factory=lambda: {name: [] for name in PAIR_FIELDS})
    records: list[JoinRecord] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    label_lags: list[float] = field(default_factory=list)
    expired_by_model: Counter[str] = field(default_factory=Counter)
    delta: dict[str, Any] = field(default_factory=dict)
    dead_deltas: list[int] = field(default_factory=list)


class JoinState:
    """Pending halves of the join for one partition, with a delta log for persistence."""

    def __init__(self, window_s: float) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = float(window_s)
        # section -> prediction_id -> entry; entry[-2] is the event time, entry[-1] the delta seq.
        self.entries: dict[str, dict[str, list[Any]]] = {s: {} for s in SECTIONS}
        # Deltas still needed for recovery: their live entry counts, and the older deltas
        # whose entries they removed (a removal must outlive the entry's own delta).
        self.alive: set[int] = set()
        self.live: Counter[int] = Counter()
        self.pins: dict[int, set[int]] = {}
        self.pinned_by: dict[int, set[int]] = {}
        # Expiry in event-time buckets of window/64: an entry leaves once the watermark has
        # passed the end of its deadline's bucket (exact, whatever the batch cuts).
        self.granularity = self.window_s / 64
        self._spans = {s: self._span(s) for s in SECTIONS}
        # bucket -> (section, ids) groups scheduled there
        self.buckets: dict[int, list[tuple[str, Sequence[str]]]] = {}
        self.bucket_heap: list[int] = []
        self.watermark = float("-inf")
        #: the largest *label* event time seen: while the label topic has unread records, the
        #: window closes no further than this (see :meth:`apply`)
        self.label_watermark = float("-inf")
        self.seq = 0
        self._adds: dict[str, dict[str, list[Any]]] = {s: {} for s in SECTIONS}
        self._rms: dict[str, list[str]] = {s: [] for s in SECTIONS}
        self._emptied: set[int] = set()
        # owners (delta seqs) of the entries removed by the batch being applied, counted
        # once at its end (:meth:`_settle`) rather than one by one
        self._released: list[int] = []

    # -- persistence ---------------------------------------------------------------------
    @classmethod
    def from_deltas(cls, window_s: float, deltas: Iterable[dict[str, Any]]) -> JoinState:
        """Rebuild the state by applying persisted deltas in ``seq`` order."""
        state = cls(window_s)
        for delta in sorted(deltas, key=lambda d: int(d["seq"])):
            state._apply_delta(delta)
        state._rebuild_expiry()
        return state

    def _apply_delta(self, delta: dict[str, Any]) -> None:
        self.seq = max(self.seq, int(delta["seq"]))
        if delta["wm"] is not None:  # None: no prediction seen yet
            self.watermark = max(self.watermark, float(delta["wm"]))
        if delta.get("lwm") is not None:  # absent from deltas written before it existed
            self.label_watermark = max(self.label_watermark, float(delta["lwm"]))
        self.alive.add(self.seq)
        for section in SECTIONS:
            table = self.entries[section]
            for pid in delta["rm"].get(section, ()):
                self._drop(section, pid)
            for pid, entry in delta["add"].get(section, {}).items():
                self._drop(section, pid)
                table[pid] = entry
                self.live[int(entry[-1])] += 1

    def _rebuild_expiry(self) -> None:
        self.buckets = {}
        self.bucket_heap = []
        for section, table in self.entries.items():
            if table:
                self._schedule_many(section, list(table), np.fromiter((entry[-2] for entry in table.values()), float, len(table)))

    def _bucket(self, section: str, entry: list[Any]) -> int:
        return int((entry[-2] + self._spans[section]) // self.granularity)

    def _schedule(self, section: str, pid: str, entry: list[Any]) -> None:
        self._schedule_group(self._bucket(section, entry), section, (pid,))

    def _schedule_group(self, bucket: int, section: str, ids: Sequence[str]) -> None:
        groups = self.buckets.get(bucket)
        if groups is None:
            groups = self.buckets[bucket] = []
            heapq.heappush(self.bucket_heap, bucket)
        groups.append((section, ids))

    def _span(self, section: str) -> float:
        return 2 * self.window_s if section == "x" else self.window_s

    def size(self) -> int:
        return sum(len(t) for t in self.entries.values())

    def owners(self, ids: Iterable[str]) -> dict[str, str | None]:
        """The model of each of ``ids`` whose prediction is pending, joined or expired here
        (``None`` for a joined one recorded before joined entries kept their model)."""
        # filter over ``ids``: ``set.intersection(dict)`` walks the whole dict
        p, d, x = self.entries["p"], self.entries["d"], self.entries["x"]
        out: dict[str, str | None] = {pid: p[pid][0] for pid in filter(p.__contains__, ids)}
        out.update((pid, x[pid][0]) for pid in filter(x.__contains__, ids))
        out.update((pid, d[pid][0] if len(d[pid]) == 3 else None) for pid in filter(d.__contains__, ids))
        return out

    # -- mutation helpers ----------------------------------------------------------------
    def _add(self, section: str, pid: str, entry: list[Any]) -> None:
        table = self.entries[section]
        if pid in table:  # an expired marker can be replaced by a newer one
            self._remove(section, pid)
        entry.append(self.seq)
        table[pid] = entry
        self._adds[section][pid] = entry
        self._schedule(section, pid, entry)

    def _remove(self, section: str, pid: str) -> list[Any] | None:
        entry = self.entries[section].pop(pid, None)
        if entry is not None:
            self._forget(section, pid, entry[-1])
        return entry

    def _forget(self, section: str, pid: str, owner: int) -> None:
        """Record in this batch's delta that the entry of ``pid``, added by delta ``owner``,
        left ``section``."""
        if owner == self.seq:
            del self._adds[section][pid]  # added and removed within this batch: no trace
        else:
            self._rms[section].append(pid)
            self._released.append(owner)

    def _drop(self, section: str, pid: str) -> None:
        """Remove while replaying a delta (recovery)."""
        entry = self.entries[section].pop(pid, None)
        if entry is not None:
            self._release(int(entry[-1]))

    def _settle(self) -> None:
        """Count the entries the batch removed against the deltas that added them."""
        if self._released:
            for owner, count in Counter(self._released).items():
                self._release(int(owner), count)
            self._released = []

    def _release(self, owner: int, count: int = 1) -> None:
        """``count`` entries of delta ``owner`` are gone: count them, and pin ``owner`` to
        this delta."""
        self.live[owner] -= count
        if self.live[owner] <= 0:
            del self.live[owner]
            self._emptied.add(owner)
        if owner != self.seq:
            pins = self.pins.get(self.seq)
            if pins is None:
                pins = self.pins[self.seq] = set()
            pins.add(owner)
            pinned_by = self.pinned_by.get(owner)
            if pinned_by is None:
                pinned_by = self.pinned_by[owner] = set()
            pinned_by.add(self.seq)

    def _collect(self, seq: int, dead: list[int]) -> None:
        """Forget delta ``seq`` if nothing it added is live and nothing it removed still is."""
        if seq not in self.alive or self.live.get(seq, 0) > 0 or self.pins.get(seq):
            return
        self.alive.discard(seq)
        self.pins.pop(seq, None)
        dead.append(seq)
        for dependent in self.pinned_by.pop(seq, set()):
            pins = self.pins.get(dependent)
            if pins is not None:
                pins.discard(seq)
            self._collect(dependent, dead)

    # -- the join ------------------------------------------------------------------------
    def clock(self, labels_through: float = math.inf) -> float:
        """The event time up to which the window may close: the predictions' watermark, held
        at the labels' (or at ``labels_through``, how far the label topic vouches for beyond
        them, see :mod:`streams.runtime.input_progress`): labels read later must still find their
        predictions, whatever the two topics' read paces."""
        return min(self.watermark, max(self.label_watermark, labels_through))

    def apply(
        self, predictions: Columns, labels: Columns, order: Sequence[int] | None = None, *,
        labels_through: float = math.inf, drop_labels: Iterable[str] = (),
    ) -> JoinBatch:
        """Apply one micro-batch of validated events as normalised columns
        (:func:`schemas.columns.fast_columns`); one delta.

        ``order`` is the order the events apply in, as indices into the predictions
        followed by the labels (label ``j`` is ``len(predictions) + j``); by default event
        time, predictions first on ties, then input order (:func:`event_time_order`).

        The batch is cut into segments in which no part of the state can expire (the cut
        is made at each prediction that may close the window over something, see
        :meth:`_segment_end`). Within a segment the outcome of each event depends only on
        the state before it and on the other events with its id, so a segment is joined
        with set operations over its ids (:meth:`_join_segment`), in C, rather than event by
        event; the result is the same as applying the events one at a time.

        ``labels_through``: the window closes no further than the latest label applied
        (the batch's own count where they apply) or this, whichever is later (:meth:`clock`):
        ``-inf`` while the label topic has records not read yet; ``inf`` (the default)
        closes it with the predictions alone.

        ``drop_labels``: ids of pending labels to remove first, recorded in this delta."""
        self.seq += 1
        for pid in drop_labels:  # pending labels refused (streams.pipeline.identity): they join nothing
            self._remove("l", pid)
        batch = JoinBatch()
        halves = _Halves(predictions, labels)
        if order is None:
            order = event_time_order(halves.p_ts, halves.l_ts)
        merged = np.asarray(order, dtype=np.intp)
        ts = np.concatenate((halves.p_ts, halves.l_ts))[merged]
        is_prediction = merged < halves.n_p
        # while labels are behind, the window closes no further than the latest label
        # applied before the closing prediction (in this batch's order, or before it)
        labels_so_far = np.maximum.accumulate(np.where(is_prediction, -np.inf, ts)) if len(ts) else ts
        heap = self.bucket_heap
        start, end = 0, len(merged)
        while start < end:
            if is_prediction[start] and ts[start] > self.watermark:
                self.watermark = float(ts[start])
                # close the window before this event applies: batching never changes the join
                clock = min(self.watermark, max(self.label_watermark, float(labels_so_far[start]), labels_through))
                if heap and (heap[0] + 1) * self.granularity <= clock:
                    self._expire(batch, clock)
            stop = self._segment_end(ts, is_prediction, start)
            self._join_segment(halves, merged[start:stop], batch)
            seen = ts[start:stop][is_prediction[start:stop]]
            if seen.size:
                self.watermark = max(self.watermark, float(seen.max()))
            start = stop
        if halves.l_ts.size:
            self.label_watermark = max(self.label_watermark, float(halves.l_ts.max()))
        self._settle()
        batch.delta = self._delta()
        self.alive.add(self.seq)
        dead: list[int] = []
        candidates, self._emptied = self._emptied | {self.seq}, set()
        for seq in sorted(candidates):
            self._collect(seq, dead)
        batch.dead_deltas = sorted(s for s in dead if s != self.seq)
        if self.seq in dead:
            batch.delta = {}
        return batch

    def _segment_end(self, ts: np.ndarray, is_prediction: np.ndarray, start: int) -> int:
        """Where the segment that begins at ``start`` ends: before the first later
        prediction that raises the watermark to where something could expire, the earliest
        bucket due (``bound``) or a window past the segment's earliest event time (anything
        the segment adds is due later than that); at most :data:`SEGMENT_MAX` events.

        A cut where nothing expires changes nothing: the next segment begins with the same
        check a prediction makes alone."""
        stop = min(len(ts), start + SEGMENT_MAX)
        if stop - start <= 1:
            return stop
        heap = self.bucket_heap
        bound = (heap[0] + 1) * self.granularity if heap else float("inf")
        before = ts[start:stop - 1]
        watermark = np.maximum(np.maximum.accumulate(np.where(is_prediction[start:stop - 1], before, -np.inf)), self.watermark)
        due = np.minimum(np.minimum.accumulate(before) + self.window_s, bound)
        after = ts[start + 1:stop]
        hits = np.flatnonzero(is_prediction[start + 1:stop] & (after > watermark) & (after >= due))
        return start + 1 + int(hits[0]) if hits.size else stop

    def _join_segment(self, halves: _Halves, segment: np.ndarray, batch: JoinBatch) -> None:
        """Join the events ``segment`` (indices as in :meth:`apply`), in which nothing expires.

        Per id, against the state before the segment: a prediction is new if its id is not
        pending, done or expired (its first copy is; later copies are duplicates); a label
        is new if its id is neither a pending label nor done. A new label pairs with a
        pending prediction (at its own position), else with a new prediction of the segment
        (at the later of the two positions), else is ``late`` if the prediction expired
        (every copy: a late label changes nothing), else waits. A new prediction pairs with
        a pending label (at its own position) or one of the segment, else waits."""
        pending_p, pending_l, done, expired = (self.entries[s] for s in SECTIONS)
        is_prediction = segment < halves.n_p
        p_where = np.flatnonzero(is_prediction)  # positions in the segment
        l_where = np.flatnonzero(~is_prediction)
        p_index = segment[p_where]  # indices into the batch's predictions / labels
        l_index = segment[l_where] - halves.n_p
        p_ids = _Ids(halves.p_id[p_index].tolist())
        l_ids = _Ids(halves.l_id[l_index].tolist())
        # new halves: ids the state has not seen (one set difference each, in C)
        new_p = set(p_ids.first).difference(pending_p).difference(done).difference(expired)
        new_l = set(l_ids.first).difference(pending_l).difference(done)
        with_pending_p = new_l - new_l.difference(pending_p)  # labels whose prediction is pending
        rest = new_l - with_pending_p
        both = rest & new_p  # both halves in this segment
        rest -= both
        late = rest - rest.difference(expired)
        waiting_l = rest - late
        with_pending_l = new_p - new_p.difference(pending_l)  # predictions whose label is pending
        waiting_p = new_p - with_pending_l - both
        duplicates = len(p_ids.ids) - len(new_p) + len(l_ids.ids) - len(new_l)
        if late:
            late_at = [k for k, pid in enumerate(l_ids.ids) if pid in late]
            duplicates -= len(late_at) - len(late)  # every copy of a late label is late
            for k in late_at:
                pid = l_ids.ids[k]
                self._late(pid, expired[pid], float(halves.l_ts[l_index[k]]), batch)
        if duplicates:
            batch.outcomes["duplicate"] += duplicates
        # the segment's new predictions, in order, go to the monitors
        batch.predictions.extend(p_index[p_ids.firsts(new_p)[1]].tolist())
        # pairs, each completed where its later half is
        pairs: list[tuple[np.ndarray, dict[str, list[Any]]]] = []
        if with_pending_p:
            ids, k = l_ids.firsts(with_pending_p)
            model, version, prediction, score, pred_ts = self._take("p", ids)
            label, label_ts = halves.labelled(l_index[k])
            pairs.append((l_where[k], _pair_columns(ids, model, version, pred_ts, prediction, score, label, label_ts)))
        if with_pending_l:
            ids, k = p_ids.firsts(with_pending_l)
            label, _model, label_ts = self._take("l", ids)
            model, version, prediction, score, pred_ts = halves.predicted(p_index[k])
            pairs.append((p_where[k], _pair_columns(ids, model, version, pred_ts, prediction, score, label, label_ts)))
        if both:
            ids, kp = p_ids.firsts(both)
            kl = np.fromiter(map(l_ids.first.__getitem__, ids), np.intp, len(ids))
            model, version, prediction, score, pred_ts = halves.predicted(p_index[kp])
            label, label_ts = halves.labelled(l_index[kl])
            pairs.append((np.maximum(p_where[kp], l_where[kl]), _pair_columns(ids, model, version, pred_ts, prediction, score, label, label_ts)))
        if pairs:
            self._pair(pairs, batch)
        # what waits for its partner
        if waiting_p:
            ids, k = p_ids.firsts(waiting_p)
            model, version, prediction, score, pred_ts = halves.predicted(p_index[k])
            self._wait("p", ids, zip(model, version, prediction, score, pred_ts, repeat(self.seq)), pred_ts)
        if waiting_l:
            ids, k = l_ids.firsts(waiting_l)
            index = l_index[k]
            label, label_ts = halves.labelled(index)
            self._wait("l", ids, zip(label, halves.l_model[index].tolist(), label_ts, repeat(self.seq)), label_ts)

    def _take(self, section: str, ids: list[str]) -> list[tuple[Any, ...]]:
        """Remove the pending entries of ``ids`` (they found their partner); their fields
        as columns, less the delta seq."""
        *columns, owners = zip(*map(self.entries[section].pop, ids))
        if self.seq in owners:  # some were added by this batch
            for pid, owner in zip(ids, owners):
                self._forget(section, pid, owner)
        else:  # what _forget records for each, in bulk
            self._rms[section].extend(ids)
            self._released.extend(owners)
        return columns

    def _pair(self, parts: list[tuple[np.ndarray, dict[str, Sequence[Any]]]], batch: JoinBatch) -> None:
        """Record the segment's pairs in the order they completed, and mark their ids done."""
        if len(parts) == 1:
            where, columns = parts[0]
        else:
            where = np.concatenate([w for w, _ in parts])
            columns = concat_columns([c for _, c in parts])
        if len(where) > 1 and not (np.diff(where) > 0).all():
            order = np.argsort(where, kind="stable")
            columns = {name: take(values, order) for name, values in columns.items()}
        # every id of the segment's pairs is done, whether paired or late: a copy of either
        # half is a duplicate
        seq = self.seq
        ids = columns["prediction_id"]
        # a joined id keeps its model: the same id of another model is not this prediction
        done = dict(zip(ids, zip(columns["model_id"], columns["timestamp"], repeat(seq))))
        self.entries["d"].update(done)
        self._adds["d"].update(done)
        self._schedule_many("d", ids, np.asarray(columns["timestamp"], dtype=float))
        lags = np.asarray(columns["label_timestamp"], dtype=float) - np.asarray(columns["timestamp"], dtype=float)
        late = lags > self.window_s
        if late.any():
            # a label more than the window after its prediction is late whether or not the
            # window had closed when it arrived: the outcome depends on event times alone
            for k in np.flatnonzero(late).tolist():
                model = columns["model_id"][k]
                batch.outcomes["expired"] += 1
                batch.expired_by_model[model] += 1
                self._late(columns["prediction_id"][k], [model], float(columns["label_timestamp"][k]), batch)
            keep = np.flatnonzero(~late)
            columns = {name: take(values, keep) for name, values in columns.items()}
            lags = lags[keep]
        pairs = batch.pairs
        for name in PAIR_FIELDS:
            pairs[name].extend(columns[name])
        batch.label_lags.extend(lags.tolist())
        batch.outcomes["matched"] += len(lags)

    def _wait(self, section: str, ids: list[str], entries: Iterable[tuple[Any, ...]], ts: Sequence[float]) -> None:
        """Add pending entries (their fields then the delta seq; tuples: nothing changes an
        entry in place) and schedule their expiry."""
        added = dict(zip(ids, entries))
        self.entries[section].update(added)
        self._adds[section].update(added)
        self._schedule_many(section, ids, np.asarray(ts, dtype=float))

    def _schedule_many(self, section: str, ids: Sequence[str], ts: np.ndarray) -> None:
        """Schedule new entries' expiry (as :meth:`_schedule` does one), grouped by bucket."""
        buckets = np.floor_divide(ts + self._spans[section], self.granularity).astype(np.int64)
        if len(buckets) and buckets[0] == buckets[-1] and (buckets == buckets[0]).all():
            groups: Iterable[tuple[int, Sequence[str]]] = [(int(buckets[0]), ids)]
        else:
            order = np.argsort(buckets, kind="stable")
            ordered = buckets[order]
            edges = np.flatnonzero(np.diff(ordered)) + 1
            ids_in_order = take(ids, order)
            groups = [
                (int(ordered[a]), ids_in_order[a:b])
                for a, b in zip([0, *edges.tolist()], [*edges.tolist(), len(ordered)])
            ]
        for bucket, members in groups:
            self._schedule_group(bucket, section, members)

    def _late(self, pid: str, expired: list[Any], ts: float, batch: JoinBatch) -> None:
        batch.outcomes["late"] += 1
        batch.records.append(
            JoinRecord(
                "late", pid, expired[0], ts,
                f"label arrived after the {self.window_s:g}s join window of its prediction closed",
            )
        )

    def _expire(self, batch: JoinBatch, clock: float) -> None:
        heap = self.bucket_heap
        while heap and (heap[0] + 1) * self.granularity <= clock:
            bucket = heapq.heappop(heap)
            for section, ids in self.buckets.pop(bucket):
                for pid in ids:
                    entry = self.entries[section].get(pid)
                    if entry is None or self._bucket(section, entry) != bucket:
                        continue  # already matched or replaced: a stale item
                    self._remove(section, pid)
                    if section == "p":
                        batch.outcomes["expired"] += 1
                        batch.expired_by_model[entry[0]] += 1
                        self._add("x", pid, [entry[0], entry[-2]])
                    elif section == "l":
                        batch.outcomes["unmatched"] += 1
                        batch.records.append(
                            JoinRecord(
                                "unmatched", pid, entry[1], entry[-2],
                                f"no prediction with this id arrived within the {self.window_s:g}s join window",
                            )
                        )

    def _delta(self) -> dict[str, Any]:
        add = {section: adds for section, adds in self._adds.items() if adds}
        rm = {section: rms for section, rms in self._rms.items() if rms}
        added = sum(len(a) for a in add.values())
        if added:
            self.live[self.seq] += added
        self._adds = {s: {} for s in SECTIONS}
        self._rms = {s: [] for s in SECTIONS}
        watermark = self.watermark if self.watermark > float("-inf") else None  # JSON has no -inf
        label_watermark = self.label_watermark if self.label_watermark > float("-inf") else None
        return {"seq": self.seq, "wm": watermark, "lwm": label_watermark, "add": add, "rm": rm}
