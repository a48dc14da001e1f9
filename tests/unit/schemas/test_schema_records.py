"""The Python records agree with their JSON Schema files; records round-trip; the codec and
the faust codec round-trip; ids are stable."""

from __future__ import annotations

import dataclasses
import json
import types
import typing

import jsonschema
import numpy as np
import pytest

from schemas import TOPICS, codec, schema_path
from schemas.errors import ContractError
from schemas.ids import stable_id
from schemas.records import (
    TOPIC_RECORDS,
    Alert,
    DeadLetter,
    DriftEvent,
    GroundTruth,
    ModelUpdate,
    Origin,
    Prediction,
    Window,
)

_PY_TO_JSON = {str: "string", float: "number", int: "integer", bool: "boolean", type(None): "null",
               dict: "object", list: "array"}


def _json_types(annotation) -> set[str]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_json_types(arg) for arg in typing.get_args(annotation)))
    if origin is not None:
        annotation = origin
    if dataclasses.is_dataclass(annotation):
        return {"object"}
    if annotation is typing.Any:
        return {"any"}
    return {_PY_TO_JSON[annotation]}


def _schema_types(prop: dict) -> set[str]:
    for combined in ("oneOf", "anyOf"):
        if combined in prop:
            return set().union(*(_schema_types(p) for p in prop[combined]))
    kinds = prop["type"]
    return {kinds} if isinstance(kinds, str) else set(kinds)


def _normal(kinds: set[str]) -> set[str]:
    """JSON Schema's "number" includes integers, so ``float | int`` is just "number"."""
    return kinds - {"integer"} if "number" in kinds else kinds


#: wire-only types: the parser accepts RFC 3339 strings and normalises them to float.
_WIRE_EXTRA = {("predictions", "timestamp"): {"string"}, ("ground-truth", "timestamp"): {"string"}}
#: optional input fields accept null on the wire (meaning absent); ``features`` null means {}.
_NULL_MEANS_DEFAULT = {("predictions", "features")}


def _load(topic):
    return json.loads(schema_path(topic).read_text())


def test_every_topic_has_a_record_and_a_draft_2020_12_schema():
    assert tuple(TOPIC_RECORDS) == TOPICS
    for topic in TOPICS:
        schema = _load(topic)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("topic", TOPICS)
