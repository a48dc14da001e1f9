"""detectors._river_private: every private river attribute the wrappers read and restore is
still there, holding what they expect (river objects, no wrappers).

Each failure names the attribute: after an upgrade of river, re-read that detector's source
against the wrapper, then move the pin in pyproject.toml and TESTED_RIVER.
"""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from river import drift, stats

from detectors import _river_private
from detectors._river_private import listed, private, set_private

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[3]
PRIVATE = listed()
DETECTORS = [cls for cls in PRIVATE if hasattr(cls, "drift_detected")]


def _fed(cls: type) -> object:
    """A river detector of ``cls`` that has seen enough values (errors and successes, and a
    change) for every listed attribute to hold its working type."""
    detector = cls()
    rng = np.random.default_rng(7)
    for value in np.concatenate([rng.binomial(1, 0.1, 300), rng.binomial(1, 0.6, 300)]):
        detector.update(float(value))
    return detector


def test_the_installed_river_is_the_minor_version_checked_and_pinned() -> None:
    installed = ".".join(version("river").split(".")[:2])
    assert installed == _river_private.TESTED_RIVER, (
        f"detectors._river_private was checked against river {_river_private.TESTED_RIVER}, {installed} is installed")
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in dependencies if d.startswith("river>"))
    major, minor = _river_private.TESTED_RIVER.split(".")
    assert re.fullmatch(rf"river>={major}\.{minor}(\.\d+)?,<{major}\.{int(minor) + 1}", pin), pin


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda cls: cls.__name__)
def test_each_listed_attribute_of_a_river_detector_holds_its_type(cls: type) -> None:
    detector = _fed(cls)
    for name, expected in PRIVATE[cls].items():
        assert hasattr(detector, name), f"river {version('river')} changed {cls.__name__}.{name}: gone"
        value = private(detector, name)
        assert isinstance(value, expected), (
            f"river {version('river')} changed {cls.__name__}.{name}: holds {type(value).__name__}, not {expected}")
    # the public flags the wrappers read are the private ones they restore
    set_private(detector, "_drift_detected", True)
    assert detector.drift_detected is True, f"river changed {cls.__name__}.drift_detected: not `_drift_detected`"
    if "_warning_detected" in PRIVATE[cls]:
        set_private(detector, "_warning_detected", True)
        assert detector.warning_detected is True, f"river changed {cls.__name__}.warning_detected"


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda cls: cls.__name__)
def test_every_private_attribute_of_a_river_detector_is_listed_or_derived(cls: type) -> None:
    """A new private attribute after an upgrade may be state the wrapper does not save."""
    listed = set(PRIVATE[cls])
    found = {name for name in vars(_fed(cls)) if name.startswith("_") and not name.startswith("__")}
    unlisted = found - listed - UNSAVED.get(cls, set())
    assert not unlisted, f"river {version('river')} added {cls.__name__} state {sorted(unlisted)} the wrapper does not save"


#: private attributes the wrappers leave alone: parameters (rebuilt from the wrapper's own) and
#: what river recomputes
UNSAVED: dict[type, set[str]] = {
    drift.binary.DDM: set(),
    drift.binary.EDDM: set(),
    drift.PageHinkley: {"_test_drift"},  # the test its `mode` parameter picks
    drift.binary.HDDMA: set(),
    drift.binary.HDDMW: set(),
    drift.ADWIN: set(),
    drift.KSWIN: set(),
}


def test_the_nested_river_objects_keep_their_listed_state() -> None:
    mean = stats.Mean()
    for x in (1.0, 2.0, 6.0):
        mean.update(x)
    assert isinstance(private(mean, "_mean"), float), "river changed stats.Mean._mean"
    assert _river_private.load_mean(_river_private.dump_mean(mean)).get() == mean.get() == 3.0
    var = stats.Var()
    for x in (1.0, 2.0, 6.0):
        var.update(x)
    assert isinstance(private(var, "_S"), float), "river changed stats.Var._S"
    assert _river_private.load_var(_river_private.dump_var(var)).get() == pytest.approx(var.get())
    sample = private(_fed(drift.binary.HDDMW), "_s1_incr")
    ewmean = private(private(sample, "_ewma"), "_ewmean")
    assert callable(getattr(ewmean, "__getstate__", None)), "river changed stats.EWMean._ewmean: no __getstate__"
    assert (sample.is_init, sample.ibc) == (private(sample, "_is_init"), private(sample, "_ibc")), (
        "river changed SampleInfo.is_init/ibc: not `_is_init`/`_ibc`")


def test_hddm_ws_mcdiarmid_bound_keeps_its_signature() -> None:
    parameters = list(inspect.signature(drift.binary.HDDMW._mcdiarmid_bound).parameters)
    assert parameters == ["self", "ibc", "confidence"], f"river changed HDDMW._mcdiarmid_bound: {parameters}"
    assert _river_private.mcdiarmid_bound(drift.binary.HDDMW(), 0.5, 0.001) > 0


def test_an_attribute_not_listed_is_refused() -> None:
    with pytest.raises(KeyError, match="DDM._n_seen is not one of the river internals"):
        private(drift.binary.DDM(), "_n_seen")
