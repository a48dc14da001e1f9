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
(:func:`fast_columns`): one type check per column in C, and the per-event validator only
for a batch with something unusual in it (a string timestamp, an integer score, an error).

>>> batch = to_columns([
...     {"prediction_id": "p1", "model_id": "m", "timestamp": 1.0, "prediction": 1, "features": {"x": 0.5}},
...     {"prediction_id": "p2", "model_id": "m", "timestamp": 2.0, "prediction": 0, "features": {}},
... ])
>>> batch
{'columns': {'prediction_id': ['p1', 'p2'], 'model_id': 'm', 'timestamp': [1.0, 2.0], 'prediction': [1, 0], 'features': {'x': [0.5, None]}}}
>>> [(event["prediction_id"], event["features"]) for event in rows(fast_columns(batch["columns"], "predictions"), "predictions")]
[('p1', {'x': 0.5}), ('p2', {'x': None})]
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, Literal

import numpy as np

from .limits import MAX_FEATURES, MAX_ID_LENGTH, MAX_TIMESTAMP

__all__ = [
    "BATCH_KEY",
    "GROUND_TRUTH_FIELDS",
    "PREDICTION_FIELDS",
    "ColumnsError",
    "batch_value",
    "concat_columns",
    "event_columns",
    "fast_columns",
    "gather",
    "is_column_batch",
    "object_array",
    "rows",
    "take",
    "to_columns",
    "to_rows",
]

#: The one key of a column batch record.
BATCH_KEY = "columns"

Role = Literal["predictions", "ground-truth"]

_SCALARS = frozenset({str, int, float, bool})
_FEATURE_VALUES = frozenset({str, int, float, bool, type(None)})
_NUMBERS = frozenset({int, float})
_NONE = type(None)

#: The fields of a normalised prediction, in order (each a column of normalised columns).
PREDICTION_FIELDS = ("prediction_id", "model_id", "model_version", "timestamp", "features", "prediction", "score", "latency_ms")
#: The fields of a normalised ground-truth event.
GROUND_TRUTH_FIELDS = ("prediction_id", "label", "timestamp", "model_id")


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
    columns = gather(events)
    if columns is not None:
        return batch_value(columns)
    if not events or not all(isinstance(e, Mapping) for e in events):
        return None
    names = list(dict.fromkeys(chain.from_iterable(events)))
    columns = {}
    if "features" in names:
        rows = [e.get("features") or {} for e in events]
        if not all(isinstance(row, Mapping) for row in rows):
            return None
    for name in names:
        if name == "features":
            columns[name] = {f: [row.get(f) for row in rows] for f in dict.fromkeys(chain.from_iterable(rows))}
        else:
            columns[name] = [e.get(name) for e in events]
    return batch_value(columns)


def gather(events: Sequence[Any]) -> dict[str, Any] | None:
    """The events' fields as columns, a list per field (``features`` a dict of feature name
    -> list), gathered in C, when every event is a ``dict`` with the same keys and every
    ``features`` a ``dict`` with the same names (what one model server sends); ``None``
    otherwise. Nothing is checked or collapsed: :func:`fast_columns` takes the result as it
    takes a decoded batch's ``columns``.

    >>> gather([{"prediction_id": "a", "features": {"x": 1}}, {"features": {"x": 2}, "prediction_id": "b"}])
    {'prediction_id': ['a', 'b'], 'features': {'x': [1, 2]}}
    >>> gather([{"prediction_id": "a", "score": 0.5}, {"prediction_id": "b", "model_id": "m"}]) is None
    True
    """
    columns = _uniform(events)
    if columns is None:
        return None
    if "features" in columns:
        features = _uniform(columns["features"])
        if features is None:
            if set(map(type, columns["features"])) != {dict} or set(map(len, columns["features"])) != {0}:
                return None
            features = {}
        columns["features"] = features
    return columns


def _uniform(rows: Sequence[Any]) -> dict[str, list[Any]] | None:
    """The rows' columns when every row is a ``dict`` with the same keys (in any order).

    A column at a time (``map(itemgetter(name), rows)``) rather than a tuple per row
    (``zip(*map(itemgetter(*names), rows))``): a tuple per row is a container the garbage
    collector tracks, and its collections over a model server's live objects made that four
    times slower."""
    if not rows or set(map(type, rows)) != {dict}:
        return None
    names = list(rows[0])
    if not names or set(map(len, rows)) != {len(names)}:
        return None
    try:
        return {name: list(map(itemgetter(name), rows)) for name in names}
    except KeyError:  # as many keys, not the same ones
        return None


