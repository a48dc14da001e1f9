"""river's detectors run alone on a model's error stream: the baseline a backtest shows beside
driftstream's alerts, so a user can compare on their own history.

Each model's predictions are joined to their labels by ``prediction_id``; a pair becomes
known when its later half arrives (the worker's ``known_at``), and the pairs' errors (0/1
for classification, absolute error for regression) are fed in that order to ``ADWIN()``
and, for classification, ``DDM()``, with river's defaults. Each signal is a detection at the
pair's ``known_at``, scored by the rules of :mod:`streams.offline.scoring` like any detector.

>>> events = [("predictions", {"prediction_id": f"p{i}", "model_id": "m", "timestamp": float(i),
...            "prediction": 1}) for i in range(3000)]
>>> events += [("ground-truth", {"prediction_id": f"p{i}", "timestamp": i + 0.5,
...             "label": int(i < 1500 or i % 2 == 0)}) for i in range(3000)]
>>> found, ran = river_detections(events)
>>> sorted({d.detector for d in found}), 1500 < min(d.timestamp for d in found) < 1700
(['baseline: river ADWIN alone', 'baseline: river DDM alone'], True)
>>> ran
[('m', 'baseline: river ADWIN alone', 'concept_drift', None), ('m', 'baseline: river DDM alone', 'concept_drift', None)]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from river import drift

from streams.offline.scoring import Detection
from streams.pipeline.feeding import is_number

ADWIN_ALONE = "baseline: river ADWIN alone"
DDM_ALONE = "baseline: river DDM alone"




def _is_class(v: Any) -> bool:
    return type(v) is bool or type(v) is str or type(v) is int or (type(v) is float and v.is_integer())


def _known_pairs(events: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, list[tuple[float, int, Any, Any]]]:
    """Per model: ``(known_at, order, prediction, label)`` of every joined pair, in known order."""
    predictions: dict[str, tuple[str, float, Any]] = {}
    labels: dict[str, tuple[float, Any]] = {}
    pairs: dict[str, list[tuple[float, int, Any, Any]]] = {}
    order = 0
    for role, event in events:
        pid = event.get("prediction_id")
        ts = event.get("timestamp")
        if type(pid) is not str or not is_number(ts):
            continue
        if role == "predictions" and type(event.get("model_id")) is str:
            if pid in labels:
                label_ts, label = labels.pop(pid)
                pairs.setdefault(event["model_id"], []).append((max(ts, label_ts), order, event.get("prediction"), label))
            else:
                predictions[pid] = (event["model_id"], float(ts), event.get("prediction"))
        elif role == "ground-truth":
            if pid in predictions:
                model_id, pred_ts, prediction = predictions.pop(pid)
                pairs.setdefault(model_id, []).append((max(pred_ts, ts), order, prediction, event.get("label")))
            else:
                labels[pid] = (float(ts), event.get("label"))
        order += 1
    for items in pairs.values():
        items.sort(key=lambda p: (p[0], p[1]))
    return pairs


def river_detections(
    events: Iterable[tuple[str, dict[str, Any]]],
) -> tuple[list[Detection], list[tuple[str, str, str, None]]]:
    """Every signal of river's ``ADWIN()`` and ``DDM()`` alone on each model's error stream,
    and ``(model_id, detector, kind, feature)`` of each detector run (found or not)."""
    found = []
    ran: list[tuple[str, str, str, None]] = []
    for model_id, pairs in sorted(_known_pairs(events).items()):
        classification = all(_is_class(p) for _, _, p, _ in pairs[:100])
        detectors = {ADWIN_ALONE: drift.ADWIN()}
        if classification:
            detectors[DDM_ALONE] = drift.binary.DDM()
        ran += [(model_id, name, "concept_drift", None) for name in detectors]
        for known_at, _, prediction, label in pairs:
            if classification:
                error = 0.0 if prediction == label else 1.0
            elif is_number(prediction) and is_number(label):
                error = abs(float(prediction) - float(label))
            else:
                continue
            for name, detector in detectors.items():
                detector.update(error)
                if detector.drift_detected:
                    found.append(Detection(model_id, name, "concept_drift", None, known_at, "pairs"))
    return found, ran
