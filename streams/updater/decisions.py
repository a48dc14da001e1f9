"""The reference model updater: challengers, promotions and rollbacks, driven by alerts.

The pipeline asks for a model update (``update_requested`` on ``model-updates``) when a
concept-drift or performance alert fires. The updater answers with the rest of the workflow,
each step an event on the same topic with the metrics that justified it:

1. **Champion.** Per monitored model (``model_id[@version]``) it learns an online river model
   from the joined (features, label) stream and freezes it as champion ``v1`` after
   ``warmup_events`` labelled events (or when the first update is requested). A champion is
   frozen, as a served model is.
2. **Challenger** (``challenger_started``). On a request, a fresh model learns from the first
   ``training_events`` joined events whose event time is at or after the request's
   ``from_timestamp`` (the recent ones it buffered, then live ones).
3. **Decision** (``promoted`` / ``rejected``). On the next ``evaluation_events`` post-drift
   events, champion and challenger are scored prequentially (each event is predicted before the
   challenger learns it). The challenger is promoted when it beats the champion by
   ``promote_margin``; promoted or not, it is stored with its sha256.
4. **Rollback** (``rolled_back``). For the ``evaluation_events`` after a promotion, the new
   champion is scored beside the previous one; if the previous one is better by
   ``rollback_margin``, its stored artifact is loaded (hash verified) and becomes champion again.

A request is a function of the events it sees: the same events in the same order give the
same decisions, metrics and event ids (:func:`schemas.ids.stable_id` of the request id),
whether the request is handled live or after its data. A promotion does not touch the
monitor: the served model's predictions carry its new ``model_version`` and get a monitor of
their own once a server switches (:mod:`streams.sdk.serving`, whose ``served`` event retires the
old version's monitor). Every artifact's sidecar records ``decided_by``.

:class:`Updater` is the logic, with no Kafka; :class:`~streams.updater.service.UpdaterService`
feeds it from ``predictions``, ``ground-truth`` and ``model-updates`` and publishes its decisions.

>>> import random, tempfile
>>> from streams.updater.model_store import ModelStore
>>> rng = random.Random(1)
>>> updater = Updater(ModelStore(tempfile.mkdtemp()), UpdaterConfig(
...     warmup_events=300, training_events=300, evaluation_events=300))
>>> def feed(lo, hi, flipped):
...     out = []
...     for i in range(lo, hi):
...         x = rng.uniform(-1, 1)
...         out += updater.observe("m", None, {"x": x}, int((x > 0) != flipped), float(i))
...     return out
>>> _ = feed(0, 1000, flipped=False)
>>> _ = updater.request_update({"event_id": "r1", "model_id": "m", "model_version": None,
...     "action": "update_requested", "alert_ids": ["a1"], "from_timestamp": 1000.0})
>>> decisions = feed(1000, 2000, flipped=True)
>>> [(d["action"], d["new_version"]) for d in decisions]
[('challenger_started', 'v2'), ('promoted', 'v2')]
>>> decisions[1]["metrics"]["improvement"] > 0.5, decisions[1]["metrics"]["previous_version"]
(True, 'v1')
"""

from __future__ import annotations

import logging
import numbers
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from river import compose, linear_model, metrics, multiclass, preprocessing

from schemas import codec
from schemas.ids import stable_id
from schemas.parsing import RecordError, dead_letter_record
from schemas.records import ModelUpdate

from streams.settings import Settings
from streams.updater.canary import Comparison, ComparisonConfig, SideBySide
from streams.updater.model_store import (
    Artifact, ArtifactIntegrityError, ModelStore, UnsafeNameError, UntrustedArtifactError, check_model_id,
)

__all__ = ["Updater", "UpdaterConfig", "new_model", "summary_lines"]

log = logging.getLogger(__name__)

TASKS = ("classification", "regression")

#: Who decided, in the artifacts' sidecars (the CLI records ``cli:<user>``).
DECIDER = "updater"

#: Event ids remembered per model to ignore a request (or a rollback) seen twice (a replay,
#: a rebalance), and the updater's own rollbacks when they come back.
SEEN_REQUESTS = 1_000


