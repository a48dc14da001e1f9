"""The contract every drift detector in :mod:`detectors` follows.

A detector is fed one value at a time (``update``) or a batch (``update_many``, which gives the
same result as the per-event loop, whatever the batch cuts). After each update it exposes
``drift_detected``/``warning_detected`` for *that* update (river semantics: the flags describe the
last update, they do not latch), the current ``statistic`` and the ``threshold`` it is compared
with, in the named ``direction``. State is explicit: ``to_state()`` returns plain JSON data and
``from_state()`` rebuilds an equal detector from it (no pickle anywhere).

Like river, ``__init__`` stores its parameters untouched, validates them (a bad one raises
``ValueError`` naming the parameter and its allowed range) and calls ``_reset()``, which creates
all mutable state.
"""

from __future__ import annotations

import abc
import inspect
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np

from detectors.exceptions import InputError, StateError

__all__ = [
    "Detector",
    "Direction",
    "Domain",
    "Kind",
    "STATE_VERSION",
    "NamedThresholds",
    "Parameterised",
    "check_state_header",
    "check_value",
    "check_values",
    "crosses",
    "require",
    "require_int",
    "require_positive",
    "require_probability",
]

Direction = Literal["above", "below"]
Kind = Literal["error_stream", "numeric", "categorical", "metric"]
Domain = Literal["real", "binary", "unit_interval"]

#: Bumped whenever the layout of ``to_state()`` changes incompatibly.
STATE_VERSION = 1

_DOMAIN_TEXT: dict[str, str] = {
    "binary": "0 or 1 (1 = error)",
    "unit_interval": "in [0, 1]",
}

D = TypeVar("D", bound="Detector")


