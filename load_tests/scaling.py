"""One worker, then two workers in the same consumer group: throughput of each, the split
of partitions, and every model's state intact after the rebalance.

Several simulated models (different ``model_id``) share topics of 4 partitions.

1. One worker drains a pre-published first half (its rate is timed as in ``throughput``).
2. A second worker joins the group; once both report disjoint assignments on ``/ready``
   (the rebalance time is from its start to then), the second half is published and the
   two drain it together (timed from the last sample before either applied an event to the last; the
   publisher runs alongside, its rate is reported so a producer-bound run shows).
3. Every model's final monitor state, read from the ``monitor-state`` changelog, must count
   exactly the predictions and labels sent for it; the events the two workers applied
   beyond the second half's (applied again after the rebalance) and the drift events and
   alerts published more than once (same ``event_id``) are reported.

    python -m load_tests.scaling [--smoke] [--json PATH] [--events N] [--models M]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from schemas import codec
from streams.exceptions import DriftstreamError
from streams.offline.simulate import SimulationConfig
from streams.pipeline.monitor import model_key
from streams.settings import Settings

from .common import (
    Harness,
    Item,
    LoadTestError,
    check_worker,
    consumed,
    count_roles,
    create_topics,
    decoded,
    finish,
    follow,
    namespaced,
    note,
    parser,
    pipeline_rate,
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


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--events", type=int, help="predictions per model per phase (default 100,000; smoke 3,000)")
    p.add_argument("--models", type=int, default=6)
    p.add_argument("--partitions", type=int, default=4)
    args = p.parse_args(argv)
    per_phase = args.events or (3_000 if args.smoke else 100_000)
    configs = [
        SimulationConfig(events=2 * per_phase, seed=args.seed + i, model_id=f"scale-{i}", id_prefix=f"s{i}-",
                         feature_drift_at=int(per_phase * 1.2), concept_drift_at=int(per_phase * 1.5))
        for i in range(args.models)
    ]
    first, second = _merged(configs, 0, per_phase), _merged(configs, per_phase, per_phase)
    expected: dict[str, list[int]] = {}
    for role, event in first + second:
        model = event.get("model_id") or ""
        expected.setdefault(model, [0, 0])[0 if role == "predictions" else 1] += 1

    with Harness() as h:
        broker = h.broker()
        settings = namespaced(broker, partitions=args.partitions)
        create_topics(settings)
        sent1 = publish(settings, first, what="first-half events published")
        total1 = sum(sent1.values())
        one = h.worker(settings)
        trace = follow(one, {"join": lambda: decoded(one, settings), "monitored": lambda: consumed(one, settings, "monitor-input")},
                       lambda v: v["monitored"] >= total1, deadline_s=600, what="the first half through one worker", poll_s=0.05)
        rate1 = pipeline_rate(trace, "join", sent1["predictions"])["predictions_per_s"]
        assigned_alone = assigned_partitions(one)

        note("second worker joins the group")
        two = h.worker(settings)
        join_started = time.monotonic()
        deadline = join_started + 120
        while True:
            a1, a2 = assigned_partitions(one) if one.alive() else [], assigned_partitions(two) if two.alive() else []
            inputs1 = {x for x in a1 if "predictions" in x}
            inputs2 = {x for x in a2 if "predictions" in x}
            if inputs1 and inputs2 and not inputs1 & inputs2:
                break
            if time.monotonic() > deadline or not (one.alive() and two.alive()):
                raise LoadTestError(f"no rebalance to two workers: {a1} / {a2}\n{one.log_tail()}\n{two.log_tail()}")
            time.sleep(0.2)
        rebalance_s = time.monotonic() - join_started

        base1 = consumed(one, settings, "monitor-input")
        total2 = sum(count_roles(second).values())
        published: dict[str, Any] = {}

        def publisher() -> None:
            t = time.monotonic()
            published["sent"] = publish(settings, second, what="second-half events published")
            published["s"] = time.monotonic() - t

        thread = threading.Thread(target=publisher, daemon=True)
        thread.start()
        samples2: list[tuple[float, float, float]] = []
        deadline = time.monotonic() + (120 if args.smoke else 600)
        while True:
            try:
                samples2.append((time.monotonic(), consumed(one, settings, "monitor-input") - base1, consumed(two, settings, "monitor-input")))
            except (OSError, DriftstreamError):
                pass
            if samples2 and samples2[-1][1] + samples2[-1][2] >= total2:
                break
            check_worker(one, "draining the second half (worker 1)")
            check_worker(two, "draining the second half (worker 2)")
            if time.monotonic() > deadline:
                raise LoadTestError(f"two workers did not drain the second half:\n{one.log_tail()}\n{two.log_tail()}")
            time.sleep(0.05)
        thread.join(60)
        moving = next(i for i, s in enumerate(samples2) if s[1] + s[2] > 0)
        t0, d1, d2 = samples2[max(moving - 1, 0)]  # the last sample before: as pipeline_rate
        t1, e1, e2 = samples2[-1]
        elapsed2 = max(t1 - t0, 1e-9)
        share = published["sent"]["predictions"] / total2
        rate2 = (total2 - d1 - d2) / elapsed2 * share
        per_worker = [(e1 - d1) / elapsed2 * share, (e2 - d2) / elapsed2 * share]
        split = [assigned_partitions(one), assigned_partitions(two)]
        # the monitors checkpoint their state every DRIFTSTREAM_MONITOR_CHECKPOINT_S: wait
        # (a while) for the checkpoints that cover every event
        deadline = time.monotonic() + 30
        models = _model_states(settings, configs, expected)
        while not all(m["intact"] for m in models) and time.monotonic() < deadline:
            time.sleep(0.25)
            models = _model_states(settings, configs, expected)
        one.stop()
        two.stop()
        repeated = _repeated_outputs(settings)
    summary = {
        "script": "scaling", "smoke": args.smoke, "partitions": args.partitions, "models": args.models,
        "one_worker_predictions_per_s": round(rate1, 1),
        "two_workers_predictions_per_s": round(rate2, 1),
        "two_workers_per_worker_predictions_per_s": [round(r, 1) for r in per_worker],
        "speedup": round(rate2 / rate1, 3) if rate1 else None,
        "publisher_predictions_per_s": round(published["sent"]["predictions"] / published["s"], 1),
        "rebalance_s": round(rebalance_s, 2),
        "assigned_one_worker": assigned_alone,
        "assigned_two_workers": split,
        "models_intact": all(m["intact"] for m in models),
        "model_states": models,
        "lost": sum(m["predictions"] + m["labels"] - m["state_predictions"] - m["state_pairs"] for m in models),
        "applied_again": int(e1 + e2 - total2),
        "repeated_outputs": repeated,
    }
    print_table("Scaling (predictions/s)", [
        ("one worker", rate1, ""), ("two workers, together", rate2, f"speedup {summary['speedup']}"),
        ("  worker 1", per_worker[0], ", ".join(x for x in split[0] if "predictions" in x)),
        ("  worker 2", per_worker[1], ", ".join(x for x in split[1] if "predictions" in x)),
        ("publisher (second half)", summary["publisher_predictions_per_s"], "the two-worker rate cannot exceed it"),
    ], ("run", "predictions/s", "note"))
    print_table("Model state after the rebalance (monitor-state changelog)",
                [(m["model_id"], m["predictions"], m["state_predictions"], m["labels"], m["state_pairs"], m["intact"]) for m in models],
                ("model", "predictions sent", "in state", "labels sent", "pairs in state", "intact"))
    print_table("Repeats", [("events applied again after the rebalance", summary["applied_again"]),
                            *((f"{role} published more than once", n) for role, n in repeated.items())],
                ("what", "count"))
    return finish(summary, args.json)


if __name__ == "__main__":
    main()
