"""Shift of a numeric feature's window mean and standard deviation, in reference SDs."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from detectors._reference import numeric_reference
from detectors._windowed import NumericWindowedDetector
from detectors.base import NamedThresholds

__all__ = ["MeanShift", "reference_moments"]


def reference_moments(owner: str, reference: Any) -> dict[str, Any]:
    """Mean and (population) standard deviation of a numeric reference; the SD must be > 0."""
    values = numeric_reference(owner, reference)
    std = float(np.std(values))
    if std <= 0:
        raise ValueError(f"{owner}: reference has zero standard deviation; cannot scale shifts")
    return {"mean": float(np.mean(values)), "std": std}


class MeanShift(NamedThresholds, NumericWindowedDetector):
    """Mean and standard-deviation shift of the last ``window`` values, in reference SDs.

    Every ``step`` values: ``statistic = max(|mean_w - mean_r|, |std_w - std_r|) / std_r``
    where ``_w`` is the window and ``_r`` the reference. Drift above ``shift_above``, warning
    above ``warning_shift_above`` (direction ``"above"``). The reference summary is just its
    mean and standard deviation.

    **False alarms.** With no drift, the window mean has a standard error of
    ``1 / sqrt(window)`` reference SDs and the window SD about ``1 / sqrt(2 window)`` (normal
    data): 0.03 and 0.02 for a window of 1000, so the default 0.2 (six standard errors)
    essentially never false-alarms there. For windows under ~100 or heavy-tailed features,
    calibrate ``shift_above``.

    Parameters
    ----------
    reference
        Reference sample (or call ``fit`` later).
    window
        Number of recent values summarised.
    step
        Evaluate after every ``step``-th value of the stream.
    shift_above
        Drift when the shift (reference SDs) is above this.
    warning_shift_above
        Warning when the shift is above this (``None``: no warnings).

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.mean_shift import MeanShift
    >>> rng = np.random.default_rng(42)
    >>> detector = MeanShift(reference=rng.normal(10, 2, 2000), window=500, step=250)
    >>> detector.update_many(rng.normal(10, 2, 1000)).tolist()
    []
    >>> detector.update_many(rng.normal(10, 3, 1000)).tolist()  # wider, same mean
    [249, 499, 749, 999]
    >>> round(detector.statistic, 1)
    0.5
    """

    name: ClassVar[str] = "mean_shift"
    direction: ClassVar[str] = "above"  # type: ignore[assignment]
    _threshold_param: ClassVar[str] = "shift_above"
    _warning_param: ClassVar[str] = "warning_shift_above"
    _reference_floats: ClassVar[tuple[str, ...]] = ("mean", "std")

    def __init__(
        self,
        reference: Any = None,
        window: int = 1000,
        step: int = 100,
        shift_above: float = 0.2,
        warning_shift_above: float | None = 0.1,
    ) -> None:
        self.window = window
        self.step = step
        self.shift_above = shift_above
        self.warning_shift_above = warning_shift_above
        self._check_window()
        self._check_thresholds()
        self._start(reference)

    def _summarise(self, reference: Any) -> dict[str, Any]:
        return reference_moments(self.name, reference)

    def _test(self, window: np.ndarray) -> tuple[float, float | None]:
        reference = self._require_reference()
        mean_shift = abs(float(np.mean(window)) - reference["mean"])
        std_shift = abs(float(np.std(window)) - reference["std"])
        return max(mean_shift, std_shift) / reference["std"], None