def batch_value(columns: Mapping[str, Any]) -> dict[str, Any]:
    """Columns (a list per field, ``features`` a dict of lists) as the value of a column
    batch record: a field other than ``prediction_id`` and the features with the same value
    in every event travels once, as that value.

    >>> batch_value({"prediction_id": ["a", "b"], "model_id": ["m", "m"], "features": {"x": [1, 1]}})
    {'columns': {'prediction_id': ['a', 'b'], 'model_id': 'm', 'features': {'x': [1, 1]}}}
    """
    return {BATCH_KEY: {
        name: column if name in ("prediction_id", "features") or not _all_same(column) else column[0]
        for name, column in columns.items()
    }}


def _all_same(column: list[Any]) -> bool:
    """Whether every value is the first, of its type (``1``, ``1.0`` and ``True`` are
    equal, not the same); counted in C."""
    first = column[0]
    if type(first) not in _FEATURE_VALUES or first != first:  # containers (left to the validator), NaN
        return False
    return column.count(first) == len(column) and len(set(map(type, column))) == 1


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
    :func:`fast_columns` does not take a batch. Raises :class:`ColumnsError`."""
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


def _model_ids(column: Any, n: int, optional: bool) -> Sequence[Any] | None:
    """:func:`_ids` of model ids, which never contain '@' (the model key's separator)."""
    checked = _ids(column, n, optional)
    if checked is None:
        return None
    distinct = set(column) if type(column) is list else {column}  # a few models, many events
    distinct.discard(None)
    return None if any("@" in v for v in distinct) else checked


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


def _features(features: dict[str, Any], n: int) -> dict[str, list[Any]] | None:
    if len(features) > MAX_FEATURES:
        return None
    columns: dict[str, list[Any]] = {}
    for name, column in features.items():
        if not 0 < len(name) <= MAX_ID_LENGTH:
            return None
        if type(column) is not list:
            if type(column) not in _FEATURE_VALUES:
                return None
            column = [column] * n
        elif not set(map(type, column)) <= _FEATURE_VALUES:
            return None
        columns[name] = column
    return columns


def _listed(column: Sequence[Any]) -> list[Any]:
    return column if type(column) is list else list(column)


def _fast_predictions(fields: dict[str, Any], features: dict[str, Any], n: int) -> dict[str, Any] | None:
    ids = _ids(fields["prediction_id"], n, False)
    models = _model_ids(fields.get("model_id"), n, False)
    versions = _ids(fields.get("model_version"), n, True)
    times = _numbers(fields.get("timestamp"), n, 0.0, MAX_TIMESTAMP, True, False)
    predictions = _scalars(fields.get("prediction"), n)
    scores = _numbers(fields.get("score"), n, 0.0, 1.0, False, True)
    latencies = _numbers(fields.get("latency_ms"), n, 0.0, float("inf"), False, True)
    feature_columns = _features(features, n)
    if ids is None or models is None or versions is None or times is None or predictions is None or scores is None or latencies is None or feature_columns is None:
        return None
    return {
        "prediction_id": _listed(ids), "model_id": _listed(models), "model_version": _listed(versions),
        "timestamp": _listed(times), "prediction": _listed(predictions), "score": _listed(scores),
        "latency_ms": _listed(latencies), "features": feature_columns,
    }


def _fast_ground_truth(fields: dict[str, Any], n: int) -> dict[str, Any] | None:
    ids = _ids(fields["prediction_id"], n, False)
    labels = _scalars(fields.get("label"), n)
    times = _numbers(fields.get("timestamp"), n, 0.0, MAX_TIMESTAMP, True, False)
    models = _model_ids(fields.get("model_id"), n, True)
    if ids is None or labels is None or times is None or models is None:
        return None
    return {"prediction_id": _listed(ids), "label": _listed(labels), "timestamp": _listed(times), "model_id": _listed(models)}


def fast_columns(
    columns: Any, role: Role, *, known_models: Container[str] | None = None
) -> dict[str, Any] | None:
    """The batch's events as normalised columns (:data:`PREDICTION_FIELDS` or
    :data:`GROUND_TRUTH_FIELDS`, each a list with one value per event; ``features`` a dict of
    feature name -> list), when every column passes a check made a column at a time;
    ``None`` when one does not (a string timestamp, a ``null`` required field, an error, an
    unknown model): then validate :func:`to_rows` one event at a time. Event ``i`` of the
    result is exactly what :func:`schemas.parsing.validate_prediction` (or
    ``validate_ground_truth``) makes of event ``i`` of :func:`to_rows`. Raises
    :class:`ColumnsError` for a batch whose shape is wrong."""
    n, fields, features = _shape(columns, role)
    if n == 0:
        return {}
    if role != "predictions":
        return _fast_ground_truth(fields, n)
    result = _fast_predictions(fields, features, n)
    if result is not None and known_models is not None and not all(m in known_models for m in set(result["model_id"])):
        return None  # an unknown model: the per-event path names each one
    return result


def rows(columns: Mapping[str, Any], role: Role) -> list[dict[str, Any]]:
    """Normalised columns (:func:`fast_columns`, :func:`event_columns`) as event objects.

    >>> rows({"prediction_id": ["a"], "label": [1], "timestamp": [2.0], "model_id": [None]}, "ground-truth")
    [{'prediction_id': 'a', 'label': 1, 'timestamp': 2.0, 'model_id': None}]
    """
    if not columns:
        return []
    if role != "predictions":
        return [dict(zip(GROUND_TRUTH_FIELDS, values)) for values in zip(*(columns[f] for f in GROUND_TRUTH_FIELDS))]
    features = columns["features"]
    n = len(columns["prediction_id"])
    feature_rows = [dict(zip(features, values)) for values in zip(*features.values())] if features else [{} for _ in range(n)]
    return [dict(zip(PREDICTION_FIELDS, values)) for values in zip(*(columns[f] if f != "features" else feature_rows for f in PREDICTION_FIELDS))]


def event_columns(events: Sequence[Mapping[str, Any]], role: Role) -> dict[str, Any]:
    """Normalised event objects (what the validators return) as normalised columns; a
    feature an event lacks is ``None`` in its column.

    >>> event_columns([{"prediction_id": "a", "model_id": "m", "model_version": None, "timestamp": 1.0,
    ...     "prediction": 1, "score": None, "latency_ms": None, "features": {"x": 1.5}},
    ...     {"prediction_id": "b", "model_id": "m", "model_version": None, "timestamp": 2.0,
    ...     "prediction": 0, "score": 0.5, "latency_ms": 3.0, "features": {"y": "u", "x": 2.5}}], "predictions")["features"]
    {'x': [1.5, 2.5], 'y': [None, 'u']}
    """
    if role != "predictions":
        return {f: [e.get(f) for e in events] for f in GROUND_TRUTH_FIELDS}
    columns: dict[str, Any] = {f: [e[f] for e in events] for f in PREDICTION_FIELDS if f != "features"}
    feature_rows = [e["features"] for e in events]
    features = _uniform_columns(feature_rows)
    if features is None:  # features differ between events: None where one lacks a name
        features = {name: [row.get(name) for row in feature_rows] for name in dict.fromkeys(chain.from_iterable(feature_rows))}
    columns["features"] = features
    return columns


def object_array(values: Sequence[Any]) -> np.ndarray:
    """``values`` as a numpy object array (to gather by an index array in C); never an
    array of more dimensions, whatever the values are."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def take(values: Sequence[Any], index: Sequence[int]) -> list[Any]:
    """The values at ``index``, gathered in C.

    >>> take(["a", "b", "c"], [2, 0])
    ['c', 'a']
    """
    return object_array(values)[np.asarray(index, dtype=np.intp)].tolist()  # type: ignore[no-any-return]


def _uniform_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]] | None:
    """The feature columns when every row has the same names (as the events of a column
    batch do), gathered in C; ``None`` otherwise.

    >>> _uniform_columns([{"x": 1, "y": 2}, {"y": 4, "x": 3}])
    {'x': [1, 3], 'y': [2, 4]}
    >>> _uniform_columns([{"x": 1, "y": 2}, {"x": 3, "z": 4}]) is None
    True
    """
    names = list(rows[0]) if rows else []
    if len(names) < 2 or any(len(row) != len(names) for row in rows):
        return None
    try:
        return dict(zip(names, map(list, zip(*map(itemgetter(*names), rows)))))
    except KeyError:  # as many names, not the same ones
        return None


def concat_columns(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Columns of several batches end to end (each a dict of field -> list, and optionally
    ``features``, a dict of feature name -> list); a feature missing from a batch is
    ``None`` there (as :func:`event_columns` fills a feature an event lacks).

    >>> a = {"prediction_id": ["a"], "features": {"x": [0.5]}}
    >>> b = {"prediction_id": ["b", "c"], "features": {"y": ["u", "v"]}}
    >>> concat_columns([a, b])
    {'prediction_id': ['a', 'b', 'c'], 'features': {'x': [0.5, None, None], 'y': [None, 'u', 'v']}}
    """
    parts = [p for p in parts if p]
    if len(parts) == 1:
        return dict(parts[0])
    if not parts:
        return {}
    merged: dict[str, Any] = {name: _joined(p[name] for p in parts) for name in parts[0] if name != "features"}
    if "features" in parts[0]:
        sizes = [len(next(v for k, v in p.items() if k != "features")) for p in parts]
        names = list(dict.fromkeys(chain.from_iterable(p["features"] for p in parts)))
        merged["features"] = {
            name: _joined(p["features"].get(name) or [None] * size for p, size in zip(parts, sizes))
            for name in names
        }
    return merged


def _joined(pieces: Iterable[Sequence[Any]]) -> list[Any]:
    """The pieces end to end: a list extended by a list copies it whole, four times faster
    than walking ``chain.from_iterable`` item by item (the reorder buffer merges every
    model's partitions this way on each release)."""
    out: list[Any] = []
    for piece in pieces:
        out += piece
    return out

