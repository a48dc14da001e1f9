"""Scoring a run against annotated drifts: detected or missed, delay, false alarms.

An annotated drift (``--drifts DRIFTS.json``) says where a drift starts in event time::

    [{"model_id": "churn", "timestamp": 1700000240, "kind": "concept"},
     {"model_id": "churn", "timestamp": 1700000120, "width": 60, "kind": "data", "feature": "age"}]

**The rule.** A detection is the *onset* of a detector's drift: a drift event with
``drift: true`` after the same detector last said no drift (or never spoke). For the
``alerts`` row a detection is an alert member starting to fire (its first drift event).
A detection counts for an annotated drift of its model when the drift is *relevant* to
the detector and the detection's event time lies in ``[timestamp, timestamp + width +
tolerance_s]``; the first such detection is the drift's detection, later ones in the same
interval are repeats (neither detections nor false alarms). A detection in no relevant
interval is a **false alarm**. Relevance: a ``concept`` drift is relevant to concept-drift
and performance detectors; a ``data`` drift with a ``feature`` to the data-drift detector
of that feature; a ``data`` drift without one to every data- and prediction-drift detector.

**Delays.** In event time: the detecting event's time minus the drift's ``timestamp`` (for
label-driven detectors the detecting event is a joined pair, whose time is its
prediction's). In events: the index of the detecting event minus the index of the first
event at or after the drift's start, counted in the detector's own stream (predictions for
data and prediction drift and for ``alerts``, labelled predictions for concept drift and
performance). False alarms are per 10,000 events of that same stream.

**Baselines.** ``always alarm`` (a detection at every prediction) and ``never alarm`` are
scored the same way with every drift of the model relevant, so a detector's numbers can
be read against "detects everything, instantly, and cries wolf constantly" and "silent".

>>> drifts = [Drift("m", 100.0, kind="concept")]
>>> timelines = {("m", "pairs"): [float(t) for t in range(200)],
...              ("m", "predictions"): [float(t) for t in range(200)]}
>>> hits = [Detection("m", "adwin", "concept_drift", None, 30.0, "pairs"),
...         Detection("m", "adwin", "concept_drift", None, 112.0, "pairs")]
>>> row = score(hits, drifts, timelines, tolerance_s=50.0)[0]
>>> row["detected"], row["delays_events"], row["false_alarms"], row["false_alarms_per_10k"]
(1, [12], 1, 50.0)
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas import codec

from streams.exceptions import ConfigError

DRIFT_KINDS = ("concept", "data")

#: Which detection kinds each annotated drift kind is relevant to (data: see ``_relevant``).
#: (the label-free estimate falls with a covariate shift that hurts the model, and with a
#: concept drift that moves its scores)
_RELEVANT_KINDS = {"concept": ("concept_drift", "performance", "estimated_performance"),
                   "data": ("data_drift", "prediction_drift", "estimated_performance")}

#: Label-driven detection kinds; the others run on the prediction stream.
PAIR_KINDS = ("concept_drift", "performance")

ALERTS = "alerts"
ALWAYS = "baseline: always alarm"
NEVER = "baseline: never alarm"

#: The rule of the module docstring in one sentence, for reports.
SCORING_RULE = (
    "a detection (a detector's drift onset, or an alert member starting to fire) counts for an "
    "annotated drift of its model and kind when its event time is in [timestamp, timestamp + width "
    "+ tolerance]; the first one is the detection, later ones in that interval are repeats; a "
    "detection in no such interval is a false alarm; delays are measured to the detecting event, in "
    "event time and in events of the detector's own stream (predictions, or labelled predictions "
    "for concept drift and performance); false alarms are per 10,000 events of that stream"
)

#: How runs with several configs are ranked (best first).
RANKING_RULE = (
    "configs are ranked on their alerts: annotated drifts detected (more first), then false "
    "alarms per 10,000 predictions (fewer first), then mean detection delay in event time "
    "(shorter first)"
)


@dataclass(frozen=True)
class Drift:
    """One annotated drift: where it starts (event time) and how long it takes to settle."""

    model_id: str
    timestamp: float
    width: float = 0.0
    kind: str = "concept"
    feature: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in DRIFT_KINDS:
            raise ValueError(f"kind must be one of {DRIFT_KINDS}, got {self.kind!r}")
        if not (math.isfinite(self.timestamp) and math.isfinite(self.width) and self.width >= 0):
            raise ValueError(f"timestamp must be finite and width >= 0, got {self.timestamp!r}, {self.width!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "timestamp": self.timestamp, "width": self.width,
                "kind": self.kind, "feature": self.feature}


def load_drifts(path: str | Path) -> list[Drift]:
    """Read a JSON list of annotated drifts; errors name the entry and the field."""
    try:
        data = codec.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read drift annotations {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a JSON list of drifts, got {type(data).__name__}")
    drifts = []
    for i, entry in enumerate(data):
        where = f"{path}: drift [{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected an object with model_id, timestamp, kind")
        unknown = set(entry) - {"model_id", "timestamp", "width", "kind", "feature"}
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
        try:
            drifts.append(Drift(
                model_id=str(entry["model_id"]), timestamp=float(entry["timestamp"]),
                width=float(entry.get("width", 0.0)), kind=str(entry.get("kind", "concept")),
                feature=None if entry.get("feature") is None else str(entry["feature"]),
            ))
        except KeyError as exc:
            raise ConfigError(f"{where}: missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return drifts


@dataclass(frozen=True)
class Detection:
    """One detection onset: who detected, when (event time), in which stream."""

    model_id: str
    detector: str
    kind: str
    feature: str | None
    timestamp: float
    stream: str  # "predictions" | "pairs"


def stream_of(kind: str) -> str:
    return "pairs" if kind in PAIR_KINDS else "predictions"


def detections_from(drift_events: Iterable[Mapping[str, Any]], alerts: Iterable[Mapping[str, Any]]) -> list[Detection]:
    """Onsets of every detector (from drift events) and alert-member firings (``alerts``)."""
    found: list[Detection] = []
    in_drift: dict[tuple[Any, ...], bool] = {}
    by_id: dict[str, Mapping[str, Any]] = {}
    for event in drift_events:
        by_id[event["event_id"]] = event
        key = (event["model_id"], event["model_version"], event["kind"], event["detector"], event["feature"])
        if event["drift"] and not in_drift.get(key, False):
            found.append(Detection(event["model_id"], event["detector"], event["kind"], event["feature"],
                                   float(event["timestamp"]), stream_of(event["kind"])))
        in_drift[key] = bool(event["drift"])
    members_seen: set[tuple[Any, ...]] = set()
    for alert in alerts:
        if alert["status"] == "resolved":
            continue
        first: dict[tuple[Any, ...], float] = {}
        for event_id in alert["related"]:
            event = by_id.get(event_id)
            if event is None or not event["drift"]:
                continue
            member = (alert["alert_id"], event["kind"], event["detector"], event["feature"])
            first[member] = min(first.get(member, math.inf), float(event["timestamp"]))
        for member, ts in sorted(first.items(), key=lambda item: item[1]):
            if member not in members_seen:
                members_seen.add(member)
                found.append(Detection(alert["model_id"], ALERTS, member[1], member[3], ts, stream_of(member[1])))
    return found


def _relevant(drift: Drift, kind: str | None, feature: str | None) -> bool:
    """Whether ``drift`` is one a detector of ``kind`` (None: a baseline) should find."""
    if kind is None:
        return True
    if kind not in _RELEVANT_KINDS[drift.kind]:
        return False
    if drift.kind == "data" and drift.feature is not None:
        return kind == "data_drift" and feature == drift.feature
    return True


def _index_at_or_after(timeline: Sequence[float], ts: float) -> int:
    return bisect_left(timeline, ts)


def _index_of(timeline: Sequence[float], ts: float) -> int:
    return max(0, bisect_right(timeline, ts) - 1)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _row(
    model_id: str, detector: str, stream: str, detections: Iterable[tuple[float, str | None, str | None]],
    relevant: Sequence[Drift], timeline: Sequence[float], tolerance_s: float,
) -> dict[str, Any]:
    """Score one row's detections ``(event time, kind, feature)`` against its relevant drifts."""
    detected_at: dict[int, float] = {}
    false_alarms = 0
    for ts, kind, feature in sorted(detections, key=lambda d: d[0]):
        hits = [i for i, d in enumerate(relevant)
                if _relevant(d, kind, feature) and d.timestamp <= ts <= d.timestamp + d.width + tolerance_s]
        if not hits:
            false_alarms += 1
        for i in hits:
            detected_at.setdefault(i, ts)
    return _summary(model_id, detector, stream, relevant, detected_at, false_alarms, timeline)


