"""detectors.deferred: building a detector (what checking a config does) loads neither river nor
scipy, and :data:`detectors.deferred.MODULES` is everything the detectors load on first use."""

from __future__ import annotations

import json
import subprocess
import sys

#: Prints, as JSON, the river and scipy modules loaded after building every registry detector
#: (``built``), and those that feeding them, their states and a ROC AUC then loaded beyond
#: ``deferred.import_now()`` (``beyond``).
PROBE = """
import json, sys
from detectors import deferred, registry
from detectors.metrics import RollingROCAUC
from tests.unit.detectors.test_contract import case

def heavy():
    return {m for m in sys.modules if m.split(".")[0] in ("river", "scipy")}

cases = [case(name) for name in registry.available()]
detectors = [registry.build(config) for config, _, _ in cases]
built = sorted(heavy())
deferred.import_now()
loaded = heavy()
for detector, (_, stream, _) in zip(detectors, cases):
    detector.update_many(stream)
    registry.from_state(json.loads(json.dumps(detector.to_state())))
metric = RollingROCAUC(window=10)
metric.update_many([0, 1, 0, 1], [0.2, 0.7, 0.4, 0.6])
metric.value
print(json.dumps({"built": built, "beyond": sorted(heavy() - loaded)}))
"""


def test_detectors_load_river_and_scipy_on_first_use_and_import_now_loads_all_of_it() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    assert found["built"] == []
    assert found["beyond"] == []
