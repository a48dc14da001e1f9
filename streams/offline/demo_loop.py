"""The model-update loop of ``driftstream demo``: simulated traffic served by a real model,
and the check, at the end, that every step of the loop happened.

:class:`ServedTraffic` is the demo's model server. A first model (``v1``) learns from a
drift-free history and is stored as the champion; every simulated prediction is then made
by a :class:`~streams.sdk.serving.ServedModel` (so it carries the version that made it), and
the simulation's labels score it, per version and before or after the injected concept
drift. When the updater promotes a challenger, the demo's
:class:`~streams.sdk.serving.ModelFollower` swaps the served model and announces ``served``.

:func:`check_loop` reads the alerts, the ``model-updates`` events and the tallies and
says, step by step, whether the loop closed: drift, alert, update requested, challenger,
promoted, served, predictions tagged with the new version, accuracy recovered on the served
predictions, and the old version's alert resolved.

>>> import tempfile
>>> from streams.updater.model_store import ModelStore
>>> from streams.offline.simulate import SimulationConfig
>>> config = SimulationConfig(events=2000, concept_drift_at=1000, feature_drift_at=None)
>>> traffic = ServedTraffic.first_model(ModelStore(tempfile.mkdtemp()), config, history=1500)
>>> traffic.served.version
'v1'
>>> merged = traffic.serve(config, 0, 2000)
>>> {e["model_version"] for role, e in merged if role == "predictions"}
{'v1'}
>>> before, after = traffic.accuracy("v1", False), traffic.accuracy("v1", True)
>>> before > 0.85, after < 0.5
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.offline.simulate import Simulation, SimulationConfig, event_time_of
from streams.sdk.serving import ServedModel
from streams.updater.model_store import ModelStore
from streams.updater.decisions import _features, new_model

__all__ = ["LoopStep", "ServedTraffic", "check_loop"]

#: Who made the first model, in its sidecar (the updater records ``updater``).
DEMO_DECIDER = "demo"


def _predict(model: Any, features: dict[str, Any]) -> tuple[Any, float]:
    """The predicted class and its probability (the record's ``prediction`` and ``score``)."""
    proba = model.predict_proba_one(_features(features))
    if not proba:  # a model that has seen no label yet
        return 0, 0.5
    label = max(proba, key=proba.get)
    return label, float(proba[label])


@dataclass
class _Tally:
    correct: int = 0
    labelled: int = 0


@dataclass
class ServedTraffic:
    """Serves a simulation's predictions through ``served`` and scores them by version."""

    served: ServedModel
    concept_drift_at: int | None
    #: prediction id -> (version, prediction, after the concept drift), until its label comes
    pending: dict[str, tuple[str | None, Any, bool]] = field(default_factory=dict)
    #: (version, after the concept drift) -> its served predictions' accuracy so far
    tallies: dict[tuple[str | None, bool], _Tally] = field(default_factory=dict)
    #: predictions served by each version
    served_by: dict[str | None, int] = field(default_factory=dict)

    @classmethod
    def first_model(cls, store: ModelStore, config: SimulationConfig, history: int = 3000) -> ServedTraffic:
        """Train ``v1`` on ``history`` labelled events of the same world before any drift
        (its own ids and seed, just before the simulation starts), store it as the champion
        and serve it."""
        past = SimulationConfig(
            events=history, seed=config.seed + 1, model_id=config.model_id, event_rate=config.event_rate,
            start=config.start - history / config.event_rate, concept_drift_at=None, feature_drift_at=None,
            label_fraction=1.0, id_prefix="history-",
        )
        predictions, labels = Simulation(past).generate()
        truth = {label["prediction_id"]: label["label"] for label in labels}
        model = new_model("classification")
        for p in predictions:
            model.learn_one(_features(p["features"]), truth[p["prediction_id"]])
        artifact = store.save(config.model_id, "v1", model, {
            "created": past.start, "metrics": {"history_events": history}, "parent_version": None, "decided_by": DEMO_DECIDER,
        })
        store.set_champion(config.model_id, artifact)
        served = ServedModel(store, config.model_id, predict=_predict)
        served.load()
        return cls(served, config.concept_drift_at)

    def serve(self, config: SimulationConfig, start: int, count: int) -> list[tuple[str, dict[str, Any]]]:
        """Simulated events ``[start, start + count)`` in event-time order, each prediction
        made by the served model and tagged with its version."""
        drift_ts = event_time_of(config, self.concept_drift_at) if self.concept_drift_at is not None else float("inf")
        out = Simulation(config).in_event_time_order(start, count)
        for role, event in out:
            if role == "predictions":
                (label, score), version = self.served.predict(event["features"], timestamp=event["timestamp"])
                event.update(prediction=label, score=round(score, 6), model_version=version)
                self.served_by[version] = self.served_by.get(version, 0) + 1
                self.pending[event["prediction_id"]] = (version, label, event["timestamp"] >= drift_ts)
            else:
                made = self.pending.pop(event["prediction_id"], None)
                if made is not None:
                    tally = self.tallies.setdefault((made[0], made[2]), _Tally())
                    tally.labelled += 1
                    tally.correct += int(made[1] == event["label"])
        return out

    def accuracy(self, version: str | None, after_drift: bool) -> float | None:
        tally = self.tallies.get((version, after_drift))
        return tally.correct / tally.labelled if tally and tally.labelled else None


@dataclass(frozen=True)
class LoopStep:
    """One step of the loop and whether it happened."""

    name: str
    ok: bool
    detail: str


def _final_alerts(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    final: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        final[alert["alert_id"]] = alert
    return final


def check_loop(model_id: str, first: str, traffic: ServedTraffic, alerts: list[dict[str, Any]],
               updates: list[dict[str, Any]], promote_margin: float = 0.02) -> list[LoopStep]:
    """Each step of the loop for ``model_id``, starting from version ``first``."""
    steps: list[LoopStep] = []

    def step(name: str, ok: bool, detail: str) -> bool:
        steps.append(LoopStep(name, ok, detail))
        return ok

    mine = [u for u in updates if u["model_id"] == model_id]
    first_of = {}
    for u in mine:
        first_of.setdefault(u["action"], u)
    drifted = traffic.concept_drift_at is not None
    step("drift injected", drifted, f"the concept flips at prediction #{traffic.concept_drift_at}" if drifted else "no concept drift")
    old_alerts = [a for a in _final_alerts(alerts).values() if a["model_id"] == model_id and a.get("model_version") == first]
    concept = [a for a in old_alerts if a["kind"] in ("concept_drift", "performance")]
    step("alert", bool(concept), f"{first}: " + ", ".join(f"{a['alert_id'][:8]} {a['kind']} {a['severity']}" for a in concept)
         if concept else f"no concept-drift or performance alert on {model_id}@{first}")
    request = first_of.get("update_requested")
    step("update requested", request is not None, request["reason"] if request else "no update_requested event")
    challenger = first_of.get("challenger_started")
    step("challenger", challenger is not None,
         f"{challenger['new_version']} trained on {challenger['metrics'].get('training_events')} post-drift events"
         if challenger else "no challenger_started event")
    promoted = first_of.get("promoted")
    new = promoted["new_version"] if promoted else None
    step("promoted", promoted is not None, promoted["reason"] if promoted else "no promoted event")
    served = next((u for u in mine if u["action"] == "served" and u.get("new_version") == new and new), None)
    step("served", served is not None, f"{new} serves from event time {served['timestamp']:.1f} (was {served['model_version']})"
         if served else f"no served event for {new}")
    count = traffic.served_by.get(new, 0) if new else 0
    step("predictions tagged", count > 0, f"{count:,} predictions made and tagged by {new}, "
         f"{traffic.served_by.get(first, 0):,} by {first}")
    before, after, recovered = traffic.accuracy(first, False), traffic.accuracy(first, True), traffic.accuracy(new, True)
    ok = None not in (before, after, recovered) and recovered >= after + promote_margin  # type: ignore[operator]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    step("accuracy recovers", ok, f"served predictions: {first} {fmt(before)} before the drift, {fmt(after)} after it; "
         f"{new} {fmt(recovered)}")
    resolved = [a for a in concept if a["status"] == "resolved"]
    step("alert resolved", bool(concept) and len(resolved) == len(concept),
         "; ".join(f"{a['alert_id'][:8]}: {a['status']} ({a['message']})" for a in concept) or "no alert to resolve")
    return steps
