"""Which detectors watch which model: the optional per-model config file (TOML or YAML).

With no file at all every feature of every model is monitored with sensible defaults.
A file overrides any part of the defaults, for all models (``[defaults]``) or one
(``[models.<model_id>]``)::

    [defaults]
    reference_size = 2000

    [defaults.alerts]
    cooldown_s = 900

    [models.churn]
    ignore_features = ["customer_id"]
    feature_detectors.age = { type = "ks", window = 500, step = 100, p_value_below = 0.001 }

    [models.churn.reference]
    profile = "profiles/churn.json"   # a reference profile instead of the first N events

>>> cfg = MonitorConfig.from_mapping({"models": {"churn": {"reference_size": 50}}})
>>> cfg.for_model("churn").reference_size, cfg.for_model("other").reference_size
(50, 1000)
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.exceptions import ConfigError
from streams.pipeline.config_schema import check_model, check_overrides

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: The defaults every model starts from (documented in the README).
DEFAULTS: dict[str, Any] = {
    "reference_size": 1000,
    "strict_models": False,
    "features": None,  # None: every feature seen in the reference
    "ignore_features": [],
    "max_features": 200,
    "reference": {"profile": None},
    "data_drift": {
        "numeric": {"type": "psi", "bins": 10, "window": 1000, "step": 250, "psi_above": 0.1},
        "categorical": {
            "type": "psi_categorical", "window": 1000, "step": 250, "psi_above": 0.1,
        },
    },
    "feature_detectors": {},
    "prediction_drift": {
        "numeric": {"type": "psi", "bins": 10, "window": 1000, "step": 250, "psi_above": 0.1},
        "categorical": {
            "type": "psi_categorical", "window": 1000, "step": 250, "psi_above": 0.1,
        },
    },
    # per feature, over the last `window` predictions (streams/pipeline/quality.py); no checks: off
    "data_quality": {
        "checks": [],  # of: missing_rate, out_of_range, unseen_category, type_change
        "window": 1000,
        "max_missing_increase": 0.1,  # above the reference's missing rate
        "max_out_of_range": 0.05,  # share of numbers outside the reference's range
        "max_unseen_category": 0.05,  # share of categories the reference did not have
        "max_type_change": 0.01,  # share of values of a type the reference did not have
    },
    # CBPE: a binary classifier's performance estimated from its scores, before labels
    # (streams/pipeline/estimation.py); no metrics: off
    "estimated_performance": {
        "metrics": [],  # of: accuracy, precision, recall, f1, roc_auc
        "window": 1000,  # scored predictions per window (one estimate each)
        # drift when an estimate falls this much below the reference's estimate
        "max_drop": {"accuracy": 0.1, "precision": 0.1, "recall": 0.1, "f1": 0.1, "roc_auc": 0.05},
        "compare_after": 0.5,  # share of a window labelled before its estimate meets the realized value
        "max_error": 0.1,  # |estimate - realized| above this: the estimate is off (kind estimated_performance)
        "max_windows": 32,  # windows kept waiting for their labels
    },
    # p50/p95/p99 of the predictions' latency_ms over the last `window` that carry one
    # (streams/pipeline/latency.py); an SLO makes a percentile a check of kind `latency`
    "latency": {
        "percentiles": ["p50", "p95", "p99"],  # exported; empty: off
        "window": 1000,
        "slo_ms": {"p50": None, "p95": None, "p99": None},  # None: no SLO
    },
    # a detector on a metric's checkpoint series, e.g. detectors.f1 = {type = "three_sigma"}
    # (streams/pipeline/series.py); its reference is the series' first `reference_points` values
    "metric_series": {"reference_points": 20, "detectors": {}},
    "concept_drift": {
        "classification": [{"type": "adwin", "delta": 0.002}, {"type": "ddm", "warm_start": 500}],
        "regression": [{"type": "adwin", "delta": 0.002}],
    },
    "performance": {
        "window": 1000,
        # the metrics of each task that are checked; a task none of them is for gets its
        # default (accuracy, MAE); see streams/pipeline/performance.py
        "metrics": ["accuracy", "mae"],
        "positive_class": None,  # None: 1 when labels are 0/1 or booleans, else macro averages
        "max_accuracy_drop": 0.1,
        "max_mae_increase": 0.5,
        # higher-is-better metrics: drift when the value falls this much below its baseline
        "max_drop": {"precision": 0.1, "recall": 0.1, "f1": 0.1, "roc_auc": 0.05, "r2": 0.1},
        # lower-is-better metrics: drift when the value rises this share above its baseline
        "max_increase": {"log_loss": 0.5, "brier": 0.5, "mse": 0.5, "rmse": 0.5},
        # a concept-drift detection alerts only if the error rose at least this much
        "min_error_increase": 0.05,
    },
    "alerts": {
        "cooldown_s": 600.0,
        "resolve_after_s": 300.0,
        "group_window_s": 300.0,
    },
    "severity": {
        "concept_drift": "P2",
        "prediction_drift": "P2",
        "data_quality": "P3",
        "estimated_performance": "P2",
        "latency": "P2",
        "anomaly": "P3",
        "data_drift": {"moderate": "P3", "significant": "P3", "severe": "P2"},
        "data_drift_severe_psi": 0.5,
        "performance": [[0.25, "P0"], [0.1, "P1"], [0.0, "P2"]],
        "many_features": 3,
    },
}

_MODEL_KEYS = frozenset(DEFAULTS)


def _another_detector(current: Any, value: Any) -> bool:
    """Whether ``value`` names a detector type other than the one ``current`` holds."""
    return (isinstance(current, dict) and isinstance(value, Mapping) and "type" in current
            and "type" in value and current["type"] != value["type"])


def _merge(base: dict[str, Any], override: Mapping[str, Any], where: str, top: bool = True) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if top and key not in _MODEL_KEYS:
            raise ConfigError(
                f"{where}: unknown setting {key!r}; expected one of: {', '.join(sorted(_MODEL_KEYS))}"
            )
        current = merged.get(key)
        if _another_detector(current, value):
            # the default's parameters are not the new type's: the override replaces it
            merged[key] = copy.deepcopy(dict(value))
        elif isinstance(current, dict) and isinstance(value, Mapping) and key != "feature_detectors":
            merged[key] = _merge(current, value, f"{where}.{key}", top=False)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _check(values: dict[str, Any], where: str) -> None:
    """The whole resolved config of one model, and its reference profile, or ConfigError."""
    try:
        check_model(values, where)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    profile = values["reference"]["profile"]
    if profile:
        from streams.pipeline.monitor import load_reference_profile

        try:
            load_reference_profile(profile)
        except ConfigError as exc:
            raise ConfigError(f"{where}.reference.profile: {exc}") from None


@dataclass(frozen=True)
class ModelConfig:
    """The resolved monitoring config of one model."""

    values: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def monitors_feature(self, name: str) -> bool:
        selected = self.values["features"]
        return (selected is None or name in selected) and name not in self.values["ignore_features"]


@dataclass(frozen=True)
class MonitorConfig:
    """Defaults plus per-model overrides, from a file or a mapping."""

    defaults: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULTS))
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "config") -> MonitorConfig:
        unknown = set(data) - {"defaults", "models"}
        if unknown:
            raise ConfigError(
                f"{source}: unknown section(s) {sorted(unknown)}; expected 'defaults' and 'models'"
            )
        for section in ("defaults", "models"):
            if not isinstance(data.get(section, {}), Mapping):
                raise ConfigError(f"{source}: {section}: expected a table")
        defaults = _merge(DEFAULTS, data.get("defaults", {}), f"{source}: defaults")
        _check(defaults, f"{source}: defaults")
        models = {}
        for model_id, overrides in data.get("models", {}).items():
            where = f"{source}: models.{model_id}"
            if not isinstance(overrides, Mapping):
                raise ConfigError(f"{where}: expected a table of settings")
            try:
                check_overrides(overrides, where)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            models[str(model_id)] = _merge(defaults, overrides, where)
            _check(models[str(model_id)], where)
        return cls(defaults, models)

    @classmethod
    def load(cls, path: str | Path | None) -> MonitorConfig:
        """Read a ``.toml``, ``.yaml`` or ``.yml`` file; ``None`` gives the defaults."""
        if path is None:
            return cls()
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read monitoring config {path}: {exc.strerror}") from None
        try:
            if path.suffix == ".toml":
                data = tomllib.loads(text)
            elif path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                raise ConfigError(f"{path}: expected a .toml, .yaml or .yml file")
        except (tomllib.TOMLDecodeError, ValueError) as exc:
            raise ConfigError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        return cls.from_mapping(data, source=str(path))

    def for_model(self, model_id: str) -> ModelConfig:
        return ModelConfig(self.models.get(model_id, self.defaults))

    def knows(self, model_id: str) -> bool:
        """False for a model the config does not list when ``strict_models`` is on."""
        return model_id in self.models or not self.defaults["strict_models"]
