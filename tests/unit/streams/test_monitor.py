"""Model monitors: detection, state that survives a changelog round trip, configuration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from streams.exceptions import ConfigError
from streams.offline.pipeline import OfflinePipeline
from streams.offline.simulate import Simulation, SimulationConfig
from streams.pipeline import monitor as monitor_module
from streams.pipeline.monitor import ModelMonitor
from streams.pipeline.monitor_config import MonitorConfig
from streams.pipeline.monitor_input import JoinedBatch
from streams.pipeline.stages import MonitorStage


def _final(alerts: list[dict]) -> dict[str, dict]:
    return {a["alert_id"]: a for a in alerts}


def test_drifts_are_detected_after_they_are_injected_and_not_before() -> None:
    config = SimulationConfig(events=30_000, seed=3, feature_drift_at=8_000, concept_drift_at=20_000)
    pipe = OfflinePipeline(window_s=3600)
    pipe.feed_events(Simulation(config).in_event_time_order())
    pipe.finish()
    alerts = _final(pipe.result.alerts)
    # the concept drift comes 240 s of event time after the feature drift, within the
    # default group window: one incident, opened by the data drift, escalated by the rest
    data = [m for a in alerts.values() for m in a["members"] if m["kind"] == "data_drift"]
    assert [m["feature"] for m in data] == ["sessions_7d"]
    first = min(alerts.values(), key=lambda a: a["position"])
    assert 8_000 <= int(first["prediction_id"][1:]) < 9_500  # detection delay < 1,500 events
    concept = [m for a in alerts.values() for m in a["members"] if m["kind"] in ("concept_drift", "performance")]
    # a member joining without raising the severity is not published: the first of the
    # error-stream detectors to confirm the drift is, and the accuracy drop that escalated it
    detectors = {m["detector"] for m in concept}
    assert "accuracy" in detectors and detectors & {"adwin", "ddm"}
    assert all(a["timestamp"] >= config.start + 8_000 / config.event_rate for a in alerts.values())
    assert len(pipe.result.update_requests) >= 1
    request = pipe.result.update_requests[0]["metrics"]  # the task's own metric, by its name
    assert request["metric"] == "accuracy" and 0.5 < request["accuracy_baseline"] < 1.0


def test_each_drift_event_is_published_once_and_a_signal_at_a_chunk_end_once_observed() -> None:
    """PSI evaluates at the end of each observation chunk: a drift it signals there is one
    drift event and one sample, not a second event with the same id from the chunk's
    observation, and an alert's related events name each drift event once."""
    config = SimulationConfig(events=12_000, seed=3, feature_drift_at=3_000, concept_drift_at=5_000)
    pipe = OfflinePipeline(window_s=3600)
    pipe.feed_events(Simulation(config).in_event_time_order())
    pipe.finish()
    ids = [event["event_id"] for event in pipe.result.drift_events]
    psi = [event for event in pipe.result.drift_events if event["detector"] == "psi" and event["drift"]]
    assert len(psi) > 10
    assert len(ids) == len(set(ids))
    samples = [s for s in pipe.result.samples.values() for s in s if s["detector"] == "psi" and s["drift"]]
    assert {e["position"] for e in psi} <= {s["position"] for s in samples}
    for alert in pipe.result.alerts:
        for member in alert["members"]:
            related = member.get("related", [])
            assert len(related) == len(set(related)), member