def _summary(
    model_id: str, detector: str, stream: str, relevant: Sequence[Drift], detected_at: Mapping[int, float],
    false_alarms: int, timeline: Sequence[float],
) -> dict[str, Any]:
    per_drift = []
    for i, drift in enumerate(relevant):
        ts = detected_at.get(i)
        per_drift.append({
            **drift.to_dict(), "detected": ts is not None, "detected_at": ts,
            "delay_s": None if ts is None else ts - drift.timestamp,
            "delay_events": None if ts is None else _index_of(timeline, ts) - _index_at_or_after(timeline, drift.timestamp),
        })
    delays_s = [p["delay_s"] for p in per_drift if p["detected"]]
    delays_events = [p["delay_events"] for p in per_drift if p["detected"]]
    events = len(timeline)
    return {
        "model_id": model_id, "detector": detector, "stream": stream,
        "relevant_drifts": len(per_drift), "detected": len(delays_s), "missed": len(per_drift) - len(delays_s),
        "delays_s": delays_s, "delays_events": delays_events,
        "mean_delay_s": _mean(delays_s), "mean_delay_events": _mean(delays_events),
        "false_alarms": false_alarms, "events": events,
        "false_alarms_per_10k": 1e4 * false_alarms / events if events else None,
        "drifts": per_drift,
    }


