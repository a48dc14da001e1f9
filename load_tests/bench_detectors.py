"""Cost per event of every detector and rolling metric, per event and in batches of 1,000.

River's own per-event cost is measured in the same run for the river-backed detectors.

    python -m load_tests.bench_detectors [--smoke] [--json PATH]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from river import drift

from detectors import registry
from detectors._reference import ReferenceDetector

BATCH = 1000

RIVER: dict[str, Callable[[], Any]] = {
    "adwin": drift.ADWIN,
    "ddm": drift.binary.DDM,
    "eddm": drift.binary.EDDM,
    "hddm_a": drift.binary.HDDMA,
    "hddm_w": drift.binary.HDDMW,
    "page_hinkley": drift.PageHinkley,
    "kswin": lambda: drift.KSWIN(seed=42),
}


def _stream(name: str, rng: np.random.Generator, n: int) -> Any:
    cls = registry.DETECTORS[name]
    if cls.kind == "categorical":
        return rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    if cls.kind == "error_stream":
        return rng.binomial(1, 0.2, n).astype(float)
    return rng.normal(0, 1, n)


def _config(name: str, rng: np.random.Generator) -> dict[str, Any]:
    config: dict[str, Any] = {"type": name}
    if name == "threshold":
        config["above"] = 4.0
    elif issubclass(registry.DETECTORS[name], ReferenceDetector):
        config["reference"] = _stream(name, rng, 5000)
    return config


def _micros(seconds: float, n: int) -> float:
    return round(seconds / n * 1e6, 3)


def _time(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def bench_detector(name: str, n: int) -> dict[str, Any]:
    """Per-event and batched cost (microseconds per event) of one detector type."""
    rng = np.random.default_rng(0)
    config = _config(name, rng)
    values = _stream(name, rng, n)
    items = values.tolist()

    per_event = registry.build(config)
    per_event_s = _time(lambda: [per_event.update(x) for x in items])

    batched = registry.build(config)
    batched_s = _time(
        lambda: [batched.update_many(values[i : i + BATCH]) for i in range(0, n, BATCH)]
    )
    result: dict[str, Any] = {
        "kind": registry.DETECTORS[name].kind,
        "events": n,
        "per_event_us": _micros(per_event_s, n),
        "batched_us": _micros(batched_s, n),
        "river_per_event_us": None,
    }
    if name in RIVER:
        river = RIVER[name]()
        result["river_per_event_us"] = _micros(_time(lambda: [river.update(x) for x in items]), n)
    return result


def bench_metric(name: str, n: int) -> dict[str, Any]:
    """Batched cost and the cost of reading ``value`` once per batch, per event."""
    rng = np.random.default_rng(0)
    metric = registry.build_metric({"type": name})
    if name in ("map_at_k", "ndcg_at_k"):
        columns: Sequence[Any] = (
            [set(rng.choice(50, 5, replace=False).tolist()) for _ in range(n)],
            [rng.permutation(50)[:10].tolist() for _ in range(n)],
        )
    else:
        columns = [rng.integers(0, 2, n).astype(float) for _ in metric._domains]

    def run() -> None:
        for i in range(0, n, BATCH):
            metric.update_many(*(c[i : i + BATCH] for c in columns))
            _ = metric.value

    return {"events": n, "batched_us": _micros(_time(run), n)}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a table, optionally write JSON; return the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run (a couple of seconds)")
    parser.add_argument("--json", type=Path, help="write a machine-readable summary here")
    args = parser.parse_args(argv)

    n = 2000 if args.smoke else 100_000
    detectors = {
        name: bench_detector(name, min(n, 2000) if name == "kswin" else n)
        for name in registry.available()
    }
    metrics = {name: bench_metric(name, n) for name in registry.available_metrics()}
    summary = {"smoke": args.smoke, "batch": BATCH, "detectors": detectors, "metrics": metrics}

    print(f"{'detector':<16} {'kind':<13} {'per-event us':>13} {'batched us':>11} {'river us':>9}")
    for name, row in detectors.items():
        river = "-" if row["river_per_event_us"] is None else f"{row['river_per_event_us']:.3f}"
        print(
            f"{name:<16} {row['kind']:<13} {row['per_event_us']:>13.3f} "
            f"{row['batched_us']:>11.3f} {river:>9}"
        )
    print(f"\n{'metric':<16} {'batched us (value read per batch)':>34}")
    for name, row in metrics.items():
        print(f"{name:<16} {row['batched_us']:>34.3f}")
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    return summary


if __name__ == "__main__":
    main()