def test_monitor_state_round_trip_mid_stream_gives_identical_results() -> None:
    config = SimulationConfig(events=12_000, seed=4, feature_drift_at=5_000, concept_drift_at=8_000)
    items = Simulation(config).in_event_time_order()
    cut = len(items) // 2

    def run(round_trip: bool) -> OfflinePipeline:
        pipe = OfflinePipeline(window_s=3600)
        pipe.feed_events(items[:cut])
        if round_trip:  # what a restarted worker does: state from the changelog, as JSON
            stage = MonitorStage(pipe.monitor_config)
            for key, slot in list(pipe.monitors.items()):
                assert len(slot.buffer), "the round trip must start with events the frontier has not released"
                # a recovery reads the payloads it still held again from the log (here: what
                # is left of them, as the part released is skipped anyway)
                again: dict[tuple[int, int], tuple[int, dict]] = {}
                for kind in ("pred", "pairs"):
                    for chunk in slot.buffer.chunks[kind]:
                        (source, seq), offset = chunk.payload, chunk.offset
                        again.setdefault((source, seq), (offset, {"source": source, "seq": seq}))[1][kind] = chunk.columns
                pipe.monitors[key] = stage.load(orjson.dumps(orjson.loads(stage.dump(slot))))
                model = slot.monitor
                payloads = [(offset, JoinedBatch(model.model_id, model.model_version, p["source"], p["seq"], p.get("pred"), p.get("pairs")))
                            for offset, p in sorted(again.values(), key=lambda item: item[0])]
                stage.process_many(pipe.monitors[key], payloads, -float("inf"))
        pipe.feed_events(items[cut:])
        pipe.finish()
        return pipe

    restored, straight = run(True), run(False)
    assert restored.result.alerts == straight.result.alerts
    assert restored.result.drift_events == straight.result.drift_events
    assert len(straight.result.drift_events) > 20 and len(straight.result.alerts) > 2


