"""The reference updater, judged on seeded streams: promotion after a concept drift, none
without drift, rejection on a stationary stream, rollback of a bad promotion."""

from __future__ import annotations

import json
import logging
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from schemas import codec, schema_path
from schemas.ids import stable_id
from streams.offline.simulate import Simulation, SimulationConfig, event_time_of
from streams.updater.model_store import ModelStore
from streams.updater.decisions import Updater, UpdaterConfig, new_model, summary_lines

DRIFTED = SimulationConfig(events=6_000, seed=7, concept_drift_at=2_500, feature_drift_at=None)
STATIONARY = SimulationConfig(events=6_000, seed=8, concept_drift_at=None, feature_drift_at=None)
#: Where the pipeline's concept-drift alert would fire: some events after the injected drift.
DETECTED_AT = 2_700

VALIDATOR = jsonschema.Draft202012Validator(json.loads(schema_path("model-updates").read_text()))


def _feed(updater: Updater, items: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for role, event in items:
        out += updater.add_prediction(event) if role == "predictions" else updater.add_label(event)
    return out


def _request(config: SimulationConfig, at: int, alert: str = "alert-1") -> dict[str, Any]:
    """An ``update_requested`` event as :meth:`ModelMonitor._request_updates` makes it."""
    ts = event_time_of(config, at)
    return {
        "event_id": stable_id(alert, "update_requested"), "model_id": config.model_id,
        "model_version": config.model_version, "action": "update_requested",
        "reason": "concept drift: adwin = 1.0 (above 0.5)", "alert_ids": [alert],
        "from_timestamp": ts, "to_timestamp": ts, "metrics": {"accuracy_baseline": 0.9},
        "new_version": None, "artifact_path": None, "artifact_sha256": None, "timestamp": ts,
    }


def _run(store_dir: Path, config: SimulationConfig, request_at: int | None, *, late: bool = False,
         updater_config: UpdaterConfig | None = None) -> tuple[Updater, list[dict[str, Any]]]:
    """Stream ``config`` through a fresh updater, asking for an update when the stream reaches
    ``request_at`` (or, ``late``, after all of it)."""
    updater = Updater(ModelStore(store_dir), updater_config)
    items = Simulation(config).in_event_time_order()
    if request_at is None:
        return updater, _feed(updater, items)
    cut = len(items) if late else next(i for i, (_, e) in enumerate(items) if e["timestamp"] >= event_time_of(config, request_at))
    out = _feed(updater, items[:cut])
    out += updater.request_update(_request(config, request_at))
    out += _feed(updater, items[cut:])
    return updater, out


def test_after_a_concept_drift_the_challenger_is_promoted_and_beats_the_frozen_champion(tmp_path: Path) -> None:
    updater, decisions = _run(tmp_path, DRIFTED, DETECTED_AT)
    assert [(d["action"], d["new_version"]) for d in decisions] == [("challenger_started", "v2"), ("promoted", "v2")]
    for d in decisions:
        VALIDATOR.validate(d)
    promoted = decisions[1]
    m = promoted["metrics"]
    # the frozen pre-drift champion is mostly wrong after the flip; the challenger learned the new concept
    assert m["champion_accuracy"] < 0.3
    assert m["challenger_accuracy"] > 0.85
    assert m["improvement"] == pytest.approx(m["challenger_accuracy"] - m["champion_accuracy"])
    assert m["improvement"] > 0.5
    assert (m["champion_version"], m["previous_version"]) == ("v1", "v1")
    assert "rebaseline" not in m  # a promotion asks nothing of the monitor: the served version does
    assert (m["training_events"], m["evaluation_events"]) == (1_000, 1_000)
    assert promoted["event_id"] == stable_id(stable_id("alert-1", "update_requested"), "promoted")
    assert promoted["alert_ids"] == ["alert-1"]
    assert promoted["from_timestamp"] == event_time_of(DRIFTED, DETECTED_AT) <= promoted["to_timestamp"]
    store = updater.store
    champion = store.champion(DRIFTED.model_id)
    assert champion is not None and (champion.path, champion.sha256) == (promoted["artifact_path"], promoted["artifact_sha256"])
    assert champion.metadata["parent_version"] == "v1" and champion.metadata["metrics"]["improvement"] == m["improvement"]
    store.load(promoted["artifact_path"], promoted["artifact_sha256"])
    assert summary_lines(decisions)[-1].startswith("churn-model: promoted v2 over v1: accuracy ")


def test_a_request_handled_after_its_data_gives_the_same_decisions(tmp_path: Path) -> None:
    _, live = _run(tmp_path / "live", DRIFTED, DETECTED_AT)
    _, late = _run(tmp_path / "late", DRIFTED, DETECTED_AT, late=True)

    def comparable(d: dict[str, Any]) -> tuple[Any, ...]:
        return d["event_id"], d["action"], d["new_version"], d["metrics"], d["artifact_sha256"]

    assert [comparable(d) for d in late] == [comparable(d) for d in live]


def test_without_drift_or_request_nothing_is_promoted(tmp_path: Path) -> None:
    updater, decisions = _run(tmp_path, STATIONARY, None)
    assert decisions == []
    champion = updater.store.champion(STATIONARY.model_id)
    assert champion is not None and champion.version == "v1"
    assert champion.metadata["metrics"] == {"warmup_events": 1_000}


def test_on_a_stationary_stream_a_requested_challenger_is_rejected(tmp_path: Path) -> None:
    updater, decisions = _run(tmp_path, STATIONARY, 3_000)
    assert [d["action"] for d in decisions] == ["challenger_started", "rejected"]
    m = decisions[1]["metrics"]
    assert m["improvement"] < m["promote_margin"] == 0.02
    assert m["champion_accuracy"] > 0.8
    assert "rebaseline" not in m
    # the rejected challenger is kept for audit, but the champion stays v1
    assert updater.store.latest(STATIONARY.model_id).version == "v2"
    assert updater.store.champion(STATIONARY.model_id).version == "v1"
    updater.store.load(decisions[1]["artifact_path"], decisions[1]["artifact_sha256"])


@pytest.mark.slow
def test_promotions_follow_drift_and_rarely_anything_else_over_seeds(tmp_path: Path) -> None:
    """Over ten seeds: every drifted stream promotes by a wide margin; stationary streams
    promote at most once (measured: 1 in 20 at the default 0.02 margin)."""
    drifted, stationary = [], []
    for seed in range(10):
        _, d = _run(tmp_path / f"d{seed}", replace(DRIFTED, seed=200 + seed), DETECTED_AT)
        drifted.append((d[-1]["action"], d[-1]["metrics"]["improvement"]))
        _, s = _run(tmp_path / f"s{seed}", replace(STATIONARY, seed=300 + seed), 3_000)
        stationary.append((s[-1]["action"], s[-1]["metrics"]["improvement"]))
    assert all(action == "promoted" and gain > 0.5 for action, gain in drifted), drifted
    assert sum(action == "promoted" for action, _ in stationary) <= 1, stationary
    assert abs(sum(gain for _, gain in stationary) / len(stationary)) < 0.01, stationary


def _flipped_model(config: SimulationConfig) -> Any:
    """A model trained on inverted labels: a bad promotion."""
    model = new_model("classification")
    preds, labels = Simulation(config).generate(0, 2_000)
    features = {p["prediction_id"]: p["features"] for p in preds}
    for label in labels:
        model.learn_one(features[label["prediction_id"]], 1 - label["label"])
    return model


def _bad_promotion(tmp_path: Path) -> tuple[Updater, list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    updater = Updater(ModelStore(tmp_path))
    items = Simulation(STATIONARY).in_event_time_order()
    assert _feed(updater, items[:3_000]) == []
    [promoted] = updater.promote_external(STATIONARY.model_id, None, _flipped_model(STATIONARY),
                                          items[2_999][1]["timestamp"], "operator: try the new model")
    assert (promoted["action"], promoted["new_version"], promoted["metrics"]["external"]) == ("promoted", "v2", True)
    return updater, items[3_000:], promoted


def test_a_bad_promotion_is_rolled_back_to_the_stored_previous_artifact(tmp_path: Path) -> None:
    updater, rest, promoted = _bad_promotion(tmp_path)
    decisions = _feed(updater, rest)
    assert [d["action"] for d in decisions] == ["rolled_back"]
    rolled = decisions[0]
    VALIDATOR.validate(rolled)
    m = rolled["metrics"]
    assert (m["promoted_version"], m["previous_version"], rolled["new_version"]) == ("v2", "v1", "v1")
    assert m["previous_accuracy"] - m["promoted_accuracy"] > 0.5 and m["degradation"] > m["rollback_margin"]
    assert rolled["event_id"] == stable_id(promoted["event_id"], "rolled_back")
    v1 = updater.store.champion(STATIONARY.model_id)
    assert v1 is not None and v1.version == "v1"
    assert (rolled["artifact_path"], rolled["artifact_sha256"]) == (v1.path, v1.sha256)
    restored = updater.models[STATIONARY.model_id]
    assert restored.artifact == v1
    # the champion in use again is the verified v1: it predicts like the artifact on disk
    disk = updater.store.load(v1.path, v1.sha256)
    xs = [e["features"] for r, e in rest[:200] if r == "predictions"]
    assert [restored.champion.predict_one(x) for x in xs] == [disk.predict_one(x) for x in xs]


def test_a_tampered_previous_artifact_is_not_rolled_back_to(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    updater, rest, _ = _bad_promotion(tmp_path)
    v1 = updater.models[STATIONARY.model_id].watch.previous
    data = bytearray(Path(v1.path).read_bytes())
    data[-10] ^= 0x01
    Path(v1.path).write_bytes(bytes(data))
    with caplog.at_level(logging.ERROR, logger="streams.updater.decisions"):
        assert _feed(updater, rest) == []
    assert "refusing to load a tampered or corrupted file" in caplog.text
    assert updater.store.champion(STATIONARY.model_id).version == "v2"


def test_a_restarted_updater_resumes_its_champion_and_refuses_a_tampered_one(tmp_path: Path) -> None:
    _run(tmp_path, DRIFTED, DETECTED_AT)
    resumed = Updater(ModelStore(tmp_path))
    resumed.observe(DRIFTED.model_id, None, {"age": 30.0}, 1, 1e9)
    assert resumed.models[DRIFTED.model_id].artifact.version == "v2"
    path = Path(ModelStore(tmp_path).champion(DRIFTED.model_id).path)
    path.write_bytes(path.read_bytes() + b"\x00")
    # the tampered model is quarantined (it used to crash the updater); see tests/unit/streams/test_hardening.py
    tampered = Updater(ModelStore(tmp_path))
    assert tampered.observe(DRIFTED.model_id, None, {"age": 30.0}, 1, 1e9) == []
    assert "refusing to load a tampered or corrupted file" in tampered.quarantined[DRIFTED.model_id]


def test_a_repeated_request_is_ignored_and_a_second_one_meanwhile_is_rejected(tmp_path: Path) -> None:
    updater = Updater(ModelStore(tmp_path))
    first = _request(DRIFTED, DETECTED_AT)
    assert updater.request_update(first) == []  # waits for the stream to reach from_timestamp
    assert updater.request_update(first) == []
    [busy] = updater.request_update(_request(DRIFTED, DETECTED_AT + 100, alert="alert-2"))
    assert busy["action"] == "rejected" and busy["alert_ids"] == ["alert-2"]
    assert f"still handling update {first['event_id']}" in busy["reason"]
    assert updater.request_update({**first, "event_id": "x", "action": "promoted"}) == []


def test_regression_challenger_is_judged_on_mae(tmp_path: Path) -> None:
    rng = random.Random(3)
    updater = Updater(ModelStore(tmp_path), UpdaterConfig(warmup_events=500, training_events=500, evaluation_events=500))
    out = []
    for i in range(3_000):
        x = rng.uniform(-1, 1)
        slope = 3.0 if i < 1_000 else -3.0
        out += updater.observe("price", "2024", {"x": x}, slope * x + rng.gauss(0, 0.1), float(i))
        if i == 1_100:
            out += updater.request_update({**_request(DRIFTED, 0), "model_id": "price", "model_version": "2024",
                                           "from_timestamp": 1_100.0})
    assert [d["action"] for d in out] == ["challenger_started", "promoted"]
    m = out[1]["metrics"]
    assert m["metric"] == "mae" and m["challenger_mae"] < 0.5 * m["champion_mae"] and m["improvement"] > 0.5
    assert out[1]["model_version"] == "2024"
    assert updater.store.champion("price").version == "v2"  # one lineage per model id, whatever version asked


def test_a_ranking_model_is_skipped_and_its_update_requests_are_rejected(tmp_path: Path) -> None:
    """The learners here take a class or a number: a ranking's labels (relevant items, or
    item -> gain) must not reach them (a list or dict label raised in river), and a request
    for a ranking model says why nothing will come of it."""
    updater = Updater(ModelStore(tmp_path), UpdaterConfig(warmup_events=10))
    for i in range(50):
        label = ["a", "b"] if i % 2 else {"a": 2.0}
        assert updater.observe("recs", None, {"x": float(i)}, label, float(i)) == []
    assert updater.skipped_events == 50 and updater.store.champion("recs") is None
    [rejected] = updater.request_update({**_request(DRIFTED, 0), "model_id": "recs", "model_version": None,
                                         "from_timestamp": 10.0})
    assert rejected["action"] == "rejected" and "ranking model" in rejected["reason"]
    VALIDATOR.validate(rejected)


def test_pending_predictions_are_bounded_by_count_and_by_the_join_window(tmp_path: Path) -> None:
    updater = Updater(ModelStore(tmp_path), UpdaterConfig(pending_events=100, join_window_s=50.0))
    preds, labels = Simulation(SimulationConfig(events=1_000, seed=1)).generate()
    for p in preds[:500]:
        updater.add_prediction(p)
    assert len(updater.join.predictions) == 100
    updater.add_prediction({**preds[500], "timestamp": preds[499]["timestamp"] + 49.0})
    assert all(p["timestamp"] >= preds[499]["timestamp"] - 1.0 for p in updater.join.predictions.values())
    early = {"prediction_id": "late-pred", "label": 1, "timestamp": preds[499]["timestamp"], "model_id": "churn-model"}
    assert updater.add_label(early) == [] and "late-pred" in updater.join.labels
    updater.add_prediction({**preds[0], "prediction_id": "late-pred", "timestamp": preds[499]["timestamp"]})
    assert "late-pred" not in updater.join.labels and updater.models["churn-model"].recent[-1][1] == 1


@pytest.mark.parametrize(("field", "value", "message"), [
    ("evaluation_events", 0, "evaluation_events must be >= 1, got 0"),
    ("promote_margin", 1.5, "promote_margin must be in [0, 1], got 1.5"),
    ("join_window_s", 0.0, "join_window_s must be > 0, got 0.0"),
    ("task", "ranking", "task must be one of classification, regression or None, got 'ranking'"),
])
def test_bad_config_is_rejected_naming_the_parameter(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        UpdaterConfig(**{field: value})


def test_a_model_id_that_would_leave_the_store_is_dead_lettered_and_never_a_path(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    updater = Updater(ModelStore(store_dir), UpdaterConfig(warmup_events=10))
    for i in range(20):
        assert updater.observe("../../escape", None, {"x": float(i)}, i % 2, float(i)) == []
    assert updater.request_update({**_request(DRIFTED, 5), "model_id": "../../escape"}) == []
    [letter] = updater.take_dead_letters()
    assert letter["reason"] == "unsafe_name" and "would leave the model store folder" in letter["message"]
    assert updater.skipped_events == 20
    assert not (tmp_path / "escape").exists() and not any(store_dir.glob("**/*.pkl"))


# --------------------------------------------------------------------------- rollbacks decided elsewhere

LONG = replace(DRIFTED, events=9_000)


def _until(updater: Updater, items: list[tuple[str, dict[str, Any]]], action: str) -> tuple[list[dict[str, Any]], int]:
    """Feed ``items`` until a decision ``action`` comes; the decisions and how many items were fed."""
    out: list[dict[str, Any]] = []
    for n, item in enumerate(items, 1):
        out += _feed(updater, [item])
        if out and out[-1]["action"] == action:
            return out, n
    raise AssertionError(f"no {action} in {out}")


def test_a_rollback_from_the_cli_is_followed_and_judges_the_next_challenger(tmp_path: Path) -> None:
    from streams.updater.cli import rollback

    updater = Updater(ModelStore(tmp_path))
    items = Simulation(LONG).in_event_time_order()
    cut = next(i for i, (_, e) in enumerate(items) if e["timestamp"] >= event_time_of(LONG, DETECTED_AT))
    _feed(updater, items[:cut])
    updater.request_update(_request(LONG, DETECTED_AT))
    first, fed = _until(updater, items[cut:], "promoted")
    assert [(d["action"], d["new_version"]) for d in first] == [("challenger_started", "v2"), ("promoted", "v2")]
    m = updater.models[LONG.model_id]
    assert m.watch is not None  # the promotion is being watched

    # an operator rolls v2 back while the updater runs: the CLI moves the store's champion and publishes
    at = cut + fed
    event = rollback(updater.store, LONG.model_id, None, decided_by="cli:ops", timestamp=items[at][1]["timestamp"])
    assert updater.model_update(event) == []  # the event is the decision: nothing to publish
    v1 = updater.store.artifact(LONG.model_id, "v1")
    assert (m.artifact, m.watch) == (v1, None)
    xs = [e["features"] for r, e in items[at:at + 300] if r == "predictions"]
    disk = updater.store.load(v1.path, v1.sha256)
    assert [m.champion.predict_one(x) for x in xs] == [disk.predict_one(x) for x in xs]
    assert updater.model_update(event) == [] and m.artifact == v1  # a replayed event changes nothing

    # the next update is judged against the rolled-back champion, and v3's parent is v1
    cut2 = at + 200
    ts = items[cut2][1]["timestamp"]
    request = {**_request(LONG, 0, alert="alert-2"), "from_timestamp": ts, "to_timestamp": ts, "timestamp": ts}
    _feed(updater, items[at:cut2])
    second = updater.request_update(request) + _feed(updater, items[cut2:])
    assert [(d["action"], d["new_version"]) for d in second] == [("challenger_started", "v3"), ("promoted", "v3")]
    assert second[0]["metrics"]["champion_version"] == "v1"
    assert (second[1]["metrics"]["champion_version"], second[1]["metrics"]["previous_version"]) == ("v1", "v1")
    v3 = updater.store.champion(LONG.model_id)
    assert v3 is not None and v3.version == "v3" and v3.metadata["parent_version"] == "v1"


def test_its_own_rollback_coming_back_is_not_followed(tmp_path: Path) -> None:
    """The router sends the updater's own ``rolled_back`` back to it: following it late would
    undo a promotion made since."""
    updater, rest, _ = _bad_promotion(tmp_path)
    [rolled] = _feed(updater, rest[:2_500])
    assert rolled["action"] == "rolled_back" and rolled["new_version"] == "v1"
    [promoted] = updater.promote_external(STATIONARY.model_id, None, _flipped_model(STATIONARY),
                                          rest[2_499][1]["timestamp"], "operator: try again")
    assert promoted["new_version"] == "v3"
    assert updater.model_update(rolled) == []
    assert updater.models[STATIONARY.model_id].artifact.version == "v3"
    assert updater.store.champion(STATIONARY.model_id).version == "v3"


def test_its_own_promotion_coming_back_after_its_rollback_is_not_followed(tmp_path: Path) -> None:
    """The router sends the updater's own ``promoted`` back to it too, possibly after the
    rollback that ended it: following it would serve the rolled-back version again."""
    updater, rest, promoted = _bad_promotion(tmp_path)
    [rolled] = _feed(updater, rest[:2_500])
    assert (rolled["action"], rolled["new_version"]) == ("rolled_back", "v1")
    assert updater.model_update(promoted) == []
    assert updater.models[STATIONARY.model_id].artifact.version == "v1"
    assert updater.store.champion(STATIONARY.model_id).version == "v1"


def test_a_promotion_from_the_cli_is_followed_and_a_replay_of_it_changes_nothing(tmp_path: Path) -> None:
    from streams.updater.cli import promote

    updater, rest, _ = _bad_promotion(tmp_path)
    [rolled] = _feed(updater, rest[:2_500])
    assert rolled["new_version"] == "v1"
    # the operator promotes v2 again, knowingly: the updater follows, and watches nothing
    event = promote(updater.store, STATIONARY.model_id, "v2", decided_by="cli:ops", timestamp=rest[2_499][1]["timestamp"])
    assert updater.model_update(event) == []
    m = updater.models[STATIONARY.model_id]
    v2 = updater.store.artifact(STATIONARY.model_id, "v2")
    assert (m.artifact, m.watch) == (v2, None)
    xs = [e["features"] for r, e in rest[2_500:2_800] if r == "predictions"]
    disk = updater.store.load(v2.path, v2.sha256)
    assert [m.champion.predict_one(x) for x in xs] == [disk.predict_one(x) for x in xs]
    updater.store.set_champion(STATIONARY.model_id, updater.store.artifact(STATIONARY.model_id, "v1"))
    assert updater.model_update(event) == [] and m.artifact == v2  # a replayed event changes nothing
    forged = {**event, "event_id": "forged", "new_version": "v1", "artifact_sha256": "0" * 64}
    assert updater.model_update(forged) == [] and m.artifact == v2
    [letter] = updater.take_dead_letters()
    assert letter["reason"] == "model_quarantined" and "promotion of 'v1' not followed" in letter["message"]


def test_a_rollback_to_an_artifact_that_does_not_match_is_dead_lettered_not_followed(tmp_path: Path) -> None:
    from streams.updater.cli import rollback

    updater, _ = _run(tmp_path, DRIFTED, DETECTED_AT)
    event = rollback(updater.store, DRIFTED.model_id, None, decided_by="cli:ops", timestamp=1e9)
    updater.store.set_champion(DRIFTED.model_id, updater.store.artifact(DRIFTED.model_id, "v2"))  # as before the CLI
    forged = {**event, "event_id": "forged", "artifact_sha256": "0" * 64}
    escaping = {**event, "event_id": "escaping", "new_version": "../v1"}
    elsewhere = {**event, "event_id": "elsewhere", "model_id": "../../escape"}
    assert updater.model_update(forged) == updater.model_update(escaping) == updater.model_update(elsewhere) == []
    assert updater.models[DRIFTED.model_id].artifact.version == "v2"
    assert updater.store.champion(DRIFTED.model_id).version == "v2"
    letters = updater.take_dead_letters()
    assert [letter["reason"] for letter in letters] == ["model_quarantined", "unsafe_name", "unsafe_name"]
    assert "rollback to 'v1' not followed" in letters[0]["message"] and "0000" in letters[0]["message"]
