"""Statistical behaviour, seeded: false alarms on stationary streams stay within what each
docstring documents; abrupt and gradual shifts are detected within a bounded delay."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from detectors import registry
from detectors.calibration import calibrate

Gen = Callable[[np.random.Generator, int], np.ndarray]


def _bern(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.binomial(1, 0.2, n).astype(float)


def _norm(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(0, 1, n)


def _cat(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]).astype(object)


def _build(name: str, gen: Gen, rng: np.random.Generator, **params: Any) -> Any:
    config: dict[str, Any] = {"type": name, **params}
    if name in ("psi", "ks", "wasserstein", "mean_shift", "psi_categorical", "chi2", "three_sigma"):
        config["reference"] = gen(rng, 5000)
    return registry.build(config)


# name, generator, stream length, most false alarms allowed (documented rate, with slack)
STATIONARY = [
    ("adwin", _bern, 100_000, 2),
    ("ddm", _bern, 100_000, 2),
    ("eddm", _bern, 20_000, 100),
    ("hddm_a", _bern, 100_000, 3),
    ("hddm_w", _bern, 50_000, 10),
    ("page_hinkley", _bern, 100_000, 12),
    ("psi", _norm, 100_000, 0),
    ("ks", _norm, 100_000, 6),
    ("wasserstein", _norm, 100_000, 0),
    ("mean_shift", _norm, 100_000, 0),
    ("psi_categorical", _cat, 100_000, 0),
    ("chi2", _cat, 100_000, 6),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "gen", "n", "most"), STATIONARY, ids=[s[0] for s in STATIONARY])
def test_false_alarms_on_stationary_stream(name: str, gen: Gen, n: int, most: int) -> None:
    rng = np.random.default_rng(2024)
    detector = _build(name, gen, rng)
    assert len(detector.update_many(gen(rng, n))) <= most


def _shifted(name: str, rng: np.random.Generator, n: int, at: int, gradual: bool) -> np.ndarray:
    ramp = np.clip((np.arange(n) - at) / 2000, 0, 1) if gradual else (np.arange(n) >= at) * 1.0
    if name in ("adwin", "ddm", "eddm", "hddm_a", "hddm_w", "page_hinkley"):
        return rng.binomial(1, 0.2 + 0.3 * ramp).astype(float)
    return rng.normal(0, 1, n) + 1.0 * ramp


# name, most delay after an abrupt change, most delay after the start of a 2000-value ramp
DELAYS = [
    ("adwin", 300, 1500),
    ("ddm", 1500, 2500),  # cumulative error rate: slow after a long stable period
    ("hddm_a", 300, 1500),
    ("hddm_w", 300, 1500),
    ("page_hinkley", 400, 1500),
    ("psi", 600, 2000),
    ("ks", 600, 1500),
    ("wasserstein", 600, 1500),
    ("mean_shift", 600, 1500),
]


@pytest.mark.parametrize(("name", "abrupt", "gradual"), DELAYS, ids=[d[0] for d in DELAYS])
def test_detection_delay(name: str, abrupt: int, gradual: int) -> None:
    at = 6000
    for is_gradual, bound in ((False, abrupt), (True, gradual)):
        rng = np.random.default_rng(11)
        detector = _build(name, _norm, rng)
        hits = detector.update_many(_shifted(name, rng, 12_000, at, is_gradual))
        late = hits[hits >= at]
        assert len(late), f"{name} missed the {'gradual' if is_gradual else 'abrupt'} shift"
        delay = int(late[0]) - at
        print(f"{name} {'gradual' if is_gradual else 'abrupt'} delay: {delay}")
        assert delay <= bound


def test_categorical_shift_is_detected_quickly() -> None:
    rng = np.random.default_rng(5)
    for name in ("psi_categorical", "chi2"):
        detector = _build(name, _cat, rng)
        detector.update_many(_cat(rng, 3000))
        shifted = rng.choice(["a", "b", "unseen"], 3000, p=[0.3, 0.3, 0.4]).astype(object)
        hits = detector.update_many(shifted)
        assert len(hits) and hits[0] <= 500


@pytest.mark.slow
def test_calibrated_threshold_gives_the_target_run_length() -> None:
    """three_sigma on a heavy-tailed metric: 3 sigma is far too tight, the calibrated
    threshold brings the false alarm run length near the target."""
    rng = np.random.default_rng(3)
    reference = rng.standard_t(3, 20_000)
    target = 300
    cal = calibrate({"type": "three_sigma"}, reference, target_ert=target, n_streams=40, seed=1)
    stream = rng.standard_t(3, 200_000)
    naive = registry.build({"type": "three_sigma", "reference": reference})
    tuned = registry.build(cal.config({"type": "three_sigma", "reference": reference}))
    naive_ert = len(stream) / max(1, len(naive.update_many(stream)))
    tuned_ert = len(stream) / max(1, len(tuned.update_many(stream)))
    assert naive_ert < target / 2
    assert target / 2 <= tuned_ert <= target * 2


@pytest.mark.slow
def test_calibrated_psi_threshold_controls_false_alarms() -> None:
    rng = np.random.default_rng(4)
    reference = rng.exponential(1.0, 10_000)
    config = {"type": "psi", "window": 200, "step": 50}
    cal = calibrate(config, reference, target_ert=20_000, seed=2)
    assert cal.param == "psi_above" and cal.threshold > 0
    detector = registry.build(cal.config({**config, "reference": reference}))
    alarms = len(detector.update_many(rng.exponential(1.0, 200_000)))
    assert alarms <= 200_000 / 20_000 * 3


def test_ks_and_chi2_agree_with_scipy() -> None:
    from scipy import stats

    rng = np.random.default_rng(8)
    reference = rng.normal(0, 1, 2000)
    ks = registry.build({"type": "ks", "reference": reference})
    for shift in (0.0, 0.05, 0.1, 0.2):
        window = rng.normal(shift, 1, 1000)
        ours = ks._test(window)[0]
        theirs = stats.ks_2samp(reference, window, method="asymp").pvalue
        assert ours == pytest.approx(theirs, rel=0.05, abs=1e-6)
    chi2 = registry.build({"type": "chi2", "reference": _cat(rng, 3000)})
    window = chi2._check_many(rng.choice(["a", "b", "c", "zz"], 1000))
    table = np.vstack([chi2.reference_summary["counts"], chi2._window_counts(window)])
    expected = stats.chi2_contingency(table[:, table.sum(0) > 0], correction=False).pvalue
    assert chi2._test(window)[0] == pytest.approx(expected, rel=1e-9)
