"""The publisher's column-at-a-time path (streams/sdk/packing.py) against validating each event
and packing the results: the same records byte for byte, or the same error, on random
events that include every value the validator refuses."""

from __future__ import annotations

import contextlib
import math
import random
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest

from schemas import codec
from schemas.columns import to_columns
from schemas.errors import ContractError
from schemas.parsing import validate_prediction
from schemas.partitioning import partition_for
from streams.exceptions import PublishError
from streams.offline.simulate import Simulation, SimulationConfig
from schemas.partitioning import group_by_partition
from streams.sdk.client import DriftstreamClient, _encode_chunk, encode_batches
from streams.sdk.packing import pack
from streams.settings import Settings

_ABSENT = object()


class _Str(str):
    pass


#: Values that a field may take: valid ones of every kind, and each one a validator refuses.
_ODD: dict[str, list[Any]] = {
    "prediction_id": ["", "x" * 257, "x" * 256, 7, None, _Str("s"), _ABSENT, "p-dup"],
    "model_id": ["m@v", "", None, _ABSENT, "other", 3],
    "model_version": [None, _ABSENT, "", "v" * 257, 2, "v2"],
    "timestamp": [math.nan, math.inf, -1.0, -0.0, 0, 253402300800.0, 253402300799.9, "2024-05-01T12:00:00Z",
                  "nope", True, None, _ABSENT, np.float64(5.0), 2**70, 17],
    "prediction": [math.nan, -math.inf, "cat", True, 2.5, None, _ABSENT, [1], np.int64(1), 2**53 + 1],
    "score": [math.nan, 1.5, -0.1, 1, 0, True, "0.5", None, _ABSENT, np.float32(0.5), 1.0],
    "latency_ms": [math.inf, math.nan, -1, 2**53 + 1, 10**400, 0, "3", None, _ABSENT, False],
    "label": [math.nan, "cat", True, None, _ABSENT, 2.0, {}],
}
_FEATURE_ODD = [math.nan, math.inf, -math.inf, None, "text", True, 3, 2.5, [1], {"a": 1}, np.float64(1.0), 10**20]


def _prediction(i: int, rng: random.Random) -> dict[str, Any]:
    return {
        "prediction_id": f"p{i}-{rng.randrange(10**6)}", "model_id": "churn", "model_version": None,
        "timestamp": 1_700_000_000.0 + i, "features": {"age": rng.gauss(40, 9), "plan": rng.choice(["a", "b"]), "n": i},
        "prediction": rng.randrange(2), "score": rng.random(), "latency_ms": rng.uniform(0, 20),
    }


def _label(i: int, rng: random.Random) -> dict[str, Any]:
    return {"prediction_id": f"p{i}-{rng.randrange(10**6)}", "label": rng.randrange(2), "timestamp": 1_700_000_000.0 + i,
            "model_id": "churn"}


def _mutate(event: dict[str, Any], rng: random.Random, role: str) -> None:
    """Change one thing of ``event`` (a field's value, a feature, or its keys)."""
    kind = rng.random()
    if kind < 0.6:
        fields = [f for f in _ODD if f in event or f in ("score", "latency_ms", "model_version")]
        field = rng.choice([f for f in fields if (f != "label") == (role == "predictions") or f in ("prediction_id", "timestamp", "model_id")])
        value = rng.choice(_ODD[field])
        if value is _ABSENT:
            event.pop(field, None)
        else:
            event[field] = value
    elif role == "predictions" and kind < 0.85:
        features = event["features"]
        choice = rng.random()
        if choice < 0.6:
            features[rng.choice(list(features))] = rng.choice(_FEATURE_ODD)
        elif choice < 0.7:
            features[rng.choice(["", "y" * 257, 5, "extra"])] = 1.0
        elif choice < 0.8:
            event["features"] = rng.choice([None, {}, [], "f", MappingProxyType(dict(features))])
        elif choice < 0.9:
            event["features"] = {f"f{k}": 1.0 for k in range(1001)}
        else:
            features.pop(rng.choice(list(features)))
    else:
        event[rng.choice(["unknown", "extra_key"])] = rng.choice([1, None, "x"])


def _reference(events: list[Any], partitions: int, batch_size: int, max_bytes: int) -> list[tuple[int, bytes]]:
    """How the publisher packed validated events before packing a column at a time: each
    partition's events in order, ``batch_size`` at a time, each chunk made columns."""
    return [(partition, raw) for partition, group in group_by_partition(events, partitions).items()
            for start in range(0, len(group), batch_size)
            for raw in _encode_chunk(group[start : start + batch_size], max_bytes, "columns")]


def _old(client: DriftstreamClient, role: str, events: list[Any], partitions: int) -> Any:
    """What the publisher made before packing: each event validated, then packed."""
    try:
        return _reference(client.prepare(role, events), partitions, client.batch_size, client.settings.max_message_bytes)
    except (PublishError, ValueError, TypeError) as exc:  # orjson.JSONEncodeError is a TypeError
        return type(exc), str(exc)


def _new(client: DriftstreamClient, role: str, events: list[Any], partitions: int) -> Any:
    try:
        return client.records(role, events, partitions)
    except (PublishError, ValueError, TypeError) as exc:
        return type(exc), str(exc)


