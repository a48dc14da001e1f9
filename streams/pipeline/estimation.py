"""Label-free performance estimate of a binary classifier: confidence-based performance
estimation (CBPE, as NannyML's), on the stream.

When ``score`` is a calibrated probability, each prediction is right with probability
``P(positive)`` if it says positive and ``1 - P(positive)`` otherwise, so a window's
confusion matrix can be *expected* before any label arrives: TP is the sum of
``P(positive)`` over the predicted positives, FP the sum of ``1 - P(positive)`` over them,
FN and TN the same over the predicted negatives. Accuracy, precision, recall and F1 follow
from it as from a realized matrix. ROC AUC is the area under the expected curve: the
predictions ranked by score, the expected true and false positives summed down the ranking
(NannyML's ``estimate_roc_auc``; ties of the score are one threshold, as scikit-learn's). The
realized values use the same formulas with the label (0 or 1) in place of ``P(positive)``.
``score`` is the confidence of the predicted class (docs/contracts.md), so ``P(positive)``
is ``score`` for a positive prediction and ``1 - score`` for a negative one.

The stream is cut into tumbling windows of ``window`` scored predictions (NannyML's chunks),
counted from the end of the reference; each window's estimate is made when its last
prediction arrives. Its labels are counted as the joined pairs come (a pair belongs to the
window whose event-time span holds its prediction's time; a tie at a boundary goes to the
later window); once ``compare_after`` of its predictions are labelled, the estimate is
compared with the realized values, once. The realized AUC comes from a histogram of
``P(positive)`` in :data:`AUC_BINS` bins per class (a window's state stays bounded whatever
its labels), exact but for pairs within one bin, which count half.

>>> est = EstimatedPerformance.from_reference([1, 0, 1, 0], [0.9, 0.8, 0.6, 0.7], None, window=4, max_windows=4)
>>> est.baseline["accuracy"], round(est.baseline["precision"], 2)  # P(positive) = 0.9, 0.2, 0.6, 0.3
(0.75, 0.75)
>>> [w.values["accuracy"] for w in est.add_predictions([1, 1, 0, 0], [0.6, 0.6, 0.6, 0.6], [1.0, 2.0, 3.0, 4.0])]
[0.6]
>>> est.add_labels([1, 1, 0, 0], [0.6, 0.6, 0.6, 0.6], [1, 0, 0, 0], [1.0, 2.0, 3.0, 4.0])
>>> [(c.estimated["accuracy"], c.realized["accuracy"]) for c in est.compared(0.5)]
[(0.6, 0.75)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from streams.pipeline.performance import class_key

#: The metrics CBPE estimates, in the order they are checked.
ESTIMATED = ("accuracy", "precision", "recall", "f1", "roc_auc")
#: Bins of P(positive) per class for a window's realized AUC.
AUC_BINS = 100


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def confusion_metrics(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of ``predicted`` (positive or not) against
    ``truth``: the labels (realized) or each prediction's ``P(positive)`` (expected).

    >>> confusion_metrics(np.array([True, True, False]), np.array([0.9, 0.4, 0.2]))["precision"]
    0.65
    """
    tp = float(truth[predicted].sum())
    fp = float(predicted.sum()) - tp
    fn = float(truth[~predicted].sum())
    tn = float((~predicted).sum()) - fn
    return _from_counts(tp, fp, fn, tn)


def _from_counts(tp: float, fp: float, fn: float, tn: float) -> dict[str, float]:
    return {"accuracy": _ratio(tp + tn, tp + fp + fn + tn), "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn), "f1": _ratio(2 * tp, 2 * tp + fp + fn)}


def _area(tps: np.ndarray, fps: np.ndarray) -> float:
    """The trapezoid area under (false, true) positives summed down a ranking, from (0, 0)."""
    if not len(tps) or tps[-1] <= 0 or fps[-1] <= 0:
        return math.nan  # one class only: no curve
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2)


def roc_auc(p_positive: np.ndarray, truth: np.ndarray) -> float:
    """ROC AUC of ranking by ``p_positive`` against ``truth`` (labels, or ``P(positive)``
    itself for the estimate); equal scores are one threshold.

    >>> roc_auc(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1.0, 0.0, 1.0, 0.0]))
    0.75
    """
    order = np.argsort(-p_positive, kind="stable")
    ranked = p_positive[order]
    weight = truth[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1] if len(ranked) else np.zeros(0, dtype=np.int64)
    return _area(np.cumsum(weight)[last], np.cumsum(1.0 - weight)[last])


