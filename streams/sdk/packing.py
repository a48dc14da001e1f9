"""Events into Kafka records a column at a time: the SDK publisher's fast path.

Validating each event as an object (:func:`schemas.parsing.validate_prediction`) and then
turning the validated objects into columns cost the publisher 7 to 9 µs of CPU per
prediction (12 features), all of it Python per event. When a model server sends what it
usually sends (``dict`` events with the same fields and the same feature names),
:func:`pack` gathers the fields into columns in C (:func:`schemas.columns.gather`),
validates them a column at a time with the worker's own check
(:func:`schemas.columns.fast_columns`, plus NaN and infinity), and gathers each record's
events with one ``itemgetter`` per column: about 3.5 µs. Anything else (an unusual value,
a bad event, a numpy scalar, features that differ between events) returns ``None`` and the
caller validates event by event, which names the bad event and its fault.

The records are byte for byte those of validating each event and packing the results
(``tests/unit/sdk/test_packing.py`` checks it on random events), so the worker, the
partitioning and the error messages are the same on both paths.

>>> events = [{"prediction_id": f"p{i}", "model_id": "m", "timestamp": 1, "prediction": i % 2,
...            "features": {"x": i / 4}} for i in range(4)]
>>> [(partition, raw[:64]) for partition, raw in pack("predictions", events, 1, 500, 1 << 20)]
[(0, b'{"columns":{"prediction_id":["p0","p1","p2","p3"],"model_id":"m"')]
>>> events[2]["timestamp"] = float("nan")  # the validator says why, naming the event
>>> pack("predictions", events, 1, 500, 1 << 20) is None
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any, Literal, TypeVar

import numpy as np

from schemas import codec
from schemas.columns import (
    GROUND_TRUTH_FIELDS,
    PREDICTION_FIELDS,
    ColumnsError,
    batch_value,
    fast_columns,
    gather,
)
from schemas.partitioning import partitions_for

from streams.exceptions import PublishError

T = TypeVar("T")

Role = Literal["predictions", "ground-truth"]

#: The normalised columns that may hold floats, which a Python caller (not JSON) can make
#: NaN or infinite.
_FLOAT_FIELDS = {"predictions": ("timestamp", "prediction", "score", "latency_ms"), "ground-truth": ("timestamp", "label")}


def pack(role: Role, events: Sequence[Any], partitions: int, batch_size: int, max_bytes: int) -> list[tuple[int, bytes]] | None:
    """The events validated and packed as column batch records ``(partition, bytes)`` (at
    most ``batch_size`` events and ``max_bytes`` each, one partition of ``prediction_id``
    each, in the order of their first event), or ``None`` when they must be validated one
    by one. Raises :class:`PublishError` for one event over ``max_bytes``."""
    columns = gather(events)
    if columns is None or not all(type(name) is str for name in columns.get("features", ())):
        return None
    try:
        checked = fast_columns(columns, role)
    except ColumnsError:
        return None
    if not checked or not _finite(checked, role):
        return None
    names = PREDICTION_FIELDS if role == "predictions" else GROUND_TRUTH_FIELDS
    try:
        return encode_columns({name: checked[name] for name in names}, partitions, batch_size, max_bytes)
    except TypeError:  # orjson's refusal of an integer beyond 64 bits: the validator names it
        return None


def _finite(columns: dict[str, Any], role: Role) -> bool:
    """Whether no float of the columns is NaN or infinite. :func:`fast_columns` reads JSON,
    which has neither, so it does not look; the per-event validator does."""
    floats = [columns[name] for name in _FLOAT_FIELDS[role]]
    floats += columns.get("features", {}).values()
    for column in floats:
        try:
            total = sum(column)  # NaN or inf in, NaN or inf out (a huge sum only sends it the slow way)
        except TypeError:  # strings or None beside the numbers
            if float not in set(map(type, column)):
                continue
            total = sum([v for v in column if type(v) is float])
        if total - total != 0:
            return False
    return True


def encode_columns(columns: dict[str, Any], partitions: int, batch_size: int, max_bytes: int) -> list[tuple[int, bytes]]:
    """Columns (every field a list, ``features`` a dict of lists: normalised ones, or
    :func:`gather`'s) as column batch records: each partition's events in order,
    ``batch_size`` at a time, halved until a record fits ``max_bytes``."""
    keys = partitions_for(columns["prediction_id"], partitions)
    fields = {name: column for name, column in columns.items() if name != "features"}
    features = columns.get("features")

    def encode(index: Sequence[int]) -> bytes:
        # one itemgetter gathers every column's values at ``index`` (in C, one pass each,
        # into tuples, which orjson writes as arrays)
        take = itemgetter(*index) if len(index) > 1 else lambda column: (column[index[0]],)
        chunk: dict[str, Any] = {name: take(column) for name, column in fields.items()}
        if features is not None:
            chunk["features"] = {name: take(column) for name, column in features.items()}
        return codec.dumps(batch_value({name: chunk[name] for name in columns}))

    # each partition's events in order, the partitions in the order of their first event
    order = np.argsort(keys, kind="stable")
    bounds = np.flatnonzero(np.diff(keys[order])) + 1
    groups = sorted(np.split(order, bounds), key=lambda group: group[0])
    records: list[tuple[int, bytes]] = []
    for group in groups:
        partition = int(keys[group[0]])
        for start in range(0, len(group), batch_size):
            index = group[start : start + batch_size].tolist()
            records.extend((partition, raw) for raw in fit(index, encode, max_bytes, lambda one: columns["prediction_id"][one[0]]))
    return records


def fit(events: Sequence[T], encode: Callable[[Sequence[T]], bytes], max_bytes: int,
        event_id: Callable[[Sequence[T]], Any]) -> list[bytes]:
    """``events`` encoded as one record, or halved until each record fits ``max_bytes``;
    :class:`PublishError` names the one event (``event_id`` of it) that cannot fit alone."""
    raw = encode(events)
    if len(raw) <= max_bytes:
        return [raw]
    if len(events) == 1:
        raise PublishError(
            f"event {event_id(events)!r} is {len(raw)} bytes, over the "
            f"{max_bytes}-byte record limit (DRIFTSTREAM_MAX_MESSAGE_BYTES)"
        )
    half = len(events) // 2
    return fit(events[:half], encode, max_bytes, event_id) + fit(events[half:], encode, max_bytes, event_id)