@dataclass(frozen=True)
class UpdaterConfig:
    """How the updater trains, judges and rolls back (counts are joined events)."""

    #: Labelled events the first champion learns from before it is frozen as ``v1``.
    warmup_events: int = 1_000
    #: Recent joined events kept per model, from which a challenger starts learning.
    buffer_events: int = 5_000
    #: Post-drift events a challenger learns from before it is evaluated.
    training_events: int = 1_000
    #: Events of the prequential comparison, before a promotion and after it (rollback watch).
    evaluation_events: int = 1_000
    #: Least improvement that promotes a challenger: accuracy points for classification,
    #: relative MAE reduction for regression.
    promote_margin: float = 0.02
    #: Least improvement of the previous champion over a promoted one that rolls it back.
    rollback_margin: float = 0.02
    #: Predictions waiting for their label (and early labels waiting for their prediction).
    pending_events: int = 100_000
    #: Event-time window in which a prediction and its label are joined.
    join_window_s: float = 86_400.0
    #: ``classification`` or ``regression``; ``None`` infers it from the first label
    #: (a float is a regression target, a bool, int or string a class).
    task: str | None = None
    #: Canary / A-B comparison of two versions served at once (:mod:`streams.updater.canary`).
    comparison: ComparisonConfig = field(default_factory=ComparisonConfig)

    def __post_init__(self) -> None:
        for name in ("warmup_events", "buffer_events", "training_events", "evaluation_events", "pending_events"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("promote_margin", "rollback_margin"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not self.join_window_s > 0:
            raise ValueError(f"join_window_s must be > 0, got {self.join_window_s}")
        if self.task is not None and self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)} or None, got {self.task!r}")

    @classmethod
    def from_settings(cls, settings: Settings) -> UpdaterConfig:
        """The defaults with the settings' join window and comparison (``DRIFTSTREAM_COMPARISON_*``)."""
        return cls(join_window_s=settings.join_window_s, comparison=ComparisonConfig.from_settings(settings))


def new_model(task: str) -> Any:
    """A fresh online river model: numbers standardised, strings one-hot encoded, then
    one-vs-rest logistic regression (classification) or linear regression."""
    features = (compose.SelectType(numbers.Number) | preprocessing.StandardScaler()) + (
        compose.SelectType(str) | preprocessing.OneHotEncoder()
    )
    if task == "classification":
        return features | multiclass.OneVsRestClassifier(linear_model.LogisticRegression())
    return features | linear_model.LinearRegression()


def _metric(task: str) -> Any:
    return metrics.Accuracy() if task == "classification" else metrics.MAE()


def _metric_name(task: str) -> str:
    return "accuracy" if task == "classification" else "mae"


def _improvement(task: str, baseline: float, candidate: float) -> float:
    """How much better ``candidate`` scored than ``baseline``: accuracy points, or the relative
    MAE reduction."""
    if task == "classification":
        return candidate - baseline
    return (baseline - candidate) / baseline if baseline > 0 else 0.0


