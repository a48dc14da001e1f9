"""A model's PSI detectors advanced in groups (streams/pipeline/feeding.py) give the monitor
exactly what feeding each by itself gives: samples, drift events, alerts and state."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from detectors.psi import PSI
from streams.offline.pipeline import OfflinePipeline
from streams.offline.simulate import Simulation, SimulationConfig
from streams.pipeline import feeding
from streams.pipeline import monitor as monitor_module
from streams.pipeline.feeding import advance_together


def _run(items: list, cuts: list[int]) -> tuple[OfflinePipeline, bytes]:
    pipe = OfflinePipeline(window_s=3600)
    for lo, hi in zip([0, *cuts], cuts):
        pipe.feed_events(items[lo:hi], batch_size=hi - lo)
    pipe.finish()
    states = {key: slot.monitor.to_state() for key, slot in pipe.monitors.items()}
    return pipe, orjson.dumps(states, option=orjson.OPT_SORT_KEYS)


def test_grouped_feeding_gives_what_feeding_one_by_one_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    """With missing values in some batches (their detectors fall out of step and out of the
    group), a feature absent from whole batches, and random batch cuts."""
    items = Simulation(SimulationConfig(events=8_000, seed=5, feature_drift_at=3_000, concept_drift_at=5_500)).in_event_time_order()
    rng = np.random.default_rng(5)
    for role, event in items:
        if role == "predictions" and rng.random() < 0.02:
            event["features"]["income"] = None
        if role == "predictions" and rng.random() < 0.01:  # both: their references' categories stay alike
            del event["features"]["plan"], event["features"]["region"]
    cuts = [*np.cumsum(rng.choice([5, 40, 250, 700], size=len(items))).tolist()]
    cuts = [c for c in cuts if c < len(items)] + [len(items)]

    grouped: list[tuple[str, int]] = []
    original = feeding.update_together

    def counting(detectors: list, values: np.ndarray) -> list:
        grouped.append((type(detectors[0]).__name__, len(detectors)))
        return original(detectors, values)

    with monkeypatch.context() as patch:
        patch.setattr(feeding, "update_together", counting)
        together, together_states = _run(items, cuts)
    monkeypatch.setattr(monitor_module, "advance_together", lambda due: [None] * len(due))
    alone, alone_states = _run(items, cuts)
    assert together.result.samples == alone.result.samples
    assert together.result.drift_events == alone.result.drift_events
    assert together.result.alerts == alone.result.alerts
    assert together_states == alone_states
    assert len(grouped) > 10 and max(n for _, n in grouped) >= 3  # the group path did run
    assert {kind for kind, _ in grouped} == {"PSI", "CategoricalPSI"}
    assert any(e["kind"] == "data_drift" and e["drift"] for e in together.result.drift_events)


def test_what_cannot_go_in_a_group_is_left_to_the_monitor() -> None:
    rng = np.random.default_rng(1)
    psis = [PSI(reference=rng.normal(0, 1, 200), window=100, step=50) for _ in range(4)]
    values = rng.normal(0, 1, (4, 50))
    with_nan = values[2].copy()
    with_nan[7] = np.nan
    due = [(psis[0], values[0]), (psis[1], values[1]), (psis[2], with_nan), (psis[3], None)]
    advanced = advance_together(due)
    assert [a is None for a in advanced] == [False, False, True, True]
    assert psis[2].n_seen == psis[3].n_seen == 0 and psis[0].n_seen == 50
    # an evaluation before the last value: more than one piece, the monitor feeds it
    more = rng.normal(0, 1, (2, 60))
    assert advance_together([(psis[0], more[0]), (psis[1], more[1])]) == [None, None]
    late = advance_together([(psis[0], values[0]), (psis[1], values[1][:10])])  # unequal lengths: no group
    assert late == [None, None]
