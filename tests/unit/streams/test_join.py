"""The join: every order, duplicates, late and missing labels, and recovery from its delta log."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import numpy as np
import orjson
import pytest

from streams.pipeline.join import JoinBatch, JoinState

Event = tuple[str, dict[str, Any]]


def pred(pid: str, ts: float, model: str = "m") -> Event:
    return (
        "predictions",
        {"prediction_id": pid, "model_id": model, "model_version": None, "timestamp": ts,
         "prediction": 1, "score": 0.7},
    )


def label(pid: str, ts: float) -> Event:
    return ("ground-truth", {"prediction_id": pid, "label": 0, "timestamp": ts, "model_id": None})


def apply(state: JoinState, events: list[Event], in_order: bool = True) -> JoinBatch:
    """Apply events given one by one, in the order given (``in_order``) or in event time."""
    halves: dict[str, list[dict[str, Any]]] = {"predictions": [], "ground-truth": []}
    order = []
    for role, event in events:
        order.append((role, len(halves[role])))
        halves[role].append(event)
    n_p = len(halves["predictions"])
    columns = [event_columns_of(halves[role]) for role in ("predictions", "ground-truth")]
    index = [i if role == "predictions" else n_p + i for role, i in order]
    return state.apply(*columns, order=index if in_order else None)


def event_columns_of(events: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {name: [e[name] for e in events] for name in (events[0] if events else {})}


def test_label_after_prediction_matches_once() -> None:
    state = JoinState(100.0)
    batch = apply(state, [pred("a", 1), label("a", 5)])
    assert batch.outcomes == Counter(matched=1)
    pairs = batch.pairs
    assert (pairs["prediction_id"], pairs["timestamp"], pairs["label_timestamp"]) == (["a"], [1], [5])
    assert batch.label_lags == [4]


def test_label_before_prediction_matches_when_prediction_arrives() -> None:
    state = JoinState(100.0)
    assert apply(state, [label("a", 5)]).outcomes == Counter()
    batch = apply(state, [pred("a", 1)])
    assert batch.outcomes == Counter(matched=1)
    assert batch.predictions == [0]


def test_duplicates_of_either_half_are_ignored() -> None:
    state = JoinState(100.0)
    batch = apply(state, [pred("a", 1), pred("a", 1), label("a", 2), label("a", 2), pred("a", 1)])
    assert batch.outcomes == Counter(matched=1, duplicate=3)
    assert len(batch.predictions) == 1


def test_missing_label_expires_and_late_label_is_reported() -> None:
    state = JoinState(10.0)
    apply(state, [pred("a", 0)])
    batch = apply(state, [pred("b", 11)])
    assert batch.outcomes == Counter(expired=1)
    assert batch.expired_by_model == Counter(m=1)
    late = apply(state, [label("a", 12)])
    assert late.outcomes == Counter(late=1)
    assert late.records[0].outcome == "late"
    assert "join window" in late.records[0].detail


def test_label_without_prediction_becomes_unmatched() -> None:
    state = JoinState(10.0)
    apply(state, [label("ghost", 0)])
    batch = apply(state, [pred("b", 20)])
    assert batch.outcomes == Counter(unmatched=1)
    assert batch.records[0].to_dict()["prediction_id"] == "ghost"


def test_labels_read_ahead_of_their_predictions_do_not_close_the_window() -> None:
    # the label topic consumed far ahead (event time 0..50 with a 10 s window) ...
    state = JoinState(10.0)
    apply(state, [label(f"p{i}", i + 0.5) for i in range(50)])
    # ... its predictions, read later, still find their labels
    batch = apply(state, [pred(f"p{i}", i) for i in range(50)])
    assert batch.outcomes == Counter(matched=50)


def test_a_labels_only_delta_survives_json_and_recovery() -> None:
    # labels do not move the watermark: before any prediction there is none to persist
    state = JoinState(10.0)
    delta = orjson.loads(orjson.dumps(apply(state, [label("a", 5)]).delta))
    rebuilt = JoinState.from_deltas(10.0, [delta])
    assert apply(rebuilt, [pred("a", 1)]).outcomes == Counter(matched=1)


def test_a_copy_of_an_expired_prediction_is_a_duplicate() -> None:
    state = JoinState(10.0)
    apply(state, [pred("a", 0)])
    assert apply(state, [pred("b", 11)]).outcomes == Counter(expired=1)
    batch = apply(state, [pred("a", 0)])
    assert batch.outcomes == Counter(duplicate=1) and batch.predictions == []


def test_state_is_bounded_by_the_window() -> None:
    state = JoinState(10.0)
    for t in range(1000):
        apply(state, [pred(f"p{t}", float(t)), label(f"p{t - 3}", float(t))])
    # predictions, done markers and expired markers of the last windows only
    assert state.size() < 60
    assert len(state.alive) < 60


def _random_stream(rng: random.Random, n: int) -> list[Event]:
    events = []
    for i in range(n):
        t = float(i)
        events.append(pred(f"p{i}", t))
        if rng.random() < 0.1:
            events.append(pred(f"p{i}", t))  # duplicate prediction
        r = rng.random()
        if r < 0.8:
            events.append(label(f"p{i}", t + rng.uniform(-3, 30)))
        if rng.random() < 0.05:
            events.append(label(f"ghost{i}", t))
    # shuffle within a small horizon: labels before predictions, late labels, ...
    keyed = sorted(enumerate(events), key=lambda ie: ie[0] + rng.uniform(0, 40))
    return [e for _, e in keyed]


@pytest.mark.parametrize("seed", range(5))
def test_recovery_from_delta_log_equals_uninterrupted_run(seed: int) -> None:
    rng = random.Random(seed)
    events = _random_stream(rng, 2000)
    reference = JoinState(20.0)
    cuts = sorted(rng.sample(range(1, len(events)), 150))
    batches = [events[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)])]
    expected = Counter()
    expected_pairs = []
    for b in batches:
        out = apply(reference, b)
        expected.update(out.outcomes)
        expected_pairs.extend(out.pairs["prediction_id"])

    log: dict[int, bytes] = {}  # what the changelog (a compacted table) holds
    state = JoinState(20.0)
    got = Counter()
    got_pairs = []
    for i, b in enumerate(batches):
        if i % 7 == 3:  # crash and recover from the persisted deltas only
            state = JoinState.from_deltas(20.0, [orjson.loads(v) for v in log.values()])
        out = apply(state, b)
        got.update(out.outcomes)
        got_pairs.extend(out.pairs["prediction_id"])
        if out.delta:
            log[out.delta["seq"]] = orjson.dumps(out.delta)
        for dead in out.dead_deltas:
            log.pop(dead, None)
    assert got == expected
    assert got_pairs == expected_pairs
    assert sum(expected.values()) > 1000
    assert len(log) < 60  # the log is bounded, not one record per batch forever


@pytest.mark.parametrize("seed", range(3))
def test_batching_never_changes_the_join(seed: int) -> None:
    rng = random.Random(100 + seed)
    events = _random_stream(rng, 1500)

    def run(batch_size: int) -> tuple[Counter, list[str], list[str]]:
        state = JoinState(20.0)
        outcomes: Counter = Counter()
        pairs: list[str] = []
        records: list[str] = []
        for start in range(0, len(events), batch_size):
            out = apply(state, events[start:start + batch_size])
            outcomes.update(out.outcomes)
            pairs.extend(out.pairs["prediction_id"])
            records.extend(f"{r.outcome}:{r.prediction_id}" for r in out.records)
        return outcomes, pairs, sorted(records)  # the records' order is not part of the outcome

    assert run(1) == run(37) == run(len(events))


class OneByOne:
    """The join's rules applied one event at a time, with expiry found by scanning every
    entry: the oracle that :meth:`JoinState.apply`'s set operations must agree with."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.granularity = window_s / 64
        self.tables: dict[str, dict[str, tuple[float, Any]]] = {s: {} for s in "pldx"}
        self.due: dict[tuple[str, str], tuple[int, int]] = {}  # (section, id) -> (bucket, order)
        self.added = 0
        self.watermark = float("-inf")

    def _add(self, section: str, pid: str, ts: float, value: Any) -> None:
        self.tables[section][pid] = (ts, value)
        span = 2 * self.window_s if section == "x" else self.window_s
        self.added += 1
        self.due[(section, pid)] = (int((ts + span) // self.granularity), self.added)

    def _remove(self, section: str, pid: str) -> tuple[float, Any]:
        del self.due[(section, pid)]
        return self.tables[section].pop(pid)

    def _expire(self, out: dict[str, Any]) -> None:
        while True:
            due = [(b, n, key) for key, (b, n) in self.due.items() if (b + 1) * self.granularity <= self.watermark]
            if not due:
                return
            first = min(b for b, _, _ in due)
            for _, _, (section, pid) in sorted(d for d in due if d[0] == first):
                ts, value = self._remove(section, pid)
                if section == "p":
                    out["outcomes"]["expired"] += 1
                    self._add("x", pid, ts, value[0])
                elif section == "l":
                    out["outcomes"]["unmatched"] += 1
                    out["records"].append(f"unmatched:{pid}")

    def _paired(self, out: dict[str, Any], pid: str, fields: tuple[Any, ...], pred_ts: float, label: Any, label_ts: float) -> None:
        """Both halves are here: a pair, or (the label more than a window after) a late label."""
        if label_ts - pred_ts > self.window_s:
            out["outcomes"]["expired"] += 1
            out["outcomes"]["late"] += 1
            out["records"].append(f"late:{pid}")
            self._add("d", pid, pred_ts, None)
            return
        out["pairs"].append((pid, *fields[:2], pred_ts, *fields[2:], label, label_ts))
        out["outcomes"]["matched"] += 1
        self._add("d", pid, pred_ts, None)

    def apply(self, events: list[Event]) -> dict[str, Any]:
        p, l, d, x = (self.tables[s] for s in "pldx")
        out: dict[str, Any] = {"outcomes": Counter(), "pairs": [], "predictions": [], "records": []}
        for role, e in events:
            pid, ts = e["prediction_id"], e["timestamp"]
            if role == "predictions":
                if ts > self.watermark:
                    self.watermark = ts
                    self._expire(out)
                if pid in p or pid in d or pid in x:
                    out["outcomes"]["duplicate"] += 1
                    continue
                out["predictions"].append(pid)
                fields = (e["model_id"], e["model_version"], e["prediction"], e["score"])
                if pid in l:
                    label_ts, value = self._remove("l", pid)
                    self._paired(out, pid, fields, ts, value, label_ts)
                else:
                    self._add("p", pid, ts, fields)
            elif pid in l or pid in d:
                out["outcomes"]["duplicate"] += 1
            elif pid in p:
                pred_ts, fields = self._remove("p", pid)
                self._paired(out, pid, fields, pred_ts, e["label"], ts)
            elif pid in x:
                out["outcomes"]["late"] += 1
                out["records"].append(f"late:{pid}")
            else:
                self._add("l", pid, ts, e["label"])
        return out


def _seen(batch: JoinBatch, events: list[Event]) -> dict[str, Any]:
    preds = [e for role, e in events if role == "predictions"]
    columns = [batch.pairs[name] for name in ("prediction_id", "model_id", "model_version", "timestamp", "prediction", "score", "label", "label_timestamp")]
    return {
        "outcomes": batch.outcomes,
        "pairs": list(zip(*columns)),
        "predictions": [preds[i]["prediction_id"] for i in batch.predictions],
        "records": sorted(f"{r.outcome}:{r.prediction_id}" for r in batch.records),
    }


def _noisy_stream(rng: random.Random, n: int, window_s: float) -> list[Event]:
    """Copies of either half, labels before, long after and without predictions, equal
    event times, several models, shuffled far."""
    events, tail = [], []
    for i in range(n):
        t = float(rng.randrange(0, n // 2))
        model = rng.choice("mn")
        late = rng.random() < 0.05
        if late:  # its only label comes after its prediction expired, before its marker does
            t = n // 2 - window_s * rng.uniform(1.2, 1.8)
            tail.extend([label(f"p{i}", t + 1.0)] * rng.choice([1, 1, 2]))  # a copy of a late label is late too
        events.append(pred(f"p{i}", t, model))
        while rng.random() < 0.15:
            events.append(pred(f"p{i}", t, model))
        while not late and rng.random() < 0.85:
            events.append(label(f"p{i}", t + rng.choice([0.0, 1.0, rng.uniform(-5, 60)])))
        if rng.random() < 0.05:
            events.append(label(f"ghost{i}", t))
    keyed = sorted(enumerate(events), key=lambda ie: ie[0] + rng.uniform(0, 300))
    return [e for _, e in keyed] + tail + [pred("last", n)]


@pytest.mark.parametrize("seed", range(6))
def test_the_set_operations_agree_with_applying_events_one_by_one(seed: int) -> None:
    rng = random.Random(500 + seed)
    window = rng.choice([5.0, 20.0, 100.0])
    events = _noisy_stream(rng, 1500, window)
    oracle, state = OneByOne(window), JoinState(window)
    start = 0
    total: Counter = Counter()
    while start < len(events):
        size = rng.choice([1, 2, 7, 50, 400, 3000])
        chunk = events[start:start + size]
        start += size
        in_event_time = rng.random() < 0.5  # then the oracle gets the chunk sorted as the join sorts it
        ordered = sorted(chunk, key=lambda re: (re[1]["timestamp"], re[0] != "predictions")) if in_event_time else chunk
        got = _seen(apply(state, chunk, in_order=not in_event_time), chunk)
        expected = oracle.apply(ordered)
        expected["records"].sort()
        assert got == expected
        total.update(got["outcomes"])
    assert {"matched", "duplicate", "expired", "late", "unmatched"} <= set(total)


def test_expiry_buckets_are_computed_as_python_computes_one() -> None:
    # the set path schedules with numpy, expiry checks an entry's bucket with Python floats
    rng = random.Random(3)
    state = JoinState(rng.uniform(1, 1e5))
    ts = np.array([rng.uniform(0, 2e9) for _ in range(20_000)] + [0.0, 1e-300, 4102444800.0 - 1e-6])
    state._schedule_many("p", [str(i) for i in range(len(ts))], ts)
    expected = Counter(int((t + state.window_s) // state.granularity) for t in ts.tolist())
    assert Counter({bucket: sum(len(ids) for _, ids in groups) for bucket, groups in state.buckets.items()}) == expected


def test_predictions_read_far_ahead_of_their_labels_wait_for_them() -> None:
    """A backlog: the predictions topic is read days ahead of the labels. While the label
    topic has records unread, the window closes no further than the labels applied, so
    every label still finds its prediction; with the labels caught up, it closes as before."""
    window = 100.0
    preds = [pred(f"p{i}", float(i)) for i in range(1_000)]
    labels = [label(f"p{i}", float(i) + 5) for i in range(1_000)]
    behind = JoinState(window)
    columns = event_columns_of([e for _, e in preds])
    behind.apply(columns, {}, labels_through=float("-inf"))
    batch = behind.apply({}, event_columns_of([e for _, e in labels]), labels_through=float("-inf"))
    assert batch.outcomes == Counter(matched=1_000)
    caught_up = JoinState(window)  # the labels vouch for everything: the predictions alone close it
    caught_up.apply(columns, {})
    assert caught_up.apply({}, event_columns_of([e for _, e in labels])).outcomes["matched"] < 200


def test_labels_vouching_for_more_than_they_applied_let_the_window_close() -> None:
    state = JoinState(10.0)
    state.apply(event_columns_of([pred("a", 0.0)[1], pred("b", 50.0)[1]]), {}, labels_through=40.0)
    assert state.clock(40.0) == 40.0 and "a" not in state.entries["p"] and "b" in state.entries["p"]
