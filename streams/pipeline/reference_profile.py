"""A reference profile: a model's reference values supplied as a JSON file instead of its first N
predictions. The config loader reads it at start-up, to refuse a bad one, and a monitor when it is built."""

from __future__ import annotations

from typing import Any

from schemas import codec

from streams.exceptions import ConfigError


def load_reference_profile(path: str) -> dict[str, list[Any]]:
    """A user-supplied reference: ``{"features": {name: [values]}, "prediction": [...],
    "score": [...]}`` (JSON), used instead of a model's first N predictions."""
    try:
        with open(path, "rb") as handle:
            data = codec.loads(handle.read())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read reference profile {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("features", {}), dict):
        raise ConfigError(f"reference profile {path}: expected an object with a 'features' object")
    reference: dict[str, list[Any]] = {f"f:{name}": list(values) for name, values in data.get("features", {}).items()}
    for column in ("prediction", "score"):
        if column in data:
            reference[column] = list(data[column])
    return reference
