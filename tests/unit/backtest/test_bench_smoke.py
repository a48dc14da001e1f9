"""The backtest benchmark runs and writes its JSON summary."""

from __future__ import annotations

from pathlib import Path

import orjson

from load_tests.bench_backtest import main


def test_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    main(["--smoke", "--json", str(out)])
    summary = orjson.loads(out.read_bytes())
    assert summary["backtest_events_per_s"] > 0 and summary["plain_loop_events_per_s"] > 0
    ratio = summary["backtest_events_per_s"] / summary["plain_loop_events_per_s"]
    assert abs(summary["ratio"] - ratio) < 0.01 * ratio
