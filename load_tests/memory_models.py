"""Worker memory per model: resident memory a monitored model costs.

One worker monitors ``--models`` models (10,000; smoke 1,000), each given a few dozen
predictions and their labels, so every detector holds state; ``DRIFTSTREAM_MAX_MODELS`` is
raised to let all of them in, and per-model Prometheus series stay capped at the default
``DRIFTSTREAM_MAX_MODEL_SERIES``. The worker's VmRSS (``/proc/<pid>/status``) is read once
10 warm-up models have been applied (the code paths and libraries are loaded then) and once
all models have; the difference over the added models is the bytes per model. The
monitor-state table's entries confirm how many models the worker holds.

    python -m load_tests.memory_models [--smoke] [--json PATH] [--models N] [--events-per-model K]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from streams.exceptions import DriftstreamError
from streams.settings import Settings
from streams.offline.simulate import Simulation, SimulationConfig
from streams.runtime.worker_process import WorkerProcess

from .common import (
    Harness,
    Item,
    LoadTestError,
    check_worker,
    consumed,
    count_roles,
    create_topics,
    finish,
    namespaced,
    note,
    parser,
    print_table,
    publish,
    vm_rss_bytes,
)

WARMUP_MODELS = 10


def spread_over_models(models: int, per_model: int, seed: int, first: int = 0) -> list[Item]:
    """One stationary simulation of ``models * per_model`` predictions whose prediction ``i``
    (and its label) belongs to model ``first + i % models``, in event time."""
    config = SimulationConfig(events=models * per_model, seed=seed + first, id_prefix=f"m{first}-",
                              feature_drift_at=None, concept_drift_at=None, event_rate=1000.0)
    items = Simulation(config).in_event_time_order()
    for _, event in items:
        index = int(event["prediction_id"].rsplit("-", 1)[1])
        event["model_id"] = f"model-{first + index % models}"
    return items


def apply_all(worker: WorkerProcess, settings: Settings, items: list[Item], models: int, before: float) -> None:
    """Publish ``items`` and wait until the worker applied them and holds ``models`` models."""
    total = sum(count_roles(items).values())
    publish(settings, items, what=f"events of {models:,} models published")
    deadline = time.monotonic() + 1800

    def applied() -> bool:
        try:
            return (consumed(worker, settings, "monitor-input") >= before + total
                    and worker.metric("driftstream_table_entries", table="monitor-state") >= models)
        except (OSError, DriftstreamError):  # a scrape can time out while the worker is busy
            return False

    while not applied():
        check_worker(worker, "applying the models' events")
        if time.monotonic() > deadline:
            raise LoadTestError(f"the worker did not apply the events of {models:,} models:\n{worker.log_tail()}")
        time.sleep(0.5)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--models", type=int, help="models to monitor (default 10,000; smoke 1,000)")
    p.add_argument("--events-per-model", type=int, default=30, help="predictions per model (labels: 90 %% of them)")
    p.add_argument("--partitions", type=int, default=4)
    args = p.parse_args(argv)
    models = args.models or (1_000 if args.smoke else 10_000)
    with Harness() as h:
        broker = h.broker()
        settings = namespaced(broker, partitions=args.partitions, max_models=models + WARMUP_MODELS)
        create_topics(settings)
        worker = h.worker(settings)
        worker.wait_ready(120)
        assert worker.process is not None
        warmup = spread_over_models(WARMUP_MODELS, args.events_per_model, args.seed, first=models)
        apply_all(worker, settings, warmup, WARMUP_MODELS, 0.0)
        time.sleep(2.0)  # a checkpoint's buffers released: the baseline is the worker at rest
        rss_warm = vm_rss_bytes(worker.process.pid)
        note(f"{WARMUP_MODELS} warm-up models applied: RSS {rss_warm / 2**20:,.1f} MB; now {models:,} models")
        items = spread_over_models(models, args.events_per_model, args.seed)
        started = time.monotonic()
        apply_all(worker, settings, items, models + WARMUP_MODELS, consumed(worker, settings, "monitor-input"))
        elapsed = time.monotonic() - started
        time.sleep(2.0)
        rss_end = vm_rss_bytes(worker.process.pid)
        held = int(worker.metric("driftstream_table_entries", table="monitor-state"))
        series = int(worker.metric("driftstream_model_series_capped_models"))
    per_model = (rss_end - rss_warm) / models
    summary = {
        "script": "memory_models", "smoke": args.smoke, "models": models, "models_held": held,
        "events_per_model": args.events_per_model, "partitions": args.partitions, "elapsed_s": round(elapsed, 1),
        "rss_warm_mb": round(rss_warm / 2**20, 1), "rss_end_mb": round(rss_end / 2**20, 1),
        "rss_bytes_per_model": round(per_model), "models_without_series": series,
    }
    print_table("Memory per model", [(models, held, summary["rss_warm_mb"], summary["rss_end_mb"], summary["rss_bytes_per_model"])],
                ("models", "held", "RSS warm MB", "RSS end MB", "bytes per model"))
    return finish(summary, args.json)


if __name__ == "__main__":
    main()
