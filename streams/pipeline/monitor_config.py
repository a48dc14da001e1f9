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
from streams.pipeline.config_defaults import DEFAULTS
from streams.pipeline.config_schema import check_model, check_overrides
from streams.pipeline.reference_profile import load_reference_profile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

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