def require(owner: str, param: str, value: object, ok: bool, allowed: str) -> None:
    """Raise ``ValueError`` naming ``param`` and its allowed range unless ``ok``.

    >>> require("psi", "bins", 1, False, "an int >= 2")
    Traceback (most recent call last):
    ...
    ValueError: psi: parameter 'bins' must be an int >= 2, got 1
    """
    if not ok:
        raise ValueError(f"{owner}: parameter '{param}' must be {allowed}, got {value!r}")


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def require_int(owner: str, param: str, value: object, minimum: int) -> None:
    """Require an int (not a bool) of at least ``minimum``."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    require(owner, param, value, ok, f"an int >= {minimum}")


def require_probability(owner: str, param: str, value: object) -> None:
    """Require a float strictly between 0 and 1."""
    require(owner, param, value, _is_real(value) and 0 < value < 1, "a float in (0, 1)")  # type: ignore[operator]


def require_positive(owner: str, param: str, value: object, *, allow_zero: bool = False) -> None:
    """Require a finite float > 0 (>= 0 with ``allow_zero``)."""
    ok = _is_real(value) and (value >= 0 if allow_zero else value > 0)  # type: ignore[operator]
    require(owner, param, value, ok, "a finite float >= 0" if allow_zero else "a finite float > 0")


def crosses(value: float, threshold: float | None, direction: Direction) -> bool:
    """Whether ``value`` is strictly beyond ``threshold`` in ``direction`` (never for nan/None).

    >>> crosses(0.3, 0.2, "above"), crosses(0.3, 0.2, "below"), crosses(float("nan"), 0.2, "above")
    (True, False, False)
    """
    if threshold is None:
        return False
    return value > threshold if direction == "above" else value < threshold


def _out_of_domain(value: float, domain: Domain) -> bool:
    if domain == "binary":
        return value != 0.0 and value != 1.0
    if domain == "unit_interval":
        return not 0.0 <= value <= 1.0
    return False


def check_value(owner: str, x: object, domain: Domain = "real") -> float:
    """Validate one input value and return it as a float.

    >>> check_value("ddm", 1)
    1.0
    >>> check_value("ddm", 5, "binary")
    Traceback (most recent call last):
    ...
    detectors.exceptions.InputError: ddm: input must be 0 or 1 (1 = error), got 5.0
    """
    if not isinstance(x, (numbers.Real, np.bool_)):
        raise InputError(f"{owner}: input must be a real number, got {x!r} ({type(x).__name__})")
    value = float(x)
    if not math.isfinite(value):
        raise InputError(f"{owner}: input must be finite, got {value}")
    if _out_of_domain(value, domain):
        raise InputError(f"{owner}: input must be {_DOMAIN_TEXT[domain]}, got {value}")
    return value


def check_values(owner: str, xs: np.ndarray | Sequence[Any], domain: Domain = "real") -> np.ndarray:
    """Validate a batch of input values and return them as a 1-d float64 array.

    >>> check_values("adwin", [0.5, float("inf")])
    Traceback (most recent call last):
    ...
    detectors.exceptions.InputError: adwin: input must be finite, got inf at index 1
    """
    try:
        arr = np.asarray(xs, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{owner}: input must be real numbers ({exc})") from None
    if arr.ndim != 1:
        raise InputError(f"{owner}: input must be one-dimensional, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{owner}: input must be finite, got {float(arr[i])} at index {i}")
    if domain == "binary":
        bad = (arr != 0.0) & (arr != 1.0)
    elif domain == "unit_interval":
        bad = (arr < 0.0) | (arr > 1.0)
    if domain != "real" and bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            f"{owner}: input must be {_DOMAIN_TEXT[domain]}, got {float(arr[i])} at index {i}"
        )
    return arr


def check_state_header(name: str, state: object) -> None:
    """Raise ``StateError`` unless ``state`` is a mapping written by type ``name``."""
    kind = state.get("type") if isinstance(state, Mapping) else None
    if kind != name:
        raise StateError(f"{name}: cannot load state of type {kind!r}; expected {name!r}")
    version = state.get("version")  # type: ignore[union-attr]
    if version != STATE_VERSION:
        raise StateError(f"{name}: unsupported state version {version!r}; expected {STATE_VERSION}")


class Parameterised:
    """``params()`` and ``repr`` from the constructor signature (river style), plus the
    ``reset()``/``n_seen`` pair every stateful object here shares."""

    _n_seen: int

    @abc.abstractmethod
    def _reset(self) -> None:
        """Create all mutable state."""

    def reset(self) -> None:
        """Forget everything seen since construction (a fitted reference is kept)."""
        self._reset()

    @property
    def n_seen(self) -> int:
        """Number of values seen since construction or the last ``reset()``."""
        return self._n_seen

    @classmethod
    def _param_names(cls) -> tuple[str, ...]:
        """The constructor's parameter names, ``reference`` excluded; read once per class
        (``inspect.signature`` costs tens of microseconds, and every state dump asks)."""
        names = cls.__dict__.get("_param_names_cache")
        if names is None:
            names = tuple(n for n in list(inspect.signature(cls.__init__).parameters)[1:] if n != "reference")
            cls._param_names_cache = names
        return names

    def params(self) -> dict[str, Any]:
        """The constructor parameters (the reference excluded), as given."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class NamedThresholds:
    """``threshold``/``warning_threshold`` read from direction-named parameters.

    A detector names its drift parameter (``_threshold_param``, e.g. ``"psi_above"``) and
    its warning parameter (``_warning_param``, e.g. ``"warning_psi_above"``, ``None`` for no
    warnings); ``_check_thresholds`` validates both: for ``"below"`` detectors (p-values) the
    drift level is in (0, 1) and the warning level in [drift level, 1); for ``"above"``
    detectors the drift level is > 0 and the warning level in (0, drift level].
    """

    name: ClassVar[str]
    direction: ClassVar[Direction]
    _threshold_param: ClassVar[str]
    _warning_param: ClassVar[str]

    @property
    def threshold(self) -> float:
        """The drift level (the ``*_above``/``*_below`` parameter)."""
        return float(getattr(self, self._threshold_param))

    @property
    def warning_threshold(self) -> float | None:
        """The warning level (``None``: no warnings)."""
        return getattr(self, self._warning_param)

    def _check_thresholds(self) -> None:
        level, param = getattr(self, self._threshold_param), self._threshold_param
        warning = getattr(self, self._warning_param)
        if self.direction == "below":
            require_probability(self.name, param, level)
            ok = warning is None or (_is_real(warning) and level <= warning < 1)
            allowed = f"None or in [{param}, 1)"
        else:
            require_positive(self.name, param, level)
            ok = warning is None or (_is_real(warning) and 0 < warning <= level)
            allowed = f"None or in (0, {param}]"
        require(self.name, self._warning_param, warning, ok, allowed)


