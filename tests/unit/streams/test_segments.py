"""Segments (``segment_by``): per-segment monitors beside the model's, bounded by a top-k cap,
deterministic however the stream is batched, saved and restored with the model's state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import orjson
import pytest

from schemas import schema_path
from schemas.records import Alert, DriftEvent
from streams.exceptions import ConfigError
from streams.offline.pipeline import OfflinePipeline
from streams.pipeline.monitor import ModelMonitor
from streams.pipeline.monitor_config import MonitorConfig
from streams.pipeline.segments import OTHER, choose, segment_column, segment_of, split

#: Countries in blocks of 10 predictions: US 40%, DE and FR 20% each, IT and ES 10% each.
COUNTRIES = ("US", "DE", "US", "FR", "US", "DE", "US", "FR", "IT", "ES")


def _config(**overrides: Any) -> MonitorConfig:
    return MonitorConfig.from_mapping({"models": {"churn": {"segment_by": "country", **overrides}}})


def _batch(lo: int, hi: int, rng: np.random.Generator, shift_in: str | None = None,
           countries: tuple[str, ...] = COUNTRIES) -> dict[str, Any]:
    """Predictions ``[lo, hi)``: country by position (``countries`` over and over), ``x``
    shifted by 3 in country ``shift_in``."""
    country = [countries[i % len(countries)] for i in range(lo, hi)]
    x = rng.normal(0.0, 1.0, hi - lo)
    if shift_in is not None:
        x = np.where(np.asarray(country) == shift_in, x + 3.0, x)
    return {"pred": {"pid": [f"p{i}" for i in range(lo, hi)], "ts": [float(i) for i in range(lo, hi)],
                     "prediction": [int(v > 0) for v in rng.normal(0, 1, hi - lo)], "score": [None] * (hi - lo),
                     "latency_ms": [None] * (hi - lo), "features": {"x": x.tolist(), "country": country}}}


def _segments_of(records: list[dict[str, Any]]) -> set[str | None]:
    return {r.get("segment") for r in records}


# -- the pieces ----------------------------------------------------------------------------
def test_the_cap_keeps_the_most_frequent_values_with_ties_by_name() -> None:
    names = ["US"] * 5 + ["FR"] * 3 + ["DE"] * 3 + ["IT"] * 3 + [OTHER] * 9
    assert choose(names, 2) == ["DE", "US"]  # in name order
    assert choose(names, 3) == ["DE", "FR", "US"]  # FR beats IT on the tie by name
    assert choose(reversed(names), 3) == choose(names, 3)  # order of arrival does not matter
    assert OTHER not in choose(names, 10)  # "other" is always a segment, never a chosen one
    assert split(["IT", "US", None], ["US"]) == {"US": [1], OTHER: [0, 2]}


def test_segment_names_are_the_values_as_strings_and_cut() -> None:
    assert segment_of("x" * 100) == "x" * 64
    assert segment_column(["m", "m"], {}, {"m": "country"}.get) == ["null", "null"]  # feature absent


# -- config --------------------------------------------------------------------------------
@pytest.mark.parametrize(("overrides", "key"), [
    ({"segment_by": ""}, "models.churn.segment_by"),
    ({"segment_by": 3}, "models.churn.segment_by"),
    ({"segments": {"max": 0}}, "models.churn.segments.max"),
    ({"segments": {"max": 101}}, "models.churn.segments.max"),
    ({"segments": {"max": 2.5}}, "models.churn.segments.max"),
    ({"segments": {"top": 5}}, "models.churn.segments.top"),
])
def test_a_bad_segment_setting_is_refused_naming_the_key(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        _config(**overrides)
    assert str(err.value).startswith(f"config: {key}:")
    assert len(str(err.value).splitlines()) == 1


# -- the monitor ---------------------------------------------------------------------------
def test_a_drift_in_one_segment_fires_there_and_in_no_other_segment() -> None:
    rng = np.random.default_rng(11)
    m = ModelMonitor("churn", None, _config(segments={"max": 3}).for_model("churn"))
    quiet = m.process(_batch(0, 6000, rng))  # DE's own reference (its first 1,000) is in by 5,000
    assert m.segments is not None and list(m.segments) == ["DE", "FR", "US", OTHER]
    assert not quiet.alerts
    drifted = m.process(_batch(6000, 16000, rng, shift_in="DE"))
    firing = [a for a in drifted.alerts if a["status"] != "resolved"]
    data = {(a.get("segment"), a["feature"]) for a in firing if a["kind"] == "data_drift"}
    assert ("DE", "x") in data
    assert _segments_of([a for a in firing if a["kind"] == "data_drift"]) <= {"DE", None}  # maybe overall too
    events = [e for e in drifted.drift_events if e["drift"] and e["feature"] == "x"]
    assert _segments_of(events) <= {"DE", None} and "DE" in _segments_of(events)
    # every record is valid for its topic, the segment's included
    for schema, cls, records in (("alerts", Alert, firing), ("drift-events", DriftEvent, drifted.drift_events)):
        validator = jsonschema.Draft202012Validator(orjson.loads(schema_path(schema).read_text()))
        for record in records:
            full = {**record, "window": {"start": 0.0, "end": 1.0}} if schema == "drift-events" else record
            validator.validate(full)
            assert cls.from_dict(full).segment == record.get("segment")
    # a segment's alerts are its own incidents: ids differ from the model's and each other's
    by_segment: dict[str | None, set[str]] = {}
    for alert in firing:
        by_segment.setdefault(alert.get("segment"), set()).add(alert["alert_id"])
    ids = [i for s in by_segment.values() for i in s]
    assert len(ids) == len(set(ids))
    assert all("segment country=DE" in a["message"] for a in firing if a.get("segment") == "DE")
    # a segment's incident asks for no model update
    assert not any(r for r in drifted.update_requests if "segment" in r)


def test_values_past_the_cap_and_values_first_seen_later_go_to_other() -> None:
    rng = np.random.default_rng(5)
    m = ModelMonitor("churn", None, _config(segments={"max": 2}).for_model("churn"))
    m.process(_batch(0, 3000, rng))
    assert m.segments is not None and list(m.segments) == ["DE", "US", OTHER]  # DE beats FR on the tie, by name
    assert m.segments[OTHER].n_predictions == 1200  # FR, IT and ES
    later = _batch(3000, 3600, rng, countries=("US", "BR", "JP"))  # two countries the reference never had
    result = m.process(later)
    assert m.segments[OTHER].n_predictions == 1200 + 400 and m.segments["DE"].n_predictions == 600
    # label values stay bounded: the whole model ("") plus at most max + 1 segments
    assert {s.get("segment", "") for s in result.samples} <= {"", "DE", "US", OTHER}


def test_a_model_without_segment_by_has_no_segments_and_unchanged_records() -> None:
    rng = np.random.default_rng(3)
    m = ModelMonitor("churn", None, MonitorConfig().for_model("churn"))
    result = m.process(_batch(0, 3000, rng))
    result.extend(m.process(_batch(3000, 9000, rng, shift_in="DE")))
    assert m.segments is None and m.to_state()["segments"] is None
    assert result.alerts and all("segment" not in r for r in [*result.alerts, *result.drift_events, *result.samples])


def _run(batches: list[dict[str, Any]], config: MonitorConfig, round_trip_at: int | None = None) -> dict[str, list]:
    m = ModelMonitor("churn", None, config.for_model("churn"))
    out: dict[str, list] = {"alerts": [], "drift_events": []}
    for k, batch in enumerate(batches):
        if k == round_trip_at:  # what a restarted worker does: the state from the changelog, as JSON
            m = ModelMonitor.from_state(orjson.loads(orjson.dumps(m.to_state())), config)
        result = m.process(batch)
        out["alerts"] += result.alerts
        out["drift_events"] += result.drift_events
    return out


def test_segments_survive_a_state_round_trip() -> None:
    config = _config(segments={"max": 3})
    rng = np.random.default_rng(9)
    batches = [_batch(lo, lo + 1000, rng, shift_in="FR" if lo >= 6000 else None) for lo in range(0, 14000, 1000)]
    whole = _run(batches, config)
    assert "FR" in _segments_of(whole["alerts"])
    assert _run(batches, config, round_trip_at=7) == whole
    m = ModelMonitor("churn", None, config.for_model("churn"))
    for batch in batches[:3]:
        m.process(batch)
    state = orjson.loads(orjson.dumps(m.to_state()))
    assert orjson.dumps(ModelMonitor.from_state(state, config).to_state()) == orjson.dumps(m.to_state())


# -- the pipeline: the join carries the segment to the pairs ------------------------------------
def _events(n: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """Predictions of a binary model in 4 countries, labelled 5 s later; from prediction
    6,000 on the model is wrong on half of DE's predictions (a concept drift there only)."""
    rng = np.random.default_rng(seed)
    items: list[tuple[float, int, str, dict[str, Any]]] = []
    for i in range(n):
        country = ("US", "DE", "FR", "IT")[i % 4]
        prediction = int(rng.random() < 0.5)
        wrong = rng.random() < (0.5 if country == "DE" and i >= 6000 else 0.05)
        ts = 1_700_000_000.0 + i / 10
        items.append((ts, 0, "predictions", {"prediction_id": f"p{i}", "model_id": "churn", "timestamp": ts,
                                             "prediction": prediction, "score": None,
                                             "features": {"x": float(rng.normal()), "country": country}}))
        items.append((ts + 5.0, 1, "ground-truth", {"prediction_id": f"p{i}", "label": prediction ^ int(wrong),
                                                    "timestamp": ts + 5.0}))
    items.sort(key=lambda item: (item[0], item[1]))
    return [(role, event) for _, _, role, event in items]


