"""Registry, severity bands and multiple-testing helpers."""

from __future__ import annotations

import pytest

from detectors import registry
from detectors.multiple_testing import bonferroni, holm
from detectors.severity import PSI_BANDS, SeverityBands


def test_available_lists_every_detector() -> None:
    assert registry.available() == [
        "adwin", "chi2", "ddm", "eddm", "hddm_a", "hddm_w", "ks", "kswin", "mean_shift",
        "page_hinkley", "psi", "psi_categorical", "three_sigma", "threshold", "wasserstein",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "pssi"}, "unknown detector type 'pssi'; expected one of: adwin, chi2, ddm, "),
        ({"bins": 3}, "detector config has no 'type'; expected one of: adwin, "),
        ({"type": "psi", "bins_count": 5}, "psi: unknown parameter 'bins_count'; expected one of: reference, bins, window"),
        ({"type": "psi", "bins": 1}, "psi: parameter 'bins' must be an int >= 2, got 1"),
        ({"type": "ddm", "drift_threshold": 1.0}, "ddm: parameter 'drift_threshold' must be >= warning_threshold"),
        ({"type": "page_hinkley", "mode": "sideways"}, "page_hinkley: parameter 'mode' must be one of up, down, both"),
        ({"type": "threshold"}, "threshold: parameter 'above' must be set when 'below' is not"),
        ({"type": "ks", "reference": [1.0]}, "ks: reference needs at least 2 values, got 1"),
        ({"type": "mean_shift", "reference": [2.0, 2.0]}, "mean_shift: reference has zero standard deviation"),
        ({"type": "psi", "reference": [1.0, float("nan")]}, "reference: psi: input must be finite, got nan at index 1"),
        ({"type": "chi2", "reference": ["a", 1.5]}, "reference: chi2: category must be str, bool, int or None, got 1.5"),
        ([("type", "psi")], "detector config must be a mapping, got list"),
    ],
)
def test_build_errors_name_the_problem(config: object, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        registry.build(config)  # type: ignore[arg-type]


def test_from_state_rejects_bad_versions_and_shapes() -> None:
    state = registry.build({"type": "ddm"}).to_state()
    with pytest.raises(ValueError, match="ddm: unsupported state version 99; expected 1"):
        registry.from_state({**state, "version": 99})
    with pytest.raises(ValueError, match="ddm: malformed state"):
        registry.from_state({k: v for k, v in state.items() if k != "state"})
    with pytest.raises(ValueError, match="detector state must be a mapping"):
        registry.from_state("ddm")  # type: ignore[arg-type]


def test_categorical_none_is_a_category_and_unseen_is_other() -> None:
    detector = registry.build(
        {"type": "psi_categorical", "reference": ["a", None, "b", True, 3] * 100, "window": 10, "step": 10}
    )
    assert detector.reference_summary["categories"] == ["3", "a", "b", "null", "true"]
    detector.update_many([None, "zzz", False, 3, "a", "b", None, "new", "x", "y"])
    assert detector.statistic > 0.2  # the "other" bucket grew from 0 to 50 %


def test_severity_bands() -> None:
    assert [PSI_BANDS.classify(v) for v in (0.0, 0.1, 0.15, 0.2, 0.25, float("nan"))] == [
        "none", "none", "moderate", "moderate", "significant", "none",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="severity: 'moderate' \\(0.3\\) must not be beyond 'significant'"):
        SeverityBands(moderate=0.3, significant=0.2)
    psi = registry.build({"type": "psi", "psi_above": 0.3, "warning_psi_above": 0.05, "reference": [1.0, 2.0, 3.0]})
    assert psi.severity == "none"


def test_multiple_testing() -> None:
    assert bonferroni(0.05, 10) == pytest.approx(0.005)
    decisions = holm({"a": 0.004, "b": 0.02, "c": 0.03, "d": None}, alpha=0.05)
    # m = 3: 0.004 <= 0.05/3, 0.02 <= 0.05/2, 0.03 <= 0.05/1
    assert decisions == {"a": True, "b": True, "c": True, "d": False}
    assert holm({"a": 0.02, "b": 0.03}, alpha=0.03) == {"a": False, "b": False}
    with pytest.raises(ValueError, match="bonferroni: parameter 'n_tests' must be an int >= 1, got 0"):
        bonferroni(0.05, 0)
