"""N workers in one consumer group draining the same backlog: the rate for each N, its ratio
to one worker's in the same run, the split of partitions, and every model's state intact.

Several simulated models (different ``model_id``) share topics of 4 partitions; the monitors'
topic is partitioned by model, so the models' ids are picked to fall evenly on its partitions
(six ids in a row put three models on one partition, which held four workers to 2x one). For
each N of ``--workers`` (default 1 and 2), in that order:

1. The backlog, the same events for every N, is published into fresh topics *before* any
   worker starts, so the publisher cannot be what limits the rate.
2. N workers start at once in one group. The rate is timed from the moment the group has
   settled (every worker reports on ``/ready`` a share of the input partitions, the shares
   disjoint and covering them all) to the last event applied; the events applied before
   (while the group formed) are reported, and a backlog mostly drained by then is an error.
3. Every model's final monitor state, read from the ``monitor-state`` changelog, must count
   exactly the predictions and labels sent for it; the events the workers applied beyond
   the backlog (applied again after a rebalance) and the drift events and alerts published
   more than once (same ``event_id``) are reported.

The target (issue #27) is N workers >= 0.9 x N times one worker, with enough cores: each
worker's threads use about one core, and the broker and the sampling need their share, so
on a machine with fewer than N + 1 cores the ratio measures the machine (the summary says
how many cores it had).

    python -m load_tests.scaling [--smoke] [--json PATH] [--workers N ...] [--events N] [--models M]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from schemas import codec
from schemas.partitioning import partition_for
from streams.exceptions import DriftstreamError
from streams.offline.simulate import SimulationConfig
from streams.pipeline.monitor import model_key
from streams.runtime.worker_process import WorkerProcess
from streams.settings import Settings

from .common import (
    Harness,
    Item,
    LoadTestError,
    check_worker,
    consumed,
    create_topics,
    finish,
    machine,
    namespaced,
    note,
    parser,
    print_table,
    publish,
    workload,
)
from .readback import assigned_partitions, read_table, repeated_event_ids


def _merged(configs: Sequence[SimulationConfig], start: int, count: int) -> list[Item]:
    merged = [
        (event["timestamp"], role != "predictions", i, role, event)
        for cfg in configs
        for i, (role, event) in enumerate(workload(cfg, start, count))
    ]
    merged.sort(key=lambda item: item[:3])
    return [(role, event) for *_, role, event in merged]


def _model_states(settings: Settings, configs: Sequence[SimulationConfig], expected: dict[str, list[int]]) -> list[dict[str, Any]]:
    """Each model's counts in its checkpointed state against what was sent."""
    table = read_table(settings, "monitor-state")
    models = []
    for cfg in configs:
        raw = table.get(model_key(cfg.model_id, None))
        state = codec.loads(raw)["monitor"] if raw is not None else {"n_predictions": 0, "n_pairs": 0}
        want = expected[cfg.model_id]
        models.append({"model_id": cfg.model_id, "predictions": want[0], "labels": want[1],
                       "state_predictions": state["n_predictions"], "state_pairs": state["n_pairs"],
                       "intact": [state["n_predictions"], state["n_pairs"]] == want})
    return models


def _repeated_outputs(settings: Settings) -> dict[str, int]:
    """Per output topic role, the records beyond the first with the same ``event_id``."""
    return {role: sum(n - 1 for n in repeated_event_ids(settings, role).values()) for role in ("drift-events", "alerts")}


def balanced_model_ids(models: int, partitions: int) -> list[str]:
    """``models`` ids ``scale-<j>`` whose monitor keys fall on the ``partitions`` as evenly as
    they can (counts differ by at most one), so no worker gets more models than another.

    >>> ids = balanced_model_ids(8, 4)
    >>> sorted(partition_for(model_key(i, None), 4) for i in ids)
    [0, 0, 1, 1, 2, 2, 3, 3]
    """
    counts = [0] * partitions
    ids: list[str] = []
    j = 0
    while len(ids) < models:
        p = partition_for(model_key(f"scale-{j}", None), partitions)
        if counts[p] == min(counts):  # a partition takes its next model once every one has as many
            counts[p] += 1
            ids.append(f"scale-{j}")
        j += 1
    return ids