def _offline(events: list[tuple[str, dict[str, Any]]], batch_size: int, partitions: int) -> OfflinePipeline:
    pipe = OfflinePipeline(_config(segments={"max": 2}), window_s=3600, partitions=partitions, keep_samples=False)
    pipe.feed_events(events, batch_size=batch_size)
    pipe.finish()
    return pipe


def test_offline_pipeline_segments_pairs_and_gives_the_same_results_however_batched() -> None:
    events = _events(16_000, seed=2)
    one = _offline(events, 500, 1)
    concept = [a for a in one.result.alerts if {m["kind"] for m in a["members"]} & {"concept_drift", "performance"}]
    assert "DE" in _segments_of(concept)  # the pairs reached DE's monitor
    assert _segments_of(concept) <= {"DE", None}  # US's (chosen) and other's performance stayed put
    other = _offline(events, 137, 3)  # other record cuts, other join partitions
    assert sorted(orjson.dumps(a) for a in other.result.alerts) == sorted(orjson.dumps(a) for a in one.result.alerts)
    assert sorted(orjson.dumps(e) for e in other.result.drift_events) == sorted(orjson.dumps(e) for e in one.result.drift_events)


def test_a_rebaseline_resolves_the_segments_alerts_and_chooses_them_again() -> None:
    rng = np.random.default_rng(11)
    m = ModelMonitor("churn", None, _config(segments={"max": 3}).for_model("churn"))
    m.process(_batch(0, 6000, rng))
    firing = m.process(_batch(6000, 12000, rng, shift_in="DE")).alerts
    open_in_de = {a["alert_id"] for a in firing if a.get("segment") == "DE" and a["status"] != "resolved"}
    assert open_in_de
    resolved = m.rebaseline(12000.0, "re-baselined on request")
    assert open_in_de <= {a["alert_id"] for a in resolved if a["status"] == "resolved"}
    assert m.segments is None  # chosen again from the next reference
    m.process(_batch(12000, 13000, rng, countries=("IT",)))
    assert m.segments is not None and list(m.segments) == ["IT", OTHER]


