"""The serving hook: switches only to checked artifacts of its own store, atomically, and
announces each switch once with the new version's first prediction."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from streams.pipeline.stages import MonitorStage
from streams.sdk.serving import ServedModel
from streams.updater.model_store import ModelStore


class Bias:
    """A stand-in model whose prediction names its version, so a mix would show."""

    def __init__(self, version: str) -> None:
        self.version = version

    def predict_one(self, x: dict[str, Any]) -> str:
        return self.version


def _store(tmp_path: Path, key: bytes | None = None) -> ModelStore:
    store = ModelStore(tmp_path, key=key)
    for n in (1, 2, 3):
        store.save("churn", f"v{n}", Bias(f"v{n}"), {"created": float(n), "metrics": {}, "parent_version": f"v{n - 1}" if n > 1 else None})
    store.set_champion("churn", store.artifact("churn", "v1"))
    return store


def _promoted(store: ModelStore, version: str, **override: Any) -> dict[str, Any]:
    art = store.artifact("churn", version)
    return {"event_id": f"u-{version}", "model_id": "churn", "action": "promoted", "new_version": version,
            "artifact_sha256": art.sha256, "artifact_path": art.path, "alert_ids": ["a1"], **override}


def test_a_promotion_switches_the_served_version_and_the_first_prediction_announces_it_once(tmp_path: Path) -> None:
    store = _store(tmp_path)
    served = ServedModel(store, "churn")
    served.load()  # the champion
    assert served.predict({}, 1.0) == ("v1", "v1") and served.take_events() == []
    assert served.apply(_promoted(store, "v2")) is True
    assert served.apply(_promoted(store, "v2")) is False  # a replayed event: already served
    assert [served.predict({}, t) for t in (5.0, 6.0)] == [("v2", "v2")] * 2
    [event] = served.take_events()
    assert (event["action"], event["model_version"], event["new_version"], event["timestamp"]) == ("served", "v1", "v2", 5.0)
    key, control = MonitorStage.control_for(event)  # type: ignore[misc]
    assert (key, control.control, control.timestamp) == ("churn@v1", "retire", 5.0)
    assert served.apply({**_promoted(store, "v1"), "action": "rolled_back", "event_id": "r1"}) is True
    assert served.predict({}, 9.0) == ("v1", "v1")
    assert served.take_events()[0]["new_version"] == "v1"


def test_other_models_and_other_actions_are_ignored(tmp_path: Path) -> None:
    store = _store(tmp_path)
    served = ServedModel(store, "churn")
    served.load("v1")
    for update in (_promoted(store, "v2", model_id="fraud"), _promoted(store, "v2", action="rejected"),
                   _promoted(store, "v2", action="challenger_started")):
        assert served.apply(update) is False
    assert served.version == "v1" and served.take_dead_letters() == []


@pytest.mark.parametrize(("override", "reason", "text"), [
    ({"artifact_sha256": "0" * 64}, "model_quarantined", "refusing to load it"),
    ({"new_version": "../../etc/passwd"}, "unsafe_name", "is not v<number>"),
    ({"new_version": "v9"}, "model_quarantined", "No such file"),
])
def test_a_switch_that_fails_a_check_is_dead_lettered_and_changes_nothing(tmp_path: Path, override: dict[str, Any], reason: str, text: str) -> None:
    store = _store(tmp_path)
    served = ServedModel(store, "churn")
    served.load("v1")
    assert served.apply(_promoted(store, "v2", **override)) is False
    [letter] = served.take_dead_letters()
    assert letter["reason"] == reason and text in letter["message"], letter["message"]
    assert served.predict({}, 1.0) == ("v1", "v1") and served.take_events() == []


def test_the_events_path_is_never_loaded(tmp_path: Path) -> None:
    store = _store(tmp_path)
    elsewhere = ModelStore(tmp_path / "other")
    planted = elsewhere.save("churn", "v2", Bias("planted"), {"created": 0.0, "metrics": {}, "parent_version": None})
    served = ServedModel(store, "churn")
    served.load("v1")
    assert served.apply(_promoted(store, "v2", artifact_path=planted.path)) is True
    assert served.predict({}, 1.0) == ("v2", "v2")  # the store's own v2, not the planted file
    assert served.apply(_promoted(store, "v3", artifact_path=planted.path, artifact_sha256=planted.sha256)) is False


def test_with_a_key_an_artifact_written_without_it_is_refused(tmp_path: Path) -> None:
    _store(tmp_path)  # written with this process's random key, not k1
    keyed = ModelStore(tmp_path, key=b"k1")
    signed = keyed.save("churn", "v4", Bias("v4"), {"created": 4.0, "metrics": {}, "parent_version": "v3"})
    served = ServedModel(keyed, "churn")
    with pytest.raises(Exception, match="not signed with the model store key"):
        served.load("v1")
    served.load("v4")
    assert served.apply(_promoted(keyed, "v2")) is False
    assert "not signed with the model store key" in served.take_dead_letters()[0]["message"]
    assert served.version == "v4" and signed.version == "v4"


def test_predictions_during_swaps_always_pair_a_model_with_its_own_version(tmp_path: Path) -> None:
    store = _store(tmp_path)
    served = ServedModel(store, "churn")
    served.load("v1")
    mixed: list[tuple[str, str | None]] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            prediction, version = served.predict({}, 1.0)
            if prediction != version:
                mixed.append((prediction, version))

    threads = [threading.Thread(target=serve) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(60):
        version = ("v2", "v3", "v1")[i % 3]
        assert served.apply({**_promoted(store, version), "event_id": f"u{i}"}) is True
    stop.set()
    for t in threads:
        t.join()
    assert mixed == []
    assert len(served.take_events()) <= 60


def test_the_readme_server_example_runs_up_to_its_main_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's plain-server example: imports and module-level code run as written."""
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    section = readme.split("### Serving the promoted model", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.setenv("DRIFTSTREAM_MODEL_STORE_DIR", str(tmp_path))
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(code, "README.md", "exec"), namespace)
    assert isinstance(namespace["served"], ServedModel) and namespace["served"].model_id == "churn"
    assert hasattr(namespace["Handler"], "do_POST")


