"""One contract test walking every public detector in the registry."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pytest

from detectors import registry
from detectors.base import Detector


def _binary(rng: np.random.Generator) -> np.ndarray:
    return np.concatenate([rng.binomial(1, 0.1, 600), rng.binomial(1, 0.6, 600)]).astype(float)


def _normal(rng: np.random.Generator) -> np.ndarray:
    return np.concatenate([rng.normal(0, 1, 600), rng.normal(2, 1, 600)])


def _categories(rng: np.random.Generator) -> np.ndarray:
    first = rng.choice(["a", "b", "c"], 600, p=[0.6, 0.3, 0.1])
    second = rng.choice(["a", "b", "new"], 600, p=[0.2, 0.3, 0.5])
    return np.concatenate([first, second]).astype(object)


def case(name: str) -> tuple[dict[str, Any], list[Any], Any]:
    """Config, stream (as a list of Python values) and out-of-domain value for a type."""
    rng = np.random.default_rng(7)
    small = {"window": 200, "step": 50}
    ref_num = {"reference": rng.normal(0, 1, 1000).tolist(), **small}
    ref_cat = {
        "reference": rng.choice(["a", "b", "c"], 1000, p=[0.6, 0.3, 0.1]).tolist(),
        **small,
    }
    table: dict[str, tuple[dict[str, Any], Any, Any]] = {
        "adwin": ({}, _binary(rng), None),
        "ddm": ({}, _binary(rng), 5),
        "eddm": ({}, _binary(rng), 5),
        "hddm_a": ({}, _binary(rng), 1.5),
        "hddm_w": ({}, _binary(rng), -0.5),
        "page_hinkley": ({}, _normal(rng), None),
        "kswin": ({"seed": 3}, _normal(rng), None),
        "psi": (ref_num, _normal(rng), None),
        "ks": (ref_num, _normal(rng), None),
        "wasserstein": (ref_num, _normal(rng), None),
        "mean_shift": (ref_num, _normal(rng), None),
        "three_sigma": ({"reference": rng.normal(0, 1, 1000).tolist()}, _normal(rng), None),
        "threshold": ({"below": -1.0}, _normal(rng) * -1, None),
        "psi_categorical": (ref_cat, _categories(rng), 1.5),
        "chi2": (ref_cat, _categories(rng), 1.5),
    }
    config, stream, bad = table[name]
    return {"type": name, **config}, list(stream), bad


def _run(detector: Detector, stream: list[Any], cuts: list[int] | None = None) -> dict[str, Any]:
    """Feed ``stream`` (per event if ``cuts`` is None, else in batches cut at ``cuts``)."""
    hits: list[int] = []
    if cuts is None:
        for i, x in enumerate(stream):
            detector.update(x)
            if detector.drift_detected:
                hits.append(i)
    else:
        bounds = [0, *cuts, len(stream)]
        for start, end in zip(bounds, bounds[1:]):
            hits.extend((start + detector.update_many(stream[start:end])).tolist())
    return _observe(detector, hits)


def _run_until_drift(detector: Detector, stream: list[Any]) -> dict[str, Any]:
    """Feed ``stream`` with ``update_until_drift``, again after each detection."""
    hits: list[int] = []
    used = 0
    while used < len(stream):
        used += detector.update_until_drift(stream[used:])
        if detector.drift_detected:
            hits.append(used - 1)
    return _observe(detector, hits)


def _observe(detector: Detector, hits: list[int]) -> dict[str, Any]:
    stat = detector.statistic
    return {
        "hits": hits,
        "drift": detector.drift_detected,
        "warning": detector.warning_detected,
        "statistic": None if math.isnan(stat) else stat,
        "threshold": None if math.isnan(detector.threshold) else detector.threshold,
        "p_value": detector.p_value,
        "n_seen": detector.n_seen,
        "state": orjson.dumps(detector.to_state()),
    }


@pytest.fixture(params=registry.available())
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_contract(name: str) -> None:
    config, stream, bad = case(name)
    cls = registry.DETECTORS[name]

    # Documented, with a runnable example, and the declared contract attributes.
    assert cls.__doc__ and "Examples" in cls.__doc__ and "False alarms" in cls.__doc__
    assert cls.kind in ("error_stream", "numeric", "categorical", "metric")
    detector = registry.build(config)
    assert detector.direction in ("above", "below")
    assert math.isnan(detector.statistic) and not detector.drift_detected

    # Batch update equals the per-event loop, whatever the cuts; the shift is detected.
    reference_run = _run(registry.build(config), stream)
    assert reference_run["hits"], f"{name} missed an obvious shift"
    for cuts in ([], [1, 2, 3, 500], [137, 611, 612, 1000], list(range(97, 1200, 97))):
        assert _run(registry.build(config), stream, cuts) == reference_run, cuts
    assert _run_until_drift(registry.build(config), stream) == reference_run

    # State survives an orjson round trip mid-stream: same subsequent output.
    for split in (1, 333, 650):
        first = registry.build(config)
        first.update_many(stream[:split])
        state = orjson.loads(orjson.dumps(first.to_state()))
        restored = registry.from_state(state)
        assert type(restored) is cls and restored.params() == first.params()
        assert orjson.dumps(restored.to_state()) == orjson.dumps(first.to_state())
        a = _observe(first, (first.update_many(stream[split:])).tolist())
        b = _observe(restored, (restored.update_many(stream[split:])).tolist())
        assert a == b

    # reset() equals fresh.
    used = registry.build(config)
    used.update_many(stream)
    used.reset()
    assert _run(used, stream) == reference_run

    # Bad input is rejected, in update and update_many, naming the detector and the value;
    # the detector is left untouched.
    probe = registry.build(config)
    probe.update_many(stream[:10])
    before = probe.to_state()
    bad_values: list[tuple[Any, str]] = [(float("nan"), "nan"), (float("inf"), "inf")]
    if bad is not None:
        bad_values.append((bad, str(bad)))
    for value, text in bad_values:
        with pytest.raises(ValueError, match=rf"^{name}: .*must be.*got {text}"):
            probe.update(value)
        with pytest.raises(ValueError, match=rf"^{name}: .*must be.*got {text}"):
            probe.update_many([stream[0], value])
    assert probe.to_state() == before


def test_from_state_rejects_other_types(name: str) -> None:
    config, stream, _ = case(name)
    detector = registry.build(config)
    state = detector.to_state()
    cls = registry.DETECTORS[name]
    with pytest.raises(ValueError, match=rf"^{name}: cannot load state of type 'evil'"):
        cls.from_state({**state, "type": "evil"})
    with pytest.raises(ValueError, match="unknown detector type 'evil'"):
        registry.from_state({**state, "type": "evil"})


def test_reference_detectors_need_a_reference(name: str) -> None:
    config, stream, _ = case(name)
    if "reference" not in config:
        pytest.skip("not reference-based")
    reference = config.pop("reference")
    detector = registry.build(config)
    with pytest.raises(ValueError, match=rf"^{name} has no reference; call fit\(reference\) first"):
        detector.update(stream[0])
    with pytest.raises(ValueError, match="has no reference"):
        detector.update_many(stream[:3])
    fitted = detector.fit(reference)
    assert fitted is detector
    assert len(_run(detector, stream)["hits"]) > 0
    assert orjson.loads(orjson.dumps(detector.to_state()))["state"]["reference"] is not None


def test_bad_params_name_the_parameter(name: str) -> None:
    config, _, _ = case(name)
    key = next(k for k in registry.DETECTORS[name]._param_names() if k != "seed")
    with pytest.raises(ValueError, match=rf"^{name}: parameter '\w+' must be"):
        registry.build({**config, key: -7})


def test_params_are_json(name: str) -> None:
    config, _, _ = case(name)
    params = registry.build(config).params()
    assert orjson.loads(orjson.dumps(params)) == params
    assert all(isinstance(v, (str, int, float, bool, type(None))) for v in params.values())


def test_numpy_inputs_are_accepted(name: str) -> None:
    config, stream, _ = case(name)
    as_list = _run(registry.build(config), stream, [600])
    detector = registry.build(config)
    hits = detector.update_many(np.asarray(stream[:600])).tolist()
    hits += (600 + detector.update_many(np.asarray(stream[600:]))).tolist()
    assert hits == as_list["hits"]
