"""Contract tests of the input topics: every rejection reason with its exact message, and the
JSON Schema files agreeing with the Python validator on the same events."""

from __future__ import annotations

import base64
import json
import math

import jsonschema
import numpy as np
import orjson
import pytest

from schemas import codec, schema_path
from schemas.errors import REASONS, ContractError
from schemas.ids import stable_id
from schemas.parsing import (
    MAX_FEATURES,
    MAX_RANKED_ITEMS,
    RecordError,
    dead_letter_record,
    decode_record,
    validate_ground_truth,
    validate_prediction,
)

LIMIT = 1 << 20


def prediction(**overrides):
    event = {
        "prediction_id": "p-1",
        "model_id": "fraud",
        "model_version": "v3",
        "timestamp": 1714564800.5,
        "features": {"age": 41.0, "visits": 3, "country": "DE", "vip": True, "ref": None},
        "prediction": 1,
        "score": 0.8,
        "latency_ms": 4.2,
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not _ABSENT}


def ground_truth(**overrides):
    event = {"prediction_id": "p-1", "label": 1, "timestamp": "2024-05-01T12:00:00Z", "model_id": "fraud"}
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not _ABSENT}


_ABSENT = object()
_VALIDATOR = {"predictions": validate_prediction, "ground-truth": validate_ground_truth}
_SCHEMA = {
    topic: jsonschema.Draft202012Validator(json.loads(schema_path(topic).read_text()))
    for topic in _VALIDATOR
}
_ID = "a non-empty string of at most 256 characters"
_TS = "epoch seconds in [0, 253402300800) or an RFC 3339 date-time string"
_RFC = "an RFC 3339 date-time with a UTC offset (e.g. '2024-05-01T12:00:00Z')"
_PREDICTION = "a number, string, boolean or an array of item ids (a ranking)"
_LABEL = "a number, string, boolean, an array of relevant item ids or an object of item id -> gain"
_INT = "an integer within 64 bits (-2**63 to 2**64 - 1), or a float"
_ITEM = "an item id (a non-empty string of at most 256 characters, or an integer)"

