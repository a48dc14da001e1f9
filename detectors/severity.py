"""Severity bands: map a drift statistic to ``"none"``, ``"moderate"`` or ``"significant"``.

Defaults follow common practice for the population stability index: below 0.1 no shift,
0.1 to 0.2 moderate, above 0.2 significant. Bands are plain frozen objects, so a deployment
builds its own (``SeverityBands(moderate=0.05, significant=0.15)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from detectors.base import Direction, crosses

__all__ = ["PSI_BANDS", "Severity", "SeverityBands"]

Severity = Literal["none", "moderate", "significant"]


@dataclass(frozen=True)
class SeverityBands:
    """Two cut points on a statistic, read in ``direction`` (strictly beyond each cut).

    >>> PSI_BANDS.classify(0.05), PSI_BANDS.classify(0.15), PSI_BANDS.classify(0.3)
    ('none', 'moderate', 'significant')
    >>> SeverityBands(moderate=0.05, significant=0.01, direction="below").classify(0.001)
    'significant'
    """

    moderate: float
    significant: float
    direction: Direction = "above"

    def __post_init__(self) -> None:
        if self.direction not in ("above", "below"):
            raise ValueError(f"severity: 'direction' must be 'above' or 'below', got {self.direction!r}")
        ordered = (
            self.moderate <= self.significant
            if self.direction == "above"
            else self.moderate >= self.significant
        )
        if not ordered:
            raise ValueError(
                f"severity: 'moderate' ({self.moderate}) must not be beyond 'significant' "
                f"({self.significant}) in direction {self.direction!r}"
            )

    def classify(self, value: float) -> Severity:
        """The band ``value`` falls in (``nan`` is ``"none"``)."""
        if crosses(value, self.significant, self.direction):
            return "significant"
        if crosses(value, self.moderate, self.direction):
            return "moderate"
        return "none"


#: PSI < 0.1: none; 0.1-0.2: moderate; > 0.2: significant.
PSI_BANDS = SeverityBands(moderate=0.1, significant=0.2)
