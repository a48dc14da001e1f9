"""``driftstream calibrate``: a config the worker accepts, thresholds that follow the budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas import codec
from streams.cli import main
from streams.offline.calibrate import calibrate_models, to_toml
from streams.offline.simulate import Simulation, SimulationConfig
from streams.pipeline.monitor_config import MonitorConfig

# small windows and two features keep the bootstrap short
SMALL = MonitorConfig.from_mapping({"defaults": {"reference_size": 300, "features": ["age", "plan"],
                                                 "data_drift": {"numeric": {"window": 200, "step": 100}}}})


def _predictions(n: int = 600) -> list[dict]:
    preds, _ = Simulation(SimulationConfig(events=n, seed=5, feature_drift_at=None, concept_drift_at=None)).generate()
    return preds


def test_the_written_config_is_accepted_and_sets_every_detector() -> None:
    data = calibrate_models(_predictions(), SMALL, per=2_000, n_streams=5)
    overrides = data["models"]["churn-model"]
    assert overrides["reference_size"] == 300
    assert set(overrides["feature_detectors"]) == {"age", "plan"}
    assert overrides["feature_detectors"]["plan"]["type"] == "psi_categorical"
    config = MonitorConfig.from_mapping(codec.loads(codec.dumps(data)))
    age = config.for_model("churn-model").feature_detectors["age"]
    assert age["psi_above"] == overrides["feature_detectors"]["age"]["psi_above"] != 0.25
    assert age["warning_psi_above"] <= age["psi_above"]  # the detector refuses the reverse


def test_a_smaller_false_alarm_budget_raises_the_thresholds() -> None:
    loose = calibrate_models(_predictions(), SMALL, per=1_000, n_streams=5)["models"]["churn-model"]
    strict = calibrate_models(_predictions(), SMALL, per=10_000, n_streams=5)["models"]["churn-model"]
    for feature in ("age", "plan"):
        assert strict["feature_detectors"][feature]["psi_above"] > loose["feature_detectors"][feature]["psi_above"]


def test_the_command_writes_toml_the_worker_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    reference = tmp_path / "reference.jsonl"
    reference.write_bytes(b"".join(codec.dumps(p) + b"\n" for p in _predictions()))
    base = tmp_path / "base.toml"
    base.write_text('[defaults]\nreference_size = 300\nfeatures = ["income"]\n[defaults.data_drift.numeric]\nwindow = 200\nstep = 100\n')
    out = tmp_path / "config.toml"
    monkeypatch.delenv("DRIFTSTREAM_CONFIG_PATH", raising=False)
    assert main(["calibrate", str(reference), "--false-alarms-per", "2000", "--out", str(out),
                 "--config", str(base), "--streams", "5"]) == 0
    loaded = MonitorConfig.load(out).for_model("churn-model")
    assert loaded.reference_size == 300 and loaded.feature_detectors["income"]["type"] == "psi"
    assert "wrote" in capsys.readouterr().out
    assert to_toml({"models": {"a b": {"reference_size": 1}}}).splitlines()[1] == '[models."a b"]'