# (topic, event, reason, field, message, JSON Schema rejects it too)
REJECTIONS = [
    ("predictions", [1], "not_an_object", None,
     "predictions: an event must be a JSON object, got array", True),
    ("predictions", prediction(model_id=_ABSENT), "missing_field", "model_id",
     "predictions: missing required field 'model_id'", True),
    ("predictions", prediction(prediction_id=_ABSENT), "missing_field", "prediction_id",
     "predictions: missing required field 'prediction_id'", True),
    ("predictions", prediction(timestamp=_ABSENT), "missing_field", "timestamp",
     "predictions: missing required field 'timestamp'", True),
    ("predictions", prediction(prediction=_ABSENT), "missing_field", "prediction",
     "predictions: missing required field 'prediction'", True),
    ("predictions", prediction(model_id=None), "wrong_type", "model_id",
     f"predictions: field 'model_id' must be {_ID}, got null", True),
    ("predictions", prediction(prediction_id=7), "wrong_type", "prediction_id",
     f"predictions: field 'prediction_id' must be {_ID}, got number", True),
    ("predictions", prediction(prediction_id=""), "out_of_range", "prediction_id",
     f"predictions: field 'prediction_id' must be {_ID}, got ''", True),
    ("predictions", prediction(model_id="m" * 257), "out_of_range", "model_id",
     f"predictions: field 'model_id' must be {_ID}, got a string of 257 characters", True),
    # '@' separates the version in a model key: "a@b" would be model "a" version "b"
    ("predictions", prediction(model_id="a@b"), "out_of_range", "model_id",
     f"predictions: field 'model_id' must be {_ID} without '@', got 'a@b'", True),
    ("predictions", prediction(model_version=3), "wrong_type", "model_version",
     f"predictions: field 'model_version' must be {_ID}, got number", True),
    ("predictions", prediction(score=1.5), "out_of_range", "score",
     "predictions: field 'score' must be a number in [0, 1], got 1.5", True),
    ("predictions", prediction(score=-0.1), "out_of_range", "score",
     "predictions: field 'score' must be a number in [0, 1], got -0.1", True),
    ("predictions", prediction(score=True), "wrong_type", "score",
     "predictions: field 'score' must be a number in [0, 1], got boolean", True),
    ("predictions", prediction(score="0.5"), "wrong_type", "score",
     "predictions: field 'score' must be a number in [0, 1], got string", True),
    ("predictions", prediction(score=float("nan")), "non_finite", "score",
     "predictions: field 'score' must be a finite number, got nan", None),
    ("predictions", prediction(latency_ms=-1), "out_of_range", "latency_ms",
     "predictions: field 'latency_ms' must be a number >= 0, got -1", True),
    ("predictions", prediction(latency_ms=False), "wrong_type", "latency_ms",
     "predictions: field 'latency_ms' must be a number >= 0, got boolean", True),
    ("predictions", prediction(latency_ms=float("inf")), "non_finite", "latency_ms",
     "predictions: field 'latency_ms' must be a finite number, got inf", None),
    ("predictions", prediction(latency_ms=10**400), "out_of_range", "latency_ms",
     "predictions: field 'latency_ms' must be a number >= 0, got an integer of 1329 bits", None),
    ("predictions", prediction(timestamp=True), "wrong_type", "timestamp",
     f"predictions: field 'timestamp' must be {_TS}, got boolean", True),
    ("predictions", prediction(timestamp=None), "wrong_type", "timestamp",
     f"predictions: field 'timestamp' must be {_TS}, got null", True),
    ("predictions", prediction(timestamp=-1), "out_of_range", "timestamp",
     "predictions: field 'timestamp' must be epoch seconds in [0, 253402300800), got -1", True),
    ("predictions", prediction(timestamp=1.7e15), "out_of_range", "timestamp",
     "predictions: field 'timestamp' must be epoch seconds in [0, 253402300800), got 1700000000000000.0", True),
    ("predictions", prediction(timestamp=float("-inf")), "non_finite", "timestamp",
     "predictions: field 'timestamp' must be a finite number, got -inf", None),
    ("predictions", prediction(timestamp="2024-05-01 12:00"), "invalid_timestamp", "timestamp",
     f"predictions: field 'timestamp' must be {_RFC}, got '2024-05-01 12:00'", True),
    ("predictions", prediction(timestamp="2024-05-01T12:00:00"), "invalid_timestamp", "timestamp",
     f"predictions: field 'timestamp' must be {_RFC}, got '2024-05-01T12:00:00'", True),
    ("predictions", prediction(timestamp="2024-13-01T12:00:00Z"), "invalid_timestamp", "timestamp",
     f"predictions: field 'timestamp' must be {_RFC}, got '2024-13-01T12:00:00Z'", False),
    ("predictions", prediction(timestamp="2024-02-30T12:00:00Z"), "invalid_timestamp", "timestamp",
     f"predictions: field 'timestamp' must be {_RFC}, got '2024-02-30T12:00:00Z'", False),
    ("predictions", prediction(timestamp="1969-12-31T23:59:59Z"), "out_of_range", "timestamp",
     "predictions: field 'timestamp' must be epoch seconds in [0, 253402300800), "
     "got '1969-12-31T23:59:59Z'", False),
    ("predictions", prediction(features=[1, 2]), "wrong_type", "features",
     "predictions: field 'features' must be an object of feature name -> number, string, "
     "boolean or null, got array", True),
    ("predictions", prediction(features={"age": [1]}), "wrong_type", "features.age",
     "predictions: field 'features.age' must be a number, string, boolean or null, got array", True),
    ("predictions", prediction(features={"age": float("nan")}), "non_finite", "features.age",
     "predictions: field 'features.age' must be a finite number, got nan", None),
    ("predictions", prediction(features={"": 1}), "out_of_range", "features",
     f"predictions: feature names must be {_ID}, got ''", True),
    ("predictions", prediction(features={1: 1}), "wrong_type", "features",
     "predictions: field 'features' must be an object with string feature names, got number", None),
    ("predictions", prediction(features={f"f{i}": i for i in range(MAX_FEATURES + 1)}),
     "too_many_features", "features",
     "predictions: field 'features' must have at most 1000 entries, got 1001", True),
    ("predictions", prediction(prediction=None), "wrong_type", "prediction",
     f"predictions: field 'prediction' must be {_PREDICTION}, got null", True),
    ("predictions", prediction(prediction={"a": 1}), "wrong_type", "prediction",
     f"predictions: field 'prediction' must be {_PREDICTION}, got object", True),
    # a ranking: distinct item ids (strings or integers), at most MAX_RANKED_ITEMS
    ("predictions", prediction(prediction=["a", True]), "wrong_type", "prediction[1]",
     f"predictions: field 'prediction[1]' must be {_ITEM}, got boolean", True),
    ("predictions", prediction(prediction=["a", 2.5]), "wrong_type", "prediction[1]",
     f"predictions: field 'prediction[1]' must be {_ITEM}, got number", True),
    ("predictions", prediction(prediction=["a", ["b"]]), "wrong_type", "prediction[1]",
     f"predictions: field 'prediction[1]' must be {_ITEM}, got array", True),
    ("predictions", prediction(prediction=[""]), "out_of_range", "prediction[0]",
     f"predictions: field 'prediction[0]' must be {_ITEM}, got ''", True),
    ("predictions", prediction(prediction=["a", "b", "a"]), "out_of_range", "prediction",
     "predictions: field 'prediction' must not repeat an item, got 'a' twice", True),
    ("predictions", prediction(prediction=[f"i{i}" for i in range(MAX_RANKED_ITEMS + 1)]), "out_of_range",
     "prediction", "predictions: field 'prediction' must hold at most 1000 items, got 1001", True),
    ("predictions", prediction(prediction=float("nan")), "non_finite", "prediction",
     "predictions: field 'prediction' must be a finite number, got nan", None),
    # Python callers only: orjson writes no integer beyond 64 bits (and reads one as a float)
    ("predictions", prediction(prediction=2**64), "out_of_range", "prediction",
     f"predictions: field 'prediction' must be {_INT}, got an integer of 65 bits", None),
    ("predictions", prediction(features={"n": -(2**63) - 1}), "out_of_range", "features.n",
     f"predictions: field 'features.n' must be {_INT}, got -9223372036854775809", None),
    ("predictions", prediction(features={"n": 10**400}), "out_of_range", "features.n",
     f"predictions: field 'features.n' must be {_INT}, got an integer of 1329 bits", None),
    ("ground-truth", ground_truth(label=-(2**70)), "out_of_range", "label",
     f"ground-truth: field 'label' must be {_INT}, got an integer of 71 bits", None),
    ("ground-truth", "x", "not_an_object", None,
     "ground-truth: an event must be a JSON object, got string", True),
    ("ground-truth", ground_truth(label=_ABSENT), "missing_field", "label",
     "ground-truth: missing required field 'label'", True),
    ("ground-truth", ground_truth(label=None), "wrong_type", "label",
     f"ground-truth: field 'label' must be {_LABEL}, got null", True),
    # a ranking's relevant items, or graded relevances (item id -> gain >= 0)
    ("ground-truth", ground_truth(label=[0, None]), "wrong_type", "label[1]",
     f"ground-truth: field 'label[1]' must be {_ITEM}, got null", True),
    ("ground-truth", ground_truth(label=["x", "x"]), "out_of_range", "label",
     "ground-truth: field 'label' must not repeat an item, got 'x' twice", True),
    ("ground-truth", ground_truth(label={"a": -1}), "out_of_range", "label.a",
     "ground-truth: field 'label.a' must be a gain (a finite number >= 0), got -1", True),
    ("ground-truth", ground_truth(label={"a": "high"}), "wrong_type", "label.a",
     "ground-truth: field 'label.a' must be a gain (a finite number >= 0), got string", True),
    ("ground-truth", ground_truth(label={"a": True}), "wrong_type", "label.a",
     "ground-truth: field 'label.a' must be a gain (a finite number >= 0), got boolean", True),
    ("ground-truth", ground_truth(label={"a": float("nan")}), "non_finite", "label.a",
     "ground-truth: field 'label.a' must be a finite number, got nan", None),
    ("ground-truth", ground_truth(label={"": 1}), "out_of_range", "label",
     f"ground-truth: field 'label' must be {_ITEM}, got ''", True),
    ("ground-truth", ground_truth(label={f"i{i}": 1 for i in range(MAX_RANKED_ITEMS + 1)}), "out_of_range",
     "label", "ground-truth: field 'label' must hold at most 1000 items, got 1001", True),
    ("ground-truth", ground_truth(model_id="a@b"), "out_of_range", "model_id",
     f"ground-truth: field 'model_id' must be {_ID} without '@', got 'a@b'", True),
    ("ground-truth", ground_truth(model_id=""), "out_of_range", "model_id",
     f"ground-truth: field 'model_id' must be {_ID}, got ''", True),
    ("ground-truth", ground_truth(timestamp="yesterday"), "invalid_timestamp", "timestamp",
     f"ground-truth: field 'timestamp' must be {_RFC}, got 'yesterday'", True),
]


