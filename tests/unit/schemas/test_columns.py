"""Column batches (the SDK's record format): each event decodes exactly as the same event
sent as an object, bad events are dead-lettered one by one, and a batch of the wrong shape
is rejected as a whole."""

from __future__ import annotations

import copy
import json
import random

import pytest

from schemas import codec
from schemas.columns import (
    ColumnsError,
    fast_columns,
    is_column_batch,
    to_columns,
    to_rows,
)
from schemas.parsing import (
    RecordError,
    decode_record,
    validate_ground_truth,
    validate_prediction,
)
from streams.offline.simulate import Simulation, SimulationConfig

from .test_schema_parsing import GOOD, LIMIT, REJECTIONS, ground_truth, prediction

_VALIDATOR = {"predictions": validate_prediction, "ground-truth": validate_ground_truth}


def _padded(events: list[dict]) -> list[dict]:
    """The events as a column batch sees them: every feature of the batch, null where absent."""
    names = list(dict.fromkeys(name for e in events for name in (e.get("features") or {})))
    return [{**e, "features": {n: (e.get("features") or {}).get(n) for n in names}} if "features" in e else e for e in events]


def _decode(events: list[dict], topic: str, **kwargs):
    batch = to_columns(events)
    assert batch is not None and is_column_batch(batch)
    return decode_record(codec.dumps(batch), topic, LIMIT, **kwargs)


def test_simulated_batches_take_the_fast_path_and_decode_as_objects():
    preds, labels = Simulation(SimulationConfig(events=600, seed=5)).generate()
    for topic, events in (("predictions", preds), ("ground-truth", labels)):
        batch = to_columns(events)
        assert fast_columns(codec.loads(codec.dumps(batch))["columns"], topic) is not None  # not the per-event path
        oks, errs = decode_record(codec.dumps(batch), topic, LIMIT)
        assert errs == []
        assert oks == [(i, _VALIDATOR[topic](e)) for i, e in enumerate(_padded(events))]
    assert len(codec.dumps(to_columns(preds))) < len(codec.dumps(preds)) / 2


MIXED = [
    prediction(prediction_id="a"),
    prediction(prediction_id="b", timestamp=1714564801, score=None, latency_ms=7, model_version=None),
    prediction(prediction_id="c", features={"age": 3, "new": "x"}, prediction="cat", latency_ms=None),
    prediction(prediction_id="d", features={}, prediction=True, score=1.0),
]


@pytest.mark.parametrize(
    ("topic", "events", "fast"),
    [
        ("predictions", MIXED, True),
        ("predictions", [prediction(prediction_id=str(i), model_version=f"v{i % 2}") for i in range(5)], True),
        ("predictions", [prediction(prediction_id="a", features=None), prediction(prediction_id="b", features=None)], True),
        # valid, but unusual (a string timestamp or label): the per-event path decodes them
        ("predictions", MIXED + [prediction(prediction_id="e", timestamp="2024-05-01T12:00:00Z")], False),
        ("predictions", MIXED + [prediction(prediction_id="f", score=1, latency_ms=3)], True),  # integers: as floats
        ("ground-truth", [ground_truth(prediction_id="a", timestamp=5.5), ground_truth(prediction_id="b", timestamp=6, model_id="x")], True),
        ("ground-truth", [ground_truth(prediction_id="a"), ground_truth(prediction_id="b", label="cat")], False),
    ],
)
def test_each_event_decodes_as_the_same_event_object(topic, events, fast):
    columns = codec.loads(codec.dumps(to_columns(events)))["columns"]
    assert (fast_columns(columns, topic) is not None) is fast
    oks, errs = _decode(events, topic)
    assert errs == []
    assert oks == [(i, _VALIDATOR[topic](e)) for i, e in enumerate(_padded(events))]
    assert [e for _, e in oks] == [_VALIDATOR[topic](row) for row in to_rows(columns, topic)]


@pytest.mark.parametrize(("topic", "event"), GOOD)
def test_good_events_alone_in_a_batch(topic, event):
    oks, errs = _decode([event], topic)
    assert errs == [] and oks == [(0, _VALIDATOR[topic](event))]


@pytest.mark.parametrize(("topic", "event", "reason", "field", "message", "schema_rejects"), REJECTIONS)
def test_a_bad_event_gets_the_reason_and_message_of_its_object_form(topic, event, reason, field, message, schema_rejects):
    if schema_rejects is None:
        pytest.skip("not expressible in JSON")
    batch = to_columns([event]) if isinstance(event, dict) else None
    if batch is None:
        pytest.skip("not an object, or features not an object: the SDK sends it as an object")
    if any(value is None for value in event.values()):
        pytest.skip("null in a column is 'absent': a required field reads as missing, not null")
    if "prediction_id" not in event:
        pytest.skip("a batch without ids is malformed: test_a_batch_of_the_wrong_shape_is_rejected_whole")
    raw = codec.dumps(batch)
    oks, errs = decode_record(raw, topic, LIMIT)
    assert oks == []
    assert [(e.index, e.reason, e.message) for e in errs] == [(0, reason, message)]
    assert errs[0].raw == codec.dumps(to_rows(codec.loads(raw)["columns"], topic)[0])


