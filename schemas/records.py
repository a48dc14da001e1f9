"""One Python record per topic; the JSON Schema beside it (``<topic>.schema.json``) says the
same for non-Python producers, and ``tests/unit/schemas`` keeps the two in agreement.

Input records (:class:`Prediction`, :class:`GroundTruth`) validate through the same functions
as the hot path (:mod:`schemas.parsing`), in ``__post_init__`` and in ``from_dict``, so the SDK
and the stream reject the same events with the same messages.

>>> p = Prediction("p1", "fraud", timestamp="2024-05-01T12:00:00Z", prediction=1, score=0.9)
>>> p.timestamp, p.features
(1714564800.0, {})
>>> Prediction.from_dict(p.to_dict()) == p
True
>>> Prediction("p1", "fraud", timestamp=0, prediction=1, score=1.5)
Traceback (most recent call last):
...
schemas.errors.ContractError: predictions: field 'score' must be a number in [0, 1], got 1.5
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from .errors import REASONS, ContractError
from .parsing import validate_ground_truth, validate_prediction
from .topics import CONTRACTS

__all__ = [
    "ACTIONS",
    "DIRECTIONS",
    "KINDS",
    "SEVERITIES",
    "STATUSES",
    "TOPIC_RECORDS",
    "Alert",
    "DeadLetter",
    "DriftEvent",
    "GroundTruth",
    "ModelUpdate",
    "Origin",
    "Prediction",
    "Ranked",
    "Relevance",
    "Scalar",
    "Window",
]

#: A prediction, a label or a feature value.
Scalar = Union[float, int, str, bool]
#: A ranking model's prediction: item ids, best first (schemas/parsing.py).
Ranked = list[str]
#: A ranking model's label: the relevant item ids, or item id -> gain.
Relevance = Union[list[str], dict[str, float]]

DIRECTIONS: tuple[str, ...] = ("above", "below")
KINDS: tuple[str, ...] = (
    "data_drift",
    "prediction_drift",
    "concept_drift",
    "performance",
    "anomaly",
    "data_quality",
    "estimated_performance",
    "latency",
)
SEVERITIES: tuple[str, ...] = ("P0", "P1", "P2", "P3")
STATUSES: tuple[str, ...] = ("firing", "escalated", "resolved")
ACTIONS: tuple[str, ...] = (
    "update_requested",
    "challenger_started",
    "promoted",
    "rejected",
    "rolled_back",
    "served",
    "rebaseline_requested",
    "comparison",
)


def _build(cls: type, values: dict) -> Any:
    """Make a frozen, slotted record from already-validated values, skipping ``__post_init__``."""
    record = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(record, name, value)
    return record


class _Record:
    """``to_dict``/``from_dict`` for the output records (plain data in, plain data out)."""

    __slots__ = ()
    #: the contract's name in messages (the topic, or ``topic.field`` for nested records).
    _contract: ClassVar[str]
    #: field name -> allowed values, checked by ``from_dict``.
    _choices: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: field name -> nested record class.
    _nested: ClassVar[dict[str, type]] = {}

    def to_dict(self) -> dict:
        """The record as JSON-ready plain data (nested records become dicts, lists are copied)."""
        result = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, _Record):
                value = value.to_dict()
            elif isinstance(value, (list, dict)):
                value = value.copy()
            result[f.name] = value
        return result

    @classmethod
    def from_dict(cls, data: Any) -> Any:
        """Build the record from plain data; raises :class:`ContractError` if a field is
        missing, an enumerated field has an unknown value or the data is not an object.
        Unknown keys are ignored."""
        if not isinstance(data, dict):
            raise ContractError(
                "not_an_object", f"{cls._contract}: an event must be a JSON object, got {type(data).__name__}"
            )
        values = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name not in data:
                if f.default is not dataclasses.MISSING:
                    values[f.name] = f.default
                    continue
                raise ContractError(
                    "missing_field", f"{cls._contract}: missing required field '{f.name}'", f.name
                )
            value = data[f.name]
            choices = cls._choices.get(f.name)
            if choices is not None and value not in choices:
                raise ContractError(
                    "out_of_range",
                    f"{cls._contract}: field '{f.name}' must be one of {', '.join(choices)}, got {value!r}",
                    f.name,
                )
            nested = cls._nested.get(f.name)
            if nested is not None:
                value = nested.from_dict(value)
            elif isinstance(value, (list, dict)):
                value = value.copy()
            values[f.name] = value
        return _build(cls, values)


# --------------------------------------------------------------------------- input topics


@dataclass(frozen=True, slots=True)
class Prediction:
    """A ``predictions`` event: one model output, with the features it was computed from.

    ``timestamp`` accepts epoch seconds or an RFC 3339 string and is stored as float epoch
    seconds; construction validates exactly as the stream does.
    """

    topic: ClassVar[str] = "predictions"

    prediction_id: str
    model_id: str
    timestamp: float
    prediction: Scalar | Ranked
    model_version: str | None = None
    features: dict[str, Scalar | None] = field(default_factory=dict)
    score: float | None = None
    latency_ms: float | None = None

    def __post_init__(self) -> None:
        values = validate_prediction({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict:
        """The event as a JSON-ready dict (the normalised wire form)."""
        return {
            "prediction_id": self.prediction_id,
            "model_id": self.model_id,
            "model_version": self.model_version,
            "timestamp": self.timestamp,
            "features": dict(self.features),
            "prediction": self.prediction,
            "score": self.score,
            "latency_ms": self.latency_ms,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Prediction:
        """Validate ``data`` like the stream does and build the record."""
        return _build(cls, validate_prediction(data))


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """A ``ground-truth`` event: the label of an earlier prediction, arriving later."""

    topic: ClassVar[str] = "ground-truth"

    prediction_id: str
    label: Scalar | Relevance
    timestamp: float
    model_id: str | None = None

    def __post_init__(self) -> None:
        values = validate_ground_truth(
            {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        )
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict:
        """The event as a JSON-ready dict (the normalised wire form)."""
        return {
            "prediction_id": self.prediction_id,
            "label": self.label,
            "timestamp": self.timestamp,
            "model_id": self.model_id,
        }

    @classmethod
    def from_dict(cls, data: Any) -> GroundTruth:
        """Validate ``data`` like the stream does and build the record."""
        return _build(cls, validate_ground_truth(data))


# --------------------------------------------------------------------------- output topics


@dataclass(frozen=True, slots=True)
class Window(_Record):
    """The event-time span a detector's decision covers (epoch seconds, inclusive)."""

    _contract: ClassVar[str] = "drift-events.window"

    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Origin(_Record):
    """Where a dead-lettered record came from: ``topic[partition]@offset``, batch ``index``
    (``partition`` and ``offset`` are ``None`` for what was never read from a topic: an
    alert the webhook sink could not deliver names the alerts topic)."""

    _contract: ClassVar[str] = "dead-letter.origin"

    topic: str
    partition: int | None
    offset: int | None
    index: int | None


