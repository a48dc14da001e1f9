"""Build detectors by name from plain config dicts, and restore them from state.

>>> from detectors import registry
>>> detector = registry.build({"type": "psi", "bins": 5, "reference": [0.1, 0.4, 0.2, 0.9, 0.5]})
>>> type(detector).__name__, detector.bins
('PSI', 5)
>>> registry.build({"type": "pssi"})
Traceback (most recent call last):
...
ValueError: unknown detector type 'pssi'; expected one of: adwin, chi2, ddm, eddm, hddm_a, hddm_w, ks, kswin, mean_shift, page_hinkley, psi, psi_categorical, three_sigma, threshold, wasserstein
>>> registry.build({"type": "psi", "bins_count": 5})
Traceback (most recent call last):
...
ValueError: psi: unknown parameter 'bins_count'; expected one of: reference, bins, window, step, psi_above, warning_psi_above, epsilon
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from detectors.adwin import ADWIN
from detectors.base import Detector
from detectors.chi2 import ChiSquared
from detectors.ddm import DDM
from detectors.eddm import EDDM
from detectors.exceptions import StateError
from detectors.hddm_a import HDDM_A
from detectors.hddm_w import HDDM_W
from detectors.ks import KolmogorovSmirnov
from detectors.kswin import KSWIN
from detectors.mean_shift import MeanShift
from detectors.metrics import METRICS, RollingMetric
from detectors.page_hinkley import PageHinkley
from detectors.psi import PSI
from detectors.psi_categorical import CategoricalPSI
from detectors.three_sigma import ThreeSigma
from detectors.threshold import ThresholdDetector
from detectors.wasserstein import Wasserstein

__all__ = [
    "DETECTORS",
    "available",
    "available_metrics",
    "build",
    "build_metric",
    "from_state",
    "metric_from_state",
]

#: The allow-list: registry type -> class. Only these types are built or restored.
DETECTORS: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in sorted(
        (
            ADWIN,
            ChiSquared,
            DDM,
            EDDM,
            HDDM_A,
            HDDM_W,
            KolmogorovSmirnov,
            KSWIN,
            MeanShift,
            PageHinkley,
            PSI,
            CategoricalPSI,
            ThreeSigma,
            ThresholdDetector,
            Wasserstein,
        ),
        key=lambda cls: cls.name,
    )
}


def available() -> list[str]:
    """The registry types, in registry order."""
    return list(DETECTORS)


def available_metrics() -> list[str]:
    """The rolling metric types."""
    return list(METRICS)


def _lookup(table: Mapping[str, type[Any]], kind: object, what: str) -> type[Any]:
    if not isinstance(kind, str) or kind not in table:
        raise ValueError(f"unknown {what} type {kind!r}; expected one of: {', '.join(table)}")
    return table[kind]


def _build(table: Mapping[str, type[Any]], config: Mapping[str, Any], what: str) -> Any:
    if not isinstance(config, Mapping):
        raise ValueError(f"{what} config must be a mapping, got {type(config).__name__}")
    if "type" not in config:
        raise ValueError(f"{what} config has no 'type'; expected one of: {', '.join(table)}")
    params = dict(config)
    cls = _lookup(table, params.pop("type"), what)
    allowed = list(inspect.signature(cls.__init__).parameters)[1:]
    for key in params:
        if key not in allowed:
            raise ValueError(
                f"{cls.name}: unknown parameter {key!r}; expected one of: {', '.join(allowed)}"
            )
    return cls(**params)


def _restore(table: Mapping[str, type[Any]], state: Mapping[str, Any], what: str) -> Any:
    if not isinstance(state, Mapping):
        raise StateError(f"{what} state must be a mapping, got {type(state).__name__}")
    try:
        cls = _lookup(table, state.get("type"), what)
    except ValueError as exc:
        raise StateError(str(exc)) from None
    return cls.from_state(state)


def build(config: Mapping[str, Any]) -> Detector:
    """Build a detector from ``{"type": name, **constructor_params}``."""
    return _build(DETECTORS, config, "detector")


def from_state(state: Mapping[str, Any]) -> Detector:
    """Restore a detector from ``to_state()`` output, dispatching on ``state["type"]``."""
    return _restore(DETECTORS, state, "detector")


def build_metric(config: Mapping[str, Any]) -> RollingMetric:
    """Build a rolling metric from ``{"type": name, **constructor_params}``.

    >>> build_metric({"type": "accuracy", "window": 500}).window_size
    500
    """
    return _build(METRICS, config, "metric")


def metric_from_state(state: Mapping[str, Any]) -> RollingMetric:
    """Restore a rolling metric from ``to_state()`` output."""
    return _restore(METRICS, state, "metric")
