"""Pick a detector threshold for a target expected run length (ERT) between false alarms.

As alibi-detect does for its online detectors, the null behaviour is simulated from the
reference itself: the reference is split at random in two halves, the detector is fitted on
one, and bootstrap streams are drawn (with replacement) from the other. The statistic is read
at every evaluation, and the threshold is the quantile at which one evaluation in
``ert / step`` crosses it (``step``: values between evaluations; 1 for per-value scores), so
the expected number of values between false alarms is about ``ert``. Overlapping windows make
crossings cluster, which lengthens the real run length: the result errs on the safe side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors import registry
from detectors.base import Direction, require, require_int, require_positive

__all__ = ["Calibration", "calibrate"]


@dataclass(frozen=True)
class Calibration:
    """A calibrated threshold: apply it with :meth:`config`."""

    param: str
    threshold: float
    direction: Direction
    target_ert: float
    n_evaluations: int
    warning: float | None = None  # the detector's warning level when it was calibrated

    def config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` with the calibrated threshold set; a warning level the new threshold
        passed is moved onto it (a warning must come no later than the drift it heralds,
        and the detector refuses one that would)."""
        out = {**config, self.param: self.threshold}
        key = f"warning_{self.param}"
        warning = out.get(key, self.warning)
        if warning is not None:
            out[key] = min(warning, self.threshold) if self.direction == "above" else max(warning, self.threshold)
        return out


def _threshold_param(detector: Any) -> str:
    for param in detector.params():
        value = getattr(detector, param)
        if param.endswith(("_above", "_below")) and not param.startswith("warning_"):
            if value == detector.threshold:
                return param
    raise ValueError(f"{detector.name}: cannot be calibrated (no '*_above'/'*_below' threshold)")


def calibrate(
    config: Mapping[str, Any],
    reference: Any,
    *,
    target_ert: float,
    n_streams: int = 20,
    stream_length: int | None = None,
    seed: int = 0,
) -> Calibration:
    """Calibrate the drift threshold of a reference-based detector for ``target_ert``.

    ``config`` is a registry config without the reference. Each bootstrap stream is
    ``stream_length`` values long (default: the window plus enough evaluations for about ten
    crossings in all, at least 50 per stream).

    >>> import numpy as np
    >>> from detectors.calibration import calibrate
    >>> rng = np.random.default_rng(0)
    >>> cal = calibrate({"type": "three_sigma"}, rng.normal(0, 1, 4000), target_ert=500)
    >>> cal.param, round(cal.threshold, 1), cal.direction
    ('sigma_above', 2.9, 'above')
    """
    require_positive("calibrate", "target_ert", target_ert)
    require_int("calibrate", "n_streams", n_streams, 1)
    rng = np.random.default_rng(seed)
    values = np.asarray(reference)
    order = rng.permutation(len(values))
    half = len(values) // 2
    detector = registry.build({**config, "reference": values[order[:half]]})
    pool = values[order[half:]]
    step = int(getattr(detector, "step", 1))
    window = detector.window_size or 1
    require(
        "calibrate", "target_ert", target_ert, target_ert > step, f"> the evaluation step ({step})"
    )
    per_stream = max(50, math.ceil(10 * target_ert / (step * n_streams)))
    length = stream_length if stream_length is not None else window + per_stream * step
    statistics = []
    for _ in range(n_streams):
        detector.reset()
        stream = pool[rng.integers(0, len(pool), length)]
        for start in range(0, length, step):
            detector.update_many(stream[start : start + step])
            if not math.isnan(detector.statistic) and detector.n_seen % step == 0:
                statistics.append(detector.statistic)
    rate = step / target_ert
    if len(statistics) * rate < 5:
        raise ValueError(
            f"calibrate: {len(statistics)} evaluations are too few for target_ert={target_ert} "
            f"(need at least {math.ceil(5 / rate)}); raise n_streams or stream_length"
        )
    level = 1 - rate if detector.direction == "above" else rate
    return Calibration(
        param=_threshold_param(detector),
        threshold=float(np.quantile(statistics, level)),
        direction=detector.direction,
        target_ert=float(target_ert),
        n_evaluations=len(statistics),
        warning=detector.warning_threshold,
    )
