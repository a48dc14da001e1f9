"""Population stability index of a categorical feature over a sliding window."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from detectors._categorical import CategoricalWindowedDetector
from detectors.base import NamedThresholds, require_positive
from detectors.psi import population_stability_index, psi_severity
from detectors.severity import Severity

__all__ = ["CategoricalPSI"]


class CategoricalPSI(NamedThresholds, CategoricalWindowedDetector):
    """Windowed population stability index for a categorical feature.

    One bucket per reference category (the ``max_categories`` most frequent) plus an
    ``"other"`` bucket for the rest and for categories never seen in the reference; an
    unseen category never raises, it shows up as growth of ``"other"``. ``None`` is the
    category ``"null"``. Every ``step`` values the PSI of the last ``window`` values against
    the reference proportions is computed, proportions floored at ``epsilon``.

    ``statistic`` is the PSI; drift above ``psi_above``, warning above
    ``warning_psi_above``; ``severity`` gives the band.

    **False alarms.** As for numeric PSI, the null PSI is about ``(k - 1) / window`` for
    ``k`` buckets in use: negligible against 0.1-0.2 for windows of several hundred values
    and a few dozen categories. Rare categories (reference proportion below ``epsilon``)
    inflate it: group them with ``max_categories``.

    Parameters
    ----------
    reference
        Reference sample of categories (or call ``fit`` later).
    window
        Number of recent values compared with the reference.
    step
        Evaluate after every ``step``-th value of the stream.
    psi_above
        Drift when PSI is above this.
    warning_psi_above
        Warning when PSI is above this (``None``: no warnings).
    epsilon
        Floor of the proportions.
    max_categories
        Reference categories kept; the rest go to ``"other"``.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.psi_categorical import CategoricalPSI
    >>> rng = np.random.default_rng(42)
    >>> reference = rng.choice(["web", "ios", "android"], 3000, p=[0.5, 0.3, 0.2])
    >>> detector = CategoricalPSI(reference=reference, window=500, step=250)
    >>> detector.update_many(rng.choice(["web", "ios", "android"], 1000, p=[0.5, 0.3, 0.2])).tolist()
    []
    >>> shifted = rng.choice(["web", "ios", "tv"], 1000, p=[0.3, 0.3, 0.4])  # "tv" is new
    >>> detector.update_many(shifted).tolist()
    [249, 499, 749, 999]
    >>> detector.severity
    'significant'
    """

    name: ClassVar[str] = "psi_categorical"
    direction: ClassVar[str] = "above"  # type: ignore[assignment]
    _threshold_param: ClassVar[str] = "psi_above"
    _warning_param: ClassVar[str] = "warning_psi_above"

    def __init__(
        self,
        reference: Any = None,
        window: int = 1000,
        step: int = 100,
        psi_above: float = 0.2,
        warning_psi_above: float | None = 0.1,
        epsilon: float = 1e-4,
        max_categories: int = 50,
    ) -> None:
        self.window = window
        self.step = step
        self.psi_above = psi_above
        self.warning_psi_above = warning_psi_above
        self.epsilon = epsilon
        self.max_categories = max_categories
        self._check_window()
        self._check_thresholds()
        require_positive(self.name, "epsilon", epsilon)
        self._check_categories()
        self._start(reference)

    @property
    def severity(self) -> Severity:
        """Band of the last PSI, with this detector's thresholds as the cut points."""
        return psi_severity(self)

    def _test(self, window: np.ndarray) -> tuple[float, float | None]:
        counts = self._require_reference()["counts"]
        expected = counts / counts.sum()
        return population_stability_index(expected, self._window_counts(window), self.epsilon), None