class Detector(Parameterised, abc.ABC):
    """Base class of every detector (see the module docstring for the contract).

    Subclasses set the class attributes ``name`` (the registry type), ``kind`` and
    ``direction``, and implement ``_check_one``/``_check_many`` (validation),
    ``_update_one`` (one validated value), ``statistic``, ``threshold`` and ``_dump``/``_load``
    (their own part of the state).
    """

    name: ClassVar[str]
    kind: ClassVar[Kind]
    direction: ClassVar[Direction]

    _n_seen: int
    _drift: bool
    _warning: bool

    def _reset(self) -> None:
        self._n_seen = 0
        self._drift = False
        self._warning = False

    # -- flags and statistic -------------------------------------------------------------
    @property
    def drift_detected(self) -> bool:
        """Whether the last update signalled drift."""
        return self._drift

    @property
    def warning_detected(self) -> bool:
        """Whether the last update signalled a warning (never together with drift)."""
        return self._warning

    @property
    @abc.abstractmethod
    def statistic(self) -> float:
        """Current test statistic (``nan`` until defined)."""

    @property
    @abc.abstractmethod
    def threshold(self) -> float:
        """Value the statistic is compared with, in ``direction`` (``nan`` if not defined)."""

    @property
    def p_value(self) -> float | None:
        """p-value of the last test, for detectors that compute one."""
        return None

    @property
    def drift_means(self) -> tuple[float, float] | None:
        """The stream's mean before and after the change the last update signalled, as the
        detector itself estimated them (``None``: no drift, or it does not estimate them).
        What an alert policy can judge a detection by at the moment it is made."""
        return None

    @property
    def window_size(self) -> int | None:
        """Number of recent values the statistic is computed on (``None``: not windowed)."""
        return None

    # -- updates ---------------------------------------------------------------------------
    @abc.abstractmethod
    def _check_one(self, x: Any) -> Any:
        """Validate one input value; raise ``InputError`` naming the detector and the value."""

    @abc.abstractmethod
    def _check_many(self, xs: Any) -> Sequence[Any]:
        """Validate a batch; raise ``InputError`` naming the detector, the value and its index."""

    @abc.abstractmethod
    def _update_one(self, value: Any) -> None:
        """Update with one validated value, setting ``_drift``/``_warning``."""

    def update(self, x: Any) -> None:
        """Update the detector with one value."""
        self._update_one(self._check_one(x))

    def update_many(self, xs: np.ndarray | Sequence[Any]) -> np.ndarray:
        """Update with a batch; same result as calling ``update`` on each value in turn.

        The whole batch is validated before any update, so a bad value leaves the detector
        untouched. Returns the indices (within the batch) after whose update
        ``drift_detected`` was True.
        """
        return self._update_batch(self._check_many(xs))

    def update_until_drift(self, xs: np.ndarray | Sequence[Any]) -> int:
        """Update with values in order until one signals drift; return how many were used
        (all of them if none did). Validated as ``update_many`` validates.

        The state right after each detection, at batch speed: call again with the rest.

        >>> from detectors.ddm import DDM
        >>> detector, stream = DDM(), [0.0] * 500 + [1.0] * 100
        >>> used = detector.update_until_drift(stream)
        >>> used < len(stream), detector.drift_detected
        (True, True)
        """
        return self._feed(self._check_many(xs))

    def _feed(self, values: Sequence[Any]) -> int:
        """Update with validated values in order until one signals drift; how many were used.
        One ``_update_one`` per value; a subclass may feed its values more directly."""
        update = self._update_one
        for i, value in enumerate(values):
            update(value)
            if self._drift:
                return i + 1
        return len(values)

    def _update_batch(self, values: Sequence[Any]) -> np.ndarray:
        """Update with a validated batch; return the indices after which drift was signalled."""
        hits = []
        used = 0
        while used < len(values):
            used += self._feed(values[used:])
            if self._drift:
                hits.append(used - 1)
        return np.asarray(hits, dtype=np.int64)

    # -- parameters and state --------------------------------------------------------------
    @abc.abstractmethod
    def _dump(self) -> dict[str, Any]:
        """This class's own part of the state, as plain JSON data."""

    @abc.abstractmethod
    def _load(self, state: Mapping[str, Any]) -> None:
        """Restore what ``_dump`` wrote, onto a freshly constructed instance."""

    def to_state(self) -> dict[str, Any]:
        """Everything needed to resume this detector, as plain JSON data."""
        return {
            "type": self.name,
            "version": STATE_VERSION,
            "params": self.params(),
            "n_seen": self._n_seen,
            "drift": self._drift,
            "warning": self._warning,
            "state": self._dump(),
        }

    @classmethod
    def from_state(cls: type[D], state: Mapping[str, Any]) -> D:
        """Rebuild a detector from ``to_state()`` output; only this class's type is accepted."""
        check_state_header(cls.name, state)
        try:
            detector = cls(**state["params"])
            detector._n_seen = int(state["n_seen"])
            detector._drift = bool(state["drift"])
            detector._warning = bool(state["warning"])
            detector._load(state["state"])
        except (KeyError, TypeError) as exc:
            raise StateError(f"{cls.name}: malformed state ({exc!r})") from None
        return detector
