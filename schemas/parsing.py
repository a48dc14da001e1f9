"""Strict, fast parsing of the input topics (``predictions`` and ``ground-truth``).

This is the hot path: every event of every model passes through :func:`decode_record`, so
the happy path is plain dict lookups and exact ``type(...) is`` checks; anything unusual
(subclasses, numpy scalars, ints where floats are usual, errors) falls through to slower,
careful helpers. No jsonschema at runtime and no exceptions for valid events.

Decoding splits a record into ``oks`` and ``errs`` (bytewax style): a bad event becomes a
:class:`RecordError`, which :func:`dead_letter_record` turns into a dead-letter event, and one
bad element of a batch never rejects the rest.

>>> raw = b'[{"prediction_id": "p1", "model_id": "m", "timestamp": 1700000000, "prediction": 1},'
>>> raw += b' {"prediction_id": "p2", "model_id": "m", "timestamp": "2023-11-14T22:13:20Z",'
>>> raw += b'  "prediction": 0, "score": 1.5}]'
>>> oks, errs = decode_record(raw, "predictions", max_bytes=1 << 20)
>>> [(index, event["prediction_id"], event["timestamp"]) for index, event in oks]
[(0, 'p1', 1700000000.0)]
>>> errs[0].index, errs[0].reason, errs[0].message
(1, 'out_of_range', "predictions: field 'score' must be a number in [0, 1], got 1.5")

Rules that are easy to miss:

* Unknown top-level keys are ignored (producers may be newer than consumers); they are not
  copied into the normalised event.
* ``null`` for an optional field means "absent"; ``null`` for a required field is ``wrong_type``.
* Booleans are never numbers: ``"score": true`` is ``wrong_type``.
* ``NaN``/``Infinity`` are not JSON, so orjson rejects them and ``1e400`` (which overflows a
  double) as ``malformed_json``; ``non_finite`` is only reachable from Python callers (SDK).
* Timestamps are epoch seconds (number) or RFC 3339 strings with ``Z`` or a ``+hh:mm`` offset
  (``T``, ``t`` or a space between date and time; leap second ``:60`` is read as the next
  second), normalised to float epoch seconds in ``[0, MAX_TIMESTAMP)``.
* ``model_version`` and ``model_id`` (when given) follow the same rule as ``prediction_id``:
  non-empty strings of at most :data:`MAX_ID_LENGTH` characters.
* A ranking model's ``prediction`` is an array of distinct item ids in rank order, best
  first; its ``label`` an array of the relevant item ids, or an object of item id -> gain
  (a number >= 0, for graded relevance). An item id is a string (as an id) or an integer,
  normalised to its decimal string, since an object's keys are strings: ``7`` and ``"7"``
  are one item. At most :data:`MAX_RANKED_ITEMS` items each.
"""

from __future__ import annotations

import base64
import numbers
import re
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import orjson

from . import codec
from .columns import ColumnsError, fast_columns, is_column_batch, rows, to_rows
from .errors import ContractError
from .ids import stable_id
from .limits import MAX_FEATURES, MAX_ID_LENGTH, MAX_RANKED_ITEMS, MAX_TIMESTAMP

__all__ = [
    "MAX_FEATURES",
    "MAX_ID_LENGTH",
    "MAX_RANKED_ITEMS",
    "MAX_TIMESTAMP",
    "RFC3339_PATTERN",
    "RecordError",
    "dead_letter_record",
    "decode_record",
    "decode_record_columns",
    "parse_timestamp",
    "validate_ground_truth",
    "validate_prediction",
]

#: The RFC 3339 date-time grammar we accept; the JSON Schema files carry the same pattern.
RFC3339_PATTERN = (
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))$"
)
_RFC3339 = re.compile(RFC3339_PATTERN.replace("$", r"\Z"))

