"""Data quality per feature: missing rate, out-of-range values, unseen categories, type changes."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from schemas.records import KINDS
from streams.exceptions import ConfigError
from streams.pipeline.monitor import ModelMonitor
from streams.pipeline.monitor_config import MonitorConfig
from streams.pipeline.quality import CHECKS, FeatureQuality

N = 4_000  # predictions before the change, and after it
ALL = {"defaults": {"data_quality": {"checks": list(CHECKS)}}}


def test_flags_are_counted_against_the_reference_profile() -> None:
    q = FeatureQuality.from_reference(["a", "b", None, "a"], window=4)
    assert (q.numeric, q.missing, q.categories, q.types) == (False, 0.25, ["a", "b"], ["string"])
    q.update(["a", "c", 3, None])
    assert q.checks(CHECKS) == ["missing_rate", "unseen_category", "type_change"]
    assert [q.share(c) for c in q.checks(CHECKS)] == [0.25, 0.5, 0.25]  # 3 is unseen and of another type
    assert math.isnan(q.share("out_of_range"))  # not a check of a categorical feature
    assert q.threshold("missing_rate", {"max_missing_increase": 0.1}) == pytest.approx(0.35)
    assert FeatureQuality.from_reference([1, 2.5], window=4).checks(CHECKS) == ["missing_rate", "out_of_range",
                                                                               "type_change"]


def _stream(change: str) -> dict:
    """x numeric, plan categorical; after N, ``change`` breaks one feature's quality."""
    rng = np.random.default_rng(9)
    n = 2 * N
    x: list = rng.normal(0.0, 1.0, n).tolist()
    plan: list = rng.choice(["a", "b", "c"], n).tolist()
    for i in range(N, n):
        if change == "missing_rate" and i % 5 == 0:
            x[i] = None
        elif change == "out_of_range" and i % 10 == 0:
            x[i] = 50.0
        elif change == "unseen_category" and i % 10 == 0:
            plan[i] = "d"
        elif change == "type_change" and i % 20 == 0:
            x[i] = "n/a"
    return {"pid": [f"p{i}" for i in range(n)], "ts": [float(i) for i in range(n)], "prediction": [0] * n,
            "score": [None] * n, "latency_ms": [None] * n, "features": {"x": x, "plan": plan}}


def _run(stream: dict, config: dict, batch: int = 1_000, round_trip_at: int | None = None) -> tuple[list, list]:
    cfg = MonitorConfig.from_mapping(config)
    m = ModelMonitor("m", None, cfg.for_model("m"))
    events, alerts = [], []
    for lo in range(0, len(stream["ts"]), batch):
        if lo == round_trip_at:
            m = ModelMonitor.from_state(orjson.loads(orjson.dumps(m.to_state())), cfg)
        hi = lo + batch
        cols = {k: v[lo:hi] for k, v in stream.items() if k != "features"}
        cols["features"] = {k: v[lo:hi] for k, v in stream["features"].items()}
        result = m.process({"pred": cols})
        events += [e for e in result.drift_events if e["kind"] == "data_quality"]
        alerts += [a for a in result.alerts if a["kind"] == "data_quality"]
    return events, alerts


@pytest.mark.parametrize(("check", "feature"), [
    ("missing_rate", "x"), ("out_of_range", "x"), ("unseen_category", "plan"), ("type_change", "x"),
])
def test_each_check_fires_on_its_own_breakage_and_nothing_before_it(check: str, feature: str) -> None:
    events, alerts = _run(_stream(check), ALL)
    drifts = [e for e in events if e["drift"]]
    assert {(e["detector"], e["feature"]) for e in drifts} == {(check, feature)}
    assert N <= drifts[0]["position"] < N + 1_000
    assert [(a["status"], a["feature"], a["detector"]) for a in alerts][:1] == [("firing", feature, check)]


def test_a_clean_stream_gives_no_quality_event_and_nothing_is_checked_by_default() -> None:
    assert _run(_stream("none"), ALL) == ([], [])
    assert _run(_stream("missing_rate"), {}) == ([], [])  # data_quality.checks = []: off


def test_quality_results_do_not_depend_on_batching_or_a_state_round_trip() -> None:
    stream = _stream("out_of_range")
    whole = _run(stream, ALL)
    assert whole[0]
    assert _run(stream, ALL, batch=333) == whole
    assert _run(stream, ALL, batch=700, round_trip_at=4_900) == whole


def test_data_quality_is_a_kind_of_event_and_its_config_is_checked() -> None:
    assert "data_quality" in KINDS
    with pytest.raises(ConfigError, match=r"defaults.data_quality.checks: expected a list of distinct checks from: "
                                          r"missing_rate, out_of_range, unseen_category, type_change"):
        MonitorConfig.from_mapping({"defaults": {"data_quality": {"checks": ["missing"]}}})
    with pytest.raises(ConfigError, match=r"models.m.data_quality.max_out_of_range: expected a number in \[0, 1\]"):
        MonitorConfig.from_mapping({"models": {"m": {"data_quality": {"max_out_of_range": 5}}}})


def test_the_topic_contracts_accept_the_data_quality_kind() -> None:
    from pathlib import Path

    for name in ("drift-events", "alerts"):
        schema = orjson.loads((Path(__file__).parents[3] / "schemas" / f"{name}.schema.json").read_bytes())
        assert tuple(schema["properties"]["kind"]["enum"]) == KINDS


@pytest.mark.parametrize("values", [
    [1.0, None, 2.5, 99.0, -5, float("nan"), 3],  # numbers and nulls: the numpy path
    [1.0, "x", True, None, 7.0, [1], 10 ** 400],  # any mix: one value at a time
])
def test_the_vectorised_numeric_flags_equal_the_per_value_ones(values: list) -> None:
    fast = FeatureQuality.from_reference([0.0, 1.0, 2.0, 4.0], window=100)
    fast.update(values)
    assert fast.flags == fast._flags(values)
    # by hand for the first case: in range 0, missing 1, out of range 2
    if values[1] is None and values[2] == 2.5:
        assert fast.flags == "0102210"


def test_the_vectorised_category_flags_equal_the_per_value_ones() -> None:
    q = FeatureQuality.from_reference(["a", "b", None], window=100)
    values = ["a", None, "c", "b", "d"]
    q.update(values)
    assert q.flags == q._flags(values) == "01202"
    q.update([1, "a"])  # an int in a string feature: unseen and a type change, per value
    assert q.flags.endswith("60")