def estimate(predicted: np.ndarray, p_positive: np.ndarray) -> dict[str, float]:
    """CBPE: every metric of :data:`ESTIMATED` expected from ``P(positive)`` alone."""
    return {**confusion_metrics(predicted, p_positive), "roc_auc": roc_auc(p_positive, p_positive)}


@dataclass(frozen=True)
class WindowEstimate:
    """A window's estimate, made when its last prediction arrived."""

    index: int  # 0: the first window after the reference
    start: float  # event time of its first and last predictions
    end: float
    size: int
    values: dict[str, float]
    last: int  # offset, in what add_predictions was given, of the window's last prediction


@dataclass(frozen=True)
class Comparison:
    """A window's estimate beside its realized values, once enough labels arrived."""

    index: int
    start: float
    end: float
    size: int
    labelled: int
    estimated: dict[str, float]
    realized: dict[str, float]


class EstimatedPerformance:
    """One model's CBPE: the reference's estimate (the baseline), the window being filled,
    and the recent windows' label counts, as plain data."""

    def __init__(self, positive: int | str, binary_only: bool, window: int, max_windows: int,
                 baseline: dict[str, float]) -> None:
        self.positive = positive
        self.binary_only = binary_only  # no positive_class configured: predictions must be 0/1
        self.window = window
        self.max_windows = max_windows
        self.baseline = baseline
        self._reset()

    def _reset(self) -> None:
        self.filled = 0  # windows closed so far
        self.p: list[float] = []  # P(positive) of the window being filled
        self.predicted = ""  # and its predictions, "1" positive, "0" negative
        # the window being filled and the closed ones not yet compared (or compared: their
        # start still bounds the one before), oldest first
        self.windows: list[dict[str, Any]] = []

    @classmethod
    def from_reference(cls, predictions: Sequence[Any], scores: Sequence[Any], positive_class: Any, window: int,
                       max_windows: int) -> EstimatedPerformance | None:
        """The estimator of a binary classifier whose reference has scores, its baseline
        the reference's estimate; ``None`` where it does not apply (no scores, or classes
        other than 0/1 with no ``positive_class``)."""
        binary_only = positive_class is None
        positive = 1 if binary_only else class_key(positive_class)
        if positive is None:
            return None
        keys = [class_key(p) for p in predictions]
        if not keys or any(k is None for k in keys) or (binary_only and not set(keys) <= {0, 1}):
            return None
        est = cls(positive, binary_only, window, max_windows, {})
        valid, predicted, p = est._rows(predictions, scores)
        if valid.sum() < 2:
            return None
        est.baseline = estimate(predicted[valid], p[valid])
        return est

    def _classes(self, values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Which ``values`` are classes this estimator knows, and which are positive."""
        arr = np.asarray(values)
        if arr.dtype.kind in "biu" and isinstance(self.positive, int):  # the common 0/1 case, vectorised
            known = (arr == 0) | (arr == 1) if self.binary_only else np.ones(len(arr), dtype=bool)
            return known, arr == self.positive
        keys = [class_key(v) for v in values]
        known = np.fromiter((k is not None and (not self.binary_only or k in (0, 1)) for k in keys), dtype=bool, count=len(keys))
        positive = np.fromiter((k == self.positive for k in keys), dtype=bool, count=len(keys))
        return known, positive

    def _rows(self, predictions: Sequence[Any], scores: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Usable rows (a known class and a score), predicted positive, P(positive)."""
        known, predicted = self._classes(predictions)
        try:
            score = np.asarray(scores, dtype=np.float64)  # None -> nan
        except (TypeError, ValueError):
            score = np.asarray([s if type(s) in (int, float) else math.nan for s in scores], dtype=np.float64)
        valid = known & np.isfinite(score) & (score >= 0) & (score <= 1)
        return valid, predicted, np.where(predicted, score, 1.0 - score)

    # -- predictions ---------------------------------------------------------------------
    def add_predictions(self, predictions: Sequence[Any], scores: Sequence[Any], ts: Sequence[float]) -> list[WindowEstimate]:
        """Add predictions in stream order; the estimates of the windows they close."""
        valid, predicted, p = self._rows(predictions, scores)
        idx = np.flatnonzero(valid)
        closed = []
        used = 0
        while used < len(idx):
            take = idx[used:used + self.window - len(self.p)]
            if not self.p:
                self._open(float(ts[take[0]]))
            self.p.extend(p[take].tolist())
            self.predicted += "".join("1" if v else "0" for v in predicted[take])
            used += len(take)
            if len(self.p) == self.window:
                closed.append(self._close(float(ts[take[-1]]), int(take[-1])))
        return closed

    def _open(self, start: float) -> None:
        self.windows.append({"index": self.filled, "start": start, "end": None, "estimated": None, "done": False,
                             "counts": [0, 0, 0, 0], "pos": [0] * AUC_BINS, "neg": [0] * AUC_BINS})
        if len(self.windows) > self.max_windows:  # bounded: the oldest is given up, compared or not
            del self.windows[0]

    def _close(self, end: float, last: int) -> WindowEstimate:
        values = estimate(np.frombuffer(self.predicted.encode(), dtype=np.uint8) == ord("1"), np.asarray(self.p))
        current = self.windows[-1]
        current.update(end=end, estimated=values)
        self.filled += 1
        self.p, self.predicted = [], ""
        return WindowEstimate(current["index"], current["start"], end, self.window, values, last)

    # -- labels --------------------------------------------------------------------------
    def add_labels(self, predictions: Sequence[Any], scores: Sequence[Any], labels: Sequence[Any], ts: Sequence[float]) -> None:
        """Count joined pairs (``ts``: their predictions' event time) in their windows."""
        if not self.windows:
            return
        valid, predicted, p = self._rows(predictions, scores)
        known, truth = self._classes(labels)
        valid &= known
        starts = [w["start"] for w in self.windows]
        where = np.searchsorted(np.asarray(starts), np.asarray(ts, dtype=np.float64), side="right") - 1
        valid &= where >= 0
        bins = np.minimum((p * AUC_BINS).astype(np.int64), AUC_BINS - 1) if len(p) else np.zeros(0, dtype=np.int64)
        for k in np.unique(where[valid]).tolist():
            w = self.windows[k]
            if w["done"]:
                continue
            rows = valid & (where == k)
            pr, tr = predicted[rows], truth[rows]
            tp, fp = int((pr & tr).sum()), int((pr & ~tr).sum())
            fn, tn = int((~pr & tr).sum()), int((~pr & ~tr).sum())
            w["counts"] = [a + b for a, b in zip(w["counts"], (tp, fp, fn, tn))]
            w["pos"] = (np.asarray(w["pos"]) + np.bincount(bins[rows & truth], minlength=AUC_BINS)).tolist()
            w["neg"] = (np.asarray(w["neg"]) + np.bincount(bins[rows & ~truth], minlength=AUC_BINS)).tolist()

    def compared(self, compare_after: float) -> list[Comparison]:
        """Closed windows with at least ``compare_after`` of their predictions labelled and
        not compared yet, compared now (each once), oldest first."""
        out = []
        for w in self.windows:
            labelled = sum(w["counts"])
            if w["done"] or w["estimated"] is None or labelled < math.ceil(compare_after * self.window):
                continue
            pos, neg = np.asarray(w["pos"][::-1], dtype=np.float64), np.asarray(w["neg"][::-1], dtype=np.float64)
            realized = {**_from_counts(*map(float, w["counts"])), "roc_auc": _area(np.cumsum(pos), np.cumsum(neg))}
            out.append(Comparison(w["index"], w["start"], w["end"], self.window, labelled, dict(w["estimated"]), realized))
            w.update(done=True, pos=[], neg=[])  # its start still bounds the window before it
        return out

    # -- state ---------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Plain data; an undefined value (``nan``) is ``None`` (JSON has no NaN)."""
        return {"positive": self.positive, "binary_only": self.binary_only, "window": self.window,
                "max_windows": self.max_windows, "baseline": _plain(self.baseline), "filled": self.filled,
                "p": list(self.p), "predicted": self.predicted,
                "windows": [{**w, "estimated": _plain(w["estimated"]), "counts": list(w["counts"]),
                             "pos": list(w["pos"]), "neg": list(w["neg"])} for w in self.windows]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EstimatedPerformance:
        est = cls(state["positive"], state["binary_only"], int(state["window"]), int(state["max_windows"]),
                  _values(state["baseline"]))  # type: ignore[arg-type]  # the baseline is never None
        est.filled = int(state["filled"])
        est.p, est.predicted = list(state["p"]), str(state["predicted"])
        est.windows = [{**w, "estimated": _values(w["estimated"]), "counts": list(w["counts"]),
                        "pos": list(w["pos"]), "neg": list(w["neg"])} for w in state["windows"]]
        return est


def _plain(values: dict[str, float] | None) -> dict[str, float | None] | None:
    return None if values is None else {k: v if math.isfinite(v) else None for k, v in values.items()}


def _values(values: dict[str, float | None] | None) -> dict[str, float] | None:
    return None if values is None else {k: math.nan if v is None else float(v) for k, v in values.items()}


__all__ = ["AUC_BINS", "ESTIMATED", "Comparison", "EstimatedPerformance", "WindowEstimate", "confusion_metrics",
           "estimate", "roc_auc"]