def _join_payloads(config: MonitorConfig) -> list[dict[str, Any]]:
    from schemas import codec
    from streams.pipeline.stages import InputRecord, JoinStage, PartitionJoin

    stage = JoinStage(window_s=60.0, max_message_bytes=1_048_576, monitor_config=config, clock=lambda: 0.0)
    part = PartitionJoin.fresh(0, 60.0)
    predictions = [{"prediction_id": f"p{i}", "model_id": "churn", "timestamp": float(i), "prediction": 1,
                    "features": {"country": c}} for i, c in enumerate(["US", "DE", None])]
    labels = [{"prediction_id": f"p{i}", "label": 1, "timestamp": 10.0 + i} for i in range(3)]
    out: list[dict[str, Any]] = []
    for k, (role, events) in enumerate((("predictions", predictions), ("ground-truth", labels))):
        # the labels in a later batch: their predictions wait in the join's state
        record = InputRecord(role, role, 0, k, codec.dumps(events))
        out += [value for _, value in stage.process(part, [record]).outputs.messages.get("monitor-input", [])]
    return out


def test_the_join_carries_the_segment_to_the_pairs_only_when_a_model_is_segmented() -> None:
    segmented = [p["pairs"] for p in _join_payloads(_config()) if p["pairs"]]
    assert [pairs["segment"] for pairs in segmented] == [["US", "DE", "null"]]
    plain = [p["pairs"] for p in _join_payloads(MonitorConfig()) if p["pairs"]]
    assert plain and all("segment" not in pairs for pairs in plain)  # monitor-input as it was


def test_a_join_state_saved_before_segments_recovers_with_none() -> None:
    from streams.pipeline.join import JoinState

    state = JoinState(window_s=60.0)
    batch = state.apply({"prediction_id": ["a"], "model_id": ["m"], "model_version": [None], "timestamp": [1.0],
                         "prediction": [1], "score": [0.5]}, {})
    old = {**batch.delta, "add": {"p": {pid: [*e[:4], *e[5:]] for pid, e in batch.delta["add"]["p"].items()}}}
    assert [len(e) for e in old["add"]["p"].values()] == [6]  # model, version, prediction, score, ts, seq
    rebuilt = JoinState.from_deltas(60.0, [old])
    pairs = rebuilt.apply({}, {"prediction_id": ["a"], "label": [1], "timestamp": [2.0], "model_id": [None]}).pairs
    assert pairs["prediction_id"] == ["a"] and pairs["segment"] == [None] and pairs["timestamp"] == [1.0]


def test_the_readme_segments_example_is_a_valid_config(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    example = readme.split("### Segments", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "monitoring.toml").write_text(example)
    config = MonitorConfig.load(tmp_path / "monitoring.toml").for_model("churn-model")
    assert config.segment_by == "country" and config.segments == {"max": 10}
