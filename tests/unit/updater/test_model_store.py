"""The model store: versions, sidecars, pointers, and refusal of unverified bytes."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from pathlib import Path

import pytest

from streams.updater.model_store import UnsafeNameError, ArtifactIntegrityError, ModelStore
from streams.updater.decisions import new_model


def _trained() -> object:
    model = new_model("classification")
    for i in range(50):
        model.learn_one({"x": float(i), "plan": "pro" if i % 2 else "basic"}, int(i > 25))
    return model


def test_save_writes_the_model_and_a_sidecar_and_load_returns_it(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    model = _trained()
    art = store.save("churn", "v1", model, {"created": 1_700_000_000.5, "metrics": {"accuracy": 0.9}, "parent_version": None})
    assert art.sha256 == hashlib.sha256(Path(art.path).read_bytes()).hexdigest()
    sidecar = json.loads(Path(art.path).with_suffix(".json").read_text())
    assert sidecar.pop("hmac_sha256")  # signed with this process's key: no store key is set
    assert sidecar == {
        "created": 1_700_000_000.5, "metrics": {"accuracy": 0.9}, "parent_version": None,
        "model_id": "churn", "version": "v1", "sha256": art.sha256, "format": "river-pickle",
    }
    assert {k: v for k, v in art.metadata.items() if k != "hmac_sha256"} == sidecar
    loaded = store.load(art.path, art.sha256)
    x = {"x": 40.0, "plan": "pro"}
    assert loaded.predict_one(x) == model.predict_one(x)


def _rebuilt(items: set) -> set:
    """The same elements in a set with another history: a table grown by many more, then
    emptied of them, so its iteration order is not the original's."""
    out = {f"filler-{i}" for i in range(2_000)} | items
    out -= {f"filler-{i}" for i in range(2_000)}
    return out


def test_equal_models_write_equal_artifacts_whatever_their_sets_history(tmp_path: Path) -> None:
    """A model resumed from a checkpoint has its sets rebuilt by the unpickler: its artifact
    must still hash as the one that never stopped wrote it (a replay re-writes it)."""
    model = new_model("classification")
    plans = [f"plan-{i}" for i in range(40)]  # enough categories that their order shows
    for i, plan in enumerate(plans):
        model.learn_one({"x": float(i), "plan": plan}, i % 2)
    resumed = pickle.loads(pickle.dumps(model))
    encoder = resumed["TransformerUnion"].transformers["Pipeline1"]["OneHotEncoder"]
    encoder.values["plan"] = _rebuilt(encoder.values["plan"])
    assert list(encoder.values["plan"]) != list(model["TransformerUnion"].transformers["Pipeline1"]["OneHotEncoder"].values["plan"])
    store = ModelStore(tmp_path)
    first = store.save("churn", "v1", model, {"created": 1.0, "metrics": {}, "parent_version": None})
    again = store.save("churn-replayed", "v1", resumed, {"created": 1.0, "metrics": {}, "parent_version": None})
    assert again.sha256 == first.sha256


def test_pointers_survive_a_new_store_and_versions_count_up(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    assert store.champion("churn") is None and store.latest("churn") is None
    v1 = store.save("churn", store.next_version("churn"), {"w": 1}, {"created": 1.0, "metrics": {}, "parent_version": None})
    store.set_champion("churn", v1)
    v2 = store.save("churn", store.next_version("churn"), {"w": 2}, {"created": 2.0, "metrics": {}, "parent_version": "v1"})
    reopened = ModelStore(tmp_path)
    assert (v1.version, v2.version) == ("v1", "v2")
    assert reopened.champion("churn") == v1
    assert reopened.latest("churn") == v2
    assert reopened.next_version("churn") == "v3"


def test_a_tampered_artifact_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    art = store.save("churn", "v1", _trained(), {"created": 1.0, "metrics": {}, "parent_version": None})
    data = bytearray(Path(art.path).read_bytes())
    data[len(data) // 2] ^= 0x01
    Path(art.path).write_bytes(bytes(data))
    actual = hashlib.sha256(bytes(data)).hexdigest()
    expected = (
        f"model artifact {art.path} has sha256 {actual}, expected {art.sha256}; "
        "refusing to load a tampered or corrupted file"
    )
    with pytest.raises(ArtifactIntegrityError, match=re.escape(expected)):
        store.load(art.path, art.sha256)


def test_paths_outside_the_store_are_refused_and_escaping_model_ids_rejected(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    outside = tmp_path / "evil.pkl"
    outside.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="outside the model store"):
        store.load(outside, hashlib.sha256(b"not a model").hexdigest())
    for bad in ("../../etc/churn", "..", ".hidden", "a\\b", "a\0b"):
        with pytest.raises(UnsafeNameError, match="would leave the model store folder; refused"):
            store.save(bad, "v1", {"w": 1}, {"created": 1.0, "metrics": {}, "parent_version": None})
    art = store.save("team:churn v 1", "v1", {"w": 1}, {"created": 1.0, "metrics": {}, "parent_version": None})
    assert Path(art.path).resolve().parent.parent == store.root  # odd characters: a sanitised folder
    assert store.folder("team:churn v 1") != store.folder("team_churn_v_1")
    assert list(tmp_path.iterdir()) != [] and not (tmp_path / "etc").exists()


def test_versions_must_be_v_numbers(tmp_path: Path) -> None:
    for bad in ("../x", "v1/../../x", "1", "v"):
        with pytest.raises(UnsafeNameError, match=f"model version '{re.escape(bad)}' is not v<number>; refused"):
            ModelStore(tmp_path).save("churn", bad, {}, {"created": 1.0, "metrics": {}, "parent_version": None})
        with pytest.raises(UnsafeNameError):
            ModelStore(tmp_path).artifact("churn", bad)


def test_artifacts_are_found_by_model_and_version_from_the_stores_own_sidecars(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    v1 = store.save("churn", "v1", {"w": 1}, {"created": 1.0, "metrics": {}, "parent_version": None, "decided_by": "updater"})
    v2 = store.save("churn", "v2", {"w": 2}, {"created": 2.0, "metrics": {}, "parent_version": "v1", "decided_by": "updater"})
    store.save("fraud", "v1", {"w": 3}, {"created": 1.0, "metrics": {}, "parent_version": None})
    assert store.artifact("churn", "v2") == v2
    assert [a.version for a in store.versions("churn")] == ["v1", "v2"]
    assert store.versions("churn")[0] == v1 and store.versions("nobody") == []
    assert store.models() == ["churn", "fraud"]
    with pytest.raises(FileNotFoundError):
        store.artifact("churn", "v3")