@pytest.mark.parametrize(("topic", "event", "reason", "field", "message", "schema_rejects"), REJECTIONS)
def test_validator_rejects_with_exact_message(topic, event, reason, field, message, schema_rejects):
    with pytest.raises(ContractError) as caught:
        _VALIDATOR[topic](event)
    assert (caught.value.reason, caught.value.field, str(caught.value)) == (reason, field, message)


@pytest.mark.parametrize(("topic", "event", "reason", "field", "message", "schema_rejects"), REJECTIONS)
def test_json_schema_agrees_with_the_validator(topic, event, reason, field, message, schema_rejects):
    if schema_rejects is None:
        pytest.skip("not what a JSON producer sends (a non-finite number, a non-string key, an integer beyond 64 bits)")
    assert (not _SCHEMA[topic].is_valid(event)) is schema_rejects


@pytest.mark.parametrize(("topic", "event", "reason", "field", "message", "schema_rejects"), REJECTIONS)
def test_decode_record_reports_the_same_error_for_json_inputs(
    topic, event, reason, field, message, schema_rejects
):
    if schema_rejects is None:
        pytest.skip("not expressible in JSON")
    if not isinstance(event, dict):
        pytest.skip("a non-object record is covered by test_record_level_errors_carry_the_whole_record")
    raw = codec.dumps(event)
    assert decode_record(raw, topic, LIMIT) == ([], [RecordError(None, reason, message, raw)])
    # the same event inside a batch: same reason and message, raw is the element
    oks, errs = decode_record(codec.dumps([event, event]), topic, LIMIT)
    assert oks == [] and errs == [RecordError(i, reason, message, raw) for i in (0, 1)]


