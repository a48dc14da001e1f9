"""``driftstream calibrate``: a config the worker accepts, thresholds that follow the budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detectors.error_calibration import calibrate_error_stream
from schemas import codec
from streams.cli import main
from streams.offline.calibrate import calibrate_models, error_streams, to_toml
from streams.offline.simulate import Simulation, SimulationConfig
from streams.pipeline.monitor_config import DEFAULTS, MonitorConfig

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


# -- concept-drift detectors on the reference's error stream ----------------------------------

# one feature and a DDM that may fire early (short warm start): a budget it can miss
CONCEPT = MonitorConfig.from_mapping({"defaults": {
    "reference_size": 300, "features": ["age"], "data_drift": {"numeric": {"window": 200, "step": 100}},
    "concept_drift": {"classification": [{"type": "adwin"}, {"type": "ddm", "warm_start": 30}]}}})


def _labelled(n: int = 600) -> tuple[list[dict], list[dict]]:
    return Simulation(SimulationConfig(events=n, seed=5, feature_drift_at=None, concept_drift_at=None)).generate()


def _concept(overrides: dict) -> dict[str, dict]:
    return {spec["type"]: spec for spec in overrides["concept_drift"]["classification"]}


def test_the_error_stream_pairs_predictions_with_their_labels() -> None:
    preds = [{"model_id": "m", "prediction_id": "a", "prediction": 1}, {"model_id": "m", "prediction_id": "b", "prediction": 0},
             {"model_id": "m", "prediction_id": "c", "prediction": 1, "label": 0},
             {"model_id": "r", "prediction_id": "x", "prediction": 1.5}, {"model_id": "u", "prediction": 1}]
    labels = [{"prediction_id": "a", "label": 1}, {"prediction_id": "x", "label": 1.0}]
    streams = error_streams(preds, labels)
    assert streams["m"] == ("classification", [0.0, 1.0], 2 / 3)
    assert streams["r"] == ("regression", [0.5], 1.0)
    assert "u" not in streams


def test_a_stricter_budget_gives_a_more_conservative_concept_parameter() -> None:
    preds, labels = _labelled()
    loose = calibrate_models(preds, CONCEPT, per=1_000, n_streams=5, labels=labels, error_values=100_000)
    strict = calibrate_models(preds, CONCEPT, per=10_000, n_streams=5, labels=labels, error_values=100_000)
    loose_ddm, strict_ddm = _concept(loose["models"]["churn-model"])["ddm"], _concept(strict["models"]["churn-model"])["ddm"]
    assert loose_ddm["drift_threshold"] == 3.0 < strict_ddm["drift_threshold"]
    # the warning level keeps its distance below the drift level
    assert strict_ddm["warning_threshold"] == strict_ddm["drift_threshold"] - 1.0
    assert strict_ddm["warm_start"] == 30


def test_a_stricter_budget_lowers_adwin_delta() -> None:
    errors = np.random.default_rng(3).binomial(1, 0.5, 2_000)
    loose = calibrate_error_stream({"type": "adwin", "delta": 0.2}, errors, target_ert=20_000, max_values=100_000)
    strict = calibrate_error_stream({"type": "adwin", "delta": 0.2}, errors, target_ert=100_000, max_values=100_000)
    assert loose.value == 0.2 and loose.within_budget and loose.trials[0].false_alarms > 0
    assert strict.value < 0.2 and strict.within_budget
    assert [t.value for t in strict.trials][:2] == [0.2, 0.002]  # from the configured value down the ladder
    # 100,000 values for a run length of 100,000: one alarm allowed; the first over it stops a candidate
    assert strict.trials[0].false_alarms == 2 and strict.trials[0].values < 100_000
    assert strict.trials[-1].false_alarms <= 1


def test_labels_in_the_reference_calibrate_the_concept_detectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    preds, labels = _labelled()
    reference = tmp_path / "reference.jsonl"
    reference.write_bytes(b"".join(codec.dumps(e) + b"\n" for e in [*preds, *labels]))
    base = tmp_path / "base.toml"
    base.write_text('[defaults]\nreference_size = 300\nfeatures = ["age"]\n[defaults.data_drift.numeric]\nwindow = 200\nstep = 100\n'
                    '[defaults.concept_drift]\nclassification = [{type = "adwin"}, {type = "ddm", warm_start = 30}]\n')
    out = tmp_path / "config.toml"
    monkeypatch.delenv("DRIFTSTREAM_CONFIG_PATH", raising=False)
    assert main(["calibrate", str(reference), "--false-alarms-per", "10000", "--out", str(out), "--config", str(base),
                 "--streams", "5", "--error-values", "100000"]) == 0
    loaded = MonitorConfig.load(out).for_model("churn-model")
    detectors = {spec["type"]: spec for spec in loaded.concept_drift["classification"]}
    assert detectors["ddm"]["drift_threshold"] > 3.0 and detectors["adwin"]["delta"] == 0.002
    assert loaded.reference_size == 300  # the predictions were not mixed with the labels
    err = capsys.readouterr().err
    assert "concept ddm: drift_threshold = 3.5" in err and "no labels" not in out.read_text()


def test_without_labels_the_concept_detectors_keep_their_defaults_and_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    reference = tmp_path / "reference.jsonl"
    reference.write_bytes(b"".join(codec.dumps(p) + b"\n" for p in _predictions()))
    base = tmp_path / "base.toml"
    base.write_text('[defaults]\nreference_size = 300\nfeatures = ["age"]\n[defaults.data_drift.numeric]\nwindow = 200\nstep = 100\n')
    out = tmp_path / "config.toml"
    monkeypatch.delenv("DRIFTSTREAM_CONFIG_PATH", raising=False)
    assert main(["calibrate", str(reference), "--false-alarms-per", "2000", "--out", str(out), "--config", str(base),
                 "--streams", "5"]) == 0
    loaded = MonitorConfig.load(out).for_model("churn-model")
    assert loaded.concept_drift == DEFAULTS["concept_drift"]
    header = [line for line in out.read_text().splitlines() if line.startswith("#")]
    assert any("churn-model: concept-drift detectors left as configured" in line and "holds no labels" in line
               and "adwin delta=0.002" in line for line in header)
    assert "holds no labels" in capsys.readouterr().err
