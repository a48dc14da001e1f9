"""River's private state that the detector wrappers read and restore, all of it, here.

River keeps a drift detector's running state in private attributes and offers no public way
to read or set it (only the read-only ``drift_detected``/``warning_detected`` flags, which
the wrappers use, and a few public fields such as ``ADWIN.width`` or ``KSWIN.window``). A
detector's state must survive a restart, so the wrappers write these attributes out and put
them back, always through :func:`private` and :func:`set_private`, which accept only the
attributes :func:`listed`. River is pinned to :data:`TESTED_RIVER` in
pyproject.toml, and ``tests/unit/detectors/test_river_private.py`` fails, naming the
attribute, if an upgrade changes one. River is imported when a wrapper first reads or
restores one (:func:`listed`), as the wrappers import it (:mod:`detectors._river`).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from river import drift, stats

__all__ = [
    "TESTED_RIVER", "dump_mean", "dump_var", "listed", "load_mean", "load_var", "mcdiarmid_bound", "private",
    "set_flags", "set_private",
]

#: The river minor version these attributes were checked against.
TESTED_RIVER = "0.26"

_NUMBER = (int, float)
_OPTIONAL_NUMBER = (int, float, type(None))


@functools.cache
def listed() -> dict[type, dict[str, type | tuple[type, ...]]]:
    """River class -> its private attributes the wrappers use, and the type each holds once
    the detector has seen a few values (what the test checks)."""
    from river import drift, stats
    from river.drift.binary.hddm_w import SampleInfo

    return {
        drift.binary.DDM: {"_p": stats.Mean, "_p_min": _OPTIONAL_NUMBER, "_s_min": _OPTIONAL_NUMBER,
                           "_ps_min": _NUMBER, "_drift_detected": bool, "_warning_detected": bool},
        drift.binary.EDDM: {"_error_distances": stats.Var, "_n": int, "_last_error": int, "_n_errors": int,
                            "_p2s_prime_max": _NUMBER, "_drift_detected": bool, "_warning_detected": bool},
        drift.PageHinkley: {"_x_mean": stats.Mean, "_sum_increase": _NUMBER, "_sum_decrease": _NUMBER,
                            "_min_increase": _NUMBER, "_max_decrease": _NUMBER, "_drift_detected": bool},
        drift.binary.HDDMA: {"_x_min": stats.Mean, "_x_max": stats.Mean, "_z": stats.Mean,
                              "_drift_detected": bool, "_warning_detected": bool},
        drift.binary.HDDMW: {"_total": SampleInfo, "_s1_decr": SampleInfo, "_s1_incr": SampleInfo,
                              "_s2_decr": SampleInfo, "_s2_incr": SampleInfo, "_incr_cutpoint": _NUMBER,
                              "_decr_cutpoint": _NUMBER, "_drift_detected": bool, "_warning_detected": bool},
        drift.ADWIN: {"_helper": object, "_drift_detected": bool},  # a Rust object: its bytes via __getstate__
        drift.KSWIN: {"_rng": random.Random, "_drift_detected": bool},
        SampleInfo: {"_ewma": object, "_is_init": bool, "_ibc": _NUMBER},
        stats.EWMean: {"_ewmean": object},  # a Rust object: its bytes via __getstate__
        stats.Mean: {"_mean": _NUMBER},
        stats.Var: {"_S": _NUMBER},
    }


def _allowed(obj: Any, name: str) -> str:
    if name not in listed().get(type(obj), ()):
        raise KeyError(f"{type(obj).__name__}.{name} is not one of the river internals listed in "
                       "detectors._river_private")
    return name


def private(obj: Any, name: str) -> Any:
    """River's private attribute ``name`` of ``obj`` (one of :func:`listed`)."""
    return getattr(obj, _allowed(obj, name))


def set_private(obj: Any, name: str, value: Any) -> None:
    """Restore river's private attribute ``name`` of ``obj`` (one of :func:`listed`)."""
    setattr(obj, _allowed(obj, name), value)


def set_flags(river: Any, drift_detected: bool, warning_detected: bool) -> None:
    """Restore the flags river keeps: it resets itself on the update after a drift."""
    set_private(river, "_drift_detected", drift_detected)
    if "_warning_detected" in listed()[type(river)]:
        set_private(river, "_warning_detected", warning_detected)


def mcdiarmid_bound(river: drift.binary.HDDMW, ibc: float, confidence: float) -> float:
    """HDDM_W's McDiarmid bound for samples of bound ``ibc`` (river's private method)."""
    return float(river._mcdiarmid_bound(ibc, confidence))


def dump_mean(mean: stats.Mean) -> list[float]:
    """A river ``stats.Mean`` as ``[n, mean]``."""
    return [float(mean.n), float(private(mean, "_mean"))]


def load_mean(values: Sequence[float]) -> stats.Mean:
    """Invert :func:`dump_mean`."""
    from river import stats

    mean = stats.Mean()
    mean.n = float(values[0])
    set_private(mean, "_mean", float(values[1]))
    return mean


def dump_var(var: stats.Var) -> list[float]:
    """A river ``stats.Var`` as ``[n, mean, S]`` (``S``: the sum of squared deviations)."""
    return dump_mean(var.mean) + [float(private(var, "_S"))]


def load_var(values: Sequence[float]) -> stats.Var:
    """Invert :func:`dump_var`."""
    from river import stats

    var = stats.Var()
    var.mean = load_mean(values[:2])
    set_private(var, "_S", float(values[2]))
    return var
