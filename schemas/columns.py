"""Column batches: many events of one input topic in one Kafka record, a JSON array per field.

The SDK's record format. A column batch is a JSON object whose only key is ``"columns"``::

    {"columns": {"prediction_id": ["p1", "p2"], "model_id": "churn",
                 "timestamp": [1700000000.0, 1700000001.5], "prediction": [1, 0],
                 "score": [0.9, null], "features": {"age": [41, 37], "plan": ["pro", null]}}}

- Each field holds one value per event, an array as long as ``prediction_id``'s. A single
  value instead of an array (``"model_id": "churn"`` above) is that value for every event; a
  field left out is ``null`` for every event.
- ``features`` maps each feature name to its array; ``null`` there means the event lacks
  that feature, as it does in an event object.
- Event ``i`` of the batch is the event object ``{field: value i}`` (a ``null`` left out, so a
  required field that is ``null`` is reported missing). It is validated as that object
  would be: a bad event is dead-lettered with its index, and the others pass.

Against a JSON array of the same events, a column batch is about a third of the bytes, is
decoded two to three times faster, and is validated a column at a time
(:func:`fast_events`): one type check per column in C, and the per-event validator only
for a batch with something unusual in it (a string timestamp, an integer score, an error).

>>> batch = to_columns([
...     {"prediction_id": "p1", "model_id": "m", "timestamp": 1.0, "prediction": 1, "features": {"x": 0.5}},
...     {"prediction_id": "p2", "model_id": "m", "timestamp": 2.0, "prediction": 0, "features": {}},
... ])
>>> batch
{'columns': {'prediction_id': ['p1', 'p2'], 'model_id': 'm', 'timestamp': [1.0, 2.0], 'prediction': [1, 0], 'features': {'x': [0.5, None]}}}
>>> [(event["prediction_id"], event["features"]) for event in fast_events(batch["columns"], "predictions")]
[('p1', {'x': 0.5}), ('p2', {'x': None})]
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from itertools import chain, repeat
from typing import Any, Literal

from .limits import MAX_FEATURES, MAX_ID_LENGTH, MAX_TIMESTAMP

__all__ = ["BATCH_KEY", "ColumnsError", "fast_events", "is_column_batch", "to_columns", "to_rows"]

#: The one key of a column batch record.
BATCH_KEY = "columns"

Role = Literal["predictions", "ground-truth"]

_SCALARS = frozenset({str, int, float, bool})
_FEATURE_VALUES = frozenset({str, int, float, bool, type(None)})
_NUMBERS = frozenset({int, float})
_NONE = type(None)


class ColumnsError(ValueError):
    """A column batch whose shape is wrong (not a per-event problem): the whole record is
    rejected, with reason ``malformed_batch``."""


def is_column_batch(value: Any) -> bool:
    """Whether a decoded record value is a column batch (an event object never has only
    the key ``columns``)."""
    return type(value) is dict and len(value) == 1 and BATCH_KEY in value


def to_columns(events: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The events as a column batch, or ``None`` if they cannot be one (an event that is not
    an object, or whose ``features`` is not an object: send those as event objects).

    A field with the same value in every event becomes that single value."""
    if not events or not all(isinstance(e, Mapping) for e in events):
        return None
    names = list(dict.fromkeys(chain.from_iterable(events)))
    if "features" in names:
        rows = [e.get("features") or {} for e in events]
        if not all(isinstance(row, Mapping) for row in rows):
            return None
    columns: dict[str, Any] = {}
    for name in names:
        if name == "features":
            columns[name] = {f: [row.get(f) for row in rows] for f in dict.fromkeys(chain.from_iterable(rows))}
            continue
        column = [e.get(name) for e in events]
        columns[name] = column[0] if name != "prediction_id" and _all_same(column) else column
    return {BATCH_KEY: columns}


def _all_same(column: list[Any]) -> bool:
    first = column[0]
    if type(first) not in _FEATURE_VALUES:  # containers: leave them to the validator, as arrays
        return False
    return all(type(v) is type(first) and v == first for v in column)


def _length(columns: Mapping[str, Any]) -> int:
    ids = columns.get("prediction_id")
    if type(ids) is not list:
        raise ColumnsError("field 'prediction_id' of a column batch must be an array (one id per event)")
    return len(ids)


def _shape(columns: Any, role: Role) -> tuple[int, dict[str, Any], dict[str, list[Any]]]:
    """``(events, columns by field, feature columns)``, with every array checked for length."""
    if type(columns) is not dict:
        raise ColumnsError(f"{role}: '{BATCH_KEY}' must be an object of field name -> array")
    n = _length(columns)
    for name, column in columns.items():
        if name != "features" and type(column) is list and len(column) != n:
            raise ColumnsError(f"{role}: field '{name}' has {len(column)} values for {n} events")
    features = columns.get("features")
    if features is None or role != "predictions":  # ground truth has none: ignored, like any unknown key
        return n, columns, {}
    if type(features) is not dict:
        raise ColumnsError(f"{role}: field 'features' of a column batch must be an object of feature name -> array")
    for name, column in features.items():
        if type(column) is list and len(column) != n:
            raise ColumnsError(f"{role}: feature '{name}' has {len(column)} values for {n} events")
    return n, columns, features


def _column(value: Any, n: int) -> Sequence[Any]:
    return value if type(value) is list else repeat(value, n)  # type: ignore[return-value]


