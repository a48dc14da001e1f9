"""Thin wrappers around river's error-stream detectors (river pinned to 0.26.x).

The river object does the work, so detections are river's own. It is made when the detector
first needs it, not in ``_reset``: building a detector to check its parameters (the worker's
monitoring config, before it joins its group) then imports neither river nor the scipy.stats
its ``drift`` package imports (:mod:`detectors.deferred`). Its state is written out
explicitly, attribute by attribute (floats as JSON numbers, river's Rust objects as base64 of the
bytes their ``__getstate__`` returns); ``from_state`` rebuilds the river object from this
module's allow-listed class and the stored parameters, then restores those attributes. Nothing is
ever unpickled.
"""

from __future__ import annotations

import abc
import base64
import functools
import importlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from detectors._river_private import set_flags
from detectors.base import Detector, Domain, check_value, check_values

__all__ = ["RiverDetector", "dump_bytes", "load_bytes", "river_class"]


@functools.cache
def river_class(path: str) -> type:
    """River's class at ``path`` below the ``river`` package (``"drift.binary.DDM"``)."""
    module, _, name = f"river.{path}".rpartition(".")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def dump_bytes(data: bytes) -> str:
    """Encode bytes (a Rust object's ``__getstate__``) for JSON."""
    return base64.b64encode(data).decode("ascii")


def load_bytes(text: str) -> bytes:
    """Invert :func:`dump_bytes`."""
    return base64.b64decode(text.encode("ascii"), validate=True)


class RiverDetector(Detector):
    """A detector whose work is done by a river drift detector.

    Subclasses name the river class (its path below ``river``), the input domain, how their
    parameters map to river's (``_river_params``) and dump/load the river object's attributes.
    """

    kind: ClassVar[str] = "error_stream"  # type: ignore[assignment]
    domain: ClassVar[Domain] = "real"
    _river_class: ClassVar[str]
    _river: Any  # made on first use (__getattr__), after every reset

    def _river_params(self) -> dict[str, Any]:
        return self.params()

    def _reset(self) -> None:
        super()._reset()
        self.__dict__.pop("_river", None)

    def __getattr__(self, name: str) -> Any:
        # only when the instance has no such attribute: once made, the river object is a
        # plain instance attribute, and the hot loops read it at full speed
        if name != "_river":
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        self._river = river_class(self._river_class)(**self._river_params())
        return self._river

    def _check_one(self, x: Any) -> float:
        return check_value(self.name, x, self.domain)

    def _check_many(self, xs: Any) -> list[float]:
        return check_values(self.name, xs, self.domain).tolist()

    def _update_one(self, value: float) -> None:
        river = self._river
        river.update(value)
        self._n_seen += 1
        self._drift = river.drift_detected
        self._warning = getattr(river, "warning_detected", False)

    def _feed(self, values: Sequence[float]) -> int:
        """Feed river directly (the hot loop of the concept-drift monitors: one river
        ``update`` per value and nothing else). The flags are read once, at the end: river
        keeps them, and nothing reads them in between."""
        river = self._river
        update = river.update
        used = 0
        for value in values:
            update(value)
            used += 1
            if river.drift_detected:
                break
        self._n_seen += used
        self._drift = river.drift_detected
        self._warning = getattr(river, "warning_detected", False)
        return used

    def _load(self, state: Mapping[str, Any]) -> None:
        self._load_river(state)
        set_flags(self._river, self._drift, self._warning)

    @abc.abstractmethod
    def _load_river(self, state: Mapping[str, Any]) -> None:
        """Restore the river object's attributes from ``state``."""
