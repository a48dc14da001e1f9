"""Canary / A-B comparison in the updater (issue #25, item 3): two versions of a model served
at once are compared side by side, a ``comparison`` event is published on ``model-updates``,
and the ``auto`` policy promotes a better canary or rolls back a worse promotion."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from typing import Any

import jsonschema
import pytest

from schemas import schema_path
from streams.updater.canary import ComparisonConfig
from streams.updater.model_store import ModelStore
from streams.updater.decisions import Updater, UpdaterConfig, new_model, summary_lines

VALIDATOR = jsonschema.Draft202012Validator(json.loads(schema_path("model-updates").read_text()))
KEY = b"k" * 32
MODEL = "churn"
COMPARE = ComparisonConfig(min_pairs=400, every_pairs=100_000)
CONFIG = UpdaterConfig(warmup_events=200, comparison=COMPARE)


def _served(n: int, accuracy: dict[str, float], *, seed: int = 1, share: float = 0.5, start: float = 1_000.0,
            switch_at: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Predictions of two versions and their labels (each a few events later): ``v2`` serves
    ``share`` of the traffic (or, with ``switch_at``, all of it from there, ``v1`` before).
    A right prediction is more confident than a wrong one, so the AUC follows accuracy."""
    rng = random.Random(seed)
    items: list[tuple[str, dict[str, Any]]] = []
    waiting: list[tuple[int, dict[str, Any]]] = []
    for i in range(n):
        if switch_at is None:
            version = "v2" if rng.random() < share else "v1"
        else:
            version = "v2" if i >= switch_at else "v1"
        label = rng.random() < 0.4
        right = rng.random() < accuracy[version]
        prediction = int(label if right else not label)
        ts = start + i * 0.1
        items.append(("predictions", {
            "prediction_id": f"p{i}", "model_id": MODEL, "model_version": version, "timestamp": ts,
            "features": {"x": rng.uniform(-1, 1)}, "prediction": prediction,
            "score": round(rng.uniform(0.6, 1.0) if right else rng.uniform(0.5, 0.8), 3),
        }))
        waiting.append((i + rng.randint(1, 30), {"prediction_id": f"p{i}", "model_id": MODEL, "label": int(label),
                                                 "timestamp": ts + 2.0}))
        items += [("ground-truth", e) for due, e in waiting if due <= i]
        waiting = [(due, e) for due, e in waiting if due > i]
    return items + [("ground-truth", e) for _, e in waiting]