def test_schema_and_record_agree_on_names_requiredness_and_types(topic):
    cls = TOPIC_RECORDS[topic]
    schema = _load(topic)
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    assert set(schema["properties"]) == {f.name for f in fields}
    required = {
        f.name for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    assert set(schema["required"]) == required
    for f in fields:
        expected = _json_types(hints[f.name]) | _WIRE_EXTRA.get((topic, f.name), set())
        if (topic, f.name) in _NULL_MEANS_DEFAULT:
            expected |= {"null"}
        if "any" in expected:
            continue
        assert _normal(_schema_types(schema["properties"][f.name])) == _normal(expected), f.name
    for nested_name, nested_cls in ((("window", Window),) if topic == "drift-events" else
                                     (("origin", Origin),) if topic == "dead-letter" else ()):
        nested = schema["properties"][nested_name]
        nested_hints = typing.get_type_hints(nested_cls)
        names = {f.name for f in dataclasses.fields(nested_cls)}
        assert set(nested["properties"]) == set(nested["required"]) == names
        for name in names:
            assert _normal(_schema_types(nested["properties"][name])) == _normal(_json_types(nested_hints[name]))


def _examples():
    window = Window(1714564000.0, 1714564800.0)
    return [
        Prediction("p1", "fraud", timestamp=1714564800.0, prediction=1, model_version="v3",
                   features={"age": 41.0, "country": "DE", "vip": True, "ref": None}, score=0.9, latency_ms=3.5),
        GroundTruth("p1", label=0, timestamp=1714564900.0, model_id="fraud"),
        DriftEvent(stable_id("drift", "fraud", "psi", "age", 500), "fraud", "v3", "psi", "data_drift", "age",
                   0.31, 0.2, "above", None, True, "P2", 500, 1714564800.0, window),
        Alert(stable_id("alert", "fraud", "psi", "age", "firing"), "fraud", "v3", "P2", "firing", "data_drift",
              "psi", "age", 0.31, 0.2, "above", "PSI of 'age' is 0.31 (above 0.2)", 1714564800.0,
              stable_id("incident", "fraud", 1), [stable_id("drift", "fraud", "psi", "age", 500)], 500),
        ModelUpdate(stable_id("update", "fraud", 1), "fraud", "v3", "promoted", "challenger beat champion",
                    ["a1"], 1714560000.0, 1714564800.0, {"auc": 0.91}, "v4", "s3://models/fraud/v4",
                    "0" * 64, 1714565000.0),
        DeadLetter("d1", Origin("predictions", 0, 7, None), "malformed_json",
                   "predictions: record is not valid JSON", "ew==", 1, 1714565000.0),
    ]


@pytest.mark.parametrize("record", _examples(), ids=lambda r: type(r).__name__)
def test_records_round_trip_and_validate_against_their_schema(record):
    data = record.to_dict()
    wire = codec.loads(codec.dumps(data))
    assert wire == data
    jsonschema.Draft202012Validator(_load(record.topic)).validate(wire)
    assert type(record).from_dict(wire) == record
    assert codec.loads(codec.dumps(record)) == data  # orjson serialises the dataclass itself


def test_records_are_frozen_and_slotted():
    record = _examples()[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.score = 0.1  # type: ignore[misc]
    assert not hasattr(record, "__dict__")


def test_prediction_validates_on_construction_with_the_stream_messages():
    with pytest.raises(ContractError) as caught:
        Prediction("p1", "fraud", timestamp=0.0, prediction=1, features={"age": float("nan")})
    assert (caught.value.reason, str(caught.value)) == (
        "non_finite", "predictions: field 'features.age' must be a finite number, got nan",
    )
    with pytest.raises(ContractError, match="^predictions: field 'model_id' must be a non-empty"):
        Prediction("p1", "", timestamp=0.0, prediction=1)
    assert Prediction("p1", "m", timestamp="1970-01-01T00:00:10+00:00", prediction=1).timestamp == 10.0


def test_input_from_dict_validates_and_ignores_unknown_keys():
    assert GroundTruth.from_dict({"prediction_id": "p", "label": 1, "timestamp": 5, "new": 1}) == GroundTruth("p", 1, 5.0)
    with pytest.raises(ContractError, match=r"^ground-truth: missing required field 'label'$"):
        GroundTruth.from_dict({"prediction_id": "p", "timestamp": 5})


def test_output_from_dict_checks_required_fields_and_enumerations():
    data = _examples()[3].to_dict()
    with pytest.raises(ContractError) as caught:
        Alert.from_dict({**data, "severity": "P9"})
    assert (caught.value.reason, str(caught.value)) == (
        "out_of_range", "alerts: field 'severity' must be one of P0, P1, P2, P3, got 'P9'",
    )
    data.pop("incident_id")
    with pytest.raises(ContractError, match=r"^alerts: missing required field 'incident_id'$"):
        Alert.from_dict(data)
    with pytest.raises(ContractError, match=r"^dead-letter\.origin: missing required field 'offset'$"):
        DeadLetter.from_dict({**_examples()[5].to_dict(), "origin": {"topic": "t", "partition": 0, "index": None}})


def test_codec_handles_numpy_and_non_string_keys():
    assert codec.dumps({1: np.array([1.5, 2.0]), "b": np.int64(3)}) == b'{"1":[1.5,2.0],"b":3}'
    assert codec.loads(b'{"a":[1,null]}') == {"a": [1, None]}


def test_faust_codec_registration_round_trip():
    from faust.serializers import codecs

    registered = codec.register_faust_codec()
    assert codecs.get_codec("orjson") is registered
    assert isinstance(registered, codecs.Codec)
    value = {"model_id": "fraud", "score": np.float64(0.5), "features": {"age": 41}}
    encoded = codecs.dumps("orjson", value)
    assert encoded == codec.dumps(value)
    assert codecs.loads("orjson", encoded) == {"model_id": "fraud", "score": 0.5, "features": {"age": 41}}
    assert codec.register_faust_codec() is registered  # idempotent


def test_stable_id_is_deterministic_typed_and_rejects_non_scalars():
    assert stable_id("a", 1) == stable_id("a", 1) == "{:s}".format(stable_id("a", 1))
    assert len(stable_id("a")) == 32 and int(stable_id("a"), 16) >= 0
    assert len({stable_id("a", "b"), stable_id("a b"), stable_id("a", 1), stable_id("a", "1"), stable_id("a", None)}) == 5
    with pytest.raises(TypeError, match="stable_id parts must be"):
        stable_id("a", [1])
    with pytest.raises(TypeError, match="stable_id parts must be"):
        stable_id(float("nan"))