@pytest.mark.parametrize("role", ["predictions", "ground-truth"])
def test_random_events_make_the_same_records_or_the_same_error(role: str) -> None:
    rng = random.Random(27)
    make = _prediction if role == "predictions" else _label
    client = DriftstreamClient(Settings(), batch_size=7)
    packed = errors = 0
    for trial in range(400):
        events = [make(i, rng) for i in range(rng.choice([1, 2, 5, 30]))]
        for _ in range(rng.choice([0, 0, 1, 2])):
            _mutate(rng.choice(events), rng, role)
        partitions = rng.choice([1, 3, 8])
        expected = _old(client, role, events, partitions)
        assert _new(client, role, events, partitions) == expected, (trial, events)
        with contextlib.suppress(PublishError, TypeError):  # raised as by the other path, just above
            packed += pack(role, events, partitions, 7, 1 << 20) is not None  # type: ignore[arg-type]
        errors += isinstance(expected, tuple)
    # both paths and both outcomes were exercised, not only one of them
    assert 100 < packed < 400 and 50 < errors < 300, (packed, errors)


def test_every_refused_value_is_refused_with_the_validators_message() -> None:
    """Python floats can be NaN or infinite and Python integers longer than 64 bits (JSON's,
    as orjson reads and writes them, cannot): the column path sends them to the validator,
    which names the event and the field."""
    client = DriftstreamClient(Settings())
    rng = random.Random(1)
    for field, value in [("score", math.nan), ("latency_ms", math.inf), ("timestamp", math.nan),
                         ("prediction", -math.inf), ("model_id", "m@v"), ("score", True), ("age", math.nan),
                         ("plan", math.inf), ("n", -math.inf),
                         ("prediction", 2**64), ("n", -(2**63) - 1)]:  # orjson writes 64-bit integers only
        events = [_prediction(i, rng) for i in range(50)]
        (events[17]["features"] if field in events[17]["features"] else events[17])[field] = value
        with pytest.raises(ContractError) as expected:
            validate_prediction(events[17])
        with pytest.raises(PublishError) as caught:
            client.records("predictions", events, 4)
        assert str(caught.value) == f"predictions event #17: {expected.value}"
        assert pack("predictions", events, 4, 500, 1 << 20) is None


def test_simulated_events_take_the_column_path_and_meet_their_labels() -> None:
    preds, labels = Simulation(SimulationConfig(events=3000, seed=4)).generate()
    for role, events in (("predictions", preds), ("ground-truth", labels)):
        records = pack(role, events, 6, 500, 1 << 20)  # type: ignore[arg-type]
        assert records is not None  # the fast path, not the per-event one
        sent = []
        for partition, raw in records:
            ids = codec.loads(raw)["columns"]["prediction_id"]
            assert len(ids) <= 500 and {partition_for(i, 6) for i in ids} == {partition}
            sent += ids
        assert sorted(sent) == sorted(e["prediction_id"] for e in events)


def test_an_event_over_the_record_limit_is_refused_and_the_others_split() -> None:
    rng = random.Random(2)
    events = [_prediction(i, rng) for i in range(40)]
    client = DriftstreamClient(Settings(), batch_size=40)
    small = pack("predictions", events, 1, 40, 2000)
    assert small is not None and len(small) > 1 and all(len(raw) <= 2000 for _, raw in small)
    assert small == _reference(client.prepare("predictions", events), 1, 40, 2000)
    assert small == encode_batches(client.prepare("predictions", events), 1, 40, 2000)
    events[5]["features"]["plan"] = "x" * 3000
    with pytest.raises(PublishError, match=rf"event {events[5]['prediction_id']!r} is \d+ bytes, over the 2000-byte"):
        pack("predictions", events, 1, 40, 2000)


def test_to_columns_of_dicts_is_to_columns_of_any_mapping() -> None:
    """``to_columns`` gathers ``dict`` events in C; other mappings take the general path,
    which is the reference."""
    rng = random.Random(3)
    for _ in range(200):
        events = [_prediction(i, rng) for i in range(rng.choice([1, 3, 9]))]
        for _ in range(rng.choice([0, 1, 2])):
            _mutate(rng.choice(events), rng, "predictions")
        proxies = [MappingProxyType({k: MappingProxyType(v) if type(v) is dict else v for k, v in e.items()})
                   for e in events]
        assert to_columns(events) == to_columns(proxies)


def test_encode_batches_packs_any_events_as_before() -> None:
    """Validated or not (``validate=False``), events of the same fields are packed a column
    at a time, as each chunk made columns would be; others the general way."""
    rng = random.Random(6)
    for _ in range(200):
        events = [_prediction(i, rng) for i in range(rng.choice([1, 4, 20]))]
        for _ in range(rng.choice([0, 1, 2])):
            _mutate(rng.choice(events), rng, "predictions")
        partitions, size = rng.choice([1, 4]), rng.choice([3, 500])
        try:
            expected = _reference(events, partitions, size, 1 << 20)
        except (KeyError, AttributeError, TypeError) as exc:  # no or no string prediction_id, JSON
            with pytest.raises(type(exc)):
                encode_batches(events, partitions, size, 1 << 20)
            continue
        assert encode_batches(events, partitions, size, 1 << 20) == expected