def _feed(updater: Updater, items: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for role, event in items:
        out += updater.add_prediction(event) if role == "predictions" else updater.add_label(event)
    return out


def _lineage(store: ModelStore, champion: str) -> None:
    """v1, then v2 with parent v1, both stored; ``champion`` the store's champion."""
    for version, parent in (("v1", None), ("v2", "v1")):
        artifact = store.save(MODEL, version, new_model("classification"),
                              {"created": 0.0, "metrics": {}, "parent_version": parent, "decided_by": "test"})
        if version == champion:
            store.set_champion(MODEL, artifact)


def _comparisons(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["action"] == "comparison"]


def test_two_versions_served_together_give_one_comparison_with_the_right_decision(tmp_path) -> None:
    updater = Updater(ModelStore(tmp_path), CONFIG)
    events = _feed(updater, _served(2_000, {"v1": 0.75, "v2": 0.9}))
    [c] = _comparisons(events)  # the next look would need 100,000 more pairs each
    VALIDATOR.validate(c)
    mx = c["metrics"]
    assert (c["model_id"], c["model_version"], c["new_version"]) == (MODEL, "v1", "v2")
    assert (mx["baseline_version"], mx["candidate_version"], mx["look"], mx["decision"]) == ("v1", "v2", 1, "better")
    assert mx["n_baseline"] >= 200 and mx["n_candidate"] >= 200  # at least min_pairs // 2 in the common span
    assert set(mx["tests"]) == {"accuracy", "roc_auc"}
    acc = mx["tests"]["accuracy"]
    assert acc["baseline"] == pytest.approx(0.75, abs=0.05) and acc["candidate"] == pytest.approx(0.9, abs=0.05)
    assert acc["difference"] == pytest.approx(acc["candidate"] - acc["baseline"]) and acc["p_value"] < 0.005
    assert mx["tests"]["roc_auc"]["difference"] > 0
    assert c["from_timestamp"] < c["to_timestamp"] == c["timestamp"] and c["reason"].endswith("better")
    assert updater.store.champion(MODEL) is None or updater.store.champion(MODEL).version == "v1"  # publish only
    assert [e["action"] for e in events] == ["comparison"]
    assert summary_lines([c]) == [f"{MODEL}: comparison {c['reason']}"]


def test_a_replay_publishes_the_same_comparison_ids(tmp_path) -> None:
    items = _served(2_500, {"v1": 0.8, "v2": 0.8}, seed=4)
    config = replace(CONFIG, comparison=replace(COMPARE, min_pairs=300, every_pairs=300))
    first = _comparisons(_feed(Updater(ModelStore(tmp_path / "a"), config), items))
    again = _comparisons(_feed(Updater(ModelStore(tmp_path / "b"), config), items))
    assert len(first) >= 3 and first == again
    assert [e["metrics"]["look"] for e in first] == list(range(1, len(first) + 1))
    assert len({e["event_id"] for e in first}) == len(first)
    assert {e["metrics"]["decision"] for e in first} == {"inconclusive"}  # equal versions


def test_the_comparison_state_survives_a_checkpoint(tmp_path) -> None:
    items = _served(2_500, {"v1": 0.8, "v2": 0.85}, seed=6)
    config = replace(CONFIG, comparison=replace(COMPARE, min_pairs=300, every_pairs=300))
    expected = _comparisons(_feed(Updater(ModelStore(tmp_path / "straight", key=KEY), config), items))
    assert len(expected) >= 3

    store = ModelStore(tmp_path / "crashed", key=KEY)
    crashed = Updater(store, config)
    published = _feed(crashed, items[:1_900])  # past the first looks, pairs counted towards the next
    store.save_state("partition-0", crashed.state(), {"position": 1_900})
    published += _feed(crashed, items[1_900:2_600])  # lost with the process, but published
    del crashed
    restarted = Updater(store, config)
    restarted.restore(store.load_state("partition-0")[0])
    published += _feed(restarted, items[1_900:])
    by_id: dict[str, dict[str, Any]] = {}
    for e in _comparisons(published):
        assert by_id.setdefault(e["event_id"], e) == e  # a look made again is the same event
    assert list(by_id.values()) == expected


def test_a_full_switch_is_not_compared(tmp_path) -> None:
    updater = Updater(ModelStore(tmp_path), CONFIG)
    assert _comparisons(_feed(updater, _served(4_000, {"v1": 0.9, "v2": 0.6}, switch_at=1_500))) == []


def test_a_regression_is_compared_on_mae(tmp_path) -> None:
    rng = random.Random(3)
    updater = Updater(ModelStore(tmp_path), replace(CONFIG, task="regression"))
    events = []
    for i in range(1_200):
        version, y = ("v2" if i % 2 else "v1"), rng.gauss(10, 2)
        error = rng.gauss(0, 1.0 if version == "v2" else 2.0)
        events += updater.add_prediction({"prediction_id": f"p{i}", "model_id": MODEL, "model_version": version,
                                          "timestamp": float(i), "features": {"x": y}, "prediction": y + error})
        events += updater.add_label({"prediction_id": f"p{i}", "label": y, "timestamp": float(i)})
    [c] = _comparisons(events)
    VALIDATOR.validate(c)
    assert set(c["metrics"]["tests"]) == {"mae"} and c["metrics"]["decision"] == "better"
    assert c["metrics"]["tests"]["mae"]["difference"] < 0 and not c["metrics"]["tests"]["mae"]["higher_is_better"]


def test_auto_rolls_back_a_promoted_version_worse_than_its_parent_once(tmp_path) -> None:
    store = ModelStore(tmp_path, key=KEY)
    _lineage(store, champion="v2")
    config = replace(CONFIG, comparison=replace(COMPARE, policy="auto", every_pairs=300))
    updater = Updater(store, config)
    events = _feed(updater, _served(3_000, {"v1": 0.9, "v2": 0.7}, seed=2))
    actions = [e["action"] for e in events]
    assert actions[:2] == ["comparison", "rolled_back"] and actions.count("rolled_back") == 1
    assert set(actions[2:]) <= {"comparison"}  # later looks: published, not acted on again
    comparison, rollback = events[0], events[1]
    VALIDATOR.validate(rollback)
    assert comparison["metrics"]["decision"] == "worse"
    assert (rollback["model_version"], rollback["new_version"]) == ("v2", "v1")
    assert rollback["metrics"]["previous_version"] == "v2" and rollback["metrics"]["comparison_id"] == comparison["event_id"]
    assert rollback["metrics"]["decided_by"] == "updater" and summary_lines([rollback])[0].startswith(f"{MODEL}: rolled back v1: ")
    assert rollback["artifact_sha256"] == store.artifact(MODEL, "v1").sha256
    assert store.champion(MODEL).version == "v1" and updater.models[MODEL].artifact.version == "v1"


def test_auto_promotes_a_better_canary(tmp_path) -> None:
    store = ModelStore(tmp_path, key=KEY)
    _lineage(store, champion="v1")
    config = replace(CONFIG, comparison=replace(COMPARE, policy="auto"))
    events = _feed(Updater(store, config), _served(2_000, {"v1": 0.75, "v2": 0.9}, share=0.3))
    assert [e["action"] for e in events] == ["comparison", "promoted"]
    assert events[1]["new_version"] == "v2" and store.champion(MODEL).version == "v2"


def test_auto_does_not_act_on_an_inconclusive_comparison_or_a_version_not_in_the_store(tmp_path) -> None:
    config = replace(CONFIG, comparison=replace(COMPARE, policy="auto"))
    events = _feed(Updater(ModelStore(tmp_path / "a"), config), _served(2_000, {"v1": 0.8, "v2": 0.8}))
    assert [(e["action"], e["metrics"]["decision"]) for e in events] == [("comparison", "inconclusive")]
    # v2 is better, but another team's version, unknown to this store: published, not promoted
    events = _feed(Updater(ModelStore(tmp_path / "b"), config), _served(2_000, {"v1": 0.75, "v2": 0.9}))
    assert [(e["action"], e["metrics"]["decision"]) for e in events] == [("comparison", "better")]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("min_pairs", 1, "comparison.min_pairs must be an integer >= 2, got 1"),
    ("every_pairs", 0, "comparison.every_pairs must be an integer >= 2, got 0"),
    ("window_pairs", 10, "comparison.window_pairs must be >= comparison.min_pairs (500), got 10"),
    ("p_value_below", 0.0, "comparison.p_value_below must be in (0, 1), got 0.0"),
    ("idle_after_s", -1.0, "comparison.idle_after_s must be a finite number > 0, got -1.0"),
    ("policy", "yolo", "comparison.policy must be one of publish, auto, got 'yolo'"),
])
def test_bad_comparison_config_is_refused_naming_the_key(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ComparisonConfig(**{field: value})


@pytest.mark.parametrize(("variable", "value"), [
    ("DRIFTSTREAM_COMPARISON_POLICY", "yolo"),
    ("DRIFTSTREAM_COMPARISON_MIN_PAIRS", "1"),
    ("DRIFTSTREAM_COMPARISON_P_VALUE_BELOW", "1.5"),
])
def test_a_bad_comparison_variable_stops_the_updater_and_the_worker_at_start_up(variable: str, value: str) -> None:
    from streams.cli import worker_tasks
    from streams.settings import Settings, SettingsError

    settings = Settings.from_env({variable: value, "DRIFTSTREAM_RUN_UPDATER": "true"})
    with pytest.raises(SettingsError, match=f"^{variable}: "):
        UpdaterConfig.from_settings(settings)
    with pytest.raises(SettingsError, match=f"^{variable}: "):
        worker_tasks(settings)
    good = Settings.from_env({"DRIFTSTREAM_COMPARISON_POLICY": "auto", "DRIFTSTREAM_COMPARISON_EVERY_PAIRS": "250"})
    assert UpdaterConfig.from_settings(good).comparison == ComparisonConfig(policy="auto", every_pairs=250)


class Noisy:
    """A served model right on a share of the events (its feature ``u`` above ``wrong_below``)."""

    def __init__(self, wrong_below: float) -> None:
        self.wrong_below = wrong_below

    def predict_one(self, x: dict[str, Any]) -> int:
        return int(x["truth"]) if x["u"] >= self.wrong_below else 1 - int(x["truth"])


def test_a_canary_served_by_the_hook_is_compared_promoted_and_then_served_alone(tmp_path) -> None:
    from streams.sdk.serving import ServedModel

    store = ModelStore(tmp_path, key=KEY)
    for version, wrong_below, parent in (("v1", 0.25, None), ("v2", 0.08, "v1")):
        artifact = store.save(MODEL, version, Noisy(wrong_below), {"created": 0.0, "metrics": {}, "parent_version": parent})
        if version == "v1":
            store.set_champion(MODEL, artifact)
    served = ServedModel(store, MODEL, canary=0.3)
    served.load()
    updater = Updater(store, replace(CONFIG, comparison=replace(COMPARE, min_pairs=300, policy="auto")))
    v2 = store.artifact(MODEL, "v2")
    served.apply({"event_id": "deploy-v2", "model_id": MODEL, "action": "promoted", "new_version": "v2",
                  "artifact_sha256": v2.sha256, "alert_ids": []})  # e.g. promoted by another training stack
    rng = random.Random(9)
    decisions: list[dict[str, Any]] = []
    for i in range(4_000):
        x = {"truth": rng.random() < 0.5, "u": rng.random()}
        prediction, version = served.predict(x, 1_000.0 + i, key=f"p{i}")
        decisions += updater.add_prediction({"prediction_id": f"p{i}", "model_id": MODEL, "model_version": version,
                                             "timestamp": 1_000.0 + i, "features": x, "prediction": prediction})
        decisions += updater.add_label({"prediction_id": f"p{i}", "label": int(x["truth"]), "timestamp": 1_001.0 + i})
        for d in decisions:
            served.apply(d)
        decisions = [d for d in decisions if d["action"] == "comparison"]
        if served.canary_version is None:
            break
    [comparison] = decisions
    assert comparison["metrics"]["decision"] == "better" and comparison["metrics"]["n_candidate"] >= 150
    assert (served.version, served.canary_version) == ("v2", None) and store.champion(MODEL).version == "v2"
    served.predict({"truth": True, "u": 0.5}, 9_000.0)
    [event] = served.take_events()
    assert (event["action"], event["model_version"], event["new_version"]) == ("served", "v1", "v2")
