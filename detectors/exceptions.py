"""Errors raised by :mod:`detectors`.

Every error is a :class:`ValueError` so callers that only know the documented contract
("bad input raises ValueError") keep working; the subclasses let a pipeline route input
errors (bad event: send it to the dead-letter topic) apart from state errors (bad snapshot).
"""

from __future__ import annotations

__all__ = ["InputError", "NoReferenceError", "StateError"]


class InputError(ValueError):
    """A value fed to ``update``/``update_many`` is outside the detector's domain."""


class NoReferenceError(ValueError):
    """A reference-based detector was updated before ``fit(reference)``."""


class StateError(ValueError):
    """A state dict passed to ``from_state`` is not one this class wrote."""
