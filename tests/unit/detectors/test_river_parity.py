"""The river-backed detectors give river's own detection indices, also across a state
round trip (which river itself cannot do without pickle)."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from river import drift

from detectors import registry

RIVER = {
    "adwin": (lambda: drift.ADWIN(), "errors"),
    "ddm": (lambda: drift.binary.DDM(), "errors"),
    "eddm": (lambda: drift.binary.EDDM(), "errors"),
    "hddm_a": (lambda: drift.binary.HDDMA(), "errors"),
    "hddm_w": (lambda: drift.binary.HDDMW(), "errors"),
    "page_hinkley": (lambda: drift.PageHinkley(), "values"),
    "kswin": (lambda: drift.KSWIN(seed=42), "values"),
}


def _stream(kind: str, seed: int, gradual: bool) -> list[float]:
    rng = np.random.default_rng(seed)
    n = 3000
    ramp = np.clip((np.arange(n) - 1000) / 1000, 0, 1) if gradual else (np.arange(n) >= 1500)
    if kind == "errors":
        return rng.binomial(1, 0.1 + 0.3 * ramp).astype(float).tolist()
    return (rng.normal(0, 1, n) + 2 * ramp).tolist()


def _river_hits(factory: Any, stream: list[float]) -> list[int]:
    detector = factory()
    hits = []
    for i, x in enumerate(stream):
        detector.update(x)
        if detector.drift_detected:
            hits.append(i)
    return hits


@pytest.mark.parametrize("name", sorted(RIVER))
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("gradual", [False, True])
def test_same_detections_as_river(name: str, seed: int, gradual: bool) -> None:
    factory, kind = RIVER[name]
    stream = _stream(kind, seed, gradual)
    expected = _river_hits(factory, stream)
    assert expected, "the stream should make river fire"

    ours = registry.build({"type": name})
    assert ours.update_many(stream).tolist() == expected

    # Same again with the state written to JSON and restored every 700 values.
    detector = registry.build({"type": name})
    hits: list[int] = []
    for start in range(0, len(stream), 700):
        hits.extend((start + detector.update_many(stream[start : start + 700])).tolist())
        detector = registry.from_state(orjson.loads(orjson.dumps(detector.to_state())))
    assert hits == expected
