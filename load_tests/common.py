"""What every load test shares: a harness that owns (and always stops) what it starts,
settings in a fresh namespace, workload generation, publishing, metric polling, output.

Every script's ``main(argv)`` parses ``--smoke`` and ``--json``, runs inside a
:class:`Harness` (the embedded broker, workers and helper processes it starts are
stopped on exit, on an exception, on Ctrl-C and on SIGTERM), prints a table and returns
its JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import numpy as np
import orjson

from streams.exceptions import DriftstreamError
from streams.offline.simulate import Simulation, SimulationConfig
from streams.ops.broker import EmbeddedBroker
from streams.ops.progress import Progress
from streams.ops.processes import terminate_group
from streams.runtime.topics import ensure_topics
from streams.runtime.worker_process import WorkerProcess
from streams.sdk.client import DriftstreamClient
from streams.settings import Settings

Item = tuple[str, dict[str, Any]]

#: Extra numeric features so a prediction carries 10 numeric and 2 categorical features.
EXTRA_NUMERIC = ("f5", "f6", "f7", "f8", "f9", "f10")


class LoadTestError(DriftstreamError):
    """A load test could not run (not: a target was missed; that is a result)."""


# -- process ownership ---------------------------------------------------------------------
class Harness(contextlib.ExitStack):
    """``with Harness() as h:`` — brokers, workers and subprocesses started through ``h``
    are stopped when the block ends, whatever ends it; SIGTERM is turned into
    ``KeyboardInterrupt`` for the duration so a ``kill`` also cleans up."""

    def __init__(self) -> None:
        super().__init__()
        self._previous: Any = None

    def __enter__(self) -> Harness:
        super().__enter__()
        if _in_main_thread():
            self._previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        try:
            # a second Ctrl-C while cleaning up must not leave processes behind
            with _interrupts_deferred() as received:
                suppressed = bool(super().__exit__(exc_type, exc, tb))
            if received and exc_type is None:
                raise KeyboardInterrupt(f"signal {received[0]} during cleanup")
            return suppressed
        finally:
            if self._previous is not None:
                signal.signal(signal.SIGTERM, self._previous)

    def broker(self, port: int | None = None) -> EmbeddedBroker:
        broker = EmbeddedBroker(port=port)
        self.callback(broker.stop)
        return broker.start()

    def worker(self, settings: Settings, env: dict[str, str] | None = None) -> WorkerProcess:
        """A started worker, stopped (SIGTERM, then SIGKILL) when the harness closes."""
        worker = WorkerProcess(settings, env=env)
        self.callback(_stop_worker, worker)
        return worker.start()

    def popen(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """A subprocess in its own session, killed with its children when the harness closes."""
        process = subprocess.Popen(list(args), start_new_session=True, **kwargs)
        self.callback(terminate_group, process, 5.0)
        return process


def _stop_worker(worker: WorkerProcess) -> None:
    worker.stop(timeout_s=10)
    with contextlib.suppress(OSError):
        worker.log_path.unlink()


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _interrupts_deferred() -> Any:
    received: list[int] = []
    if not _in_main_thread():
        yield received
        return
    old_int = signal.signal(signal.SIGINT, lambda s, f: received.append(s))
    old_term = signal.signal(signal.SIGTERM, lambda s, f: received.append(s))
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


# -- settings ------------------------------------------------------------------------------
def await_result(process: subprocess.Popen, out: Path, log_path: Path, what: str, deadline_s: float) -> dict[str, Any]:
    """The JSON ``out`` that a contender subprocess writes once it has seen every record
    (atomically, by a rename), read and the process stopped; a :class:`LoadTestError` with
    the end of its log if it exits first or takes longer than ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    with Progress(f"s waiting for {what}", every_s=2.0) as bar:
        while not out.exists():
            if process.poll() is not None:
                raise LoadTestError(f"{what} exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise LoadTestError(f"{what} did not see every record within {deadline_s:.0f} s")
            time.sleep(0.25)  # a subprocess's file: polled, with a deadline
            bar.update(0.25)
    got = orjson.loads(out.read_bytes())
    terminate_group(process, 5.0)
    return got


def namespaced(broker: EmbeddedBroker, **changes: Any) -> Settings:
    """Settings for ``broker`` with a fresh uuid topic prefix and consumer group."""
    ns = uuid.uuid4().hex[:10]
    # only these come from the environment: DRIFTSTREAM_LOG_LEVEL=INFO shows recoveries,
    # DRIFTSTREAM_GC_THRESHOLD=700 (CPython's default) and DRIFTSTREAM_MALLOC_ARENA_MAX=0
    # (glibc's) measure what the tunings gain, and the micro-batch and checkpoint timings compare
    # batch lengths, hand-over policies, fetch waits and checkpoint intervals
    passed = ("DRIFTSTREAM_LOG_LEVEL", "DRIFTSTREAM_GC_THRESHOLD", "DRIFTSTREAM_MALLOC_ARENA_MAX",
              "DRIFTSTREAM_BATCH_WITHIN_S", "DRIFTSTREAM_MONITOR_BATCH_WITHIN_S", "DRIFTSTREAM_MONITOR_CHECKPOINT_S",
              "DRIFTSTREAM_BATCH_WHEN_CAUGHT_UP", "DRIFTSTREAM_FETCH_MAX_WAIT_MS")
    settings = Settings.from_env({k: v for k, v in os.environ.items() if k in passed}).for_embedded_broker(broker.url)
    return settings.replace(topic_prefix=f"lt{ns}.", app_id=f"lt-{ns}", **changes)


def create_topics(settings: Settings) -> None:
    asyncio.run(ensure_topics(settings))


# -- workloads -----------------------------------------------------------------------------
def with_extra_features(preds: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Add six standard-normal numeric features (10 numeric + 2 categorical in all)."""
    rng = np.random.default_rng([seed, 7])
    extra = np.round(rng.normal(0.0, 1.0, (len(preds), len(EXTRA_NUMERIC))), 4).tolist()
    for pred, values in zip(preds, extra):
        pred["features"].update(zip(EXTRA_NUMERIC, values))
    return preds


def workload(config: SimulationConfig, start_index: int = 0, count: int | None = None) -> list[Item]:
    """Predictions (10 numeric + 2 categorical features) and their labels, in event time."""
    preds, labels = Simulation(config).generate(start_index, count)
    with_extra_features(preds, config.seed + start_index)
    merged = [(p["timestamp"], 0, "predictions", p) for p in preds]
    merged += [(lab["timestamp"], 1, "ground-truth", lab) for lab in labels]
    merged.sort(key=lambda item: (item[0], item[1]))
    return [(role, event) for _, _, role, event in merged]


def multi_model_workload(configs: Sequence[SimulationConfig]) -> list[Item]:
    """Several models' workloads merged in event time."""
    merged = [
        (event["timestamp"], role != "predictions", i, role, event)
        for cfg in configs
        for i, (role, event) in enumerate(workload(cfg))
    ]
    merged.sort(key=lambda item: item[:3])
    return [(role, event) for *_, role, event in merged]


def count_roles(items: Iterable[Item]) -> dict[str, int]:
    counts = {"predictions": 0, "ground-truth": 0}
    for role, _ in items:
        counts[role] += 1
    return counts


async def publish_async(client: DriftstreamClient, items: Sequence[Item], chunk: int = 5000, progress: Progress | None = None) -> dict[str, int]:
    return await client.publish_in_order(items, chunk, progress)


def publish(settings: Settings, items: Sequence[Item], chunk: int = 5000, what: str = "events published") -> dict[str, int]:
    """Publish ``(role, event)`` pairs with the SDK (500 events per record), showing progress.

    Events are generated valid, so the SDK's client-side validation is skipped here to
    make pre-publishing quick; the worker validates every event anyway.
    """

    async def run() -> dict[str, int]:
        async with DriftstreamClient(settings, validate=False) as client:
            with Progress(what, total=len(items)) as bar:
                return await publish_async(client, items, chunk, bar)

    return asyncio.run(run())


# -- observing a worker --------------------------------------------------------------------
def agent_crash(worker: WorkerProcess) -> str | None:
    """The first line of the worker's log that says a Faust agent crashed (the process lives
    on, but that agent no longer processes anything), or ``None``."""
    try:
        text = worker.log_path.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if "Crashed reason=" in line:
            return line.strip()
    return None


def check_worker(worker: WorkerProcess, what: str) -> None:
    """Raise if the worker exited or one of its agents crashed."""
    if not worker.alive():
        raise LoadTestError(f"worker exited while {what}:\n{worker.log_tail()}")
    crash = agent_crash(worker)
    if crash is not None:
        raise LoadTestError(f"a worker agent crashed while {what}: {crash}\n{worker.log_tail()}")


def consumed(worker: WorkerProcess, settings: Settings, role: str) -> float:
    """``driftstream_events_consumed_total`` of a topic role (``monitor-input``: predictions
    plus joined pairs applied by the monitors; ``predictions``: decoded by the join)."""
    return worker.metric("driftstream_events_consumed_total", topic=settings.topic(role))


def decoded(worker: WorkerProcess, settings: Settings) -> float:
    """Events the join decoded, predictions and labels: a rate timed from the first
    prediction alone would leave out the labels a worker happened to read first."""
    return consumed(worker, settings, "predictions") + consumed(worker, settings, "ground-truth")


@dataclass
class Trace:
    """Samples ``(monotonic s, values...)`` of a worker taken while waiting."""

    names: tuple[str, ...]
    samples: list[tuple[float, ...]] = field(default_factory=list)

    def first_moving(self, name: str) -> tuple[float, float] | None:
        """``(time, value)`` of the first sample where ``name`` is above zero."""
        i = self.names.index(name) + 1
        for sample in self.samples:
            if sample[i] > 0:
                return sample[0], sample[i]
        return None


def follow(
    worker: WorkerProcess,
    probes: dict[str, Callable[[], float]],
    done: Callable[[dict[str, float]], bool],
    deadline_s: float,
    what: str,
    *,
    progress_key: str | None = None,
    total: int | None = None,
    poll_s: float = 0.1,
) -> Trace:
    """Poll ``probes`` until ``done(values)``; return the trace. Raises naming ``what`` on
    timeout or if the worker dies (with its log)."""
    trace = Trace(tuple(probes))
    start = time.monotonic()
    shown = 0
    with Progress(what, total=total) as bar:
        while True:
            check_worker(worker, f"waiting for {what}")
            now = time.monotonic()
            try:
                values = {name: probe() for name, probe in probes.items()}
            except (OSError, ValueError, DriftstreamError):
                values = None
            if values is not None:
                trace.samples.append((now, *values.values()))
                if progress_key is not None:
                    current = int(values[progress_key])
                    bar.update(current - shown)
                    shown = current
                if done(values):
                    return trace
            if now - start > deadline_s:
                raise LoadTestError(f"timed out after {deadline_s:.0f} s waiting for {what}; worker log:\n{worker.log_tail()}")
            time.sleep(poll_s)


def pipeline_rate(trace: Trace, start_name: str, predictions: int) -> dict[str, float]:
    """Predictions per second through the whole pipeline: from the last sample before
    ``start_name`` (the join, :func:`decoded`) moved to the trace's last sample (:func:`follow`
    stops once the monitors have applied everything). Starting one sample early errs by at
    most one poll interval, on the slow side, and still times a run that a single poll
    interval held whole."""
    i = trace.names.index(start_name) + 1
    moving = next((k for k, sample in enumerate(trace.samples) if sample[i] > 0), None)
    if moving is None:
        raise LoadTestError("the worker never processed anything")
    if moving == 0:
        raise LoadTestError("the worker had processed events before the first sample: start following it earlier")
    t0 = trace.samples[moving - 1][0]
    elapsed = max(trace.samples[-1][0] - t0, 1e-9)
    return {"elapsed_s": round(elapsed, 3), "predictions_per_s": round(predictions / elapsed, 1)}


def vm_rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` from ``/proc/<pid>/status`` (psutil is not a dependency)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LoadTestError(f"no VmRSS in /proc/{pid}/status")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), nearest-rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


# -- command line and output ---------------------------------------------------------------
def parser(doc: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)
    p.add_argument("--smoke", action="store_true", help="a run of seconds, for CI")
    p.add_argument("--json", type=Path, help="write the machine-readable summary here")
    p.add_argument("--seed", type=int, default=7)
    return p


def machine() -> dict[str, Any]:
    """Cores, memory and CPU model of this machine (from /proc)."""
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "cores": os.cpu_count(), "memory_gib": memory, "cpu": model,
        "python": platform.python_version(), "platform": platform.platform(),
    }


def fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def print_table(title: str, rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    cells = [[str(h) for h in header]] + [[fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if n and i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def finish(summary: dict[str, Any], path: Path | None) -> dict[str, Any]:
    summary.setdefault("machine", machine())
    summary.setdefault("finished_at", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return summary


def rng(seed: int) -> random.Random:
    return random.Random(seed)


def note(message: str) -> None:
    """A progress note on stderr (the table and JSON go to stdout and ``--json``)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
