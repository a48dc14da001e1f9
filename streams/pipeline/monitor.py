"""Monitoring of one model: reference, detectors, performance, alert policy.

Pure logic, no Kafka: the live ``monitor`` agent, ``replay`` and the offline ``backtest``
feed :class:`ModelMonitor` the same column batches and get the same drift events and alerts.

A model's stream has two sequences: its **predictions** (data drift per feature and
prediction drift, no labels needed) and its **joined pairs** (concept drift on the error
stream and rolling performance). Detectors are observed at every detection and at fixed
positions of their sequence (every ``OBSERVE_EVERY`` events), never at batch boundaries,
so results do not depend on how the stream was batched. A detector that evaluates every
``step`` values (the windowed ones) gets a model's predictions only when an evaluation or
the end of an observation chunk falls within them: until then they wait, with the model's
state (most batches of a busy worker hold a few events per model, and a detector's cost is
mostly per call). Its drifts are signalled in the same batch, with the same positions.

>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> m = ModelMonitor("churn", None, MonitorConfig().for_model("churn"))
>>> def batch(lo, hi, shift=0.0):
...     x = rng.normal(shift, 1.0, hi - lo)
...     return {"pred": {"pid": [f"p{i}" for i in range(lo, hi)],
...                      "ts": [float(i) for i in range(lo, hi)],
...                      "prediction": [int(v > 0) for v in x], "score": [None] * (hi - lo),
...                      "latency_ms": [None] * (hi - lo), "features": {"x": x.tolist()}}}
>>> _ = m.process(batch(0, 3000))
>>> result = m.process(batch(3000, 6000, shift=2.0))
>>> sorted({(a["kind"], a["feature"]) for a in result.alerts})
[('data_drift', 'x'), ('prediction_drift', 'prediction')]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors import registry
from detectors.base import Detector
from detectors.metrics import RollingAccuracy, RollingMAE
from schemas.ids import stable_id

from streams.pipeline.alerting import AlertPolicy, Observation, against
from streams.pipeline.alerting import format_number as _fmt
from streams.pipeline.estimation import ESTIMATED, EstimatedPerformance
from streams.pipeline.feeding import (
    OBSERVE_EVERY,
    advance_together,
    all_numbers,
    categorical,
    chunks,
    evaluation_cuts,
    finite,
    is_number,
    may_signal,
    numeric,
)
from streams.pipeline.latency import LatencyWindow, series_name
from streams.pipeline.monitor_config import ModelConfig, MonitorConfig
from streams.pipeline.performance import (
    LOWER_IS_BETTER,
    PerformanceWindow,
    RankingWindow,
    metrics_for,
    own_metric,
    task_of,
    threshold_key,
)
from streams.pipeline.number_column import NumberColumn, number_column
from streams.pipeline.quality import FeatureQuality
from streams.pipeline.reference_profile import load_reference_profile
from streams.pipeline.segments import OTHER, choose, segment_of, split, take_rows
from streams.pipeline.series import SeriesWatch

#: Values handed to an error-stream detector per call (see ModelMonitor._run).
FEED_PIECE = 4096
STATE_VERSION = 1


def model_key(model_id: str, model_version: str | None) -> str:
    """The key of a monitored model: ``model_id`` or ``model_id@version``."""
    return model_id if not model_version else f"{model_id}@{model_version}"


@dataclass
class MonitorResult:
    """What one batch produced for one model."""

    drift_events: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    update_requests: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: MonitorResult) -> None:
        """Append what ``other`` produced after what this one holds."""
        self.drift_events.extend(other.drift_events)
        self.alerts.extend(other.alerts)
        self.samples.extend(other.samples)
        self.update_requests.extend(other.update_requests)


@dataclass
class _Watched:
    """A detector and where its input comes from."""

    key: str
    kind: str  # data_drift | prediction_drift | concept_drift
    feature: str | None
    column: str  # predictions column ("feature" = a feature) or pairs column
    categorical: bool
    detector: Detector


class ModelMonitor:
    """Everything driftstream knows about one model (version), as explicit state.

    With ``segment_by`` in its config, the model's monitor also holds a monitor per segment
    (:mod:`streams.pipeline.segments`): the same class, fed the segment's rows, with
    ``segment`` set. Its reference is the segment's rows of the model's reference, topped up
    from the stream to ``reference_size``; its drift events and alerts carry the segment and
    have ids of their own; it asks for no model update (the model's own monitor does).
    """

    def __init__(self, model_id: str, model_version: str | None, config: ModelConfig, segment: str | None = None) -> None:
        self.model_id = model_id
        self.model_version = model_version
        self.key = model_key(model_id, model_version)
        self.config = config
        #: the segment this monitor watches (``None``: the whole model)
        self.segment = segment
        # what every id this monitor makes starts with: a segment's differ from the model's
        self._id: tuple[str, ...] = (self.key,) if segment is None else (self.key, "segment", segment)
        #: the segment feature, on the whole model's monitor only (``None``: no segments)
        self.segment_by: str | None = config.values.get("segment_by") if segment is None else None
        #: the segments' monitors, once the reference chose them (chosen ones, then ``other``)
        self.segments: dict[str, ModelMonitor] | None = None
        #: the event time of the reference's last prediction: pairs known from then on go
        #: to the segments (in the canonical order they come after it, however batched)
        self.segments_from = -math.inf
        self.n_predictions = 0
        self.n_pairs = 0
        self.matched = 0
        self.expired = 0
        self.task: str | None = config.values.get("task")
        self.reference: dict[str, list[Any]] | None = {}
        self.reference_size = int(config.reference_size)
        self.watched: dict[str, _Watched] = {}
        self.concept: dict[str, _Watched] = {}
        # the task's own metric (accuracy, MAE): always kept, concept drift is judged by it
        self.performance: RollingAccuracy | RollingMAE | None = None
        self.baseline: float | None = None
        # the other configured metrics: their shared window of pairs and their baselines
        self.checked: list[str] = []
        self.window: PerformanceWindow | RankingWindow | None = None
        self.baselines: dict[str, float] = {}
        self.last_performance: float | None = None  # at the last chunk boundary
        self.in_drift: dict[str, bool] = {}
        self.quality: dict[str, FeatureQuality] = {}  # by feature, when data_quality.checks lists any
        self.estimate: EstimatedPerformance | None = None  # when estimated_performance.metrics lists any
        # predictions of the current observation chunk not yet fed to every detector: their
        # ids, timestamps and, by detector key, the column it reads; and how many of them
        # each detector has had
        self.pending: dict[str, Any] | None = None
        self.fed: dict[str, int] = {}
        # by numeric detector key, its pending values not fed yet as converted pieces, one per
        # _pend (None: that batch's column did not convert); not state: without them (after
        # a restore) the detector converts its values itself
        self._pieces: dict[str, list[np.ndarray | None]] = {}
        self.policy = AlertPolicy(model_id, model_version, config, segment)
        self.requested: list[str] = []  # alert ids that already asked for a model update
        # the batch's observations for the alert policy, with their sequence's rank (0:
        # predictions, 1: pairs), handed over in event-time order at its end
        self._observed: list[tuple[Observation, int]] = []
        self._drifted: set[str] = set()  # the keys of the checks among them that drifted
        # by feature, its FeatureQuality and what _check_quality reads at each checkpoint
        self._quality_plans: dict[str, tuple[FeatureQuality, list[tuple[str, str, int, float, dict[str, Any]]]]] = {}
        self._pending_requests: list[dict[str, Any]] = []
        # concept drifts whose alert member stays firing while the rolling error is at least this
        self.elevated: dict[str, float] = {}
        self.latency: LatencyWindow | None = None
        self.series: dict[str, SeriesWatch] = {}
        self._start_latency_and_series()
        #: set when a newer version took over serving: ``{"at": event time, "reason": ...}``
        self.retired: dict[str, Any] | None = None
        profile = config.reference.get("profile")
        if profile and segment is None:  # a segment's share of it comes from the model's monitor
            self.reference = load_reference_profile(profile)
            self._fit_reference()

    def _start_latency_and_series(self) -> None:
        """A fresh latency window and metric-series watches, as the config asks (none: off)."""
        latency = self.config.values.get("latency") or {}
        self.latency = LatencyWindow(int(latency["window"])) if latency.get("percentiles") else None
        series = self.config.values.get("metric_series") or {}
        self.series = {name: SeriesWatch(dict(spec), int(series["reference_points"]))
                       for name, spec in sorted((series.get("detectors") or {}).items())}

    # -- building detectors ------------------------------------------------------------
    def _watch(self, key: str, kind: str, feature: str | None, column: str, values: list[Any], spec: Any) -> None:
        """Watch ``column`` with the detector ``spec`` names (by its values' kind, where it
        names one of each), or each of a list of them: keyed ``key:<detector>`` then, so
        each has its own drift events, and the key of a single one stays ``key``."""
        is_categorical = not all_numbers(values)
        chosen = spec["categorical" if is_categorical else "numeric"] if isinstance(spec, dict) and "numeric" in spec else spec
        reference = categorical(values)[0] if is_categorical else numeric(values)[0]
        if len(reference) < 2:
            return
        for cfg in chosen if isinstance(chosen, list) else [chosen]:
            detector = registry.build({**cfg, "reference": list(reference) if is_categorical else reference})
            at = f"{key}:{detector.name}" if isinstance(chosen, list) else key
            self.watched[at] = _Watched(at, kind, feature, column, is_categorical, detector)

    def _fit_reference(self, since: float = -math.inf) -> None:
        """Build the detectors from the reference, whose last prediction has event time
        ``since`` (a profile's: none)."""
        ref = self.reference or {}
        cfg = self.config
        watched: set[str | None] = set()  # features, not detectors: a feature may have several
        for name, values in sorted(ref.items()):
            if not name.startswith("f:"):
                continue
            feature = name[2:]
            if not cfg.monitors_feature(feature):
                continue
            if len(watched) >= cfg.max_features:
                break
            spec = cfg.feature_detectors.get(feature, cfg.data_drift)
            self._watch(f"data:{feature}", "data_drift", feature, name, values, spec)
            watched = {w.feature for w in self.watched.values()}
        if self.config.data_quality["checks"]:
            window = int(self.config.data_quality["window"])
            bucket = math.gcd(window, OBSERVE_EVERY)  # so every checkpoint's window ends on a bucket's edge
            self.quality = {f: FeatureQuality.from_reference(ref[f"f:{f}"], window, bucket) for f in sorted(watched) if f}
        est = self.config.estimated_performance
        if est["metrics"]:
            self.estimate = EstimatedPerformance.from_reference(
                ref.get("prediction", []), ref.get("score", []), cfg.performance["positive_class"],
                int(est["window"]), int(est["max_windows"]))
        for column in ("prediction", "score"):
            # a ranking's item lists are no distribution to compare: its drift shows in its metrics
            values = [v for v in ref.get(column, []) if v is not None and type(v) is not list]
            if values:
                self._watch(f"prediction:{column}", "prediction_drift", column, column, values, cfg.prediction_drift)
        if self.segment_by is not None:
            self._start_segments(ref, since)
        self.reference = None

    def _start_segments(self, ref: dict[str, list[Any]], since: float) -> None:
        """Choose the segments from the reference (its ``segment`` column; a profile's
        ``segment_by`` feature) and give each its rows of the reference as a start."""
        assert self.segment_by is not None
        names = ref.get("segment")
        if names is None:  # a reference profile: its column of the feature, if it has one
            names = [segment_of(v) for v in ref.get(f"f:{self.segment_by}", [])]
        chosen = choose(names, int(self.config.segments["max"]))
        rows = split(names, chosen)
        self.segments, self.segments_from = {}, since
        for name in [*chosen, OTHER]:
            sub = ModelMonitor(self.model_id, self.model_version, self.config, segment=name)
            sub.task = self.task
            index = rows.get(name, [])
            sub.reference = {column: [values[i] for i in index] for column, values in ref.items()
                             if column != "segment" and len(values) == len(names)}
            sub.n_predictions = len(index)
            if sub.n_predictions >= sub.reference_size:  # a profile as large as the segment needs
                sub._fit_reference()
            self.segments[name] = sub

    def _ensure_concept(self) -> None:
        # built once the task is known: the detectors, or with none configured the task's own
        # metric (a ranking's is in its window), whose window must not start over each batch
        if self.task is None or self.concept or self.performance is not None or isinstance(self.window, RankingWindow):
            return
        specs = self.config.concept_drift[self.task]
        for spec in specs:
            detector = registry.build(dict(spec))
            key = f"concept:{detector.name}"
            self.concept[key] = _Watched(key, "concept_drift", None, "error", False, detector)
        window = int(self.config.performance["window"])
        if self.task != "ranking":  # a ranking's own metric is one of its window's (own_metric)
            self.performance = RollingAccuracy(window=window) if self.task == "classification" else RollingMAE(window=window)
        self._ensure_metrics()

    def _ensure_metrics(self) -> None:
        """The metrics the config checks for this model's task; a window of pairs only if
        one of them is not the task's own metric."""
        perf = self.config.performance
        self.checked = metrics_for(self.task, perf["metrics"])  # type: ignore[arg-type]  # task is known here
        if self.window is not None:
            return
        if self.task == "ranking":
            self.window = RankingWindow(self.checked, int(perf["window"]))
        elif any(name != self._own() for name in self.checked):
            self.window = PerformanceWindow(self.task, int(perf["window"]), perf["positive_class"])  # type: ignore[arg-type]

    def _own(self) -> str:
        """The task's own metric (:func:`streams.pipeline.performance.own_metric`)."""
        return own_metric(self.task, self.checked)  # type: ignore[arg-type]  # known with pairs

    # -- processing --------------------------------------------------------------------
    def process(self, batch: dict[str, Any]) -> MonitorResult:
        """Apply one batch ``{"pred": columns, "pairs": columns, "join": counts}``."""
        result = MonitorResult()
        join = batch.get("join") or {}
        self.matched += int(join.get("matched", 0))
        self.expired += int(join.get("expired", 0))
        preds = batch.get("pred")
        taken = 0  # predictions of this batch that went into the reference
        if preds and preds["ts"]:
            if self.task is None:
                self.task = task_of(preds["prediction"][0])
            taken = self._process_predictions(preds, result)
        pairs = batch.get("pairs")
        if pairs and pairs["ts"]:
            if self.task is None:
                self.task = task_of(pairs["prediction"][0])
            self._process_pairs(pairs, result)
        self._apply_policy(result)
        self._request_updates(result)
        if self.segments is not None:  # one check for a model without segments
            self._process_segments(preds, taken, pairs, result)
        return result

    def _process_segments(self, preds: dict[str, Any] | None, taken: int, pairs: dict[str, Any] | None,
                          result: MonitorResult) -> None:
        """Each segment's rows of the batch to its monitor, after the model's own: the
        predictions past the model's reference (those in it seeded the segments), the pairs
        by the segment the join carried from their prediction."""
        assert self.segments is not None and self.segment_by is not None
        chosen = [name for name in self.segments if name != OTHER]
        parts: dict[str, dict[str, Any]] = {}
        if preds and len(preds["ts"]) > taken:
            rows = list(range(taken, len(preds["ts"])))
            names = [segment_of(v) for v in self._segment_values(preds, rows)]
            for name, index in split(names, chosen).items():
                parts.setdefault(name, {})["pred"] = take_rows(preds, [rows[i] for i in index])
        if pairs and pairs["ts"]:
            known = [i for i, ts in enumerate(pairs["ts"]) if ts >= self.segments_from]
            names = pairs.get("segment") or [None] * len(pairs["ts"])  # none: paired before the model was segmented
            for name, index in split([names[i] for i in known], chosen).items():
                parts.setdefault(name, {})["pairs"] = take_rows(pairs, [known[i] for i in index])
        for name, sub in self.segments.items():
            if name in parts:
                result.extend(sub.process(parts[name]))

    def _segment_values(self, preds: dict[str, Any], rows: list[int]) -> list[Any]:
        column = (preds.get("features") or {}).get(self.segment_by)
        return [None] * len(rows) if column is None else [column[i] for i in rows]

    def _apply_policy(self, result: MonitorResult) -> None:
        """Hand the batch's observations to the alert policy in event-time order, the
        predictions' before the pairs' at equal time (each sequence's own order kept): a
        batch holds both sequences up to one frontier (:mod:`streams.pipeline.event_time`), so
        the policy sees one order however the batches were cut."""
        observed, self._observed, self._drifted = self._observed, [], set()
        observed.sort(key=lambda item: (item[0].timestamp, item[1]))
        for obs, _ in observed:
            result.alerts.extend(self.policy.observe(obs))
            member = self.policy.members.get(obs.key)
            if (obs.drift and self.segment is None and member is not None and member["status"] == "firing"
                    and member["incident"] in self.policy.incidents):
                # a member may join an incident without a publication (nothing escalated):
                # the incident as it stands after each detection, in event-time order (a
                # segment's incidents ask for no update: the model's own monitor decides)
                self._pending_requests.append(self.policy.snapshot(member["incident"]))

    def _request_updates(self, result: MonitorResult) -> None:
        """An incident with a concept-drift or performance member asks once for a model update."""
        snapshots, self._pending_requests = self._pending_requests, []
        for alert in snapshots:
            if alert["alert_id"] in self.requested:
                continue
            causes = [m for m in alert["members"] if m["kind"] in ("concept_drift", "performance")]
            if not causes:
                continue
            self.requested = (self.requested + [alert["alert_id"]])[-50:]
            result.update_requests.append({
                "event_id": stable_id(alert["alert_id"], "update_requested"),
                "model_id": self.model_id,
                "model_version": self.model_version,
                "action": "update_requested",
                "reason": "; ".join(
                    f"{m['kind'].replace('_', ' ')}: {m['detector']} = {_fmt(m['value'])}{against(m['direction'], m['threshold'], ' ({} {})')}"
                    for m in causes
                ),
                "alert_ids": [alert["alert_id"]],
                "from_timestamp": float(min(m["fired_at"] for m in causes)),
                "to_timestamp": float(alert["timestamp"]),  # the detection: a batch's end depends on its cut
                # the task's own metric (accuracy, mae, a ranking's map@k, ...) named as it is
                "metrics": {"metric": self._own(), f"{self._own()}_baseline": self.baseline} if self.baseline is not None else {},
                "new_version": None,
                "artifact_path": None,
                "artifact_sha256": None,
                "timestamp": float(alert["timestamp"]),
            })

    def _process_predictions(self, cols: dict[str, Any], result: MonitorResult) -> int:
        """Apply predictions ``cols``; how many of them went into the reference."""
        n = len(cols["ts"])
        start = 0
        if self.reference is not None:
            ref = self.reference
            have = len(ref.get("prediction", ()))  # reference events collected so far
            take = min(n, self.reference_size - have)
            for column in ("prediction", "score"):
                ref.setdefault(column, []).extend(cols[column][:take])
            for name, values in cols["features"].items():
                if self.config.monitors_feature(name):
                    ref.setdefault(f"f:{name}", [None] * have).extend(values[:take])
            if self.segment_by is not None:  # the segments are chosen from the reference's values
                ref.setdefault("segment", []).extend(map(segment_of, self._segment_values(cols, list(range(take)))))
            for column in ref.values():
                if len(column) < have + take:  # a feature absent from this batch
                    column.extend([None] * (have + take - len(column)))
            self.n_predictions += take
            start = take
            if have + take >= self.reference_size:
                self._fit_reference(float(cols["ts"][take - 1]))
        if start >= n or self.reference is not None:
            return start
        numbers = self._number_columns(cols)
        for feature, quality in self.quality.items():  # counted at the batch's first checkpoint
            source = cols["features"].get(feature)
            if source is None:
                source = [None] * n
            column = numbers.get(f"f:{feature}")
            if column is not None and start:
                column = NumberColumn(column.values[start:], column.plain)
            quality.update(source[start:] if start else source, self.n_predictions, column)
        for lo, hi in chunks(self.n_predictions, n - start):
            self._feed_chunk(cols, lo + start, hi + start, result, numbers)
        return start

    def _number_columns(self, cols: dict[str, Any]) -> dict[str, NumberColumn | None]:
        """The batch's columns a numeric detector or a numeric feature's quality checks read,
        each converted once for both (:mod:`streams.pipeline.number_column`), by their name in
        the reference (``f:<feature>``, ``prediction``, ``score``)."""
        wanted = {w.column: False for w in self.watched.values() if not w.categorical}
        wanted.update((f"f:{f}", True) for f, q in self.quality.items() if q.numeric)
        sources = {c: cols["features"].get(c[2:]) if c.startswith("f:") else cols.get(c) for c in wanted}
        return {c: number_column(sources[c], with_types) for c, with_types in wanted.items() if sources[c] is not None}

    def _feed_chunk(self, cols: dict[str, Any], lo: int, hi: int, result: MonitorResult,
                    numbers: dict[str, NumberColumn | None]) -> None:
        """Predictions ``[lo, hi)`` of ``cols`` (all in one observation chunk) join the
        pending ones; each detector that may signal on what it has not had yet gets it now,
        and every detector at the end of the chunk. ``numbers``: the batch's converted columns."""
        pending = self._pend(cols, lo, hi, numbers)
        self.n_predictions += hi - lo
        size = len(pending["ts"])
        first = self.n_predictions - size  # the position of pending[0]
        end_of_chunk = self.n_predictions % OBSERVE_EVERY == 0
        fed, columns = self.fed, pending["columns"]
        due = [w for w in self.watched.values() if end_of_chunk or may_signal(w.detector, size - fed.get(w.key, 0))]
        starts = [fed.get(w.key, 0) for w in due]
        # what each takes: a categorical one its keys, a numeric one its converted values
        inputs = [categorical(columns[w.key][s:])[0] if w.categorical else self._converted(w.key, size - s)
                  for w, s in zip(due, starts)]
        # the PSI detectors advance in groups (streams/pipeline/feeding.py), then each is observed in its turn
        advanced = advance_together([(w.detector, x) for w, x in zip(due, inputs)])
        for watched, start, values, hits in zip(due, starts, inputs, advanced):
            self._run(watched, columns[watched.key][start:], start, size, pending, first + start, result, values, hits)
            fed[watched.key] = size
        if self.quality and end_of_chunk:  # after the detectors: at equal event time, after what they observed
            self._check_quality(cols, hi, result)
        if self.estimate is not None:
            self._update_estimate(cols, lo, hi, result)
        if self.latency is not None:
            self._update_latency(cols, lo, hi, end_of_chunk, result)
        if end_of_chunk:
            self.pending, self.fed, self._pieces = None, {}, {}

    def _converted(self, key: str, n: int) -> np.ndarray | None:
        """The ``n`` values of detector ``key`` not fed yet, as the batches converted them;
        ``None`` where one did not (or a restore lost them): the detector converts them."""
        pieces = self._pieces.pop(key, None)
        if not pieces or any(p is None for p in pieces):
            return None
        arr = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        return arr if len(arr) == n else None

    def _check_quality(self, cols: dict[str, Any], hi: int, result: MonitorResult) -> None:
        """At a checkpoint, each feature's window ends here: with a full one, check each
        count's share (the values were queued with the batch, :meth:`_process_predictions`)."""
        position = self.n_predictions - 1
        ts: float | None = None
        in_drift, drifted, samples = self.in_drift, self._drifted, result.samples
        for feature, quality in self.quality.items():
            counts = quality.counts_at(self.n_predictions)
            if counts is None:  # the window is not full yet
                continue
            plan = self._quality_plans.get(feature)
            if plan is None or plan[0] is not quality:
                plan = self._quality_plans[feature] = (quality, self._quality_plan(feature, quality))
            if ts is None:
                ts = float(cols["ts"][hi - 1])
            window = quality.window
            for key, check, count, threshold, template in plan[1]:
                share = counts[count] / window
                if share > threshold or in_drift.get(key) or key in drifted or self._firing(key):
                    self._emit_check(key, "data_quality", check, feature, share, threshold, "above", None, hi - 1,
                                     position, cols, result, window, 0)
                else:  # most checkpoints: only the sample _emit_check would make, from its template
                    sample = template.copy()
                    sample["timestamp"], sample["position"], sample["statistic"] = ts, position, share
                    samples.append(sample)

    def _quality_plan(self, feature: str, quality: FeatureQuality) -> list[tuple[str, str, int, float, dict[str, Any]]]:
        """Each check of ``feature``: its key, name, count (:meth:`FeatureQuality.counts_at`),
        threshold, and the sample :meth:`_emit_check` makes for it when it has not drifted
        but for its time, position and share (a dozen features make three dozen samples at
        every checkpoint: a copy and three stores each, not a call)."""
        return [(key, check, count, threshold,
                 {"key": key, "kind": "data_quality", "detector": check, "feature": feature, "timestamp": 0.0,
                  "position": 0, "statistic": 0.0, "threshold": threshold, "direction": "above", "p_value": None,
                  "drift": False, "window_size": quality.window, **self._segment_field()})
                for check, count, threshold in quality.judging(self.config.data_quality)
                for key in [f"quality:{feature}:{check}"]]

    def _update_estimate(self, cols: dict[str, Any], lo: int, hi: int, result: MonitorResult) -> None:
        """Add predictions ``[lo, hi)`` to the label-free estimate; check each window it
        closes, at the window's last prediction, against the reference's estimate."""
        assert self.estimate is not None
        est = self.config.estimated_performance
        for window in self.estimate.add_predictions(cols["prediction"][lo:hi], cols["score"][lo:hi], cols["ts"][lo:hi]):
            i = lo + window.last
            extra = {"window": {"start": window.start, "end": window.end}, "window_index": window.index}
            for name in _estimated(est["metrics"]):
                value, baseline = window.values[name], self.estimate.baseline[name]
                if not (math.isfinite(value) and math.isfinite(baseline)):
                    continue  # undefined (no predicted positive, one class only): nothing to judge
                self._emit_check(f"estimated:{name}", "estimated_performance", f"estimated_{name}", None, value,
                                 baseline - float(est["max_drop"][name]), "below", baseline, i,
                                 self.n_predictions - (hi - i), cols, result, window.size, 0, extra)

    def _compare_estimates(self, i: int, position: int, cols: dict[str, Any], result: MonitorResult) -> None:
        """At a pairs checkpoint: each window with enough labels now, its estimate beside the
        realized value (a drift event each, drift when they differ by over ``max_error``)."""
        assert self.estimate is not None
        est = self.config.estimated_performance
        for c in self.estimate.compared(float(est["compare_after"])):
            for name in _estimated(est["metrics"]):
                estimated, realized = c.estimated[name], c.realized[name]
                if not (math.isfinite(estimated) and math.isfinite(realized)):
                    continue
                extra = {"window": {"start": c.start, "end": c.end}, "window_index": c.index, "metric": name,
                         "estimated": estimated, "realized": realized, "labelled": c.labelled}
                self._emit_check(f"estimated:{name}:error", "estimated_performance", f"estimated_{name}_error", None,
                                 abs(estimated - realized), float(est["max_error"]), "above", None, i, position, cols,
                                 result, c.labelled, 1, extra, instance=c.index)
    def _update_latency(self, cols: dict[str, Any], lo: int, hi: int, end_of_chunk: bool, result: MonitorResult) -> None:
        """Add predictions ``[lo, hi)``'s latencies; at a checkpoint with a full window, a
        sample of each percentile, a check of each with an SLO, and a series point."""
        latency = self.latency
        assert latency is not None  # called only when configured
        source = cols.get("latency_ms")
        if source is not None:
            latency.update(source[lo:hi])
        if not end_of_chunk or not latency.full:
            return
        limits = self.config.values["latency"]
        for percentile, value in latency.percentiles(limits["percentiles"]).items():
            name = series_name(percentile)
            slo = limits["slo_ms"][percentile]
            self._emit_check(f"latency:{percentile}", "latency", name, None, value,
                             math.inf if slo is None else float(slo), "above", None, hi - 1, self.n_predictions - 1,
                             cols, result, latency.window, 0, judged=slo is not None)
            self._series_point(name, value, hi - 1, self.n_predictions - 1, cols, result, latency.window, 0)

    def _series_point(
        self, name: str, value: float, i: int, position: int, cols: dict[str, Any], result: MonitorResult,
        window_size: int, rank: int,
    ) -> None:
        """A checkpoint value of metric ``name`` to its series detector, if it has one
        (streams/pipeline/series.py): an ``anomaly`` check once the series' reference is in."""
        watch = self.series.get(name)
        if watch is None or not math.isfinite(value):
            return
        drift = watch.update(value)
        detector = watch.detector
        if drift is None or detector is None:
            return
        self._emit_check(f"series:{name}", "anomaly", detector.name, name, float(detector.statistic),
                         float(detector.threshold), detector.direction, None, i, position, cols, result,
                         window_size, rank, drift=drift)

    def _pend(self, cols: dict[str, Any], lo: int, hi: int, numbers: dict[str, NumberColumn | None]) -> dict[str, Any]:
        """Add predictions ``[lo, hi)`` of ``cols`` to the pending ones (each detector's
        column; a column absent from ``cols`` is missing values there), and a numeric
        detector's converted piece of them (``numbers``)."""
        pending = self.pending
        if pending is None:
            pending = self.pending = {"pid": [], "ts": [], "columns": {}}
        size = len(pending["ts"])
        pending["pid"].extend(cols["pid"][lo:hi])
        pending["ts"].extend(cols["ts"][lo:hi])
        columns = pending["columns"]
        for watched in self.watched.values():
            source = cols["features"].get(watched.feature) if watched.kind == "data_drift" else cols.get(watched.column)
            column = columns.get(watched.key)
            if column is None:
                column = columns[watched.key] = [None] * size
            column.extend(source[lo:hi] if source is not None else [None] * (hi - lo))
            if not watched.categorical:
                converted = numbers.get(watched.column)
                self._pieces.setdefault(watched.key, []).append(None if converted is None else converted.values[lo:hi])
        return pending

    def _process_pairs(self, cols: dict[str, Any], result: MonitorResult) -> None:
        self._ensure_concept()
        n = len(cols["ts"])
        predictions, labels = cols["prediction"], cols["label"]
        ranked: dict[str, list[float]] | None = None
        if isinstance(self.window, RankingWindow):
            # each query scored once; the error stream is 1 - its own metric's score
            ranked = self.window.score(predictions, labels)
            errors = [None if math.isnan(v) else 1.0 - v for v in ranked[self._own()]]
        elif self.task == "classification":
            errors = [0.0 if p == y else 1.0 for p, y in zip(predictions, labels)]
        else:
            errors = [
                abs(float(p) - float(y)) if is_number(p) and is_number(y) else None
                for p, y in zip(predictions, labels)
            ]
        scores = cols.get("score") or [None] * n
        for lo, hi in chunks(self.n_pairs, n):
            for watched in self.concept.values():
                self._run(watched, errors[lo:hi], lo, hi, cols, self.n_pairs, result)
            if ranked is not None:
                self.window.add({name: values[lo:hi] for name, values in ranked.items()})  # type: ignore[union-attr]
            elif self.window is not None:
                self.window.update(predictions[lo:hi], labels[lo:hi], scores[lo:hi])  # type: ignore[union-attr]
            self._update_performance(predictions[lo:hi], labels[lo:hi], errors[lo:hi], hi, cols, result)
            if self.estimate is not None:
                self.estimate.add_labels(predictions[lo:hi], scores[lo:hi], labels[lo:hi], cols["pred_ts"][lo:hi])
                seen = self.n_pairs + hi - lo
                if seen % OBSERVE_EVERY == 0:  # at fixed positions, so batching never changes results
                    self._compare_estimates(hi - 1, seen - 1, cols, result)
            self.n_pairs += hi - lo

    def _run(
        self, watched: _Watched, values: Sequence[Any], lo: int, hi: int,
        cols: dict[str, Any], base: int, result: MonitorResult, converted: np.ndarray | list[str] | None = None,
        hits: np.ndarray | None = None,
    ) -> None:
        """Feed ``values`` to ``watched``'s detector (``converted``: them as float64, or as
        category keys, where that was done already), or observe what feeding them did
        (``hits``: the detector was fed every one of them in one piece, by advance_together)."""
        detector = watched.detector
        if hits is None:
            signalled = self._feed(watched, values, lo, cols, base, result, converted)
        else:  # a windowed detector's only evaluation was at the last value
            signalled = hi - 1 if len(hits) else -1
            if len(hits):
                self._observe(watched, True, signalled, base + (signalled - lo), cols, result)
        if (base + hi - lo) % OBSERVE_EVERY == 0:  # a chunk completed: observe the detector's state
            # a signal at the chunk's last value was observed just now: only its sample is new
            # (an error-stream detector's state is not latched: without this its sample would
            # say no drift, and a "clear" event would follow the drift at the same position)
            just_signalled = signalled == hi - 1
            latched = just_signalled or (detector.kind != "error_stream" and _crossed(detector))
            self._observe(watched, latched, hi - 1, base + (hi - 1 - lo), cols, result, sample=True,
                          event=not just_signalled)

    def _feed(self, watched: _Watched, values: Sequence[Any], lo: int, cols: dict[str, Any], base: int,
              result: MonitorResult, converted: np.ndarray | list[str] | None) -> int:
        """:meth:`_run`'s feeding of ``values``, each drift observed; the offset of the
        detector's last signal (-1: none)."""
        detector = watched.detector
        if watched.categorical:
            clean, idx = categorical(values) if converted is None else (converted, np.arange(len(converted)))
        elif converted is not None:
            clean, idx = finite(converted)  # type: ignore[arg-type]  # numeric: an array
        else:
            clean, idx = numeric(values)
        signalled = -1  # where the detector last signalled drift in this run
        if detector.kind == "error_stream":
            # up to each detection (these detectors are per-event anyway): a hit is observed
            # with the statistic it had at that very event, whatever the batch cuts
            # in pieces: each call validates what it is given, so handing it all that is left
            # after every detection made a large batch cost its length times its detections
            used, n = 0, len(clean)
            while used < n:
                used += detector.update_until_drift(clean[used:used + FEED_PIECE])
                if detector.drift_detected:
                    signalled = lo + int(idx[used - 1])
                    confirmed = self._confirmed(watched)
                    if confirmed:
                        self._hold(watched)
                    self._observe(watched, True, signalled, base + (signalled - lo), cols, result, alert=confirmed)
        else:
            start = 0
            for end in evaluation_cuts(detector, len(idx)):  # each piece ends at an evaluation
                if len(detector.update_many(clean[start:end])):
                    signalled = lo + int(idx[end - 1])
                    self._observe(watched, True, signalled, base + (signalled - lo), cols, result)
                start = end
        return signalled

    def _confirmed(self, watched: _Watched) -> bool:
        """Whether a concept-drift detection is worth an alert: the error got worse.

        Judged at the detection itself, from the detector's own evidence, so an alert comes
        as soon as the detector knows: one that estimates the error before and after the
        change (ADWIN's two sub-windows; DDM's minimum error rate and the rate since its
        warning) alerts if the error rose (ADWIN also fires on improvements; its test, not
        the size of its estimate, says the change is real: the cut's sub-windows mix both
        concepts, so the estimate understates the rise). Any other detector falls back to
        the rolling error at the last checkpoint exceeding its baseline by
        ``performance.min_error_increase`` (classification: absolute error rate;
        regression: relative MAE). Every detection still becomes a drift event.
        """
        if watched.kind != "concept_drift":
            return True
        means = watched.detector.drift_means
        if means is not None:
            before, after = means
            return after > before
        margin = float(self.config.performance["min_error_increase"])
        if self.baseline is None or self.last_performance is None:
            return False
        value = self.last_performance
        if self.task != "regression":  # an error rate (1 - accuracy, 1 - a ranking score): absolute
            return (1.0 - value) - (1.0 - self.baseline) >= margin
        return value >= self.baseline * (1.0 + margin)

    def _hold(self, watched: _Watched) -> None:
        """After a confirmed concept drift, its alert member stays firing while the rolling
        error stays up: at least ``min_error_increase`` (regression: relative) and half the
        detector's estimated rise above the error it had before. The drift's one-off signal
        would otherwise resolve while the model is still worse, and the next detection of
        the same drift open a second incident."""
        means = watched.detector.drift_means
        if watched.kind != "concept_drift" or means is None:
            return
        before, after = means
        margin = float(self.config.performance["min_error_increase"])
        rise = max(abs(before) * margin if self.task == "regression" else margin, (after - before) / 2)
        self.elevated[watched.key] = before + rise

    def _observe(
        self, watched: _Watched, drift: bool, i: int, position: int,
        cols: dict[str, Any], result: MonitorResult, sample: bool = False, alert: bool = True, event: bool = True,
    ) -> None:
        """Record what ``watched`` shows at value ``i`` (stream ``position``): a sample if
        ``sample``; unless ``event`` is false, a drift event (on a drift, and on the first
        observation after one) and an observation for the alert policy (a drift observed
        with ``alert`` false does not fire)."""
        detector = watched.detector
        ts = float(cols["ts"][i])
        pid = str(cols["pid"][i])
        statistic = float(detector.statistic)
        threshold = float(detector.threshold)
        p_value = detector.p_value
        was = self.in_drift.get(watched.key, False)
        event_id = stable_id(*self._id, watched.key, position, "drift" if drift else "clear")
        if sample:
            result.samples.append({
                "key": watched.key, "kind": watched.kind, "detector": detector.name,
                "feature": watched.feature, "timestamp": ts, "position": position,
                "statistic": statistic, "threshold": threshold, "direction": detector.direction,
                "p_value": p_value, "drift": drift, "window_size": detector.window_size, **self._segment_field(),
            })
        if not event:
            return
        if drift or was:
            self.in_drift[watched.key] = drift
            result.drift_events.append(self._drift_event(watched, event_id, drift, statistic, threshold, p_value, ts, position))
        obs = Observation(
            watched.key, watched.kind, detector.name, watched.feature if watched.kind != "concept_drift" else None,
            drift and alert, statistic, threshold, detector.direction, p_value, ts, position, pid, event_id,
        )
        self._observed.append((obs, 0 if watched.kind == "data_drift" or watched.kind == "prediction_drift" else 1))

    def _update_performance(
        self, predictions: Sequence[Any], labels: Sequence[Any], errors: Sequence[float | None],
        hi: int, cols: dict[str, Any], result: MonitorResult,
    ) -> None:
        metric = self.performance
        window = self.window
        if isinstance(window, RankingWindow):  # its window already has the chunk's queries
            window_size = window.window
        elif metric is None:
            return
        elif self.task == "classification":
            # accuracy of (label, prediction) is the share of rows (1, 1 - error)
            correct = 1.0 - np.asarray(errors, dtype=np.float64)
            metric.update_many(np.ones(len(correct)), correct)
            window_size = metric.window_size
        else:
            pairs = [(float(y), float(p)) for p, y in zip(predictions, labels) if is_number(p) and is_number(y)]
            if not pairs:
                return
            ys, ps = zip(*pairs)
            metric.update_many(np.asarray(ys), np.asarray(ps))
            window_size = metric.window_size
        seen = self.n_pairs + len(predictions)
        if seen % OBSERVE_EVERY:
            return  # evaluated at chunk boundaries only, so batching never changes results
        perf = self.config.performance
        if isinstance(window, RankingWindow):
            value = window.value(self._own())
            full = len(window) >= int(perf["window"])  # queries without a relevant item are not scored
        else:
            assert metric is not None
            value = float(metric.value)
            full = seen >= int(perf["window"])
        self.last_performance = value
        self._still_elevated(value, hi - 1, seen - 1, cols)
        own = self.baseline
        if own is None and full and math.isfinite(value):
            self.baseline = value  # concept drift is judged by it, checked or not
        for name in self.checked:
            if name == self._own():
                if own is None:
                    continue  # no baseline before this checkpoint: nothing to judge against
                baseline, current = own, value
            else:
                assert self.window is not None  # built with the metrics that need it
                current = self.window.value(name)
                baseline = self.baselines.get(name)
                if baseline is None:
                    if full and math.isfinite(current):
                        self.baselines = {**self.baselines, name: current}
                    continue
                if not math.isfinite(current):
                    continue  # undefined in this window (one class only): nothing to judge
            self._check_metric(name, current, baseline, hi - 1, seen - 1, cols, result, window_size)
        if self.series and full:
            self._performance_series(value, hi - 1, seen - 1, cols, result, window_size)

    def _performance_series(self, value: float, i: int, position: int, cols: dict[str, Any], result: MonitorResult,
                            window_size: int) -> None:
        """Each performance metric with a series detector gets this checkpoint's value
        (the task's own metric is ``value``; the others come from the window of pairs)."""
        for name in self.series:
            if name == self._own():
                point = value
            elif name in self.checked and self.window is not None:
                point = self.window.value(name)
            else:
                continue  # a latency series, or a metric of the other task
            self._series_point(name, point, i, position, cols, result, window_size, 1)

    def _threshold(self, name: str, baseline: float) -> tuple[float, str]:
        """Where ``name`` drifts, and the side: an absolute drop below the baseline for a
        metric where higher is better, a relative rise above it where lower is."""
        perf = self.config.performance
        if name == "accuracy":
            return baseline - float(perf["max_accuracy_drop"]), "below"
        if name == "mae":
            return baseline * (1 + float(perf["max_mae_increase"])), "above"
        if name in LOWER_IS_BETTER:
            return baseline * (1 + float(perf["max_increase"][name])), "above"
        return baseline - float(perf["max_drop"][threshold_key(name)]), "below"

    def _check_metric(
        self, name: str, value: float, baseline: float, i: int, position: int,
        cols: dict[str, Any], result: MonitorResult, window_size: int,
    ) -> None:
        """One performance metric at a checkpoint: a sample, a drift event on a drift (and
        on the first checkpoint after one), an observation for the alert policy."""
        threshold, direction = self._threshold(name, baseline)
        self._emit_check(f"performance:{name}", "performance", name, None, value, threshold, direction, baseline,
                         i, position, cols, result, window_size, 1)

    def _emit_check(
        self, key: str, kind: str, name: str, feature: str | None, value: float, threshold: float, direction: str,
        baseline: float | None, i: int, position: int, cols: dict[str, Any], result: MonitorResult,
        window_size: int, rank: int, extra: dict[str, Any] | None = None, instance: int | None = None,
        judged: bool = True, drift: bool | None = None,
    ) -> None:
        """A windowed check at a checkpoint (performance, data quality): a sample, a drift
        event on a drift (and on the first checkpoint after one), an observation for the
        alert policy (``rank``: its sequence, 0 predictions, 1 pairs). ``extra``: fields the
        drift event carries besides. ``instance``: the check judges one of several windows
        (an estimate's comparison), so each observation is a drift event, its id naming it.
        Not ``judged``: the sample only (a latency percentile without an SLO). ``drift``: a
        detector's own verdict (a metric series), instead of comparing ``value`` with ``threshold``."""
        if drift is None:
            drift = judged and (value > threshold if direction == "above" else value < threshold)
        ts = float(cols["ts"][i])
        result.samples.append({
            "key": key, "kind": kind, "detector": name, "feature": feature, "timestamp": ts,
            "position": position, "statistic": value, "threshold": threshold, "direction": direction,
            "p_value": None, "drift": drift, "window_size": window_size, **self._segment_field(),
        })
        if not judged:
            return
        was = self.in_drift.get(key, False) or instance is not None
        if drift:
            self._drifted.add(key)
        elif not was and key not in self._drifted and not self._firing(key):
            # no drift event, and nothing for the alert policy to resolve: most checkpoints
            # of most checks (a dozen features' quality checks are three a feature)
            return
        event_id = ""  # an observation without a drift event: the policy reads no id from it
        if drift or was:
            event_id = stable_id(*self._id, key, position, "drift" if drift else "clear",
                                 *(() if instance is None else (instance,)))
            self.in_drift[key] = drift
            result.drift_events.append({
                **self._event_base(event_id, name, kind, feature, drift, ts, position),
                "statistic": value, "threshold": threshold, "direction": direction, "p_value": None,
                "severity_band": None, **(extra or {}),
            })
        obs = Observation(key, kind, name, feature, drift, value, threshold, direction, None, ts,
                          position, str(cols["pid"][i]), event_id, baseline)
        self._observed.append((obs, rank))

    def _firing(self, key: str) -> bool:
        """Whether the alert policy has ``key`` as a firing member (as of the last batch)."""
        member = self.policy.members.get(key)
        return member is not None and member["status"] == "firing"

    def _still_elevated(self, value: float, i: int, position: int, cols: dict[str, Any]) -> None:
        """At a performance checkpoint: each held concept drift whose error is still up is
        observed as drifting (no new drift event). A checkpoint below the level is not
        observed: the member resolves once the error has stayed down for
        ``resolve_after_s`` (one noisy dip of the rolling error does not end a drift); a
        later checkpoint above it never fires a resolved member again."""
        error = value if self.task == "regression" else 1.0 - value
        if not math.isfinite(error):
            return
        for key in sorted(self.elevated):
            watched = self.concept.get(key)
            if watched is None or error < self.elevated[key]:
                continue
            detector = watched.detector
            obs = Observation(key, "concept_drift", detector.name, None, True, float(detector.statistic),
                              float(detector.threshold), detector.direction, detector.p_value, float(cols["ts"][i]),
                              position, str(cols["pid"][i]), "", hold=True)
            self._observed.append((obs, 1))

    def _event_base(self, event_id: str, detector: str, kind: str, feature: str | None, drift: bool, ts: float, position: int) -> dict[str, Any]:
        return {
            "event_id": event_id, "model_id": self.model_id, "model_version": self.model_version,
            "detector": detector, "kind": kind, "feature": feature, "drift": drift,
            "timestamp": ts, "position": position, **self._segment_field(),
        }

    def _segment_field(self) -> dict[str, str]:
        """``segment`` for what a segment's monitor emits; nothing for the whole model's
        (its records stay as they were without segments)."""
        return {} if self.segment is None else {"segment": self.segment}

    def _drift_event(self, watched: _Watched, event_id: str, drift: bool, statistic: float, threshold: float, p_value: float | None, ts: float, position: int) -> dict[str, Any]:
        detector = watched.detector
        band = None
        if detector.name.endswith("psi") and math.isfinite(statistic):
            band = "significant" if statistic >= 0.2 else "moderate" if statistic >= 0.1 else "none"
        return {
            **self._event_base(event_id, detector.name, watched.kind, watched.feature, drift, ts, position),
            "statistic": statistic if math.isfinite(statistic) else None,
            "threshold": threshold if math.isfinite(threshold) else None,
            "direction": detector.direction, "p_value": p_value, "severity_band": band,
        }

    def rebaseline(self, timestamp: float, reason: str) -> list[dict[str, Any]]:
        """Start over from a new reference (the next ``reference_size`` predictions) after a
        model update: the next drift is measured against the new normal. Firing alerts
        resolve, since the detectors that raised them are gone."""
        self.reference = {}
        self.watched = {}
        self.concept = {}
        self.performance = None
        self.baseline = None
        self.checked, self.window, self.baselines = [], None, {}
        self.quality = {}
        self.estimate = None
        self._start_latency_and_series()  # a new version has its own latency and series normal
        self.last_performance = None
        self.in_drift = {}
        self.elevated = {}
        self.pending, self.fed, self._pieces = None, {}, {}
        alerts = self.policy.resolve_all(timestamp, reason)
        for sub in (self.segments or {}).values():  # chosen again from the new reference
            alerts.extend(sub.policy.resolve_all(timestamp, reason))
        self.segments = None
        return alerts

    def retire(self, timestamp: float, reason: str) -> list[dict[str, Any]]:
        """End this version's monitoring: a newer version serves from ``timestamp`` on and
        all of this one's events before it were applied. Its open alerts resolve (their
        stream ended), and the detectors go, so the state that stays is a small marker."""
        alerts = self.rebaseline(timestamp, reason)
        self.retired = {"at": timestamp, "reason": reason}
        return alerts

    def label_coverage(self) -> float | None:
        total = self.matched + self.expired
        return self.matched / total if total else None

    # -- state ---------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION, "model_id": self.model_id, "model_version": self.model_version,
            "n_predictions": self.n_predictions, "n_pairs": self.n_pairs, "matched": self.matched,
            "expired": self.expired, "task": self.task, "reference": self.reference,
            "watched": [
                {"key": w.key, "kind": w.kind, "feature": w.feature, "column": w.column,
                 "categorical": w.categorical, "detector": w.detector.to_state()}
                for w in [*self.watched.values(), *self.concept.values()]
            ],
            "performance": self.performance.to_state() if self.performance else None,
            "metrics_window": self.window.to_state() if self.window is not None else None, "baselines": self.baselines,
            "quality": {feature: q.to_state() for feature, q in self.quality.items()},
            "estimate": self.estimate.to_state() if self.estimate else None,
            "latency": self.latency.to_state() if self.latency is not None else None,
            "series": {name: w.to_state() for name, w in self.series.items()},
            "baseline": self.baseline, "last_performance": self.last_performance, "in_drift": self.in_drift, "policy": self.policy.to_state(),
            "requested": self.requested, "pending": self.pending, "fed": self.fed, "elevated": self.elevated,
            "retired": self.retired, "segment": self.segment,
            "segments_from": self.segments_from if math.isfinite(self.segments_from) else None,
            "segments": None if self.segments is None else {name: sub.to_state() for name, sub in self.segments.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: MonitorConfig) -> ModelMonitor:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported monitor state version {state.get('version')!r}")
        m = cls(state["model_id"], state["model_version"], config.for_model(state["model_id"]), state.get("segment"))
        m.n_predictions, m.n_pairs = state["n_predictions"], state["n_pairs"]
        m.matched, m.expired, m.task = state["matched"], state["expired"], state["task"]
        m.reference = state["reference"]
        for w in state["watched"]:
            watched = _Watched(w["key"], w["kind"], w["feature"], w["column"], w["categorical"], registry.from_state(w["detector"]))
            (m.concept if w["kind"] == "concept_drift" else m.watched)[w["key"]] = watched
        if state["performance"] is not None:
            metric_cls = RollingAccuracy if m.task == "classification" else RollingMAE
            m.performance = metric_cls.from_state(state["performance"])
        m.baseline = state["baseline"]
        # pairs were seen (a ranking has no separate own metric: its window was saved)
        if m.performance is not None or (m.task == "ranking" and state.get("metrics_window") is not None):
            m._ensure_metrics()  # the metrics follow from the config; their window from the state
            if m.window is not None and state.get("metrics_window") is not None:
                m.window.load_state(state["metrics_window"])
        m.quality = {f: FeatureQuality.from_state(q, m.n_predictions, math.gcd(int(q["window"]), OBSERVE_EVERY))
                     for f, q in (state.get("quality") or {}).items()}  # the last two: for a state from before buckets
        estimate = state.get("estimate")  # absent from states written before it existed
        m.estimate = EstimatedPerformance.from_state(estimate) if estimate else None
        if m.latency is not None and state.get("latency") is not None:  # absent from older states
            m.latency = LatencyWindow.from_state(state["latency"])
        for name, watch in (state.get("series") or {}).items():
            if name in m.series:  # the config decides which series are watched
                m.series[name] = SeriesWatch.from_state(watch)
        m.baselines = dict(state.get("baselines") or {})  # absent from states written before it existed
        m.last_performance = state["last_performance"]
        m.in_drift = state["in_drift"]
        m.policy.load_state(state["policy"])
        m.requested = list(state["requested"])
        pending = state.get("pending")  # absent from states written before it existed
        m.pending = None if pending is None else {  # its own lists: they grow in place
            name: {key: list(values) for key, values in column.items()} if name == "columns" else list(column)
            for name, column in pending.items()
        }
        m.fed = dict(state.get("fed") or {})
        m.elevated = dict(state.get("elevated") or {})  # absent from states written before it existed
        m.retired = state.get("retired")  # absent from states written before it existed
        segments = state.get("segments")  # absent from states written before segments
        if segments is not None and m.segment_by is not None:  # the config decides whether there are segments
            m.segments = {name: cls.from_state(sub, config) for name, sub in segments.items()}
            since = state.get("segments_from")
            m.segments_from = -math.inf if since is None else float(since)
        return m


def _estimated(configured: Sequence[str]) -> list[str]:
    """The configured estimated metrics, in ``ESTIMATED`` order whatever the config's."""
    return [name for name in ESTIMATED if name in configured]


def _crossed(detector: Detector) -> bool:
    statistic, threshold = detector.statistic, detector.threshold
    if not (math.isfinite(statistic) and math.isfinite(threshold)):
        return False
    return statistic > threshold if detector.direction == "above" else statistic < threshold
