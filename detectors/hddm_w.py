"""HDDM_W: Hoeffding-bound drift detection with weighted averages (river's implementation)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from detectors._river import RiverDetector, dump_bytes, load_bytes
from detectors._river_private import mcdiarmid_bound, private, set_private
from detectors._state import decode_float, encode_float
from detectors.base import require_probability
from detectors.hddm_a import check_hddm_params

__all__ = ["HDDM_W"]

if TYPE_CHECKING:
    from river.drift.binary.hddm_w import SampleInfo

_SAMPLES = ("total", "s1_decr", "s1_incr", "s2_decr", "s2_incr")


def _dump_sample(sample: SampleInfo) -> dict[str, Any]:
    return {
        "ewma": dump_bytes(private(private(sample, "_ewma"), "_ewmean").__getstate__()),
        "is_init": sample.is_init,
        "ibc": sample.ibc,
    }


def _load_sample(lambda_val: float, state: Mapping[str, Any]) -> SampleInfo:
    from river.drift.binary.hddm_w import SampleInfo  # with river, on first use (detectors._river)

    sample = SampleInfo(lambda_val)
    private(private(sample, "_ewma"), "_ewmean").__setstate__(load_bytes(state["ewma"]))
    set_private(sample, "_is_init", bool(state["is_init"]))
    set_private(sample, "_ibc", float(state["ibc"]))
    return sample


class HDDM_W(RiverDetector):  # noqa: N801 - the algorithm's published name
    """HDDM with the W-test (Frias-Blanco et al., 2014; wraps ``river.drift.binary.HDDMW``).

    Like :class:`~detectors.hddm_a.HDDM_A` but with exponentially weighted moving averages
    (weight ``lambda_val`` on the newest value) and McDiarmid's bound, so it forgets old data
    and follows gradual changes. river keeps each EWMA in a Rust object; its state travels as
    base64 of the bytes that object's ``__getstate__`` returns.

    ``statistic`` is the increase of the weighted mean after the cut point and ``threshold``
    McDiarmid's bound at ``drift_confidence`` (direction ``"above"``). Input: values in
    [0, 1] (usually 0/1 errors).

    **False alarms.** At most ``drift_confidence`` per test by McDiarmid's inequality; the
    test runs at every value, so on a stationary Bernoulli(0.2) stream expect a false alarm
    every ~10,000 values at the defaults (tighten ``drift_confidence`` to lengthen it).

    Parameters
    ----------
    drift_confidence
        Drift confidence level, in (0, 1).
    warning_confidence
        Warning confidence level, in (drift_confidence, 1).
    lambda_val
        Weight of the newest value in the moving averages, in (0, 1).
    two_sided_test
        Also detect decreases of the mean.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.hddm_w import HDDM_W
    >>> rng = np.random.default_rng(42)
    >>> stream = np.concatenate([rng.binomial(1, 0.1, 1000), rng.binomial(1, 0.5, 1000)])
    >>> HDDM_W().update_many(stream).tolist()
    [1023, 1701]
    """

    name: ClassVar[str] = "hddm_w"
    direction: ClassVar[str] = "above"  # type: ignore[assignment]
    domain: ClassVar[str] = "unit_interval"  # type: ignore[assignment]
    _river_class: ClassVar[str] = "drift.binary.HDDMW"

    def __init__(
        self,
        drift_confidence: float = 0.001,
        warning_confidence: float = 0.005,
        lambda_val: float = 0.05,
        two_sided_test: bool = False,
    ) -> None:
        self.drift_confidence = drift_confidence
        self.warning_confidence = warning_confidence
        self.lambda_val = lambda_val
        self.two_sided_test = two_sided_test
        check_hddm_params(self)
        require_probability(self.name, "lambda_val", lambda_val)
        self._reset()

    @property
    def statistic(self) -> float:
        """Increase of the weighted mean after the cut point (``nan`` until both are set)."""
        s1, s2 = private(self._river, "_s1_incr"), private(self._river, "_s2_incr")
        if not (s1.is_init and s2.is_init):
            return math.nan
        return s2.ewma - s1.ewma

    @property
    def threshold(self) -> float:
        """McDiarmid's bound at ``drift_confidence`` for the two samples compared."""
        s1, s2 = private(self._river, "_s1_incr"), private(self._river, "_s2_incr")
        if not (s1.is_init and s2.is_init):
            return math.nan
        return mcdiarmid_bound(self._river, s1.ibc + s2.ibc, self.drift_confidence)

    def _dump(self) -> dict[str, Any]:
        river = self._river
        state: dict[str, Any] = {key: _dump_sample(private(river, f"_{key}")) for key in _SAMPLES}
        state["incr_cutpoint"] = encode_float(private(river, "_incr_cutpoint"))
        state["decr_cutpoint"] = encode_float(private(river, "_decr_cutpoint"))
        return state

    def _load_river(self, state: Mapping[str, Any]) -> None:
        river = self._river
        for key in _SAMPLES:
            set_private(river, f"_{key}", _load_sample(self.lambda_val, state[key]))
        set_private(river, "_incr_cutpoint", decode_float(state["incr_cutpoint"]))
        set_private(river, "_decr_cutpoint", decode_float(state["decr_cutpoint"]))
