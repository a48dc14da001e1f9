"""Pick an error-stream detector's parameter for a target expected run length (ERT).

ADWIN and DDM carry a confidence parameter, not a threshold on a statistic one can read,
so :func:`detectors.calibration.calibrate` (a quantile of the statistic) does not apply.
Instead each candidate of a short ladder, from the most sensitive (the configured value)
to the most conservative, is run over bootstrap streams resampled from the reference's own
error stream (for 0/1 errors: Bernoulli streams at the reference error rate), and the first
whose false alarms stay within the budget is kept. Every candidate sees the same streams
(one seed), so a stricter budget never gives a more sensitive parameter.

The simulation covers ``10 * target_ert`` values, capped at ``max_values`` (about one second
of ADWIN, 2.5 s of DDM per million): a candidate passes when its false alarms per value are
at most ``1 / target_ert``. When the cap leaves fewer than ten run lengths, the check is
weaker, and :attr:`ErrorCalibration.run_lengths` says by how much.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors import registry
from detectors.base import require, require_int, require_positive

__all__ = ["LADDERS", "ErrorCalibration", "Trial", "calibrate_error_stream", "count_false_alarms"]

#: Per detector type: the parameter, its candidates from sensitive to conservative.
LADDERS: dict[str, tuple[str, tuple[float, ...]]] = {
    "adwin": ("delta", (0.002, 1e-3, 5e-4, 2e-4, 1e-4, 5e-5)),
    "ddm": ("drift_threshold", (3.0, 3.5, 4.0, 4.5, 5.0)),
}

#: Values handed to the detector per call (as the worker does, see streams.pipeline.monitor).
_PIECE = 10_000


@dataclass(frozen=True)
class Trial:
    """One candidate's false alarms over ``values`` simulated values (fewer when it was
    stopped as soon as it exceeded the budget)."""

    value: float
    false_alarms: int
    values: int


@dataclass(frozen=True)
class ErrorCalibration:
    """The chosen parameter: apply it with :meth:`config`."""

    param: str
    value: float
    target_ert: float
    run_lengths: float  # simulated values / target_ert: how firmly the budget was checked
    trials: tuple[Trial, ...]
    within_budget: bool  # False: no candidate met the budget; the most conservative is kept

    def config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` with the chosen value; DDM's warning level keeps its distance below
        the drift level (it marks where DDM starts counting the new concept's errors)."""
        out = {**config, self.param: self.value}
        if self.param == "drift_threshold":
            defaults = registry.build({"type": config["type"]})
            drift = float(config.get("drift_threshold", defaults.drift_threshold))
            warning = float(config.get("warning_threshold", defaults.warning_threshold))
            out["warning_threshold"] = max(min(warning, self.value), self.value - (drift - warning))
        return out


def ladder(config: Mapping[str, Any]) -> tuple[str, list[float]] | None:
    """The parameter of ``config``'s detector and its candidates, starting at the
    configured value (``None``: a detector this module does not calibrate)."""
    if config.get("type") not in LADDERS:
        return None
    param, candidates = LADDERS[config["type"]]
    current = float(config.get(param, candidates[0]))
    # smaller delta / larger threshold: more conservative
    stricter = (lambda v: v < current) if param == "delta" else (lambda v: v > current)
    return param, [current, *(v for v in candidates if stricter(v))]


def count_false_alarms(
    config: Mapping[str, Any], streams: Sequence[np.ndarray], *, stop_above: float = math.inf
) -> tuple[int, int]:
    """Detections of a fresh ``config`` detector on each of ``streams`` (run to its end, as
    the worker runs it, drift after drift): ``(alarms, values read)``, stopping once the
    alarms exceed ``stop_above``."""
    alarms = seen = 0
    for stream in streams:
        detector = registry.build(dict(config))
        used, n = 0, len(stream)
        while used < n:
            used += detector.update_until_drift(stream[used:used + _PIECE])
            if detector.drift_detected:
                alarms += 1
                if alarms > stop_above:
                    return alarms, seen + used
        seen += n
    return alarms, seen


def calibrate_error_stream(
    config: Mapping[str, Any],
    errors: Any,
    *,
    target_ert: float,
    max_values: int = 1_000_000,
    n_streams: int = 4,
    seed: int = 0,
) -> ErrorCalibration:
    """The most sensitive parameter of ``config``'s ladder whose false alarms on bootstrap
    streams of ``errors`` (the reference error stream) are at most one per ``target_ert``.

    >>> import numpy as np
    >>> from detectors.error_calibration import calibrate_error_stream
    >>> errors = np.random.default_rng(0).binomial(1, 0.2, 2000)
    >>> cal = calibrate_error_stream({"type": "adwin"}, errors, target_ert=20_000, max_values=200_000)
    >>> cal.param, cal.value, cal.within_budget
    ('delta', 0.002, True)
    """
    require_positive("calibrate", "target_ert", target_ert)
    require_int("calibrate", "max_values", max_values, 1)
    require_int("calibrate", "n_streams", n_streams, 1)
    found = ladder(config)
    if found is None:
        raise ValueError(f"calibrate: {config.get('type')!r} has no parameter ladder; expected one of {sorted(LADDERS)}")
    param, candidates = found
    pool = np.asarray(errors, dtype=float)
    require("calibrate", "errors", len(pool), len(pool) > 0, "a non-empty error stream")
    total = min(math.ceil(10 * target_ert), max_values)
    length = max(1, total // n_streams)
    rng = np.random.default_rng(seed)
    streams = [pool[rng.integers(0, len(pool), length)] for _ in range(n_streams)]
    allowed = length * n_streams / target_ert
    trials = []
    for value in candidates:
        alarms, seen = count_false_alarms({**config, param: value}, streams, stop_above=allowed)
        trials.append(Trial(value, alarms, seen))
        if alarms <= allowed:
            break
    return ErrorCalibration(
        param=param,
        value=trials[-1].value,
        target_ert=float(target_ert),
        run_lengths=length * n_streams / target_ert,
        trials=tuple(trials),
        within_budget=trials[-1].false_alarms <= allowed,
    )