def _always(model_id: str, relevant: Sequence[Drift], timeline: Sequence[float], tolerance_s: float) -> dict[str, Any]:
    """The always-alarm baseline, computed from the timeline instead of one detection per event."""
    detected_at: dict[int, float] = {}
    inside = [False] * len(timeline)
    for i, drift in enumerate(relevant):
        lo = _index_at_or_after(timeline, drift.timestamp)
        hi = bisect_right(timeline, drift.timestamp + drift.width + tolerance_s)
        if lo < hi:
            detected_at[i] = timeline[lo]
            inside[lo:hi] = [True] * (hi - lo)
    return _summary(model_id, ALWAYS, "predictions", relevant, detected_at, inside.count(False), timeline)


def score(
    detections: Iterable[Detection], drifts: Sequence[Drift],
    timelines: Mapping[tuple[str, str], Sequence[float]], tolerance_s: float,
    watched: Iterable[tuple[str, str, str, str | None]] = (),
) -> list[dict[str, Any]]:
    """One row per (model, detector), the ``alerts`` row and both baselines, per model.

    ``timelines`` holds the sorted event times of each ``(model_id, stream)``; ``watched``
    names ``(model_id, detector, kind, feature)`` that get a row even if they never fired.
    """
    if not tolerance_s >= 0:
        raise ValueError(f"tolerance_s must be >= 0, got {tolerance_s}")
    rows_of: dict[tuple[str, str, str, str | None], list[Detection]] = {
        (model, detector, kind, feature): [] for model, detector, kind, feature in watched
    }
    alerts_of: dict[str, list[Detection]] = {}
    for det in detections:
        if det.detector == ALERTS:
            alerts_of.setdefault(det.model_id, []).append(det)
        else:
            rows_of.setdefault((det.model_id, det.detector, det.kind, det.feature), []).append(det)
    models = sorted({m for m, _ in timelines} | {k[0] for k in rows_of} | set(alerts_of) | {d.model_id for d in drifts})
    rows = []
    for model in models:
        mine = [d for d in drifts if d.model_id == model]
        predictions = timelines.get((model, "predictions"), [])
        for (row_model, detector, kind, feature), dets in sorted(rows_of.items(), key=lambda item: str(item[0])):
            if row_model != model:
                continue
            stream = stream_of(kind)
            label = detector if feature is None else f"{detector}[{feature}]"
            rows.append(_row(
                model, label, stream, [(d.timestamp, d.kind, d.feature) for d in dets],
                [d for d in mine if _relevant(d, kind, feature)], timelines.get((model, stream), []), tolerance_s,
            ) | {"kind": kind})
        alerts = [(d.timestamp, d.kind, d.feature) for d in alerts_of.get(model, [])]
        rows.append(_row(model, ALERTS, "predictions", alerts, mine, predictions, tolerance_s) | {"kind": None})
        rows.append(_always(model, mine, predictions, tolerance_s) | {"kind": None})
        rows.append(_row(model, NEVER, "predictions", [], mine, predictions, tolerance_s) | {"kind": None})
    return rows


def config_summary(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``alerts`` rows of one config, added up over models: what ranking compares."""
    alerts = [r for r in rows if r["detector"] == ALERTS]
    delays = [d for r in alerts for d in r["delays_s"]]
    events = sum(r["events"] for r in alerts)
    false_alarms = sum(r["false_alarms"] for r in alerts)
    return {
        "relevant_drifts": sum(r["relevant_drifts"] for r in alerts),
        "detected": sum(r["detected"] for r in alerts),
        "false_alarms": false_alarms,
        "false_alarms_per_10k": 1e4 * false_alarms / events if events else 0.0,
        "mean_delay_s": _mean(delays),
    }


def rank(summaries: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Config names, best first, by :data:`RANKING_RULE`."""
    def key(name: str) -> tuple[float, float, float, str]:
        s = summaries[name]
        delay = s["mean_delay_s"]
        false_alarms = s["false_alarms_per_10k"] or 0.0  # None: not scored (no drifts annotated)
        return (-s["detected"], false_alarms, math.inf if delay is None else delay, name)

    return sorted(summaries, key=key)