GOOD = [
    ("predictions", prediction()),
    ("predictions", {"prediction_id": "p", "model_id": "m", "timestamp": 0, "prediction": "cat"}),
    ("predictions", prediction(model_version=None, score=None, latency_ms=None, features=None)),
    ("predictions", prediction(timestamp="2024-05-01T14:00:00.250+02:00", prediction=False, score=1)),
    ("predictions", prediction(extra_key={"ignored": True})),
    ("ground-truth", ground_truth()),
    ("ground-truth", ground_truth(model_id=_ABSENT, label="fraud", timestamp=12)),
    ("predictions", prediction(prediction=["item-9", 17, "item-2"], score=None)),
    ("predictions", prediction(prediction=[])),  # a ranker that found nothing: every query scores 0
    ("ground-truth", ground_truth(label=["item-2", 17])),
    ("ground-truth", ground_truth(label=[])),  # no relevant item: the query is not scored
    ("ground-truth", ground_truth(label={"item-2": 3, "17": 0.5, "item-9": 0})),
]


@pytest.mark.parametrize(("topic", "event"), GOOD)
def test_good_events_pass_both_the_schema_and_the_validator(topic, event):
    _SCHEMA[topic].validate(event)
    _VALIDATOR[topic](event)


def test_validate_prediction_normalises():
    event = prediction(timestamp=1714564800, latency_ms=3, score=1, extra="ignored")
    result = validate_prediction(event)
    assert result == {
        "prediction_id": "p-1",
        "model_id": "fraud",
        "model_version": "v3",
        "timestamp": 1714564800.0,
        "features": {"age": 41.0, "visits": 3, "country": "DE", "vip": True, "ref": None},
        "prediction": 1,
        "score": 1.0,
        "latency_ms": 3.0,
    }
    assert type(result["timestamp"]) is float and type(result["score"]) is float
    assert result is not event and result["features"] is not event["features"]
    minimal = validate_prediction({"prediction_id": "p", "model_id": "m", "timestamp": 1.0, "prediction": 0})
    assert (minimal["model_version"], minimal["features"], minimal["score"], minimal["latency_ms"]) == (
        None, {}, None, None,
    )