def _features(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Model input: missing values dropped, booleans as 0/1."""
    return {k: float(v) if type(v) is bool else v for k, v in raw.items() if v is not None}


class _Join:
    """Predictions and labels waiting for their other half, bounded by count and by the
    event-time window (the pipeline's join state does not keep features)."""

    def __init__(self, max_events: int, window_s: float) -> None:
        self.max_events = max_events
        self.window_s = window_s
        self.predictions: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.labels: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.clock = float("-inf")

    def add(self, side: OrderedDict[str, dict[str, Any]], other: OrderedDict[str, dict[str, Any]], event: dict[str, Any]) -> dict[str, Any] | None:
        """Store ``event`` on ``side``, or return its other half from ``other`` if waiting there."""
        self.clock = max(self.clock, float(event["timestamp"]))
        match = other.pop(event["prediction_id"], None)
        if match is None:
            side[event["prediction_id"]] = event
            self._expire(side)
        return match

    def _expire(self, side: OrderedDict[str, dict[str, Any]]) -> None:
        horizon = self.clock - self.window_s
        while side and (len(side) > self.max_events or next(iter(side.values()))["timestamp"] < horizon):
            side.popitem(last=False)


@dataclass
class _Trial:
    """A challenger being trained, then scored beside the champion."""

    request: dict[str, Any]
    version: str
    challenger: Any
    champion_score: Any
    challenger_score: Any
    trained: int = 0
    evaluated: int = 0
    last_ts: float = 0.0


@dataclass
class _Watch:
    """A promoted champion scored beside the one it replaced."""

    promotion: dict[str, Any]
    previous: Artifact
    previous_model: Any
    promoted_score: Any
    previous_score: Any
    watched: int = 0
    last_ts: float = 0.0


@dataclass
class _Model:
    """What the updater keeps for one monitored model."""

    key: str
    model_id: str
    model_version: str | None
    recent: deque[tuple[dict[str, Any], Any, float]]
    task: str | None = None
    learner: Any = None  # the warming-up first champion
    learned: int = 0
    champion: Any = None
    artifact: Artifact | None = None
    requested: dict[str, Any] | None = None  # waits for the stream to reach from_timestamp
    trial: _Trial | None = None
    watch: _Watch | None = None
    seen: deque[str] = field(default_factory=lambda: deque(maxlen=SEEN_REQUESTS))
    #: the highest version of the lineage so far: the next one is ``v<highest + 1>``, from
    #: this state (not from the files), so a replay after a crash names its versions as the
    #: run before it did, even when their files were already written
    highest: int = 0


class Updater:
    """The updater's logic: feed it predictions, labels and update requests; it returns the
    ``model-updates`` events it decided on (see the module docstring)."""

    def __init__(self, store: ModelStore, config: UpdaterConfig | None = None) -> None:
        self.store = store
        self.config = config or UpdaterConfig()
        self._reset()

    def _reset(self) -> None:
        self.models: dict[str, _Model] = {}
        self.join = _Join(self.config.pending_events, self.config.join_window_s)
        #: model key -> why its stored champion could not be loaded: the model gets no more
        #: updates (its requests are dead-lettered), every other model goes on
        self.quarantined: dict[str, str] = {}
        #: ``dead-letter`` records for the service to publish (:meth:`take_dead_letters`)
        self.dead_letters: list[dict[str, Any]] = []
        self.skipped_events = 0
        self.side_by_side = SideBySide(self.config.comparison)

    def take_dead_letters(self) -> list[dict[str, Any]]:
        letters, self.dead_letters = self.dead_letters, []
        return letters

    def state(self) -> dict[str, Any]:
        """Everything the updater decides from (buffers, champions, a challenger in training,
        a rollback watch): a checkpoint resumed by :meth:`restore` leads to the same
        decisions, ids and metrics as a run that never stopped, given the same events after it."""
        return {"models": self.models, "join": self.join, "quarantined": self.quarantined,
                "skipped_events": self.skipped_events, "comparisons": self.side_by_side.state()}

    def restore(self, state: dict[str, Any]) -> None:
        self._reset()
        self.models, self.join = state["models"], state["join"]
        self.quarantined, self.skipped_events = state["quarantined"], state["skipped_events"]
        self.side_by_side.restore(state.get("comparisons"))  # none in a checkpoint older than comparisons

    # -- inputs ------------------------------------------------------------------------
    def add_prediction(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """A normalised ``predictions`` event; returns decisions if its label was waiting."""
        label = self.join.add(self.join.predictions, self.join.labels, event)
        return [] if label is None else self._joined(event, label)

    def add_label(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """A normalised ``ground-truth`` event; returns decisions if its prediction was waiting."""
        prediction = self.join.add(self.join.labels, self.join.predictions, event)
        return [] if prediction is None else self._joined(prediction, event)

    def _joined(self, prediction: dict[str, Any], label: dict[str, Any]) -> list[dict[str, Any]]:
        out = self.observe(
            prediction["model_id"], prediction.get("model_version"),
            prediction["features"], label["label"], float(prediction["timestamp"]),
        )
        m = self.models.get(prediction["model_id"])
        if m is not None and m.task is not None:  # the served prediction, beside its other versions'
            for look in self.side_by_side.observe(m.model_id, prediction.get("model_version"), m.task, prediction["prediction"],
                                                  prediction.get("score"), label["label"], float(prediction["timestamp"])):
                out += self._compared(m, look)
        return out

    def observe(self, model_id: str, model_version: str | None, features: Mapping[str, Any], label: Any, timestamp: float) -> list[dict[str, Any]]:
        """One joined event (``timestamp`` is the prediction's event time)."""
        m = self._model(model_id, model_version)
        if m is None:  # quarantined
            self.skipped_events += 1
            return []
        if type(label) is list or type(label) is dict:
            # a ranking's label (relevant items): the learners here take a class or a number
            m.task = "ranking"
            self.skipped_events += 1
            return []
        if m.task is None:
            m.task = self.config.task or ("regression" if type(label) is float else "classification")
        x = _features(features)
        m.recent.append((x, label, timestamp))
        if m.requested is not None and timestamp >= m.requested["from_timestamp"]:
            return self._start_trial(m)
        if m.champion is None:
            if m.learner is None:
                m.learner = new_model(m.task)
            m.learner.learn_one(x, label)
            m.learned += 1
            if m.learned >= self.config.warmup_events:
                self._freeze(m, timestamp)
            return []
        return self._step(m, x, label, timestamp)

    def model_update(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """A ``model-updates`` event routed here: an update request, or a promotion or
        rollback that someone else decided (:meth:`follow`); others are ignored."""
        if event["action"] in ("promoted", "rolled_back"):
            return self.follow(event)
        return self.request_update(event)

    def follow(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """A ``promoted`` or ``rolled_back`` that this updater did not decide (``driftstream
        model promote|rollback``): its ``new_version`` becomes the champion here too, so later
        challengers are judged against it and name it as their parent. The artifact is the
        store's own (looked up by model and version, never by the event's path) and must have
        the event's sha256. Its own decisions come back here as well and are skipped by id:
        following one late could undo a decision made since. Either ends a rollback watch (the
        operator judged that promotion) and restarts a challenger's evaluation against the
        new champion. Nothing is published: the event is the decision."""
        m = self._model(event["model_id"], event.get("model_version"))
        if m is None:
            self._quarantined_request(event)
            return []
        if event["event_id"] in m.seen:
            return []
        m.seen.append(event["event_id"])
        version = event.get("new_version")
        if m.artifact is not None and m.artifact.version == version:
            return []
        try:
            artifact, model = self.store.load_named(m.key, str(version), event.get("artifact_sha256"))
        except (UnsafeNameError, OSError, ValueError, ArtifactIntegrityError) as exc:
            what = "rollback to" if event["action"] == "rolled_back" else "promotion of"
            reason = f"model-updates: {m.key}: {what} {version!r} not followed: {type(exc).__name__}: {exc}"
            log.error("%s; the updater keeps champion %s", reason, m.artifact.version if m.artifact else None)
            self._dead_letter(event, "unsafe_name" if isinstance(exc, UnsafeNameError) else "model_quarantined", reason)
            return []
        was = m.artifact.version if m.artifact else None
        m.champion, m.artifact, m.learner, m.watch = model, artifact, None, None
        if m.trial is not None and m.trial.trained >= self.config.training_events and m.task is not None:
            m.trial.champion_score, m.trial.challenger_score = _metric(m.task), _metric(m.task)
            m.trial.evaluated = 0
        current = self.store.champion(m.key)
        if current is None or current.version != artifact.version:  # a promotion of ours raced the operator's pointer
            self.store.set_champion(m.key, artifact)
        log.info("%s: follows a %s decided elsewhere (%s): champion %s -> %s", m.key, event["action"].replace("_", " "),
                 event.get("reason"), was, version)
        return []

    def request_update(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """A ``model-updates`` event; only ``update_requested`` ones are acted on, once each."""
        if request["action"] != "update_requested":
            return []
        m = self._model(request["model_id"], request.get("model_version"))
        if m is None:
            self._quarantined_request(request)
            return []
        if request["event_id"] in m.seen:
            return []
        m.seen.append(request["event_id"])
        busy = m.requested or (m.trial.request if m.trial else None) or (m.watch.promotion if m.watch else None)
        if busy is not None:
            reason = f"the updater is still handling update {busy['event_id']} of {m.key}; request it again later"
            return [self._event(m, "rejected", stable_id(request["event_id"], "rejected"), reason, request,
                                float(request["from_timestamp"]), {}, None, None)]
        if m.task == "ranking":
            reason = f"{m.key} is a ranking model; the reference updater trains classifiers and regressors only"
            return [self._event(m, "rejected", stable_id(request["event_id"], "rejected"), reason, request,
                                float(request["from_timestamp"]), {}, None, None)]
        m.requested = request
        if any(ts >= request["from_timestamp"] for _, _, ts in m.recent):
            return self._start_trial(m)
        return []

    def promote_external(self, model_id: str, model_version: str | None, model: Any, timestamp: float, reason: str) -> list[dict[str, Any]]:
        """Promote a river model trained elsewhere (an operator's decision); the rollback watch
        then judges it like any promotion. Refused while an update is under way."""
        m = self._model(model_id, model_version)
        if m is None:
            raise ValueError(f"{model_id} is quarantined: {self.quarantined[model_id]}")
        if m.requested or m.trial or m.watch:
            raise ValueError(f"{m.key}: an update is under way; promote after it ends")
        if m.champion is None:
            self._freeze(m, timestamp)
        version = self._new_version(m)
        event_id = stable_id("promote_external", m.key, version, timestamp)
        request = {"event_id": event_id, "alert_ids": [], "from_timestamp": timestamp}
        return [self._promote(m, model, version, event_id, reason, request, timestamp, {"external": True})]

    # -- state -------------------------------------------------------------------------
    def _model(self, model_id: str, model_version: str | None) -> _Model | None:
        """The model's state, resumed from its stored champion the first time; ``None`` when
        the model is quarantined (its champion could not be loaded). One lineage per
        ``model_id``: the predictions of every served version feed it, and the versions it
        makes follow each other (``model_version`` is the version a request came from)."""
        key = model_id
        m = self.models.get(key)
        if m is None:
            if key in self.quarantined:
                return None
            try:
                check_model_id(model_id)
            except UnsafeNameError as exc:  # from a record: never a path in the store
                self.quarantined[key] = str(exc)
                log.error("%s; its update requests are dead-lettered", exc)
                return None
            m = _Model(key, model_id, model_version, deque(maxlen=self.config.buffer_events))
            try:
                m.artifact = self.store.champion(key)
                if m.artifact is not None:
                    m.champion = self.store.load(m.artifact.path, m.artifact.sha256)
            except UntrustedArtifactError as exc:  # no store key: a champion of an earlier run
                log.warning("%s: starting afresh: %s", key, exc)
                m.artifact = None
            except Exception as exc:  # a tampered, corrupt or unreadable artifact: this model only
                where = f"champion {m.artifact.version} ({m.artifact.path})" if m.artifact else "its champion pointer"
                self.quarantined[key] = f"{key}: {where} cannot be loaded: {type(exc).__name__}: {exc}"
                log.error("%s; the model is quarantined: no updates until the artifact is fixed and the updater restarted",
                          self.quarantined[key])
                return None
            if m.artifact is not None:
                log.info("%s: resumed champion %s from %s", key, m.artifact.version, m.artifact.path)
            m.highest = int(self.store.next_version(key)[1:]) - 1
            self.models[key] = m
        return m

    def _quarantined_request(self, request: dict[str, Any]) -> None:
        """Dead-letter an update request (or a rollback) of a quarantined model, with the reason."""
        reason = self.quarantined[request["model_id"]]
        try:
            code = "model_quarantined" if check_model_id(request["model_id"]) else "unsafe_name"
        except UnsafeNameError:
            code = "unsafe_name"
        self._dead_letter(request, code, f"model-updates: {reason}")

    def _dead_letter(self, event: dict[str, Any], code: str, reason: str) -> None:
        error = RecordError(None, code, reason, codec.dumps(event))
        record = dead_letter_record("model-updates", None, None, error, float(event.get("timestamp") or 0.0))
        # one per event, not per origin: the event was not read at a known offset here
        record["dead_letter_id"] = stable_id("dead-letter", code, event["event_id"])
        self.dead_letters.append(record)

    def _freeze(self, m: _Model, timestamp: float) -> None:
        """Freeze the warming-up learner as the first champion."""
        if m.learner is None:
            m.learner = new_model(m.task or "classification")
        version = self._new_version(m)
        m.artifact = self.store.save(m.key, version, m.learner, {
            "created": timestamp, "metrics": {"warmup_events": m.learned}, "parent_version": None, "decided_by": DECIDER,
        })
        self.store.set_champion(m.key, m.artifact)
        m.champion, m.learner = m.learner, None
        log.info("%s: champion %s frozen after %d labelled events", m.key, version, m.learned)

    @staticmethod
    def _new_version(m: _Model) -> str:
        m.highest += 1
        return f"v{m.highest}"

    def _start_trial(self, m: _Model) -> list[dict[str, Any]]:
        request, m.requested = m.requested, None
        assert request is not None and m.task is not None
        if m.champion is None:
            self._freeze(m, float(request["from_timestamp"]))
        m.trial = _Trial(request, self._new_version(m), new_model(m.task), _metric(m.task), _metric(m.task))
        out: list[dict[str, Any]] = []
        for x, y, ts in list(m.recent):
            if ts >= request["from_timestamp"]:
                out += self._step(m, x, y, ts)
        return out

    def _step(self, m: _Model, x: dict[str, Any], y: Any, ts: float) -> list[dict[str, Any]]:
        if m.trial is not None:
            return self._trial_step(m, m.trial, x, y, ts)
        if m.watch is not None:
            return self._watch_step(m, m.watch, x, y, ts)
        return []

    # -- challenger ----------------------------------------------------------------------
    def _trial_step(self, m: _Model, t: _Trial, x: dict[str, Any], y: Any, ts: float) -> list[dict[str, Any]]:
        if ts < t.request["from_timestamp"]:
            return []
        t.last_ts = max(t.last_ts, ts)
        if t.trained < self.config.training_events:
            t.challenger.learn_one(x, y)
            t.trained += 1
            if t.trained < self.config.training_events:
                return []
            assert m.artifact is not None and m.task is not None
            reason = (f"challenger {t.version} learned from {t.trained} events after the drift; "
                      f"scoring it beside champion {m.artifact.version} on the next {self.config.evaluation_events}")
            return [self._event(m, "challenger_started", stable_id(t.request["event_id"], "challenger_started"), reason,
                                t.request, t.last_ts, {"metric": _metric_name(m.task), "champion_version": m.artifact.version,
                                                       "training_events": t.trained}, t.version, None)]
        t.champion_score.update(y, m.champion.predict_one(x))
        t.challenger_score.update(y, t.challenger.predict_one(x))
        t.challenger.learn_one(x, y)
        t.evaluated += 1
        return self._decide(m, t) if t.evaluated >= self.config.evaluation_events else []

    def _decide(self, m: _Model, t: _Trial) -> list[dict[str, Any]]:
        assert m.artifact is not None and m.task is not None
        m.trial = None
        name = _metric_name(m.task)
        champion, challenger = float(t.champion_score.get()), float(t.challenger_score.get())
        gain = _improvement(m.task, champion, challenger)
        measured = {
            "metric": name, "champion_version": m.artifact.version,
            f"champion_{name}": champion, f"challenger_{name}": challenger, "improvement": gain,
            "promote_margin": self.config.promote_margin,
            "training_events": t.trained, "evaluation_events": t.evaluated,
        }
        text = f"{name} {champion:.4f} -> {challenger:.4f} ({gain:+.4f}; margin {self.config.promote_margin})"
        event_id = stable_id(t.request["event_id"], "promoted" if gain >= self.config.promote_margin else "rejected")
        if gain >= self.config.promote_margin:
            return [self._promote(m, t.challenger, t.version, event_id, f"challenger {t.version} beats champion {m.artifact.version}: {text}",
                                  t.request, t.last_ts, measured)]
        artifact = self.store.save(m.key, t.version, t.challenger, {
            "created": t.last_ts, "metrics": measured, "parent_version": m.artifact.version, "decided_by": DECIDER,
        })
        return [self._event(m, "rejected", event_id, f"challenger {t.version} does not beat champion {m.artifact.version}: {text}",
                            t.request, t.last_ts, measured, t.version, artifact)]

    def _promote(self, m: _Model, model: Any, version: str, event_id: str, reason: str,
                 request: dict[str, Any], ts: float, measured: dict[str, Any]) -> dict[str, Any]:
        assert m.artifact is not None and m.task is not None
        previous, previous_model = m.artifact, m.champion
        measured = {**measured, "previous_version": previous.version}
        m.artifact = self.store.save(m.key, version, model, {"created": ts, "metrics": measured, "parent_version": previous.version,
                                                             "decided_by": DECIDER})
        m.champion = model
        self.store.set_champion(m.key, m.artifact)
        event = self._event(m, "promoted", event_id, reason, request, ts, measured, version, m.artifact)
        m.seen.append(event_id)  # it comes back through the router: not one to follow
        m.watch = _Watch(event, previous, previous_model, _metric(m.task), _metric(m.task), last_ts=ts)
        log.info("%s: %s", m.key, reason)
        return event

    # -- rollback ------------------------------------------------------------------------
    def _watch_step(self, m: _Model, w: _Watch, x: dict[str, Any], y: Any, ts: float) -> list[dict[str, Any]]:
        w.last_ts = max(w.last_ts, ts)
        w.promoted_score.update(y, m.champion.predict_one(x))
        w.previous_score.update(y, w.previous_model.predict_one(x))
        w.watched += 1
        if w.watched < self.config.evaluation_events:
            return []
        m.watch = None
        assert m.artifact is not None and m.task is not None
        name = _metric_name(m.task)
        promoted, previous = float(w.promoted_score.get()), float(w.previous_score.get())
        gain = _improvement(m.task, promoted, previous)
        if gain < self.config.rollback_margin:
            log.info("%s: promoted %s kept (%s %.4f, previous %.4f)", m.key, m.artifact.version, name, promoted, previous)
            return []
        try:
            restored = self.store.load(w.previous.path, w.previous.sha256)
        except ArtifactIntegrityError as exc:
            log.error("%s: cannot roll back to %s: %s", m.key, w.previous.version, exc)
            return []
        measured = {
            "metric": name, "promoted_version": m.artifact.version, "previous_version": w.previous.version,
            f"promoted_{name}": promoted, f"previous_{name}": previous, "degradation": gain,
            "rollback_margin": self.config.rollback_margin, "evaluation_events": w.watched,
        }
        reason = (f"promoted {m.artifact.version} scored {name} {promoted:.4f}, previous champion "
                  f"{w.previous.version} {previous:.4f} ({gain:+.4f}; margin {self.config.rollback_margin})")
        m.champion, m.artifact = restored, w.previous
        self.store.set_champion(m.key, w.previous)
        log.info("%s: rolled back: %s", m.key, reason)
        request = {"alert_ids": w.promotion["alert_ids"], "from_timestamp": w.promotion["timestamp"]}
        event_id = stable_id(w.promotion["event_id"], "rolled_back")
        m.seen.append(event_id)  # it comes back through the router: not one to follow
        return [self._event(m, "rolled_back", event_id, reason, request, w.last_ts, measured, w.previous.version, w.previous)]

    # -- canary / A-B comparison ----------------------------------------------------------
    def _compared(self, m: _Model, c: Comparison) -> list[dict[str, Any]]:
        """A ``comparison`` event and, with the ``auto`` policy, the switch it calls for
        (once per pair of versions): a significantly better candidate is promoted, a
        significantly worse one rolled back to the baseline (its parent, when a promotion is
        being served as a canary). The versions come from the store, hash-checked."""
        cfg = self.config.comparison
        request = {"alert_ids": [], "from_timestamp": c.start}
        event = {**self._event(m, "comparison", c.event_id, c.summary(), request, c.end, c.metrics(cfg.p_value_below),
                               c.candidate, None), "model_version": c.baseline}
        if cfg.policy != "auto" or c.decision == "inconclusive":
            return [event]
        action, target = ("promoted", c.candidate) if c.decision == "better" else ("rolled_back", c.baseline)
        if m.trial is not None or m.requested is not None:
            log.info("%s: %s not acted on: an update is under way", m.key, c.event_id)
            return [event]
        if target is None or not self.side_by_side.settle(m.model_id, c.baseline, c.candidate):
            return [event]
        try:
            artifact = self.store.artifact(m.key, target)
            model = m.champion if m.artifact and m.artifact.version == target else self.store.load(artifact.path, artifact.sha256)
        except (OSError, ValueError, ArtifactIntegrityError) as exc:  # not a version of this store, or tampered
            log.error("%s: %s %s after %s not possible: %s", m.key, action, target, c.event_id, exc)
            return [event]
        previous = m.artifact.version if m.artifact else None
        m.champion, m.artifact, m.watch = model, artifact, None  # the served comparison supersedes a rollback watch
        self.store.set_champion(m.key, artifact)
        measured = {**c.metrics(cfg.p_value_below), "previous_version": previous, "comparison_id": c.event_id, "decided_by": DECIDER}
        reason = f"served side by side, {c.summary()}"
        log.info("%s: %s %s: %s", m.key, action, target, reason)
        switch = self._event(m, action, stable_id(c.event_id, action), reason, request, c.end, measured, target, artifact)
        m.seen.append(switch["event_id"])  # it comes back through the router: not one to follow
        return [event, {**switch, "model_version": c.candidate if target == c.baseline else c.baseline}]  # the one switched away from

    def _event(self, m: _Model, action: str, event_id: str, reason: str, request: dict[str, Any], to_ts: float,
               measured: dict[str, Any], new_version: str | None, artifact: Artifact | None) -> dict[str, Any]:
        """A ``model-updates`` event (validated against its contract)."""
        return ModelUpdate.from_dict({
            "event_id": event_id, "model_id": m.model_id, "model_version": m.model_version,
            "action": action, "reason": reason, "alert_ids": list(request["alert_ids"]),
            "from_timestamp": float(request["from_timestamp"]), "to_timestamp": float(to_ts),
            "metrics": measured, "new_version": new_version,
            "artifact_path": artifact.path if artifact else None,
            "artifact_sha256": artifact.sha256 if artifact else None,
            "timestamp": float(to_ts),
        }).to_dict()


# --------------------------------------------------------------------------- demo


def summary_lines(decisions: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per ``model-updates`` event, in order: the drift → update request →
    challenger → promotion (or rejection, rollback) loop, with the scores before and after.

    >>> summary_lines([
    ...     {"action": "update_requested", "model_id": "churn", "reason": "concept drift: adwin = 1.0 (above 0.5)", "metrics": {}},
    ...     {"action": "challenger_started", "model_id": "churn", "new_version": "v2",
    ...      "metrics": {"champion_version": "v1", "training_events": 1000}},
    ...     {"action": "promoted", "model_id": "churn", "new_version": "v2", "metrics": {
    ...      "metric": "accuracy", "champion_version": "v1", "champion_accuracy": 0.31,
    ...      "challenger_accuracy": 0.88, "improvement": 0.57, "evaluation_events": 1000}},
    ... ])  # doctest: +NORMALIZE_WHITESPACE
    ['churn: update requested (concept drift: adwin = 1.0 (above 0.5))',
     'churn: challenger v2 trained on 1000 post-drift events, champion v1',
     'churn: promoted v2 over v1: accuracy 0.310 -> 0.880 (+0.570) on 1000 events']
    """
    lines = []
    for d in decisions:
        model, action, mx = d["model_id"], d["action"], d["metrics"]
        name = mx.get("metric", "accuracy")
        if action == "update_requested":
            lines.append(f"{model}: update requested ({d['reason']})")
        elif action == "challenger_started":
            lines.append(f"{model}: challenger {d['new_version']} trained on {mx['training_events']} post-drift events, "
                         f"champion {mx['champion_version']}")
        elif action in ("promoted", "rejected") and f"champion_{name}" in mx:
            verb = "promoted" if action == "promoted" else "rejected"
            lines.append(f"{model}: {verb} {d['new_version']} over {mx['champion_version']}: {name} "
                         f"{mx[f'champion_{name}']:.3f} -> {mx[f'challenger_{name}']:.3f} ({mx['improvement']:+.3f}) "
                         f"on {mx['evaluation_events']} events")
        elif action == "comparison":
            lines.append(f"{model}: comparison {d['reason']}")
        elif action == "rolled_back" and f"promoted_{name}" in mx:
            lines.append(f"{model}: rolled back {mx['promoted_version']} to {d['new_version']}: {name} "
                         f"{mx[f'promoted_{name}']:.3f} vs {mx[f'previous_{name}']:.3f} on {mx['evaluation_events']} events")
        else:
            lines.append(f"{model}: {action.replace('_', ' ')} {d.get('new_version') or ''}: {d['reason']}".rstrip())
    return lines