_PRED = "predictions"
_GT = "ground-truth"
_ID_EXPECTED = f"a non-empty string of at most {MAX_ID_LENGTH} characters"
_MODEL_ID_EXPECTED = f"a non-empty string of at most {MAX_ID_LENGTH} characters without '@'"
_TS_RANGE = f"epoch seconds in [0, {MAX_TIMESTAMP:.0f})"
_TS_EXPECTED = f"{_TS_RANGE} or an RFC 3339 date-time string"
_SCALAR_EXPECTED = "a number, string or boolean"
_PREDICTION_EXPECTED = "a number, string, boolean or an array of item ids (a ranking)"
_LABEL_EXPECTED = "a number, string, boolean, an array of relevant item ids or an object of item id -> gain"
_ITEM_EXPECTED = f"an item id (a non-empty string of at most {MAX_ID_LENGTH} characters, or an integer)"
_GAIN_EXPECTED = "a gain (a finite number >= 0)"
_FEATURE_VALUE_EXPECTED = "a number, string, boolean or null"
_FEATURES_EXPECTED = "an object of feature name -> number, string, boolean or null"
_INF = float("inf")
#: The integers JSON producers can send us: orjson reads and writes 64-bit integers only (it
#: reads a longer one as a float, and refuses to write one).
_INT_MIN, _INT_END = -(1 << 63), 1 << 64
_INT_EXPECTED = "an integer within 64 bits (-2**63 to 2**64 - 1), or a float"
_PLAIN_FEATURE_TYPES = frozenset({str, int, bool, type(None)})


# --------------------------------------------------------------------------- messages


def _json_type(value: Any) -> str:
    """The JSON name of ``value``'s type, for messages readable by non-Python producers."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


def _shown(value: Any) -> str:
    """A short rendering of a bad value (long strings and integers are summarised, not echoed)."""
    if isinstance(value, str) and len(value) > 64:
        return f"a string of {len(value)} characters"
    if type(value) is int and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    return repr(value)


def _missing(topic: str, name: str) -> ContractError:
    return ContractError("missing_field", f"{topic}: missing required field '{name}'", name)


def _wrong_type(topic: str, name: str, expected: str, value: Any) -> ContractError:
    return ContractError(
        "wrong_type", f"{topic}: field '{name}' must be {expected}, got {_json_type(value)}", name
    )


def _bad_value(reason: str, topic: str, name: str, expected: str, value: Any) -> ContractError:
    return ContractError(
        reason, f"{topic}: field '{name}' must be {expected}, got {_shown(value)}", name
    )


def _non_finite(topic: str, name: str, value: Any) -> ContractError:
    return _bad_value("non_finite", topic, name, "a finite number", value)


# --------------------------------------------------------------------------- slow paths


def _as_real(topic: str, name: str, expected: str, value: Any) -> float:
    """A float from any non-bool real number (numpy included), or raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or _is_numpy_bool(value):
        raise _wrong_type(topic, name, expected, value)
    try:
        result = float(value)
    except OverflowError:  # an int beyond the double range
        raise _bad_value("out_of_range", topic, name, expected, value) from None
    if result - result != 0.0:
        raise _non_finite(topic, name, value)
    return result


def _is_numpy_bool(value: Any) -> bool:
    dtype = getattr(value, "dtype", None)
    return dtype is not None and getattr(dtype, "kind", None) == "b"


def _ident(topic: str, name: str, value: Any, obj: Mapping, required: bool) -> str | None:
    if value is None:
        if not required:
            return None
        if name not in obj:
            raise _missing(topic, name)
        raise _wrong_type(topic, name, _ID_EXPECTED, value)
    if not isinstance(value, str):
        raise _wrong_type(topic, name, _ID_EXPECTED, value)
    if not value or len(value) > MAX_ID_LENGTH:
        raise _bad_value("out_of_range", topic, name, _ID_EXPECTED, value)
    if name == "model_id" and "@" in value:
        # '@' separates the version in a model key: "a@b" would alias model "a" version "b"
        raise _bad_value("out_of_range", topic, name, _MODEL_ID_EXPECTED, value)
    return str(value)