def test_one_bad_event_never_rejects_the_others():
    events = [prediction(prediction_id="a"), prediction(prediction_id="b", score=1.5), prediction(prediction_id="c")]
    oks, errs = _decode(events, "predictions")
    assert [i for i, _ in oks] == [0, 2]
    assert [(e.index, e.reason) for e in errs] == [(1, "out_of_range")]
    assert "field 'score' must be a number in [0, 1], got 1.5" in errs[0].message


def test_a_null_required_field_reads_as_missing():
    oks, errs = decode_record(codec.dumps({"columns": {"prediction_id": ["a", "b"], "model_id": "m", "prediction": [1, 0],
                                                       "timestamp": [1.0, None]}}), "predictions", LIMIT)
    assert [i for i, _ in oks] == [0]
    assert [(e.index, e.reason, e.message) for e in errs] == [(1, "missing_field", "predictions: missing required field 'timestamp'")]


def test_unknown_models_are_rejected_one_by_one():
    events = [prediction(prediction_id="a", model_id="fraud"), prediction(prediction_id="b", model_id="other")]
    oks, errs = _decode(events, "predictions", known_models={"fraud"})
    assert [i for i, _ in oks] == [0]
    assert [(e.index, e.reason) for e in errs] == [(1, "unknown_model")]
    oks, errs = _decode(events, "predictions", known_models={"fraud", "other"})
    assert [i for i, _ in oks] == [0, 1] and errs == []


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"prediction_id": "a", "model_id": "m"}, "field 'prediction_id' of a column batch must be an array"),
        ({"prediction_id": ["a", "b"], "timestamp": [1.0]}, "predictions: field 'timestamp' has 1 values for 2 events"),
        ({"prediction_id": ["a"], "features": [1]}, "predictions: field 'features' of a column batch must be an object"),
        ({"prediction_id": ["a"], "features": {"x": [1, 2]}}, "predictions: feature 'x' has 2 values for 1 events"),
        ([1, 2], "predictions: 'columns' must be an object of field name -> array"),
    ],
)
def test_a_batch_of_the_wrong_shape_is_rejected_whole(columns, message):
    raw = codec.dumps({"columns": columns})
    oks, errs = decode_record(raw, "predictions", LIMIT)
    assert oks == [] and len(errs) == 1
    assert (errs[0].index, errs[0].reason, errs[0].raw) == (None, "malformed_batch", raw)
    assert message in errs[0].message
    with pytest.raises(ColumnsError):
        to_rows(columns, "predictions")  # type: ignore[arg-type]


def test_an_empty_batch_is_rejected():
    raw = codec.dumps({"columns": {"prediction_id": []}})
    assert decode_record(raw, "ground-truth", LIMIT) == (
        [], [RecordError(None, "empty_batch", "ground-truth: a column batch must hold at least one event", raw)])


def test_an_event_object_with_more_keys_is_not_a_batch():
    assert not is_column_batch({"columns": 1, "prediction_id": "p"})
    assert to_columns([]) is None
    assert to_columns([{"prediction_id": "a", "features": [1]}]) is None  # sent as an object instead
    assert to_columns([[1]]) is None  # type: ignore[list-item]


def test_identical_values_travel_once():
    columns = to_columns([prediction(prediction_id="a"), prediction(prediction_id="b")])["columns"]  # type: ignore[index]
    assert columns["prediction_id"] == ["a", "b"] and columns["model_id"] == "fraud"
    assert columns["features"]["country"] == ["DE", "DE"]  # features stay arrays


_ODD_VALUES = [None, True, 0, -1, 2**70, 1.5, 1e308, "", "x", "p" * 300, "2024-05-01T12:00:00Z", [], [1, "a"], {}, {"a": 1}, {"": [1]}]


def test_a_perturbed_batch_never_raises_and_every_event_is_accounted_for():
    """One cell, column or feature of a valid batch replaced by an odd value, 1,500 times
    (seeded): decoding never raises, and every event is either decoded or dead-lettered
    by index (or the whole record is rejected)."""
    rnd = random.Random(7)
    preds, labels = Simulation(SimulationConfig(events=20, seed=3)).generate()
    valid = {"predictions": to_columns(preds[:5])["columns"], "ground-truth": to_columns(labels[:5])["columns"]}  # type: ignore[index]
    for _ in range(1500):
        role = rnd.choice(["predictions", "ground-truth"])
        columns = copy.deepcopy(valid[role])
        name = rnd.choice(list(columns))
        target, key = (columns["features"], rnd.choice(list(columns["features"]))) if name == "features" and rnd.random() < 0.8 else (columns, name)
        if type(target[key]) is list and rnd.random() < 0.7:
            target[key][rnd.randrange(len(target[key]))] = rnd.choice(_ODD_VALUES)
        else:
            target[key] = rnd.choice(_ODD_VALUES)
        oks, errs = decode_record(json.dumps({"columns": columns}).encode(), role, LIMIT)
        if len(errs) == 1 and errs[0].index is None:
            assert oks == [] and errs[0].reason in {"malformed_batch", "empty_batch"}
            continue
        assert sorted([i for i, _ in oks] + [e.index for e in errs]) == list(range(len(columns["prediction_id"])))