@dataclass(frozen=True, slots=True)
class DriftEvent(_Record):
    """A ``drift-events`` event: one detector decision for one model (and feature).

    ``statistic`` is compared with ``threshold`` in ``direction`` ("above": drift when the
    statistic is above the threshold, e.g. PSI; "below": when below, e.g. a p-value).
    ``position`` counts the events the model has seen; ``timestamp`` is the event time of the
    triggering event and ``window`` the event-time span the decision covers.
    """

    topic: ClassVar[str] = "drift-events"
    _contract: ClassVar[str] = "drift-events"
    _choices: ClassVar[dict[str, tuple[str, ...]]] = {"kind": KINDS, "direction": DIRECTIONS}
    _nested: ClassVar[dict[str, type]] = {"window": Window}

    event_id: str
    model_id: str
    model_version: str | None
    detector: str
    kind: str
    feature: str | None
    statistic: float
    threshold: float
    direction: str
    p_value: float | None
    drift: bool
    severity_band: str | None
    position: int
    timestamp: float
    window: Window
    #: the segment of the model the decision is about (``segment_by``); absent: the whole model
    segment: str | None = None


@dataclass(frozen=True, slots=True)
class Alert(_Record):
    """An ``alerts`` event: a firing or resolved alert, grouped into an incident.

    ``alert_id`` is deterministic (:func:`schemas.ids.stable_id`); ``related`` lists the drift
    event ids grouped into ``incident_id``; ``timestamp`` is the event time of the event that
    triggered it.
    """

    topic: ClassVar[str] = "alerts"
    _contract: ClassVar[str] = "alerts"
    _choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "severity": SEVERITIES,
        "status": STATUSES,
        "kind": KINDS,
        "direction": DIRECTIONS,
    }

    alert_id: str
    model_id: str
    model_version: str | None
    severity: str
    status: str
    kind: str
    detector: str
    feature: str | None
    value: float
    threshold: float
    direction: str
    message: str
    timestamp: float
    incident_id: str
    related: list[str]
    position: int
    #: the segment of the model the incident is in (``segment_by``); absent: the whole model
    segment: str | None = None


@dataclass(frozen=True, slots=True)
class ModelUpdate(_Record):
    """A ``model-updates`` event: a step of the retrain / challenger / promotion workflow."""

    topic: ClassVar[str] = "model-updates"
    _contract: ClassVar[str] = "model-updates"
    _choices: ClassVar[dict[str, tuple[str, ...]]] = {"action": ACTIONS}

    event_id: str
    model_id: str
    model_version: str | None
    action: str
    reason: str
    alert_ids: list[str]
    from_timestamp: float
    to_timestamp: float
    metrics: dict[str, Any]
    new_version: str | None
    artifact_path: str | None
    artifact_sha256: str | None
    timestamp: float


@dataclass(frozen=True, slots=True)
class DeadLetter(_Record):
    """A ``dead-letter`` event: a rejected record (or batch element), its reason and origin.

    ``raw_b64`` holds the rejected bytes (at most a configured prefix, see
    :func:`schemas.parsing.dead_letter_record`), ``raw_size`` their full length, and
    ``timestamp`` the wall clock when it was dead-lettered.
    """

    topic: ClassVar[str] = "dead-letter"
    _contract: ClassVar[str] = "dead-letter"
    _choices: ClassVar[dict[str, tuple[str, ...]]] = {"reason": tuple(sorted(REASONS))}
    _nested: ClassVar[dict[str, type]] = {"origin": Origin}

    dead_letter_id: str
    origin: Origin
    reason: str
    message: str
    raw_b64: str
    raw_size: int
    timestamp: float


_BY_TOPIC: dict[str, type] = {cls.topic: cls for cls in (Prediction, GroundTruth, DriftEvent, Alert, ModelUpdate, DeadLetter)}

#: topic name -> record class, for the agreement test and for tools, in the order of
#: :data:`schemas.topics.CONTRACTS` (a contract topic without a record fails here, at import).
TOPIC_RECORDS: dict[str, type] = {name: _BY_TOPIC[name] for name in CONTRACTS}
