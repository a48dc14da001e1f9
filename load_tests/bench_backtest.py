"""Offline backtest throughput, against a plain loop over the same river detectors.

The backtest reads JSON-lines files, merges them by event time and runs the whole pipeline
(validation, join, every detector, alert policy; the report is not rendered). The baseline,
measured in the same run over the same events, is the least a drift monitor can do: a
Python loop that joins labels to predictions in a dict and feeds each error to river's
ADWIN and DDM. The garbage collector is tuned as ``driftstream backtest`` tunes it
(``DRIFTSTREAM_GC_THRESHOLD``, :mod:`streams.runtime.gc_tuning`).

    python -m load_tests.bench_backtest [--smoke] [--json PATH]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from river import drift

from schemas import codec
from streams.offline import backtest
from streams.offline.simulate import Simulation, SimulationConfig
from streams.pipeline.monitor_config import MonitorConfig
from streams.runtime.gc_tuning import tune_gc
from streams.settings import Settings


def plain_loop(items: Sequence[tuple[str, dict[str, Any]]]) -> int:
    """Join by prediction id and update river ADWIN and DDM with each error; the drift count."""
    adwin, ddm = drift.ADWIN(), drift.binary.DDM()
    pending: dict[str, Any] = {}
    drifts = 0
    for role, event in items:
        if role == "predictions":
            pending[event["prediction_id"]] = event["prediction"]
            continue
        prediction = pending.pop(event["prediction_id"], None)
        if prediction is None:
            continue
        error = 0.0 if prediction == event["label"] else 1.0
        adwin.update(error)
        ddm.update(error)
        drifts += adwin.drift_detected + ddm.drift_detected
    return drifts


def bench(events: int) -> dict[str, Any]:
    """Both measurements over one seeded simulation of ``events`` predictions."""
    config = SimulationConfig(events=events, seed=7, feature_drift_at=events // 3, concept_drift_at=2 * events // 3)
    sim = Simulation(config)
    preds, labels = sim.generate()
    with tempfile.TemporaryDirectory() as folder:
        paths = {role: Path(folder) / f"{role}.jsonl" for role in backtest.ROLES}
        for role, rows in (("predictions", preds), ("ground-truth", labels)):
            paths[role].write_bytes(b"".join(codec.dumps(r) + b"\n" for r in rows))
        started = time.perf_counter()
        merged = backtest.merge(*(backtest.read_events(paths[role], role) for role in backtest.ROLES))
        evaluation = backtest.evaluate(merged, [("default", None, MonitorConfig())], progress=io.StringIO())
        backtest_s = time.perf_counter() - started
    items = sim.in_event_time_order()
    started = time.perf_counter()
    plain_loop(items)
    plain_s = time.perf_counter() - started
    total = len(preds) + len(labels)
    return {
        "events": total,
        "alerts": len(evaluation.runs[0].result.alerts),
        "backtest_events_per_s": round(total / backtest_s, 1),
        "plain_loop_events_per_s": round(total / plain_s, 1),
        "ratio": round(plain_s / backtest_s, 4),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a table, optionally write JSON; return the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run (a couple of seconds)")
    parser.add_argument("--json", type=Path, help="write a machine-readable summary here")
    args = parser.parse_args(argv)
    tune_gc(Settings.from_env().gc_threshold)  # what the backtest command does
    summary = {"smoke": args.smoke, **bench(3_000 if args.smoke else 100_000)}
    print(f"{'':<28}{'events/s':>14}")
    print(f"{'backtest (whole pipeline)':<28}{summary['backtest_events_per_s']:>14,.0f}")
    print(f"{'plain loop (ADWIN + DDM)':<28}{summary['plain_loop_events_per_s']:>14,.0f}")
    print(f"ratio backtest / plain loop: {summary['ratio']:.3f} over {summary['events']} events")
    if args.json:
        args.json.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    return summary


if __name__ == "__main__":
    main()
