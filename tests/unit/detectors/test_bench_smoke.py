"""The detector benchmark runs and writes a complete JSON summary."""

from __future__ import annotations

from pathlib import Path

import orjson

from detectors import registry
from load_tests.bench_detectors import RIVER, main


def test_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    main(["--smoke", "--json", str(out)])
    summary = orjson.loads(out.read_bytes())
    assert summary["smoke"] is True and summary["batch"] == 1000
    assert sorted(summary["detectors"]) == sorted(registry.available())
    assert sorted(summary["metrics"]) == sorted(registry.available_metrics())
    for name, row in summary["detectors"].items():
        assert row["per_event_us"] > 0 and row["batched_us"] > 0
        assert (row["river_per_event_us"] is not None) == (name in RIVER)
