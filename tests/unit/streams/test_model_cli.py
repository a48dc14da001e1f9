"""``driftstream model``: lineage from the store; rollback and rebaseline as events."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams import cli
from streams.exceptions import DriftstreamError
from streams.pipeline.stages import MonitorStage
from streams.sdk.serving import ServedModel
from streams.updater.cli import lineage, promote, rebaseline_request, rollback
from streams.updater.model_store import ModelStore


def _store(tmp_path: Path) -> ModelStore:
    store = ModelStore(tmp_path, key=b"k")
    for n in (1, 2, 3):
        store.save("churn", f"v{n}", {"n": n}, {"created": float(n), "metrics": {"improvement": n / 10},
                                               "parent_version": f"v{n - 1}" if n > 1 else None, "decided_by": "updater"})
    store.set_champion("churn", store.artifact("churn", "v3"))
    return store


def test_show_lists_versions_parents_metrics_hashes_and_deciders(tmp_path: Path) -> None:
    store = _store(tmp_path)
    rows = lineage(store, "churn")
    assert [(r["version"], r["parent"], r["champion"], r["decided_by"], r["signed"]) for r in rows] == [
        ("v1", None, False, "updater", True), ("v2", "v1", False, "updater", True), ("v3", "v2", True, "updater", True)]
    assert rows[1]["sha256"] == store.artifact("churn", "v2").sha256 and rows[2]["metrics"] == {"improvement": 0.3}
    with pytest.raises(DriftstreamError, match="no model 'fraud'"):
        lineage(store, "fraud")


def test_rollback_checks_the_artifact_moves_the_champion_and_makes_an_event_servers_follow(tmp_path: Path) -> None:
    store = _store(tmp_path)
    served = ServedModel(store, "churn", predict=lambda model, x: model["n"])
    served.load()
    event = rollback(store, "churn", None, decided_by="cli:ops", timestamp=100.0)
    assert (event["model_version"], event["new_version"], event["metrics"]["decided_by"]) == ("v3", "v2", "cli:ops")
    assert store.champion("churn").version == "v2"
    assert served.apply(event) and served.predict({}, 101.0) == (2, "v2")
    assert rollback(store, "churn", "v1", decided_by="cli:ops", timestamp=100.0)["new_version"] == "v1"
    with pytest.raises(DriftstreamError, match="has no parent to roll back to"):
        rollback(store, "churn", None, decided_by="cli:ops", timestamp=100.0)
    with pytest.raises(DriftstreamError, match="has no version v7"):
        rollback(store, "churn", "v7", decided_by="cli:ops", timestamp=100.0)


def test_rollback_refuses_a_tampered_artifact_and_keeps_the_champion(tmp_path: Path) -> None:
    store = _store(tmp_path)
    path = Path(store.artifact("churn", "v2").path)
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(DriftstreamError, match="has sha256"):
        rollback(store, "churn", None, decided_by="cli:ops", timestamp=1.0)
    assert store.champion("churn").version == "v3"


def test_promote_checks_the_artifact_moves_the_champion_and_ends_a_canary(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.set_champion("churn", store.artifact("churn", "v2"))
    served = ServedModel(store, "churn", predict=lambda model, x: model["n"], canary=0.5)
    served.load()
    event = promote(store, "churn", "v3", decided_by="cli:ops", timestamp=100.0)
    assert (event["action"], event["model_version"], event["new_version"]) == ("promoted", "v2", "v3")
    assert event["metrics"] == {"decided_by": "cli:ops", "previous_version": "v2"} and store.champion("churn").version == "v3"
    assert served.apply(event) and (served.version, served.canary_version) == ("v2", "v3")  # a canary first
    again = promote(store, "churn", "v2", decided_by="cli:ops", timestamp=101.0)  # the operator keeps v2 after all
    assert served.apply(again) and (served.version, served.canary_version) == ("v2", None)
    with pytest.raises(DriftstreamError, match="v2 is already the champion"):
        promote(store, "churn", "v2", decided_by="cli:ops", timestamp=102.0)
    with pytest.raises(DriftstreamError, match="has no version v7"):
        promote(store, "churn", "v7", decided_by="cli:ops", timestamp=102.0)
    path = Path(store.artifact("churn", "v1").path)
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(DriftstreamError, match="has sha256"):
        promote(store, "churn", "v1", decided_by="cli:ops", timestamp=103.0)
    assert store.champion("churn").version == "v2"


def test_rebaseline_makes_the_monitors_control() -> None:
    event = rebaseline_request("churn", "v3", decided_by="cli:ops", reason="new season", timestamp=5.0)
    key, control = MonitorStage.control_for(event)  # type: ignore[misc]
    assert (key, control.control, control.timestamp) == ("churn@v3", "rebaseline", 5.0)
    assert "new season (cli:ops)" in control.reason


def test_the_cli_lists_and_shows_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _store(tmp_path)
    monkeypatch.setenv("DRIFTSTREAM_MODEL_STORE_DIR", str(tmp_path))
    monkeypatch.setenv("DRIFTSTREAM_MODEL_STORE_KEY", "k")
    assert cli.main(["model", "list"]) == 0
    assert capsys.readouterr().out == "churn\tchampion v3\t3 version(s), latest v3\n"
    assert cli.main(["model", "show", "churn"]) == 0
    assert capsys.readouterr().out.count('"decided_by":"updater"') == 3
    assert cli.main(["model", "show", "nobody"]) == 2
