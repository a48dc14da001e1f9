"""A keyed model store: an attacker who can write the folder, but has no key, cannot plant a model."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import pytest

from schemas import codec
from streams.settings import Settings
from streams.updater.model_store import ArtifactIntegrityError, ModelStore

META = {"created": 1.0, "metrics": {}, "parent_version": None}


def test_a_file_replaced_with_its_hash_and_sidecar_is_refused(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, key=b"secret-key")
    art = store.save("churn", "v1", {"weights": [1]}, META)
    assert store.load(art.path, art.sha256) == {"weights": [1]}
    # the attacker rewrites the model, the hash in its sidecar and the pointer consistently
    evil = pickle.dumps({"weights": ["evil"]})
    Path(art.path).write_bytes(evil)
    sidecar_path = Path(art.path).with_suffix(".json")
    sidecar = codec.loads(sidecar_path.read_bytes())
    sidecar["sha256"] = hashlib.sha256(evil).hexdigest()
    sidecar_path.write_bytes(codec.dumps(sidecar))
    with pytest.raises(ArtifactIntegrityError, match="not signed with the model store key"):
        store.load(art.path, sidecar["sha256"])
    # without a key, the store loads only what this process wrote: the plant is refused too
    with pytest.raises(ArtifactIntegrityError, match="not written by this process"):
        ModelStore(tmp_path).load(art.path, sidecar["sha256"])


def test_another_key_or_no_sidecar_is_refused(tmp_path: Path) -> None:
    art = ModelStore(tmp_path, key=b"key-a").save("churn", "v1", {"w": 1}, META)
    with pytest.raises(ArtifactIntegrityError, match="not signed"):
        ModelStore(tmp_path, key=b"key-b").load(art.path, art.sha256)
    Path(art.path).with_suffix(".json").unlink()
    with pytest.raises(ArtifactIntegrityError, match="not signed"):
        ModelStore(tmp_path, key=b"key-a").load(art.path, art.sha256)


def test_the_key_comes_from_the_environment_and_never_shows(tmp_path: Path) -> None:
    settings = Settings.from_env({"DRIFTSTREAM_MODEL_STORE_KEY": "s3cr3t", "DRIFTSTREAM_MODEL_STORE_DIR": str(tmp_path)})
    assert "s3cr3t" not in repr(settings)
    art = ModelStore.from_settings(settings).save("m", "v1", {"w": 2}, META)
    assert art.metadata["hmac_sha256"] and "s3cr3t" not in Path(art.path).with_suffix(".json").read_text()
    assert ModelStore(tmp_path, key=b"s3cr3t").load(art.path, art.sha256) == {"w": 2}