def test_a_canary_serves_its_share_then_becomes_the_only_version_on_a_second_promotion(tmp_path: Path) -> None:
    store = _store(tmp_path)
    served = ServedModel(store, "churn", canary=0.2)
    served.load()
    assert served.apply(_promoted(store, "v2")) is True
    assert (served.version, served.canary_version) == ("v1", "v2")
    tags = [served.predict({}, float(t))[1] for t in range(1_000)]
    assert tags.count("v2") == 200  # exact by count without a key
    assert served.take_events() == []  # both serve: nothing retires
    keyed = [served.predict({}, 1.0, key=f"p{i}")[1] for i in range(2_000)]
    assert 330 <= keyed.count("v2") <= 470
    assert keyed == [served.predict({}, 1.0, key=f"p{i}")[1] for i in range(2_000)]  # sticky
    # the updater's auto policy promotes the canary again after a better comparison (the same artifact)
    assert served.apply(_promoted(store, "v2", event_id="c-bad", artifact_sha256="0" * 64)) is False
    assert served.take_dead_letters()[0]["reason"] == "model_quarantined" and served.canary_version == "v2"
    assert served.apply(_promoted(store, "v2", event_id="c-promoted")) is True
    assert (served.version, served.canary_version) == ("v2", None)
    assert {served.predict({}, 2_000.0 + t)[1] for t in range(10)} == {"v2"}
    [event] = served.take_events()
    assert (event["model_version"], event["new_version"], event["timestamp"]) == ("v1", "v2", 2_000.0)


def test_a_canary_rolled_back_ends_and_its_version_is_retired(tmp_path: Path) -> None:
    store = _store(tmp_path)
    served = ServedModel(store, "churn", canary=0.5)
    served.load()
    served.apply(_promoted(store, "v2"))
    assert served.apply({**_promoted(store, "v1"), "action": "rolled_back", "event_id": "r1"}) is True
    assert (served.version, served.canary_version) == ("v1", None)
    assert {served.predict({}, 5.0 + t)[1] for t in range(10)} == {"v1"}
    [event] = served.take_events()
    assert (event["model_version"], event["new_version"]) == ("v2", "v1")
    key, control = MonitorStage.control_for(event)  # type: ignore[misc]
    assert (key, control.control) == ("churn@v2", "retire")
    # a canary replaced by a newer promotion: v3 is the canary now, v1 still serves the rest
    served.apply(_promoted(store, "v2"))
    assert served.apply(_promoted(store, "v3")) is True and (served.version, served.canary_version) == ("v1", "v3")


@pytest.mark.parametrize("share", [0.0, 1.0, -0.1, 2])
def test_a_canary_share_outside_0_1_is_refused(tmp_path: Path, share: float) -> None:
    with pytest.raises(ValueError, match=r"canary must be a share in \(0, 1\) or None"):
        ServedModel(_store(tmp_path), "churn", canary=share)