def test_ranking_item_ids_are_normalised_to_strings():
    ranked = validate_prediction(prediction(prediction=("b", np.int64(7), 3)))["prediction"]
    assert ranked == ["b", "7", "3"]
    assert validate_ground_truth(ground_truth(label=[7, "b"]))["label"] == ["7", "b"]
    assert validate_ground_truth(ground_truth(label={"7": 2, "b": 0}))["label"] == {"7": 2.0, "b": 0.0}


def test_numpy_values_from_python_callers_are_converted():
    result = validate_prediction(
        prediction(
            timestamp=np.float64(5.0),
            score=np.float32(0.5),
            features={"a": np.int64(3), "b": np.float64(0.25), "c": np.bool_(True)},
            prediction=np.int32(1),
        )
    )
    assert result["timestamp"] == 5.0 and result["score"] == 0.5
    assert result["features"] == {"a": 3, "b": 0.25, "c": True}
    assert [type(v) for v in result["features"].values()] == [int, float, bool]
    assert type(result["prediction"]) is int


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", 1714564800.0),
        ("2024-05-01t12:00:00z", 1714564800.0),
        ("2024-05-01 12:00:00Z", 1714564800.0),
        ("2024-05-01T12:00:00.5Z", 1714564800.5),
        ("2024-05-01T14:00:00+02:00", 1714564800.0),
        ("2024-05-01T07:30:00-04:30", 1714564800.0),
        ("2024-05-01T12:00:00.123456789+00:00", 1714564800.123456789),
        ("1970-01-01T00:00:00Z", 0.0),
        ("2016-12-31T23:59:60Z", 1483228800.0),  # leap second reads as the next second
    ],
)
def test_rfc3339_timestamps(text, expected):
    assert validate_ground_truth(ground_truth(timestamp=text))["timestamp"] == pytest.approx(expected, abs=1e-6)
    assert _SCHEMA["ground-truth"].is_valid(ground_truth(timestamp=text))


def test_one_bad_element_never_rejects_the_rest_of_the_batch():
    bad = prediction(prediction_id="p-2", score=2)
    batch = [prediction(), bad, "oops", prediction(prediction_id="p-4")]
    raw = codec.dumps(batch)
    oks, errs = decode_record(raw, "predictions", LIMIT)
    assert [(i, e["prediction_id"]) for i, e in oks] == [(0, "p-1"), (3, "p-4")]
    assert errs == [
        RecordError(1, "out_of_range", "predictions: field 'score' must be a number in [0, 1], got 2", codec.dumps(bad)),
        RecordError(3 - 1, "not_an_object", "predictions: batch element [2] must be a JSON object, got string", b'"oops"'),
    ]


def test_single_event_record_has_index_none():
    oks, errs = decode_record(codec.dumps(ground_truth()), "ground-truth", LIMIT)
    assert errs == [] and oks == [(None, validate_ground_truth(ground_truth()))]


@pytest.mark.parametrize(
    ("raw", "reason", "message"),
    [
        (b'{"score": NaN}', "malformed_json",
         "predictions: record is not valid JSON: unexpected character, expected a JSON value at character 10"),
        (b'{"prediction_id": "p", "timestamp": 1e400}', "malformed_json",
         "predictions: record is not valid JSON: number is infinity when parsed as double at character 36"),
        (b"", "malformed_json",
         "predictions: record is not valid JSON: Input is a zero-length, empty document at character 0"),
        (b'"just a string"', "not_an_object",
         "predictions: a record must be a JSON object or an array of objects, got string"),
        (b"42", "not_an_object",
         "predictions: a record must be a JSON object or an array of objects, got number"),
        (b"[]", "empty_batch", "predictions: a batch record must not be an empty JSON array"),
    ],
)
def test_record_level_errors_carry_the_whole_record(raw, reason, message):
    assert decode_record(raw, "predictions", LIMIT) == ([], [RecordError(None, reason, message, raw)])


