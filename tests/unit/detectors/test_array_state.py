"""Arrays in detector state: exact, compact, and never anything but numbers."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from detectors import registry
from detectors._state import decode_array, encode_array
from detectors.exceptions import StateError


@pytest.mark.parametrize(
    "values",
    [
        np.array([0.0, 1.0, 1.0, 0.0]),  # stored as bytes
        np.array([0.5, -1e300, 3.0]),
        np.array([np.nan, np.inf, -np.inf, -0.0, 5e-324]),
        np.array([-0.0, 1.0]),  # the sign of zero survives
        np.array([3, 70_000, -2], dtype=np.int64),
        np.array([2**40], dtype=np.int64),
        np.arange(6, dtype=np.float64).reshape(3, 2),
        np.empty(0),
    ],
)
def test_arrays_round_trip_bit_for_bit_through_json(values: np.ndarray) -> None:
    restored = decode_array(orjson.loads(orjson.dumps(encode_array(values))))
    assert restored.dtype == values.dtype and restored.shape == values.shape
    assert restored.tobytes() == values.tobytes()
    assert restored.flags.writeable


def test_small_integer_values_are_stored_in_a_byte_each() -> None:
    window = np.random.default_rng(1).integers(0, 10, 1000).astype(np.float64)
    state = encode_array(window)
    assert state["stored"] == "|u1"
    assert len(orjson.dumps(state)) < len(orjson.dumps(window.tolist())) / 2


def test_a_plain_list_from_older_state_is_still_read() -> None:
    assert decode_array([1, 2, 3], np.int64).tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    "state, message",
    [
        ({"dtype": "|O", "shape": [1], "stored": "|O", "b64": "AA=="}, "is not one of"),
        ({"dtype": "<f8", "shape": [2], "stored": "<f8", "b64": "not base64!"}, "malformed"),
        ({"dtype": "<f8", "shape": [5], "stored": "|u1", "b64": "AAEB"}, "malformed"),
        ({"dtype": "<f8", "stored": "|u1", "b64": "AAEB"}, "malformed"),
    ],
)
def test_bad_array_state_is_refused_with_a_reason(state: dict, message: str) -> None:
    with pytest.raises(StateError, match=message):
        decode_array(state)


def test_a_detector_state_written_with_lists_still_loads() -> None:
    rng = np.random.default_rng(3)
    detector = registry.build({"type": "psi", "reference": rng.normal(0, 1, 500), "window": 100, "step": 50})
    detector.update_many(rng.normal(0, 1, 130))
    state = detector.to_state()
    legacy = orjson.loads(orjson.dumps(state))
    legacy["state"]["window"] = decode_array(state["state"]["window"]).tolist()
    for key, value in legacy["state"]["reference"].items():
        if isinstance(value, dict):
            legacy["state"]["reference"][key] = decode_array(value).tolist()
    restored = registry.from_state(legacy)
    assert restored.to_state() == state