def to_rows(columns: dict[str, Any], role: Role) -> list[dict[str, Any]]:
    """The batch's event objects, in order: what is validated one by one when
    :func:`fast_events` does not take a batch. Raises :class:`ColumnsError`."""
    n, fields, features = _shape(columns, role)
    names = [name for name in fields if name != "features" or role != "predictions"]
    cols = [list(_column(fields[name], n)) for name in names]
    # null is "absent" (a required field then reads as missing), as in an event object
    rows = [{k: v for k, v in zip(names, values) if v is not None} for values in zip(*cols)]
    if role == "predictions" and fields.get("features") is not None:
        feature_names = list(features)
        feature_cols = [list(_column(features[f], n)) for f in feature_names]
        for row, values in zip(rows, zip(*feature_cols) if feature_names else repeat((), n)):
            row["features"] = dict(zip(feature_names, values))
    return rows


# --------------------------------------------------------------------------- fast path


def _ids(column: Any, n: int, optional: bool) -> Sequence[Any] | None:
    """The column if every value is a valid id (``None`` also when ``optional``)."""
    if type(column) is not list:
        if column is None:
            return repeat(None, n) if optional else None  # type: ignore[return-value]
        return repeat(column, n) if type(column) is str and 0 < len(column) <= MAX_ID_LENGTH else None  # type: ignore[return-value]
    types = set(map(type, column))
    if types == {str}:
        values = column
    elif optional and types <= {str, _NONE}:
        values = [v for v in column if v is not None]
    else:
        return None
    if values and (min(map(len, values)) == 0 or max(map(len, values)) > MAX_ID_LENGTH):
        return None
    return column


def _numbers(column: Any, n: int, low: float, high: float, high_open: bool, optional: bool) -> Sequence[Any] | None:
    """The column as floats if every value is a number in range (``None`` also when
    ``optional``); ``None`` if not. A single value stands for all ``n``."""
    if type(column) is not list:
        checked = _numbers([column], 1, low, high, high_open, optional)
        return None if checked is None else repeat(checked[0], n)  # type: ignore[index]
    types = set(map(type, column))
    allowed = _NUMBERS | {_NONE} if optional else _NUMBERS
    if not types <= allowed:
        return None
    values = [v for v in column if v is not None] if _NONE in types else column
    if values:
        smallest, largest = min(values), max(values)
        if smallest < low or largest > high or (high_open and largest >= high):
            return None
    if int in types:
        try:
            return [v if v is None else float(v) for v in column]
        except OverflowError:
            return None
    return column


def _scalars(column: Any, n: int) -> Sequence[Any] | None:
    if type(column) is not list:
        return repeat(column, n) if type(column) in _SCALARS else None  # type: ignore[return-value]
    return column if set(map(type, column)) <= _SCALARS else None


def _features(features: dict[str, Any], n: int) -> list[dict[str, Any]] | None:
    if len(features) > MAX_FEATURES:
        return None
    names = list(features)
    if any(not 0 < len(name) <= MAX_ID_LENGTH for name in names):
        return None
    columns = []
    for name in names:
        column = features[name]
        if type(column) is not list:
            if type(column) not in _FEATURE_VALUES:
                return None
            column = repeat(column, n)
        elif not set(map(type, column)) <= _FEATURE_VALUES:
            return None
        columns.append(column)
    if not names:
        return [{} for _ in range(n)]
    return [dict(zip(names, values)) for values in zip(*columns)]


def _fast_predictions(fields: dict[str, Any], features: dict[str, Any], n: int) -> list[dict[str, Any]] | None:
    ids = _ids(fields["prediction_id"], n, False)
    models = _ids(fields.get("model_id"), n, False)
    versions = _ids(fields.get("model_version"), n, True)
    times = _numbers(fields.get("timestamp"), n, 0.0, MAX_TIMESTAMP, True, False)
    predictions = _scalars(fields.get("prediction"), n)
    scores = _numbers(fields.get("score"), n, 0.0, 1.0, False, True)
    latencies = _numbers(fields.get("latency_ms"), n, 0.0, float("inf"), False, True)
    rows = _features(features, n)
    if ids is None or models is None or versions is None or times is None or predictions is None or scores is None or latencies is None or rows is None:
        return None
    return [
        {"prediction_id": p, "model_id": m, "model_version": v, "timestamp": t, "features": f,
         "prediction": y, "score": s, "latency_ms": lat}
        for p, m, v, t, f, y, s, lat in zip(ids, models, versions, times, rows, predictions, scores, latencies)
    ]


def _fast_ground_truth(fields: dict[str, Any], n: int) -> list[dict[str, Any]] | None:
    ids = _ids(fields["prediction_id"], n, False)
    labels = _scalars(fields.get("label"), n)
    times = _numbers(fields.get("timestamp"), n, 0.0, MAX_TIMESTAMP, True, False)
    models = _ids(fields.get("model_id"), n, True)
    if ids is None or labels is None or times is None or models is None:
        return None
    return [
        {"prediction_id": p, "label": y, "timestamp": t, "model_id": m}
        for p, y, t, m in zip(ids, labels, times, models)
    ]


def fast_events(
    columns: Any, role: Role, *, known_models: Container[str] | None = None
) -> list[dict[str, Any]] | None:
    """The batch's events, normalised exactly as :func:`schemas.parsing.validate_prediction`
    (or ``validate_ground_truth``) normalises each event object of :func:`to_rows`, when
    every column passes a check made a column at a time; ``None`` when one does not (a
    string timestamp, a ``null`` required field, an error, an unknown model): then validate
    :func:`to_rows` one event at a time. Raises :class:`ColumnsError` for a batch whose
    shape is wrong."""
    n, fields, features = _shape(columns, role)
    if n == 0:
        return []
    if role != "predictions":
        return _fast_ground_truth(fields, n)
    events = _fast_predictions(fields, features, n)
    if events is not None and known_models is not None and not all(m in known_models for m in set(_column(fields.get("model_id"), n))):
        return None  # an unknown model: the per-event path names each one
    return events
