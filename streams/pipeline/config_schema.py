"""What a monitoring config may hold: every key, value and detector checked at start-up.

A model's resolved config (defaults merged with its overrides) is checked here, whole,
before a worker consumes anything: a key the defaults do not have, a value of the wrong
type or range, a detector type or parameter its class refuses, a reference profile that
cannot be read. Otherwise a typo surfaced only when the first detector was built, after
the reference filled up, and crashed the worker on every restart.

The keys allowed are those of :data:`streams.pipeline.config_defaults.DEFAULTS` (a new default is a
new allowed key); the rules below add ranges and the detector slots.

>>> check_model({"reference_size": 0}, "defaults")
Traceback (most recent call last):
...
ValueError: defaults.reference_size: expected an int >= 2, got 0
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

from detectors import registry
from schemas.limits import MAX_ID_LENGTH, MAX_RANKED_ITEMS
from schemas.records import SEVERITIES

from streams.pipeline.config_defaults import DEFAULTS
from streams.pipeline.estimation import ESTIMATED
from streams.pipeline.latency import PERCENTILES, series_name
from streams.pipeline.performance import ALL_METRICS, RANKING, TASK_DEFAULT, is_metric, ranking_metric
from streams.pipeline.quality import CHECKS
from streams.pipeline.series import SERIES_DETECTORS


#: Keys the config once had, or that users expect, with why they are refused.
UNSUPPORTED = {
    "performance.min_labels": "performance.min_labels is not supported: the baseline is taken once "
                              "performance.window labels have arrived; set performance.window instead",
    "performance.metric": "performance.metric is not a key: list the metrics in performance.metrics, "
                          "e.g. [\"accuracy\", \"f1\"]",
}

#: The most segments a model may have besides "other": each is a monitor and a label value.
MAX_SEGMENTS = 100

#: Top-level keys that only [defaults] may set (they are read for all models at once).
DEFAULTS_ONLY = ("strict_models",)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int_at_least(minimum: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: _is_int(v) and v >= minimum), f"an int >= {minimum}"


def _number_at_least(minimum: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: _is_real(v) and v >= minimum), f"a number >= {minimum:g}"


_SEVERITY = ((lambda v: v in SEVERITIES), f"one of {', '.join(SEVERITIES)}")
_STRINGS = ((lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)), "a list of feature names")

#: Value rules by dotted path (below the model); other leaves must have their default's type.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "reference_size": _int_at_least(2),
    "strict_models": ((lambda v: isinstance(v, bool)), "true or false"),
    "features": ((lambda v: v is None or _STRINGS[0](v)), "a list of feature names (absent: all)"),
    "ignore_features": _STRINGS,
    "max_features": _int_at_least(1),
    "reference.profile": ((lambda v: v is None or (isinstance(v, str) and bool(v))), "the path of a JSON profile"),
    "segment_by": ((lambda v: v is None or (isinstance(v, str) and 0 < len(v) <= MAX_ID_LENGTH)),
                   "a feature name (absent: no segments)"),
    "segments.max": ((lambda v: _is_int(v) and 1 <= v <= MAX_SEGMENTS), f"an int in [1, {MAX_SEGMENTS}]"),
    "performance.window": _int_at_least(1),
    "performance.max_accuracy_drop": ((lambda v: _is_real(v) and 0 <= v <= 1), "a number in [0, 1]"),
    "performance.max_mae_increase": _number_at_least(0),
    "performance.metrics": (
        (lambda v: isinstance(v, list) and bool(v) and all(is_metric(x) for x in v) and len(set(v)) == len(v)),
        f"a non-empty list of distinct metrics from: {', '.join(ALL_METRICS)}, "
        f"{', '.join(f'{family}@K' for family in RANKING)} (ranking, K an int from 1 to {MAX_RANKED_ITEMS})",
    ),
    "data_quality.checks": (
        (lambda v: isinstance(v, list) and all(x in CHECKS for x in v) and len(set(v)) == len(v)),
        f"a list of distinct checks from: {', '.join(CHECKS)} (empty: off)",
    ),
    "data_quality.window": _int_at_least(1),
    "data_quality.max_missing_increase": ((lambda v: _is_real(v) and 0 <= v <= 1), "a number in [0, 1]"),
    "data_quality.max_out_of_range": ((lambda v: _is_real(v) and 0 <= v <= 1), "a number in [0, 1]"),
    "data_quality.max_unseen_category": ((lambda v: _is_real(v) and 0 <= v <= 1), "a number in [0, 1]"),
    "data_quality.max_type_change": ((lambda v: _is_real(v) and 0 <= v <= 1), "a number in [0, 1]"),
    "severity.data_quality": _SEVERITY,
    "estimated_performance.metrics": (
        (lambda v: isinstance(v, list) and all(x in ESTIMATED for x in v) and len(set(v)) == len(v)),
        f"a list of distinct metrics from: {', '.join(ESTIMATED)} (empty: off)",
    ),
    "estimated_performance.window": _int_at_least(2),
    "estimated_performance.compare_after": ((lambda v: _is_real(v) and 0 < v <= 1), "a number in (0, 1]"),
    "estimated_performance.max_error": _number_at_least(0),
    "estimated_performance.max_windows": _int_at_least(1),
    "severity.estimated_performance": _SEVERITY,
    "performance.positive_class": (
        (lambda v: v is None or (isinstance(v, str) and bool(v)) or isinstance(v, bool) or _is_int(v)),
        "a class label (a string, an int or a boolean)",
    ),
    "performance.min_error_increase": _number_at_least(0),
    "alerts.cooldown_s": _number_at_least(0),
    "alerts.resolve_after_s": _number_at_least(0),
    "alerts.group_window_s": _number_at_least(0),
    "severity.concept_drift": _SEVERITY,
    "severity.prediction_drift": _SEVERITY,
    "severity.data_drift.moderate": _SEVERITY,
    "severity.data_drift.significant": _SEVERITY,
    "severity.data_drift.severe": _SEVERITY,
    "severity.data_drift_severe_psi": ((lambda v: _is_real(v) and v > 0), "a number > 0"),
    "severity.performance": (
        (lambda v: isinstance(v, list) and all(
            isinstance(r, list) and len(r) == 2 and _is_real(r[0]) and r[1] in SEVERITIES for r in v)),
        "a list of [minimum drop, severity] pairs, e.g. [[0.25, \"P0\"], [0.0, \"P2\"]]",
    ),
    "severity.many_features": _int_at_least(1),
    "severity.latency": _SEVERITY,
    "severity.anomaly": _SEVERITY,
    "latency.percentiles": (
        (lambda v: isinstance(v, list) and all(x in PERCENTILES for x in v) and len(set(v)) == len(v)),
        f"a list of distinct percentiles from: {', '.join(PERCENTILES)} (empty: off)",
    ),
    "latency.window": _int_at_least(1),
    "metric_series.reference_points": _int_at_least(2),
}
for _name in PERCENTILES:
    RULES[f"latency.slo_ms.{_name}"] = ((lambda v: v is None or (_is_real(v) and v > 0)),
                                        "a number of milliseconds > 0 (absent: no SLO)")
#: The series a detector may watch: every performance metric and latency percentile.
SERIES = (*ALL_METRICS, *(f"{family}@K" for family in RANKING), *(series_name(p) for p in PERCENTILES))
for _name in ("precision", "recall", "f1", "roc_auc", "r2", *RANKING):
    RULES[f"performance.max_drop.{_name}"] = ((lambda v: _is_real(v) and v >= 0), "a number >= 0")
for _name in ESTIMATED:
    RULES[f"estimated_performance.max_drop.{_name}"] = ((lambda v: _is_real(v) and 0 <= v <= 1), "a number in [0, 1]")
for _name in ("log_loss", "brier", "mse", "rmse"):
    RULES[f"performance.max_increase.{_name}"] = _number_at_least(0)

#: Detector kinds fed a numeric or a categorical column (given the reference sample).
NUMERIC = ("numeric", "metric")
CATEGORICAL = ("categorical",)
#: Where detectors go: path -> the kinds of detector a slot takes.
REFERENCE_SLOTS = {
    "data_drift.numeric": NUMERIC, "data_drift.categorical": CATEGORICAL,
    "prediction_drift.numeric": NUMERIC, "prediction_drift.categorical": CATEGORICAL,
}
CONCEPT_SLOTS = ("concept_drift.classification", "concept_drift.regression", "concept_drift.ranking")
#: The input domains of the error-stream detectors each task's errors fit: 0/1 errors fit
#: any; a ranking's 1 - score lies in [0, 1]; an absolute error is any real >= 0.
ERROR_DOMAINS = {"classification": ("binary", "unit_interval", "real"), "ranking": ("unit_interval", "real"),
                 "regression": ("real",)}
#: Reference slots that may hold a list of detectors, each with its own drift events.
LIST_SLOTS = ("data_drift.numeric", "data_drift.categorical")


def _types_like(default: Any, value: Any) -> tuple[bool, str]:
    if isinstance(default, bool):
        return isinstance(value, bool), "true or false"
    if _is_int(default):
        return _is_int(value), "an int"
    if isinstance(default, float):
        return _is_real(value), "a number"
    if isinstance(default, str):
        return isinstance(value, str), "a string"
    if isinstance(default, list):
        return isinstance(value, list), "a list"
    return True, ""


def _params(cls: type[Any]) -> list[str]:
    return list(inspect.signature(cls.__init__).parameters)[1:]


def check_detector(spec: Any, where: str, kinds: tuple[str, ...], with_reference: bool) -> None:
    """Build the detector ``spec`` describes (without data) so its class checks every
    parameter; ``kinds``: the detector kinds the slot takes."""
    choices = [name for name, cls in registry.DETECTORS.items()
               if cls.kind in kinds and ("reference" in _params(cls)) == with_reference]
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: expected a detector table with a 'type' (one of: {', '.join(choices)})")
    kind = spec.get("type")
    if kind not in choices:
        raise ValueError(f"{where}.type: unknown or unsuitable detector {kind!r}; expected one of: {', '.join(choices)}")
    allowed = [p for p in _params(registry.DETECTORS[kind]) if p != "reference"]
    for key in spec:
        if key != "type" and key not in allowed:
            raise ValueError(f"{where}.{key}: unknown parameter of {kind}; expected one of: {', '.join(allowed)}")
    try:
        registry.build(spec)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def check_detectors(spec: Any, where: str, kinds: tuple[str, ...]) -> None:
    """A reference slot that takes one detector or a non-empty list of them, of distinct
    types (a detector's events are told apart by its type)."""
    if not isinstance(spec, list):
        check_detector(spec, where, kinds, True)
        return
    if not spec:
        raise ValueError(f"{where}: expected a detector or a non-empty list of detectors")
    seen: set[str] = set()
    for i, item in enumerate(spec):
        check_detector(item, f"{where}[{i}]", kinds, True)
        if item["type"] in seen:
            raise ValueError(f"{where}[{i}]: a second {item['type']!r} detector; each type may appear once")
        seen.add(item["type"])


def _check_feature_detectors(value: Any, where: str) -> None:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a table of feature name -> detector")
    for feature, spec in value.items():
        at = f"{where}.{feature}"
        if isinstance(spec, Mapping) and "type" not in spec:
            # one detector per kind of value: a feature's values decide which one applies
            for key in spec:
                if key not in ("numeric", "categorical"):
                    raise ValueError(f"{at}.{key}: unknown key; expected a detector ('type' = ...) "
                                     "or both 'numeric' and 'categorical'")
            for key in ("numeric", "categorical"):
                if key not in spec:
                    raise ValueError(f"{at}: '{key}' is missing; give a detector ('type' = ...) "
                                     "or both 'numeric' and 'categorical'")
                check_detectors(spec[key], f"{at}.{key}", REFERENCE_SLOTS[f"data_drift.{key}"])
        else:
            check_detectors(spec, at, NUMERIC + CATEGORICAL)


def _check_concept(value: Any, where: str) -> None:
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected a list of detectors, e.g. [{{type = \"adwin\"}}]")
    seen: set[str] = set()
    domains = ERROR_DOMAINS[where.rsplit(".", 1)[-1]]
    for i, spec in enumerate(value):
        check_detector(spec, f"{where}[{i}]", ("error_stream",), False)
        domain = registry.DETECTORS[spec["type"]].domain
        if domain not in domains:  # it would refuse the first error it is given, at run time
            fitting = [name for name, cls in registry.DETECTORS.items() if cls.kind == "error_stream" and cls.domain in domains]
            takes = "0/1 errors" if domain == "binary" else "errors in [0, 1]"
            raise ValueError(f"{where}[{i}].type: {spec['type']} takes only {takes}, not this task's; "
                             f"expected one of: {', '.join(fitting)}")
        if spec["type"] in seen:  # each is keyed by its type: a second one would replace the first
            raise ValueError(f"{where}[{i}]: a second {spec['type']!r} detector; each type may appear once")
        seen.add(spec["type"])


def _check_cutoffs(value: Any, where: str) -> None:
    """A ranking metric with a bad cutoff is named with what K may be."""
    for name in value if isinstance(value, list) else []:
        family, _, k = name.partition("@") if isinstance(name, str) else ("", "", "")
        if family in RANKING and not is_metric(name):  # precision, recall: classification's too
            raise ValueError(f"{where}: {name!r}: K must be an int from 1 to {MAX_RANKED_ITEMS}, got {k!r}")


def _check_series_detectors(value: Any, where: str) -> None:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a table of metric name -> detector, e.g. f1 = {{type = \"three_sigma\"}}")
    for name, spec in value.items():
        if name not in SERIES and not is_metric(name):
            raise ValueError(f"{where}.{name}: unknown metric series; expected one of: {', '.join(SERIES)}")
        if not isinstance(spec, Mapping) or spec.get("type") not in SERIES_DETECTORS:
            kind = spec.get("type") if isinstance(spec, Mapping) else spec
            raise ValueError(f"{where}.{name}.type: unknown or unsuitable detector {kind!r} for a metric series; "
                             f"expected one of: {', '.join(SERIES_DETECTORS)}")
        check_detector(spec, f"{where}.{name}", (registry.DETECTORS[spec["type"]].kind,),
                       "reference" in _params(registry.DETECTORS[spec["type"]]))


def _check_cross(values: Mapping[str, Any], where: str) -> None:
    """Keys that name another key's values: an SLO for a percentile that is not computed,
    a series of a metric that is not."""
    latency = values.get("latency", {})
    for name, slo in latency.get("slo_ms", {}).items():
        if slo is not None and name not in latency.get("percentiles", []):
            raise ValueError(f"{where}.latency.slo_ms.{name}: {name} is not in latency.percentiles")
    computed = set(values.get("performance", {}).get("metrics", [])) | set(TASK_DEFAULT.values())
    computed |= {series_name(p) for p in latency.get("percentiles", [])}
    for name in values.get("metric_series", {}).get("detectors", {}):
        if name not in computed:
            raise ValueError(f"{where}.metric_series.detectors.{name}: {name} is not computed; "
                             "list it in performance.metrics (or latency.percentiles)")


def _walk(value: Any, default: Any, path: str, where: str) -> None:
    at = f"{where}.{path}" if path else where
    if path == "performance.metrics":
        _check_cutoffs(value, at)  # then the rule below: a list of known metrics
    if path == "metric_series.detectors":
        _check_series_detectors(value, at)
        return
    if path in LIST_SLOTS:
        check_detectors(value, at, REFERENCE_SLOTS[path])
        return
    if path in REFERENCE_SLOTS:
        check_detector(value, at, REFERENCE_SLOTS[path], True)
        return
    if path in CONCEPT_SLOTS:
        _check_concept(value, at)
        return
    if path == "feature_detectors":
        _check_feature_detectors(value, at)
        return
    if isinstance(default, Mapping) and path not in RULES:
        if not isinstance(value, Mapping):
            raise ValueError(f"{at}: expected a table with keys: {', '.join(default)}")
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if sub in UNSUPPORTED:
                raise ValueError(f"{where}: {UNSUPPORTED[sub]}")
            if key not in default:
                raise ValueError(f"{where}.{sub}: unknown key; expected one of: {', '.join(default)}")
            _walk(item, default[key], sub, where)
        return
    if path in RULES:
        rule, expected = RULES[path]
        ok = rule(value)
    else:
        ok, expected = _types_like(default, value)
    if not ok:
        raise ValueError(f"{at}: expected {expected}, got {value!r}")


def check_model(values: Mapping[str, Any], where: str) -> None:
    """Check one model's resolved config; ``ValueError`` names the first bad key (dotted,
    after ``where``) and what it may be."""
    _walk(values, DEFAULTS, "", where)
    _check_cross(values, where)


def check_overrides(overrides: Mapping[str, Any], where: str) -> None:
    """Keys only ``[defaults]`` may set must not appear in a model's section."""
    for key in DEFAULTS_ONLY:
        if key in overrides:
            raise ValueError(f"{where}.{key}: applies to all models; set it in [defaults]")


__all__ = ["RULES", "SEVERITIES", "UNSUPPORTED", "check_detector", "check_detectors", "check_model", "check_overrides"]
