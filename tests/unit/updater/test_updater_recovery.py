"""A crash of the updater at any point of an update, then a restart from its last checkpoint
and the events after it, leads to the same decisions, ids, metrics and artifacts as a run
that never stopped (issue #25, item 5). The crash is the object thrown away with what it had
in memory; what it wrote (artifacts, pointers, the checkpoint) stays on disk, as after a
SIGKILL."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.offline.simulate import Simulation, SimulationConfig, event_time_of
from streams.updater.model_store import ArtifactIntegrityError, ModelStore
from streams.updater.decisions import Updater, UpdaterConfig

KEY = b"k" * 32
SIM = SimulationConfig(events=5000, seed=5, concept_drift_at=2000, feature_drift_at=None)
CONFIG = UpdaterConfig(warmup_events=600, training_events=500, evaluation_events=500)
REQUEST_AT = 2300  # the input position where the alert's request arrives
CHECKPOINT_EVERY = 700


def _inputs() -> list[tuple[str, dict]]:
    items = Simulation(SIM).in_event_time_order()
    request = {"event_id": "req-1", "model_id": SIM.model_id, "model_version": None, "action": "update_requested",
               "alert_ids": ["a1"], "from_timestamp": event_time_of(SIM, 2050), "reason": "concept drift", "metrics": {}}
    return items[:REQUEST_AT] + [("model-updates", request)] + items[REQUEST_AT:]


def _feed(updater: Updater, item: tuple[str, dict]) -> list[dict]:
    role, event = item
    if role == "predictions":
        return updater.add_prediction(event)
    if role == "ground-truth":
        return updater.add_label(event)
    return updater.request_update(event)


def _relative(decision: dict, store: ModelStore) -> dict:
    """The decision with its artifact path relative to the store (the two runs' stores differ)."""
    path = decision["artifact_path"]
    return {**decision, "artifact_path": path and str(Path(path).relative_to(store.root))}


def _lineage(store: ModelStore) -> list[tuple]:
    out = []
    for version in ("v1", "v2", "v3"):
        try:
            a = store.artifact(SIM.model_id, version)
        except FileNotFoundError:
            continue
        out.append((a.version, a.sha256, a.metadata["parent_version"], a.metadata["metrics"]))
    return out + [("champion", store.champion(SIM.model_id).version)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    store = ModelStore(tmp_path_factory.mktemp("straight"), key=KEY)
    updater = Updater(store, CONFIG)
    decisions = [_relative(d, store) for item in _inputs() for d in _feed(updater, item)]
    return decisions, _lineage(store)


def _phase(updater: Updater) -> str:
    """Where the model's update stands, as the updater holds it."""
    m = updater.models.get(SIM.model_id)
    if m is None or m.champion is None:
        return "warming up"
    if m.requested:
        return "request waiting"
    if m.trial:
        return "challenger training" if m.trial.trained < CONFIG.training_events else "challenger evaluated"
    return "rollback watch" if m.watch else "champion"


# kill points, each named by the phase of the checkpoint the restart resumes from (checked)
@pytest.mark.parametrize("phase, kill_at", [
    ("warming up", 400), ("warming up", 1000), ("champion", 2200), ("request waiting", 3000),
    ("challenger training", 4300), ("challenger evaluated", 6000), ("rollback watch", 7200),
])
def test_a_crash_at_any_point_of_an_update_changes_nothing(tmp_path, uninterrupted, phase, kill_at):
    expected, lineage = uninterrupted
    assert [d["action"] for d in expected] == ["challenger_started", "promoted"]  # the update spans the kill points
    inputs = _inputs()
    published: list[dict] = []
    updater = Updater(ModelStore(tmp_path, key=KEY), CONFIG)
    checkpoint = 0
    for position, item in enumerate(inputs[:kill_at]):
        if position % CHECKPOINT_EVERY == 0:
            updater.store.save_state("partition-0", updater.state(), {"position": position})
            checkpoint, saved_in = position, _phase(updater)
        published += _feed(updater, item)
    assert saved_in == phase
    del updater  # SIGKILL: the memory is gone, the files stay

    store = ModelStore(tmp_path, key=KEY)
    restarted = Updater(store, CONFIG)
    state, meta = store.load_state("partition-0")
    assert meta["position"] == checkpoint
    restarted.restore(state)
    for item in inputs[checkpoint:]:
        published += _feed(restarted, item)

    by_id: dict[str, dict] = {}
    for d in published:  # a decision re-made after the restart is the same event, the same id
        assert by_id.setdefault(d["event_id"], d) == d
    assert [_relative(d, store) for d in by_id.values()] == expected
    assert _lineage(store) == lineage


def test_a_tampered_checkpoint_is_refused(tmp_path):
    store = ModelStore(tmp_path, key=KEY)
    store.save_state("partition-0", {"models": {}}, {"position": 3})
    meta = store.load_state("partition-0")[1]
    path = tmp_path / ModelStore.STATE_FOLDER / meta["file"]
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(ArtifactIntegrityError):
        store.load_state("partition-0")
    with pytest.raises(ArtifactIntegrityError):  # another key's checkpoint does not load either
        ModelStore(tmp_path, key=b"other" * 8).save_state("partition-1", {}, {}) or store.load_state("partition-1")
