"""The join: every order, duplicates, late and missing labels, and recovery from its delta log."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import orjson
import pytest

from streams.join import JoinState


def pred(pid: str, ts: float, model: str = "m") -> tuple[str, dict[str, Any], tuple[int, None]]:
    return (
        "predictions",
        {"prediction_id": pid, "model_id": model, "model_version": None, "timestamp": ts,
         "prediction": 1, "score": 0.7},
        (0, None),
    )


def label(pid: str, ts: float) -> tuple[str, dict[str, Any], tuple[int, None]]:
    return ("ground-truth", {"prediction_id": pid, "label": 0, "timestamp": ts}, (0, None))


def test_label_after_prediction_matches_once() -> None:
    state = JoinState(100.0)
    batch = state.apply([pred("a", 1), label("a", 5)])
    assert batch.outcomes == Counter(matched=1)
    pair = batch.pairs[0]
    assert (pair.prediction_id, pair.timestamp, pair.label_timestamp) == ("a", 1, 5)
    assert batch.label_lags == [4]


def test_label_before_prediction_matches_when_prediction_arrives() -> None:
    state = JoinState(100.0)
    assert state.apply([label("a", 5)]).outcomes == Counter()
    batch = state.apply([pred("a", 1)])
    assert batch.outcomes == Counter(matched=1)
    assert [p["prediction_id"] for p in batch.predictions] == ["a"]


def test_duplicates_of_either_half_are_ignored() -> None:
    state = JoinState(100.0)
    batch = state.apply([pred("a", 1), pred("a", 1), label("a", 2), label("a", 2), pred("a", 1)])
    assert batch.outcomes == Counter(matched=1, duplicate=3)
    assert len(batch.predictions) == 1


def test_missing_label_expires_and_late_label_is_reported() -> None:
    state = JoinState(10.0)
    state.apply([pred("a", 0)])
    batch = state.apply([pred("b", 11)])
    assert batch.outcomes == Counter(expired=1)
    assert batch.expired_by_model == Counter(m=1)
    late = state.apply([label("a", 12)])
    assert late.outcomes == Counter(late=1)
    assert late.records[0].outcome == "late"
    assert "join window" in late.records[0].detail


def test_label_without_prediction_becomes_unmatched() -> None:
    state = JoinState(10.0)
    state.apply([label("ghost", 0)])
    batch = state.apply([pred("b", 20)])
    assert batch.outcomes == Counter(unmatched=1)
    assert batch.records[0].to_dict()["prediction_id"] == "ghost"


def test_labels_read_ahead_of_their_predictions_do_not_close_the_window() -> None:
    # the label topic consumed far ahead (event time 0..50 with a 10 s window) ...
    state = JoinState(10.0)
    state.apply([label(f"p{i}", i + 0.5) for i in range(50)])
    # ... its predictions, read later, still find their labels
    batch = state.apply([pred(f"p{i}", i) for i in range(50)])
    assert batch.outcomes == Counter(matched=50)


def test_a_labels_only_delta_survives_json_and_recovery() -> None:
    # labels do not move the watermark: before any prediction there is none to persist
    state = JoinState(10.0)
    delta = orjson.loads(orjson.dumps(state.apply([label("a", 5)]).delta))
    rebuilt = JoinState.from_deltas(10.0, [delta])
    assert rebuilt.apply([pred("a", 1)]).outcomes == Counter(matched=1)


def test_a_copy_of_an_expired_prediction_is_a_duplicate() -> None:
    state = JoinState(10.0)
    state.apply([pred("a", 0)])
    assert state.apply([pred("b", 11)]).outcomes == Counter(expired=1)
    batch = state.apply([pred("a", 0)])
    assert batch.outcomes == Counter(duplicate=1) and batch.predictions == []


def test_state_is_bounded_by_the_window() -> None:
    state = JoinState(10.0)
    for t in range(1000):
        state.apply([pred(f"p{t}", float(t)), label(f"p{t - 3}", float(t))])
    # predictions, done markers and expired markers of the last windows only
    assert state.size() < 60
    assert len(state.alive) < 60


def _random_stream(rng: random.Random, n: int) -> list[tuple[str, dict[str, Any], tuple[int, None]]]:
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
        out = reference.apply(b)
        expected.update(out.outcomes)
        expected_pairs.extend(p.prediction_id for p in out.pairs)

    log: dict[int, bytes] = {}  # what the changelog (a compacted table) holds
    state = JoinState(20.0)
    got = Counter()
    got_pairs = []
    for i, b in enumerate(batches):
        if i % 7 == 3:  # crash and recover from the persisted deltas only
            state = JoinState.from_deltas(20.0, [orjson.loads(v) for v in log.values()])
        out = state.apply(b)
        got.update(out.outcomes)
        got_pairs.extend(p.prediction_id for p in out.pairs)
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
            out = state.apply(events[start:start + batch_size])
            outcomes.update(out.outcomes)
            pairs.extend(p.prediction_id for p in out.pairs)
            records.extend(f"{r.outcome}:{r.prediction_id}" for r in out.records)
        return outcomes, pairs, records

    assert run(1) == run(37) == run(len(events))