def _scalar(topic: str, name: str, value: Any, obj: Mapping | None) -> Any:
    """A number/string/bool (``obj`` given: required field) or also ``None`` (``obj`` None)."""
    if value is None:
        if obj is None:
            return None
        if name not in obj:
            raise _missing(topic, name)
        raise _wrong_type(topic, name, _SCALAR_EXPECTED, value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool) or _is_numpy_bool(value):
        return bool(value)
    if isinstance(value, numbers.Integral):
        value = int(value)
        if not _INT_MIN <= value < _INT_END:
            raise _bad_value("out_of_range", topic, name, _INT_EXPECTED, value)
        return value
    expected = _SCALAR_EXPECTED if obj is not None else _FEATURE_VALUE_EXPECTED
    if isinstance(value, numbers.Real):
        return _as_real(topic, name, expected, value)
    raise _wrong_type(topic, name, expected, value)


def _item(topic: str, name: str, value: Any) -> str:
    """An item id of a ranking as its string (an integer is its decimal string)."""
    if isinstance(value, str):
        if not 0 < len(value) <= MAX_ID_LENGTH:
            raise _bad_value("out_of_range", topic, name, _ITEM_EXPECTED, value)
        return str(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and not _is_numpy_bool(value):
        return str(int(value))
    raise _wrong_type(topic, name, _ITEM_EXPECTED, value)


def _too_many(topic: str, name: str, n: int) -> ContractError:
    return ContractError(
        "out_of_range", f"{topic}: field '{name}' must hold at most {MAX_RANKED_ITEMS} items, got {n}", name
    )


def _items(topic: str, name: str, value: list | tuple) -> list[str]:
    """Distinct item ids (a ranked prediction, or a label's relevant items)."""
    if len(value) > MAX_RANKED_ITEMS:
        raise _too_many(topic, name, len(value))
    items = [_item(topic, f"{name}[{i}]", v) for i, v in enumerate(value)]
    if len(set(items)) != len(items):
        seen: set[str] = set()
        repeated = next(item for item in items if item in seen or seen.add(item))  # type: ignore[func-returns-value]
        raise ContractError(
            "out_of_range", f"{topic}: field '{name}' must not repeat an item, got {_shown(repeated)} twice", name
        )
    return items


def _gains(topic: str, value: Mapping) -> dict[str, float]:
    """A ranking label's graded relevances: item id -> gain >= 0."""
    if len(value) > MAX_RANKED_ITEMS:
        raise _too_many(topic, "label", len(value))
    result = {}
    for key, gain in value.items():
        item = _item(topic, "label", key)
        result[item] = _optional_range(topic, f"label.{item}", gain, _GAIN_EXPECTED, 0.0, _INF)
        if result[item] is None:
            raise _wrong_type(topic, f"label.{item}", _GAIN_EXPECTED, gain)
    return result


def _prediction(value: Any, obj: Mapping) -> Any:
    """A prediction: a scalar, or a ranking (an array of item ids, best first)."""
    if isinstance(value, (list, tuple)):
        return _items(_PRED, "prediction", value)
    if value is None and "prediction" in obj or not isinstance(value, (str, numbers.Real, type(None))):
        raise _wrong_type(_PRED, "prediction", _PREDICTION_EXPECTED, value)
    return _scalar(_PRED, "prediction", value, obj)


def _label(value: Any, obj: Mapping) -> Any:
    """A label: a scalar, a ranking's relevant items, or its graded relevances."""
    if isinstance(value, (list, tuple)):
        return _items(_GT, "label", value)
    if isinstance(value, Mapping):
        return _gains(_GT, value)
    if value is None and "label" in obj or not isinstance(value, (str, numbers.Real, type(None))):
        raise _wrong_type(_GT, "label", _LABEL_EXPECTED, value)
    return _scalar(_GT, "label", value, obj)


def _optional_range(
    topic: str, name: str, value: Any, expected: str, low: float, high: float
) -> float | None:
    if value is None:
        return None
    result = _as_real(topic, name, expected, value)
    if not low <= result <= high:
        raise _bad_value("out_of_range", topic, name, expected, value)
    return result


def _timestamp(topic: str, value: Any, obj: Mapping) -> float:
    if value is None:
        if "timestamp" not in obj:
            raise _missing(topic, "timestamp")
        raise _wrong_type(topic, "timestamp", _TS_EXPECTED, value)
    if isinstance(value, str):
        return parse_timestamp(value, topic)
    result = _as_real(topic, "timestamp", _TS_EXPECTED, value)
    if not 0.0 <= result < MAX_TIMESTAMP:
        raise _bad_value("out_of_range", topic, "timestamp", _TS_RANGE, value)
    return result


def parse_timestamp(text: str, topic: str = "timestamp") -> float:
    """Parse an RFC 3339 date-time with ``Z`` or a numeric offset to float epoch seconds.

    >>> parse_timestamp("2024-05-01T12:00:00Z"), parse_timestamp("2024-05-01T14:00:00.25+02:00")
    (1714564800.0, 1714564800.25)
    """
    match = _RFC3339.match(text)
    if match is not None:
        year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = (
            match.groups()
        )
        leap = second == "60"
        try:
            moment = datetime(
                int(year), int(month), int(day), int(hour), int(minute),
                59 if leap else int(second), tzinfo=timezone.utc,
            )  # fmt: skip
        except ValueError:
            moment = None
        if moment is not None and (zulu or (int(off_h) < 24 and int(off_m) < 60)):
            offset = 0 if zulu else (int(off_h) * 3600 + int(off_m) * 60) * (
                -1 if sign == "-" else 1
            )
            result = moment.timestamp() - offset + leap + (float(fraction) if fraction else 0.0)
            if not 0.0 <= result < MAX_TIMESTAMP:
                raise _bad_value("out_of_range", topic, "timestamp", _TS_RANGE, text)
            return result
    raise _bad_value(
        "invalid_timestamp",
        topic,
        "timestamp",
        "an RFC 3339 date-time with a UTC offset (e.g. '2024-05-01T12:00:00Z')",
        text,
    )


def _features(topic: str, value: Any) -> dict:
    if not isinstance(value, Mapping):
        raise _wrong_type(topic, "features", _FEATURES_EXPECTED, value)
    if len(value) > MAX_FEATURES:
        raise ContractError(
            "too_many_features",
            f"{topic}: field 'features' must have at most {MAX_FEATURES} entries, got {len(value)}",
            "features",
        )
    result = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise _wrong_type(topic, "features", "an object with string feature names", key)
        if not key or len(key) > MAX_ID_LENGTH:
            raise ContractError(
                "out_of_range",
                f"{topic}: feature names must be {_ID_EXPECTED}, got {_shown(key)}",
                "features",
            )
        result[str(key)] = _scalar(topic, f"features.{key}", item, None)
    return result


def _not_an_object(topic: str, what: str, value: Any) -> ContractError:
    return ContractError(
        "not_an_object", f"{topic}: {what} must be a JSON object, got {_json_type(value)}"
    )


# --------------------------------------------------------------------------- validators


def validate_prediction(obj: Any) -> dict:
    """Validate one ``predictions`` event and return a new, normalised dict.

    The result has exactly the keys ``prediction_id``, ``model_id``, ``model_version``
    (``None`` if absent), ``timestamp`` (float epoch seconds), ``features`` (a new dict),
    ``prediction``, ``score`` and ``latency_ms`` (``None`` if absent). Raises
    :class:`~schemas.errors.ContractError`.

    >>> validate_prediction({"prediction_id": "p", "model_id": "m", "timestamp": 0, "prediction": True})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'prediction_id': 'p', 'model_id': 'm', 'model_version': None, 'timestamp': 0.0,
     'features': {}, 'prediction': True, 'score': None, 'latency_ms': None}
    """
    if type(obj) is not dict:
        if not isinstance(obj, Mapping):
            raise _not_an_object(_PRED, "an event", obj)
        obj = dict(obj)
    get = obj.get

    prediction_id = get("prediction_id")
    if type(prediction_id) is not str or not 0 < len(prediction_id) <= MAX_ID_LENGTH:
        prediction_id = _ident(_PRED, "prediction_id", prediction_id, obj, True)
    model_id = get("model_id")
    if type(model_id) is not str or not 0 < len(model_id) <= MAX_ID_LENGTH or "@" in model_id:
        model_id = _ident(_PRED, "model_id", model_id, obj, True)
    model_version = get("model_version")
    if model_version is not None and (
        type(model_version) is not str or not 0 < len(model_version) <= MAX_ID_LENGTH
    ):
        model_version = _ident(_PRED, "model_version", model_version, obj, False)

    timestamp = get("timestamp")
    kind = type(timestamp)
    if kind is int and 0 <= timestamp < MAX_TIMESTAMP:
        timestamp = float(timestamp)
    elif kind is not float or not 0.0 <= timestamp < MAX_TIMESTAMP:
        timestamp = _timestamp(_PRED, timestamp, obj)

    features = get("features")
    if features is None:
        features = {}
    elif type(features) is not dict or len(features) > MAX_FEATURES:
        features = _features(_PRED, features)
    else:
        for key, value in features.items():
            kind = type(value)
            if kind is float:
                if value - value != 0.0:  # NaN or inf
                    break
            elif kind is int:
                if not _INT_MIN <= value < _INT_END:
                    break
            elif kind not in _PLAIN_FEATURE_TYPES:
                break
            if type(key) is not str or not 0 < len(key) <= MAX_ID_LENGTH:
                break
        else:
            features = features.copy()
        if features is get("features"):  # the loop broke: let the careful path say why
            features = _features(_PRED, features)

    prediction = get("prediction")
    kind = type(prediction)
    if not (kind is str or (kind is int and _INT_MIN <= prediction < _INT_END) or kind is bool
            or (kind is float and prediction - prediction == 0.0)):
        prediction = _prediction(prediction, obj)

    score = get("score")
    if score is not None and (type(score) is not float or not 0.0 <= score <= 1.0):
        score = _optional_range(_PRED, "score", score, "a number in [0, 1]", 0.0, 1.0)
    latency_ms = get("latency_ms")
    if type(latency_ms) is int and 0 <= latency_ms <= 9007199254740992:  # 2**53: exact as float
        latency_ms = float(latency_ms)
    elif latency_ms is not None and (type(latency_ms) is not float or not 0.0 <= latency_ms < _INF):
        latency_ms = _optional_range(_PRED, "latency_ms", latency_ms, "a number >= 0", 0.0, _INF)

    return {
        "prediction_id": prediction_id,
        "model_id": model_id,
        "model_version": model_version,
        "timestamp": timestamp,
        "features": features,
        "prediction": prediction,
        "score": score,
        "latency_ms": latency_ms,
    }


def validate_ground_truth(obj: Any) -> dict:
    """Validate one ``ground-truth`` event and return a new, normalised dict.

    The result has exactly the keys ``prediction_id``, ``label``, ``timestamp`` (float epoch
    seconds) and ``model_id`` (``None`` if absent).

    >>> validate_ground_truth({"prediction_id": "p", "label": "cat", "timestamp": "1970-01-01T00:00:01Z"})
    {'prediction_id': 'p', 'label': 'cat', 'timestamp': 1.0, 'model_id': None}
    """
    if type(obj) is not dict:
        if not isinstance(obj, Mapping):
            raise _not_an_object(_GT, "an event", obj)
        obj = dict(obj)
    get = obj.get

    prediction_id = get("prediction_id")
    if type(prediction_id) is not str or not 0 < len(prediction_id) <= MAX_ID_LENGTH:
        prediction_id = _ident(_GT, "prediction_id", prediction_id, obj, True)
    label = get("label")
    kind = type(label)
    if not (kind is str or (kind is int and _INT_MIN <= label < _INT_END) or kind is bool
            or (kind is float and label - label == 0.0)):
        label = _label(label, obj)
    timestamp = get("timestamp")
    kind = type(timestamp)
    if kind is int and 0 <= timestamp < MAX_TIMESTAMP:
        timestamp = float(timestamp)
    elif kind is not float or not 0.0 <= timestamp < MAX_TIMESTAMP:
        timestamp = _timestamp(_GT, timestamp, obj)
    model_id = get("model_id")
    if model_id is not None and (
        type(model_id) is not str or not 0 < len(model_id) <= MAX_ID_LENGTH or "@" in model_id
    ):
        model_id = _ident(_GT, "model_id", model_id, obj, False)
    return {"prediction_id": prediction_id, "label": label, "timestamp": timestamp, "model_id": model_id}


_VALIDATORS: dict[str, Callable[[Any], dict]] = {
    _PRED: validate_prediction,
    _GT: validate_ground_truth,
}


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class RecordError:
    """One rejected event (or a whole rejected record).

    ``index`` is the position in a batch record, ``None`` for a single-event record or a
    record-level error; ``raw`` is the whole record for record-level errors and
    ``codec.dumps(element)`` for a bad batch element.
    """

    index: int | None
    reason: str
    message: str
    raw: bytes


def unknown_model(topic: str, model_id: Any) -> ContractError:
    return ContractError(
        "unknown_model",
        f"{topic}: field 'model_id' must name a configured model, got {_shown(model_id)}",
        "model_id",
    )


def decode_record(
    raw: bytes,
    topic_role: Literal["predictions", "ground-truth"],
    max_bytes: int,
    *,
    known_models: Container[str] | None = None,
) -> tuple[list[tuple[int | None, dict]], list[RecordError]]:
    """Decode one Kafka record value into ``(oks, errs)``.

    A record is one JSON event object (index ``None``), a JSON array of event objects (a
    batch; index = position in the array) or a column batch (:mod:`schemas.columns`; index
    = position in its columns). ``oks`` holds ``(index, normalised_event)``;
    ``errs`` one :class:`RecordError` per bad event, or a single one for a record-level
    problem (``oversized``, checked before decoding; ``malformed_json``; ``empty_batch``;
    ``not_an_object``; ``malformed_batch``, a column batch of the wrong shape). With
    ``known_models``, events whose ``model_id`` is not in it are rejected as
    ``unknown_model`` (ground truth without ``model_id`` passes).

    >>> decode_record(b"[]", "ground-truth", 100)
    ([], [RecordError(index=None, reason='empty_batch', message='ground-truth: a batch record must not be an empty JSON array', raw=b'[]')])
    """
    columns, oks, errs = decode_record_columns(raw, topic_role, max_bytes, known_models=known_models)
    if columns is not None:
        return list(enumerate(rows(columns, topic_role))), []
    return oks, errs


def decode_record_columns(
    raw: bytes,
    topic_role: Literal["predictions", "ground-truth"],
    max_bytes: int,
    *,
    known_models: Container[str] | None = None,
) -> tuple[dict[str, Any] | None, list[tuple[int | None, dict]], list[RecordError]]:
    """:func:`decode_record` without building an event object per event where it need not:
    ``(columns, [], [])`` for a column batch whose every column passes the checks made a
    column at a time (:func:`schemas.columns.fast_columns`: normalised columns, event ``i``
    of which is ``oks[i]`` of :func:`decode_record`), else ``(None, oks, errs)`` as
    :func:`decode_record` returns them.

    >>> columns, oks, errs = decode_record_columns(b'{"columns": {"prediction_id": ["a"], "label": 1, "timestamp": 5}}',
    ...                                            "ground-truth", 1000)
    >>> columns, oks, errs
    ({'prediction_id': ['a'], 'label': [1], 'timestamp': [5.0], 'model_id': [None]}, [], [])
    """
    validate = _VALIDATORS.get(topic_role)
    if validate is None:
        raise ValueError(f"topic_role must be 'predictions' or 'ground-truth', got {topic_role!r}")
    if type(raw) is not bytes:
        raw = bytes(raw)
    size = len(raw)
    if size > max_bytes:
        message = f"record of {size} bytes exceeds the {max_bytes}-byte limit"
        return None, [], [RecordError(None, "oversized", message, raw)]
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        message = f"{topic_role}: record is not valid JSON: {exc.msg} at character {exc.pos}"
        return None, [], [RecordError(None, "malformed_json", message, raw)]

    kind = type(value)
    if kind is dict and is_column_batch(value):
        try:
            columns = fast_columns(value["columns"], topic_role, known_models=known_models)
            if columns is None:  # something unusual or wrong: event by event, as an array
                value, kind = to_rows(value["columns"], topic_role), list
        except ColumnsError as exc:
            return None, [], [RecordError(None, "malformed_batch", str(exc), raw)]
        if columns == {}:
            return None, [], [RecordError(None, "empty_batch", f"{topic_role}: a column batch must hold at least one event", raw)]
        if columns is not None:
            return columns, [], []
    oks, errs = _decode_value(value, kind, raw, topic_role, validate, known_models)
    return None, oks, errs


def _decode_value(
    value: Any, kind: type, raw: bytes, topic_role: str, validate: Callable[[Any], dict],
    known_models: Container[str] | None,
) -> tuple[list[tuple[int | None, dict]], list[RecordError]]:
    """An event object or an array of them, validated one by one."""
    if kind is dict:
        try:
            event = validate(value)
            if known_models is not None and not _known(event, known_models):
                raise unknown_model(topic_role, event["model_id"])
        except ContractError as exc:
            return [], [RecordError(None, exc.reason, str(exc), raw)]
        return [(None, event)], []
    if kind is not list:
        message = (
            f"{topic_role}: a record must be a JSON object or an array of objects, "
            f"got {_json_type(value)}"
        )
        return [], [RecordError(None, "not_an_object", message, raw)]
    if not value:
        message = f"{topic_role}: a batch record must not be an empty JSON array"
        return [], [RecordError(None, "empty_batch", message, raw)]

    oks: list[tuple[int | None, dict]] = []
    errs: list[RecordError] = []
    append = oks.append
    index = 0
    for element in value:
        try:
            if type(element) is not dict:
                raise _not_an_object(topic_role, f"batch element [{index}]", element)
            event = validate(element)
            if known_models is not None and not _known(event, known_models):
                raise unknown_model(topic_role, event["model_id"])
            append((index, event))
        except ContractError as exc:
            errs.append(RecordError(index, exc.reason, str(exc), codec.dumps(element)))
        index += 1
    return oks, errs


def _known(event: dict, known_models: Container[str]) -> bool:
    model_id = event["model_id"]
    return model_id is None or model_id in known_models


def dead_letter_record(
    origin_topic: str,
    partition: int | None,
    offset: int | None,
    error: RecordError,
    now: float,
    *,
    max_raw_bytes: int = 65536,
) -> dict:
    """Build a ``dead-letter`` event for ``error`` found at ``origin_topic[partition]@offset``
    (``partition`` and ``offset`` are ``None`` for what was never read from a topic).

    ``dead_letter_id`` depends only on the origin, the batch index and the reason, so replaying
    the same record yields the same id. ``raw_b64`` carries at most ``max_raw_bytes`` of the
    raw bytes (an oversized record must not make an oversized dead letter); ``raw_size`` is
    the full length. ``timestamp`` is ``now``, the wall clock when dead-lettered.

    >>> error = RecordError(None, "malformed_json", "predictions: ...", b"{")
    >>> record = dead_letter_record("predictions", 3, 42, error, now=1.0)
    >>> record["origin"], record["raw_b64"], record["raw_size"]
    ({'topic': 'predictions', 'partition': 3, 'offset': 42, 'index': None}, 'ew==', 1)
    """
    raw = error.raw
    return {
        "dead_letter_id": stable_id(
            "dead-letter", origin_topic, partition, offset, error.index, error.reason
        ),
        "origin": {
            "topic": origin_topic,
            "partition": partition,
            "offset": offset,
            "index": error.index,
        },
        "reason": error.reason,
        "message": error.message,
        "raw_b64": base64.b64encode(raw[:max_raw_bytes]).decode("ascii"),
        "raw_size": len(raw),
        "timestamp": float(now),
    }