def test_oversized_is_checked_before_decoding():
    raw = b"x" * 2_000_000  # not even JSON: the size check must come first
    assert decode_record(raw, "predictions", 1_048_576) == (
        [],
        [RecordError(None, "oversized", "record of 2000000 bytes exceeds the 1048576-byte limit", raw)],
    )


def test_unknown_model_is_rejected_when_a_registry_is_given():
    batch = [prediction(), prediction(model_id="ghost"), ground_truth(model_id=_ABSENT)]
    oks, errs = decode_record(codec.dumps(batch[:2]), "predictions", LIMIT, known_models={"fraud"})
    assert [i for i, _ in oks] == [0]
    assert [(e.index, e.reason, e.message) for e in errs] == [
        (1, "unknown_model", "predictions: field 'model_id' must name a configured model, got 'ghost'")
    ]
    oks, errs = decode_record(codec.dumps(batch[2]), "ground-truth", LIMIT, known_models={"fraud"})
    assert errs == [] and len(oks) == 1  # ground truth without model_id cannot be checked


def test_every_reason_is_covered_by_a_test():
    # malformed_batch: tests/unit/schemas/test_columns.py
    covered = {r[2] for r in REJECTIONS} | {"malformed_json", "empty_batch", "oversized", "unknown_model", "malformed_batch"}
    # not contract violations: an undeliverable alert (tests/unit/observability/test_webhook.py),
    # an event too far ahead of its record and one of a model past the cap
    # (tests/unit/streams/test_hardening.py); an unsafe model id (tests/unit/updater/test_updater.py)
    assert covered | {"webhook_failed", "clock_skew", "too_many_models", "prediction_id_conflict", "model_mismatch",
                       "model_quarantined", "unsafe_name"} == REASONS


def test_unknown_topic_role_is_a_programming_error():
    with pytest.raises(ValueError, match="topic_role must be"):
        decode_record(b"{}", "alerts", LIMIT)  # type: ignore[arg-type]


def test_contract_error_requires_a_known_reason():
    with pytest.raises(ValueError, match="reason must be one of"):
        ContractError("bad_reason", "x")


def test_dead_letter_record_shape_and_stable_id():
    raw = codec.dumps(prediction(score=9))
    _, errs = decode_record(codec.dumps([prediction(), prediction(score=9)]), "predictions", LIMIT)
    record = dead_letter_record("prod.predictions", 2, 1234, errs[0], now=1714564900.0)
    assert record == {
        "dead_letter_id": stable_id("dead-letter", "prod.predictions", 2, 1234, 1, "out_of_range"),
        "origin": {"topic": "prod.predictions", "partition": 2, "offset": 1234, "index": 1},
        "reason": "out_of_range",
        "message": "predictions: field 'score' must be a number in [0, 1], got 9",
        "raw_b64": base64.b64encode(raw).decode(),
        "raw_size": len(raw),
        "timestamp": 1714564900.0,
    }
    replay = dead_letter_record("prod.predictions", 2, 1234, errs[0], now=1.0)
    assert replay["dead_letter_id"] == record["dead_letter_id"]
    other = dead_letter_record("prod.predictions", 2, 1235, errs[0], now=1.0)
    assert other["dead_letter_id"] != record["dead_letter_id"]
    jsonschema.Draft202012Validator(json.loads(schema_path("dead-letter").read_text())).validate(record)
    assert orjson.loads(codec.dumps(record)) == record


def test_dead_letter_of_an_oversized_record_keeps_only_a_prefix():
    error = RecordError(None, "oversized", "record of 100 bytes exceeds the 10-byte limit", b"a" * 100)
    record = dead_letter_record("t", 0, 0, error, now=0.0, max_raw_bytes=10)
    assert base64.b64decode(record["raw_b64"]) == b"a" * 10 and record["raw_size"] == 100


def test_decode_cost_smoke():
    """Not a timing test (see the report for the measured cost): a 500-event batch decodes
    completely and without errors."""
    events = [prediction(prediction_id=f"p{i}") for i in range(500)]
    oks, errs = decode_record(codec.dumps(events), "predictions", LIMIT)
    assert len(oks) == 500 and errs == []
    assert not any(math.isnan(e["timestamp"]) for _, e in oks)
