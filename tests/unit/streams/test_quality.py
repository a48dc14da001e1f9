"""Data quality per feature: missing rate, out-of-range values, unseen categories, type changes."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import orjson
import pytest

from schemas.records import KINDS
from streams.exceptions import ConfigError
from streams.pipeline.monitor import ModelMonitor
from streams.pipeline.monitor_config import MonitorConfig
from streams.pipeline.number_column import number_column
from streams.pipeline.quality import CHECKS, FeatureQuality

N = 4_000  # predictions before the change, and after it
ALL = {"defaults": {"data_quality": {"checks": list(CHECKS)}}}


def test_flags_are_counted_against_the_reference_profile() -> None:
    q = FeatureQuality.from_reference(["a", "b", None, "a"], window=4)
    assert (q.numeric, q.missing, q.categories, q.types) == (False, 0.25, ["a", "b"], ["string"])
    q.update(["a", "c", 3, None], position=0)
    assert math.isnan(q.share("missing_rate"))  # queued: not in the window until it advances
    q.advance(4)
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


def test_a_clean_stream_gives_no_quality_event_and_all_four_are_checked_by_default() -> None:
    assert _run(_stream("none"), ALL) == ([], [])
    assert _run(_stream("none"), {}) == ([], [])
    assert _run(_stream("missing_rate"), {}) == _run(_stream("missing_rate"), ALL)  # on by default
    assert _run(_stream("missing_rate"), {"defaults": {"data_quality": {"checks": []}}}) == ([], [])  # off


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
    [0.5, 1.0, 2.0, 3.5],  # all in range: nothing flagged
    [0.5, True, 2.0, 3, 9],  # a bool among numbers and no null: numpy alone would see a 1.0
    [2, 3, 4.0, 5],  # ints and floats: numbers
])
def test_the_vectorised_numeric_flags_equal_the_per_value_ones(values: list) -> None:
    q = FeatureQuality.from_reference([0.0, 1.0, 2.0, 4.0], window=100)
    per_value = [q._flag(v) for v in values]
    assert _codes(q, values) == per_value
    if values[1] is None and values[2] == 2.5:  # by hand: in range 0, missing 1, out of range 2
        assert per_value == [0, 1, 0, 2, 2, 1, 0]


def _codes(q: FeatureQuality, values: list) -> list[int]:
    """The batch path's flags, one per value (bits 1, 2, 4)."""
    codes = [0] * len(values)
    for bit, at in zip((1, 2, 4), q._flagged(values)):
        for i in (() if at is None else at.tolist()):
            codes[i] |= bit
    return codes


def test_the_vectorised_category_flags_equal_the_per_value_ones() -> None:
    q = FeatureQuality.from_reference(["a", "b", None], window=100)
    values = ["a", None, "c", "b", "d"]
    assert _codes(q, values) == [q._flag(v) for v in values] == [0, 1, 2, 0, 2]
    assert q._flagged(["a", "b", "a"]) == (None, None, None)  # nothing flagged: no per-value pass
    assert _codes(q, [1, "a"]) == [6, 0]  # an int in a string feature: unseen and a type change


class _PerEvent:
    """The checks as specified, one value at a time: each value's flags, the last
    ``window`` of them, and their shares (the reference for the batch path)."""

    def __init__(self, reference: list, window: int) -> None:
        present = [v for v in reference if not _missing(v)]
        self.numeric = bool(present) and all(type(v) in (int, float) for v in present)
        self.types = {_kind(v) for v in present}
        self.low, self.high = (min(present), max(present)) if self.numeric else (None, None)
        self.known = {str(v) for v in present}
        self.flags: deque = deque(maxlen=window)

    def add(self, v: object) -> None:
        if _missing(v):
            self.flags.append((1, 0, 0))
            return
        kind = _kind(v)
        if self.numeric:
            outside = kind == "number" and not self.low <= v <= self.high  # type: ignore[operator]
        else:
            outside = str(v) not in self.known
        self.flags.append((0, int(outside), int(kind not in self.types)))

    def shares(self) -> tuple[float, float, float] | None:
        if len(self.flags) < self.flags.maxlen:  # type: ignore[operator]
            return None
        return tuple(sum(f[i] for f in self.flags) / len(self.flags) for i in range(3))  # type: ignore[return-value]


def _missing(v: object) -> bool:
    return v is None or (type(v) is float and not math.isfinite(v))  # type: ignore[arg-type]


def _kind(v: object) -> str:
    return "bool" if type(v) is bool else "number" if type(v) in (int, float) else "string" if type(v) is str else "other"


def _messy(rng: np.random.Generator, n: int, numeric: bool) -> list:
    """Values of one feature: mostly clean, with nulls, NaN, infinities, outliers, unseen
    categories and values of other types, in runs and alone."""
    base: list = rng.normal(0.0, 1.0, n).tolist() if numeric else rng.choice(["a", "b", "c"], n).tolist()
    odd = [None, float("nan"), float("inf"), -float("inf"), 9.5, -7.0, 3, True, False, "x", "2", "z", 1.5, [1]]
    dirty = rng.random(n) < rng.choice([0.0, 0.02, 0.3])  # some stretches clean, some dirty
    for i in np.flatnonzero(dirty):
        base[i] = odd[rng.integers(len(odd))]
    return base