#: N workers against one: the least ratio that counts as adding up (issue #27)
SPEEDUP_PER_WORKER_TARGET = 0.9
#: A group that settles after this share of the backlog was applied left too little to time
SETTLED_BY_AT_MOST = 0.5


def _applied(workers: Sequence[WorkerProcess], settings: Settings) -> list[float] | None:
    """Events each worker's monitors applied, or None while one cannot answer yet."""
    try:
        return [consumed(w, settings, "monitor-input") for w in workers]
    except (OSError, DriftstreamError):
        return None


def _settled(workers: Sequence[WorkerProcess], partitions: int) -> list[list[str]] | None:
    """Each worker's assigned partitions once every one holds a share of the input partitions,
    the shares disjoint and covering them all; None before."""
    assigned = [assigned_partitions(w) for w in workers]
    inputs = [{x for x in a if ".predictions[" in x} for a in assigned]
    if not all(inputs) or sum(map(len, inputs)) != len(set().union(*inputs)) or len(set().union(*inputs)) != partitions:
        return None
    return assigned


def drain(h: Harness, settings: Settings, backlog: Sequence[Item], n: int,
          deadline_s: float) -> tuple[dict[str, Any], list[WorkerProcess]]:
    """Publish ``backlog``, start ``n`` workers in one group on it, time them from the moment
    their group settled to the last event applied; the run's figures and its workers."""
    create_topics(settings)
    sent = publish(settings, backlog, what=f"backlog for {n} worker(s) published")
    total = sum(sent.values())
    note(f"{n} worker(s) start on {total:,} events")
    started = time.monotonic()
    workers = [h.worker(settings) for _ in range(n)]
    samples: list[tuple[float, list[float]]] = []
    settled: int | None = None
    assigned: list[list[str]] = []
    while not samples or sum(samples[-1][1]) < total:
        for i, w in enumerate(workers):
            check_worker(w, f"draining the backlog (worker {i + 1} of {n})")
        if time.monotonic() - started > deadline_s:
            raise LoadTestError(f"{n} workers did not drain {total} events in {deadline_s:.0f} s:\n{workers[0].log_tail()}")
        if settled is None:
            assigned = _settled(workers, settings.partitions) or []
        applied = _applied(workers, settings)
        if applied is not None:
            samples.append((time.monotonic(), applied))
            if settled is None and assigned:
                settled = len(samples) - 1
        time.sleep(0.1)
    if settled is None:
        raise LoadTestError(f"the {n} workers drained the backlog before their group settled: raise --events")
    (t0, before), (t1, after) = samples[settled], samples[-1]
    if sum(before) > SETTLED_BY_AT_MOST * total:
        raise LoadTestError(f"{n} workers applied {sum(before):,.0f} of {total:,} events before their group settled "
                            f"({t0 - started:.1f} s): too little left to time, raise --events")
    elapsed = max(t1 - t0, 1e-9)
    share = sent["predictions"] / total  # events applied are predictions and joined pairs
    per_worker = [(a - b) / elapsed * share for a, b in zip(after, before)]
    return {"workers": n, "predictions_per_s": round(sum(per_worker), 1), "per_worker_predictions_per_s": [round(r, 1) for r in per_worker],
            "elapsed_s": round(elapsed, 2), "settled_s": round(t0 - started, 2), "events_before_settled": int(sum(before)),
            "assigned": assigned, "applied_again": int(sum(after) - total)}, workers


def check(settings: Settings, configs: Sequence[SimulationConfig], expected: dict[str, list[int]]) -> dict[str, Any]:
    """The models' states against what was sent, and the outputs published twice."""
    # the monitors checkpoint their state every DRIFTSTREAM_MONITOR_CHECKPOINT_S: wait
    # (a while) for the checkpoints that cover every event
    deadline = time.monotonic() + 30
    models = _model_states(settings, configs, expected)
    while not all(m["intact"] for m in models) and time.monotonic() < deadline:
        time.sleep(0.25)
        models = _model_states(settings, configs, expected)
    return {"models_intact": all(m["intact"] for m in models), "model_states": models,
            "lost": sum(m["predictions"] + m["labels"] - m["state_predictions"] - m["state_pairs"] for m in models),
            "repeated_outputs": _repeated_outputs(settings)}