def test_detectors_fed_only_when_they_may_signal_give_what_feeding_every_batch_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windowed detectors wait for an evaluation or the end of an observation chunk; the
    results equal those of feeding every detector every batch (with odd steps, a detector
    without one, missing values and a feature absent from whole batches)."""
    config = MonitorConfig.from_mapping({"defaults": {"reference_size": 333}, "models": {"churn-model": {"feature_detectors": {
        "age": {"type": "ks", "window": 200, "step": 70, "p_value_below": 0.01},
        "sessions_7d": {"type": "mean_shift", "window": 300, "step": 45},
        "tenure_months": {"type": "three_sigma"},
    }}}})
    items = Simulation(SimulationConfig(events=6_000, seed=8, feature_drift_at=2_000, concept_drift_at=4_000)).in_event_time_order()
    rng = np.random.default_rng(8)
    for role, event in items:
        if role == "predictions" and rng.random() < 0.05:
            event["features"]["income"] = None
        if role == "predictions" and rng.random() < 0.03:
            del event["features"]["plan"]
    cuts = np.cumsum(rng.choice([1, 3, 7, 20, 61, 250, 400], size=len(items))).tolist()

    def run() -> tuple[OfflinePipeline, int]:
        pipe = OfflinePipeline(config, window_s=3600)
        runs = 0
        original = ModelMonitor._run

        def counting(self: ModelMonitor, *args: object) -> None:
            nonlocal runs
            runs += 1
            original(self, *args)  # type: ignore[arg-type]

        with monkeypatch.context() as patch:
            patch.setattr(ModelMonitor, "_run", counting)
            for lo, hi in zip([0, *cuts], cuts):
                pipe.feed_events(items[lo:hi], batch_size=hi - lo)
                if hi >= len(items):
                    break
            pipe.finish()
        return pipe, runs

    deferred, deferred_runs = run()
    monkeypatch.setattr(monitor_module, "may_signal", lambda detector, more: True)
    every_batch, every_batch_runs = run()
    assert deferred.result.samples == every_batch.result.samples
    assert deferred.result.drift_events == every_batch.result.drift_events
    assert deferred.result.alerts == every_batch.result.alerts
    assert len(deferred.result.alerts) >= 3 and sum(map(len, deferred.result.samples.values())) > 200
    assert deferred_runs < 0.7 * every_batch_runs  # 609 against 968 here


def test_a_column_batch_applied_twice_is_skipped() -> None:
    pipe = OfflinePipeline()
    preds, _ = Simulation(SimulationConfig(events=10, seed=1)).generate()
    pipe.feed_events([("predictions", p) for p in preds])
    pipe.finish()
    slot = pipe.monitors["churn-model"]
    payload = JoinedBatch("churn-model", None, source=0, seq=1, pred=None, pairs=None)
    run = pipe.monitor_stage.process_many(slot, [(0, payload)], float("inf"))
    assert (run.skipped, run.events, run.result.drift_events, run.result.alerts) == (1, 0, [], [])
    assert slot.monitor.n_predictions == 10


def test_stationary_stream_raises_no_alert() -> None:
    config = SimulationConfig(events=50_000, seed=12, feature_drift_at=None, concept_drift_at=None)
    pipe = OfflinePipeline(keep_samples=False)
    pipe.feed_events(Simulation(config).in_event_time_order())
    assert pipe.finish().alerts == []


def test_config_file_selects_detectors_per_model(tmp_path: Path) -> None:
    toml = tmp_path / "monitor.toml"
    toml.write_text(
        '[defaults]\nreference_size = 500\n\n'
        '[models.churn-model]\nignore_features = ["income", "region"]\n'
        '[models.churn-model.feature_detectors.age]\ntype = "ks"\nwindow = 500\nstep = 100\n'
    )
    yaml = tmp_path / "monitor.yaml"
    yaml.write_text("defaults:\n  reference_size: 500\nmodels:\n  churn-model:\n    ignore_features: [income, region]\n"
                    "    feature_detectors:\n      age: {type: ks, window: 500, step: 100}\n")
    for path in (toml, yaml):
        config = MonitorConfig.load(path)
        pipe = OfflinePipeline(config)
        preds, _ = Simulation(SimulationConfig(events=600, seed=1)).generate()
        pipe.feed_events([("predictions", p) for p in preds])
        monitor = pipe.finish() and pipe.monitors["churn-model"].monitor
        detectors = {w.feature: w.detector.name for w in monitor.watched.values() if w.kind == "data_drift"}
        assert detectors == {"age": "ks", "tenure_months": "psi", "sessions_7d": "psi", "plan": "psi_categorical"}


def test_config_errors_name_the_bad_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"models.m: unknown setting 'refrence_size'; expected one of: "):
        MonitorConfig.from_mapping({"models": {"m": {"refrence_size": 5}}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[defaults\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        MonitorConfig.load(bad)
    ini = tmp_path / "x.ini"
    ini.write_text("[defaults]\n")
    with pytest.raises(ConfigError, match="expected a .toml, .yaml or .yml file"):
        MonitorConfig.load(ini)


def test_reference_profile_replaces_the_first_n_events(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    profile = tmp_path / "profile.json"
    profile.write_bytes(orjson.dumps({"features": {"x": rng.normal(0, 1, 2000).tolist()}}))
    config = MonitorConfig.from_mapping({"defaults": {"reference": {"profile": str(profile)}}})
    pipe = OfflinePipeline(config)
    events = [("predictions", {"prediction_id": f"q{i}", "model_id": "m", "timestamp": float(i),
                               "prediction": 1, "features": {"x": float(v)}})
              for i, v in enumerate(rng.normal(3, 1, 1500))]
    pipe.feed_events(events)  # every event is drifted: with a profile, no warm-up is needed
    assert any(a["feature"] == "x" and a["kind"] == "data_drift" for a in pipe.finish().alerts)
    with pytest.raises(ConfigError, match="cannot read reference profile"):
        OfflinePipeline(MonitorConfig.from_mapping({"defaults": {"reference": {"profile": str(tmp_path / "nope.json")}}})).feed_events(events[:1])


def test_an_error_stream_detection_at_a_chunk_end_is_one_drift_event_and_clears_at_the_next_observation() -> None:
    """DDM (warm start 30) fires at the first error after a run of correct predictions: here
    the 500th pair, the last of an observation chunk. The chunk's observation must not add a
    "clear" event at the detection's own position; the clear comes with the next chunk."""
    config = MonitorConfig.from_mapping({"defaults": {"concept_drift": {"classification": [{"type": "ddm", "warm_start": 30}]}}})
    monitor = MonitorStage(config).new_monitor("m", None)
    labels = [1] * 499 + [0] + [1] * 250  # the prediction is always 1: one error, at pair 499
    n = len(labels)
    pairs = {"pid": [f"p{i}" for i in range(n)], "ts": [float(i) for i in range(n)], "prediction": [1] * n,
             "label": labels, "score": [0.9] * n, "label_ts": [float(i) + 1 for i in range(n)]}
    result = monitor.process({"pred": None, "pairs": pairs, "join": {"matched": n, "expired": 0}})
    ddm = [(e["drift"], e["position"]) for e in result.drift_events if e["detector"] == "ddm"]
    assert ddm == [(True, 499), (False, 749)]
    samples = [(s["drift"], s["position"]) for s in result.samples if s["detector"] == "ddm"]
    assert samples == [(False, 249), (True, 499), (False, 749)]