@pytest.mark.parametrize("seed", range(6))
def test_the_batch_counts_equal_a_per_event_reference_at_every_checkpoint(seed: int) -> None:
    rng = np.random.default_rng(seed)
    window = int(rng.choice([1000, 500, 300, 777, 250]))
    every = 250  # the monitor's checkpoints
    bucket = math.gcd(window, every)
    numeric = bool(seed % 2)
    # a numeric reference with nulls and NaN; a categorical one with nulls, and for some
    # seeds numbers too (a feature of mixed types: the per-value path)
    reference: list = rng.normal(0.0, 1.0, 1000).tolist() if numeric else rng.choice(["a", "b", "c"], 1000).tolist()
    reference[::50] = [None, float("nan")] * 10 if numeric else [None, 3 if seed % 4 == 2 else None] * 10
    fast = FeatureQuality.from_reference(reference, window, bucket)
    slow = _PerEvent(reference, window)
    stream = _messy(rng, 6000, numeric)
    position, compared = 0, 0
    while position < len(stream):  # batches of any size, as the monitor hands them over
        size = int(rng.choice([1, 7, 250, 333, 1000, 2600]))
        batch = stream[position:position + size]
        # as the monitor converted the batch for its detectors, or not converted (every path)
        fast.update(batch, position, number_column(batch) if (position // 7) % 3 else None)
        for i, v in enumerate(batch):
            slow.add(v)
            if (position + i + 1) % every == 0:  # a checkpoint: the window ends here
                fast.advance(position + i + 1)
                want = slow.shares()
                assert fast.numeric == numeric
                got = fast.shares(["missing_rate", "out_of_range" if numeric else "unseen_category", "type_change"])
                if want is None:
                    assert all(math.isnan(x) for x in got.values())
                else:
                    assert tuple(got.values()) == pytest.approx(want, abs=0), position + i + 1
                    compared += 1
        position += len(batch)
        if rng.random() < 0.2:  # a state round trip between batches
            fast = FeatureQuality.from_state(orjson.loads(orjson.dumps(fast.to_state())))
    assert compared >= 10


def test_the_state_is_a_few_numbers_and_an_old_one_is_counted_again() -> None:
    q = FeatureQuality.from_reference([0.0, 1.0, 2.0], window=1000, bucket=250)
    q.update([0.5] * 2400 + [None] * 100, position=0)
    state = orjson.loads(orjson.dumps(q.to_state()))
    assert len(state["counts"]) == 4 and state["end"] == 2500 and "flags" not in state
    # a state from before the buckets: one flag digit per value, the last at position 2499
    old = {**{k: v for k, v in state.items() if k not in ("counts", "end", "seen", "bucket")},
           "flags": "0" * 900 + "1" * 100}
    again = FeatureQuality.from_state(old, end=2500, bucket=250)
    assert again.end == 2500 and again.full
    again.update([0.5] * 500, 2500)
    q.update([0.5] * 500, 2500)
    q.advance(3000)
    again.advance(3000)
    assert again.share("missing_rate") == q.share("missing_rate") == 0.1


@pytest.mark.parametrize("batch", [1_000, 333, 2_600])
def test_the_shared_conversion_changes_no_result(batch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each numeric column converted once per batch for the detectors and the checks gives
    the same drift events, samples and alerts as each converting on its own, with bools,
    numeric strings, nulls and lists among the values (they take each one's own path)."""
    rng = np.random.default_rng(4)
    stream = _stream("type_change")
    n = len(stream["ts"])
    stream["features"]["x"] = _messy(rng, n, True)
    y = rng.normal(0.0, 1.0, n)
    y[n // 2:] += 2.0  # a drift for its detector
    stream["features"]["y"] = y.tolist()  # clean: the shared path throughout
    stream["features"]["y"][n // 2::97] = [True] * len(range(n // 2, n, 97))  # a bool: 1.0 to a detector

    def results() -> list:
        m = ModelMonitor("m", None, MonitorConfig.from_mapping({}).for_model("m"))
        out = []
        for lo in range(0, n, batch):
            cols = {k: v[lo:lo + batch] for k, v in stream.items() if k != "features"}
            cols["features"] = {k: v[lo:lo + batch] for k, v in stream["features"].items()}
            r = m.process({"pred": cols})
            out.append((r.drift_events, r.samples, r.alerts))
        return out

    shared = results()
    monkeypatch.setattr("streams.pipeline.monitor.number_column", lambda values, with_types=True: None)
    monkeypatch.setattr("streams.pipeline.quality.number_column", lambda values, with_types=True: None)
    apart = results()
    assert orjson.dumps(shared, option=orjson.OPT_SERIALIZE_NUMPY) == orjson.dumps(apart, option=orjson.OPT_SERIALIZE_NUMPY)
    kinds = {e["kind"] for batch_events, _, _ in shared for e in batch_events}
    assert {"data_quality", "data_drift"} <= kinds  # both consumers had something to say