def _ratio_note(run: dict[str, Any]) -> str:
    """``1.93 (>= 1.8: met)``; a ratio below target on too few cores says so."""
    if run["vs_one_worker"] is None or "target" not in run:
        return "-"
    met = "met" if run["met"] else ("NO" if run["enough_cores"] else "no, too few cores")
    return f"{run['vs_one_worker']:.2f} ({run['target'].split(' (')[0]}: {met})"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="numbers of workers, one run each (default 1 2)")
    p.add_argument("--events", type=int, help="predictions per model in the backlog (default 100,000; smoke 5,000)")
    p.add_argument("--models", type=int, default=8, help="models, spread evenly over the partitions (default 8)")
    p.add_argument("--partitions", type=int, default=4)
    args = p.parse_args(argv)
    counts = sorted(set(args.workers))
    if counts[0] < 1 or counts[-1] > args.partitions:
        p.error(f"--workers: each between 1 and --partitions ({args.partitions}), got {args.workers}")
    per_model = args.events or (5_000 if args.smoke else 100_000)
    configs = [
        SimulationConfig(events=per_model, seed=args.seed + i, model_id=model_id, id_prefix=f"s{i}-",
                         feature_drift_at=int(per_model * 0.6), concept_drift_at=int(per_model * 0.75))
        for i, model_id in enumerate(balanced_model_ids(args.models, args.partitions))
    ]
    backlog = _merged(configs, 0, per_model)
    expected: dict[str, list[int]] = {}
    for role, event in backlog:
        expected.setdefault(event.get("model_id") or "", [0, 0])[0 if role == "predictions" else 1] += 1

    runs = []
    with Harness() as h:
        broker = h.broker()
        for n in counts:
            settings = namespaced(broker, partitions=args.partitions)
            run, workers = drain(h, settings, backlog, n, deadline_s=120 if args.smoke else 900)
            runs.append({**run, **check(settings, configs, expected)})
            for worker in workers:  # the next run has the machine to itself
                worker.stop()
    cores = machine()["cores"]
    one = next((r["predictions_per_s"] for r in runs if r["workers"] == 1), None)
    for r in runs:
        ratio = r["predictions_per_s"] / one if one else None
        r["vs_one_worker"] = round(ratio, 3) if ratio is not None else None
        if r["workers"] > 1:
            r["target"] = f">= {SPEEDUP_PER_WORKER_TARGET * r['workers']:.1f} (0.9 x N, with >= {r['workers'] + 1} cores)"
            r["met"] = ratio is not None and ratio >= SPEEDUP_PER_WORKER_TARGET * r["workers"]
            r["enough_cores"] = cores >= r["workers"] + 1
    summary = {
        "script": "scaling", "smoke": args.smoke, "partitions": args.partitions, "models": args.models, "cores": cores,
        "backlog_predictions": sum(e[0] for e in expected.values()), "backlog_labels": sum(e[1] for e in expected.values()),
        "workers": counts, "runs": runs,
        "models_intact": all(r["models_intact"] for r in runs), "lost": sum(r["lost"] for r in runs),
        "applied_again": sum(r["applied_again"] for r in runs),
    }
    print_table(f"Scaling: N workers in one group on the same backlog ({cores} cores)", [
        (r["workers"], r["predictions_per_s"], _ratio_note(r), " / ".join(f"{x:,.0f}" for x in r["per_worker_predictions_per_s"]),
         r["settled_s"], r["events_before_settled"]) for r in runs
    ], ("workers", "predictions/s", "vs one worker (target)", "per worker", "settled after s", "events before"))
    print_table("Model state and repeats (monitor-state changelog, output topics)", [
        (r["workers"], r["models_intact"], r["lost"], r["applied_again"], r["repeated_outputs"]["drift-events"], r["repeated_outputs"]["alerts"])
        for r in runs
    ], ("workers", "every model intact", "lost", "applied again", "drift events twice", "alerts twice"))
    return finish(summary, args.json)


if __name__ == "__main__":
    main()