def test_samples_name_the_direction_in_which_their_statistic_means_drift() -> None:
    """The exported statistic and threshold carry ``direction``: a sample in drift lies
    past its threshold in that direction (PSI above it, accuracy below it), so one
    alerting rule can tell drift from health for both kinds."""
    config = SimulationConfig(events=12_000, seed=3, feature_drift_at=3_000, concept_drift_at=5_000)
    pipe = OfflinePipeline(window_s=3600)
    pipe.feed_events(Simulation(config).in_event_time_order())
    pipe.finish()
    samples = [s for series in pipe.result.samples.values() for s in series]
    directions = {s["detector"]: s["direction"] for s in samples}
    assert directions["psi"] == "above" and directions["accuracy"] == "below"
    drifting = [s for s in samples if s["drift"] and s["detector"] in ("psi", "accuracy")]
    assert {s["detector"] for s in drifting} == {"psi", "accuracy"}
    for s in drifting:
        past = s["statistic"] > s["threshold"] if s["direction"] == "above" else s["statistic"] < s["threshold"]
        assert past, s


def test_a_confirmed_concept_drift_stays_firing_while_the_error_stays_up() -> None:
    """ADWIN signals a lasting rise once; its alert member must not resolve after the quiet
    period while the error is still up (the next detection of the same drift would open a
    second incident), and resolves once the error is back."""
    rng = np.random.default_rng(11)
    config = MonitorConfig.from_mapping({"defaults": {"alerts": {"resolve_after_s": 500.0, "cooldown_s": 0.0},
                                                      "performance": {"max_accuracy_drop": 0.9}}})
    m = ModelMonitor("m", None, config.for_model("m"))
    rates = [0.1] * 5_000 + [0.35] * 15_000 + [0.1] * 10_000
    errors = rng.random(len(rates)) < np.asarray(rates)
    alerts = []
    for lo in range(0, len(rates), 1_000):
        ids = range(lo, lo + 1_000)
        pairs = {"pid": [f"p{i}" for i in ids], "ts": [float(i) for i in ids], "pred_ts": [float(i) for i in ids],
                 "prediction": [1] * 1_000, "label": [int(not e) for e in errors[lo:lo + 1_000]],
                 "score": [None] * 1_000, "label_ts": [float(i) for i in ids]}
        alerts += m.process({"pairs": pairs}).alerts
    statuses = [(a["status"], a["timestamp"]) for a in alerts]
    assert statuses[0][0] == "firing" and 5_000 <= statuses[0][1] < 6_000
    resolved = [ts for status, ts in statuses if status == "resolved"]
    assert resolved and resolved[0] >= 20_000  # held through the 15,000 predictions of higher error
    assert sum(1 for status, _ in statuses if status == "firing") == 1


def test_without_concept_detectors_the_task_metric_keeps_its_baseline_whatever_the_batching() -> None:
    """``concept_drift.classification = []`` leaves the rolling accuracy alone to find a
    concept drift; its window and baseline are built once, not again with every batch (which
    left the baseline unformed and the result a function of how batches were cut)."""
    config = MonitorConfig.from_mapping({"defaults": {"concept_drift": {"classification": []}}})
    items = Simulation(SimulationConfig(events=12_000, seed=5, concept_drift_at=6_000)).in_event_time_order()

    def run(size: int) -> OfflinePipeline:
        pipe = OfflinePipeline(config, window_s=3600)
        for lo in range(0, len(items), size):
            pipe.feed_events(items[lo:lo + size], batch_size=size)
        pipe.finish()
        return pipe

    small, large = run(97), run(2_000)
    assert small.result.alerts == large.result.alerts
    # the same events; their order within an output batch follows the batching
    assert sorted(small.result.drift_events, key=lambda e: e["event_id"]) == sorted(large.result.drift_events, key=lambda e: e["event_id"])
    members = [m for a in large.result.alerts for m in a["members"]]
    assert {m["detector"] for m in members if m["kind"] == "performance"} == {"accuracy"}
    assert not [m for m in members if m["kind"] == "concept_drift"]
