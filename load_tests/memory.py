"""Worker memory over a long stream: resident memory must flatten, join state must stay
bounded by the join window.

A stationary simulated model streams through one worker with a short join window
(60 s of event time; 10 % of predictions never get a label and wait in the join state
until the window expires them), many windows long. The producer keeps at most a few
chunks of backlog (events the join has not taken). Every half second the worker's VmRSS
(``/proc/<pid>/status``) and its ``driftstream_table_entries`` gauges are sampled against
the events applied.

Reported: MB of RSS per million events after warm-up, the first half of the run. The
headline (target |slope| <= 0.5 MB per million events, issue #27) is the median slope of
several windows: the rest of the run cut into equal windows of events, each window's level
its median RSS, and the median of the slopes between neighbouring windows. A dip of the
allocator shorter than half a window does not move a level, and a step (an arena handed back
at one moment, at the end of warm-up or anywhere) moves one slope of seven, so neither swings
the median, while a steady creep moves every slope. Beside it: the Theil-Sen slope (the
median of the slopes between every two samples, which a step half-way through does swing),
the least-squares slope, and the least-squares slope after the first fifth; and whether the
join table's entries in the last quarter of the run stay within 1.5x of the second
quarter's. A plot of both over events is written to ``--plot`` (default: next to
``--json``), and the samples to a CSV beside it, so another method can be tried on them.

    python -m load_tests.memory [--smoke] [--json PATH] [--plot PATH] [--events N]
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import theilslopes

from streams.offline.simulate import SimulationConfig
from streams.ops.progress import Progress
from streams.runtime.worker_process import WorkerProcess
from streams.sdk.client import DriftstreamClient
from streams.settings import Settings

from .common import (
    Harness,
    LoadTestError,
    check_worker,
    consumed,
    create_topics,
    finish,
    namespaced,
    note,
    parser,
    print_table,
    publish_async,
    vm_rss_bytes,
    workload,
)

SLOPE_TARGET_MB_PER_M = 0.5
#: Windows the run after warm-up is cut into for the headline slope: eight give seven
#: slopes between neighbours, so three of them may be swung before the median is.
SLOPE_WINDOWS = 8
WINDOW_S = 60.0
MB = 1024 * 1024


class Sampler(threading.Thread):
    """Samples (events applied, RSS MB, join entries, monitor entries) every ``every_s``."""

    def __init__(self, worker: WorkerProcess, settings: Settings, every_s: float = 0.5) -> None:
        super().__init__(daemon=True, name="memory-sampler")
        self.worker, self.settings, self.every_s = worker, settings, every_s
        self.samples: list[tuple[float, float, float, float]] = []
        self.done = threading.Event()
        self.monitored = 0.0
        #: events the join took (the producer's backlog is counted against these: the
        #: monitors apply an event only once the frontier passes it, so the last events
        #: sent wait for the next ones, and counting those would stall the producer)
        self.joined = 0.0
        #: events the monitors held for the event-time frontier, at each sample
        self.held: list[float] = []

    def sample(self) -> None:
        scrape = self.worker.scrape()

        def get(name: str, **labels: str) -> float:
            wanted = set(labels.items())
            return sum(v for (n, ls), v in scrape.items() if n == name and wanted <= set(ls))

        self.monitored = get("driftstream_events_consumed_total", topic=self.settings.topic("monitor-input"))
        self.joined = sum(get("driftstream_events_consumed_total", topic=self.settings.topic(role))
                          for role in ("predictions", "ground-truth"))
        rss = vm_rss_bytes(self.worker.process.pid) / MB  # type: ignore[union-attr]
        self.samples.append((self.monitored, rss, get("driftstream_table_entries", table="join-state"),
                             get("driftstream_table_entries", table="monitor-state")))
        self.held.append(get("driftstream_monitor_held_events"))

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            try:
                self.sample()
            except (OSError, ValueError, LoadTestError):
                continue


def slope_mb_per_million(samples: list[tuple[float, float, float, float]], warmup_events: float) -> tuple[float, float, int]:
    """Least-squares slope of RSS (MB) on events (millions) after warm-up, and its std error."""
    kept = [(e / 1e6, r) for e, r, _, _ in samples if e >= warmup_events]
    if len(kept) < 3:
        return float("nan"), float("nan"), len(kept)
    x = np.array([k[0] for k in kept])
    y = np.array([k[1] for k in kept])
    if np.ptp(x) == 0:
        return float("nan"), float("nan"), len(kept)
    slope, intercept = np.polyfit(x, y, 1)
    residuals = y - (slope * x + intercept)
    stderr = float(np.sqrt(np.sum(residuals**2) / max(len(x) - 2, 1) / np.sum((x - x.mean()) ** 2)))
    return float(slope), stderr, len(kept)


def robust_slope_mb_per_million(samples: list[tuple[float, float, float, float]], warmup_events: float,
                                 max_points: int = 800) -> float:
    """Theil-Sen slope (the median of the slopes between every two samples) of RSS (MB) on
    events (millions) after warm-up: a step of the allocator (an arena grown or handed back
    at one moment) moves a least-squares line over the whole run, and this one hardly.

    >>> rows = [(e * 1e5, 100.0 + (5.0 if e >= 30 else 0.0), 0.0, 0.0) for e in range(40)]  # flat, one 5 MB step
    >>> round(robust_slope_mb_per_million(rows, 0.0), 3), round(slope_mb_per_million(rows, 0.0)[0], 1)
    (0.0, 1.4)
    """
    kept = [(e / 1e6, r) for e, r, _, _ in samples if e >= warmup_events]
    if len(kept) < 3:
        return float("nan")
    step = max(1, len(kept) // max_points)  # pairs grow as the square of the samples
    x = np.array([k[0] for k in kept[::step]])
    y = np.array([k[1] for k in kept[::step]])
    if np.ptp(x) == 0:
        return float("nan")
    return float(theilslopes(y, x)[0])


def window_levels(samples: list[tuple[float, float, float, float]], warmup_events: float,
                  windows: int = SLOPE_WINDOWS) -> list[tuple[float, float]]:
    """The samples after warm-up cut into ``windows`` equal ranges of events: each range's
    median event (millions) and median RSS (MB), for the ranges that hold a sample."""
    kept = [(e / 1e6, r) for e, r, _, _ in samples if e >= warmup_events]
    if not kept:
        return []
    x = np.array([k[0] for k in kept])
    y = np.array([k[1] for k in kept])
    edges = np.linspace(x.min(), x.max(), windows + 1)
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, windows - 1)
    return [(float(np.median(x[which == w])), float(np.median(y[which == w]))) for w in range(windows) if np.any(which == w)]


def window_median_slope_mb_per_million(samples: list[tuple[float, float, float, float]], warmup_events: float,
                                       windows: int = SLOPE_WINDOWS) -> float:
    """The median slope of several windows: the median of the slopes between neighbouring
    :func:`window_levels`. A dip shorter than half a window leaves every level where it was;
    a step moves one slope. NaN when fewer than three windows hold a sample.

    A flat run with noise and an arena of 12 MB handed back half-way: least squares and
    Theil-Sen read the step as a shrinking worker, the windows read it as flat.

    >>> rng = np.random.default_rng(7)
    >>> rows = [(e * 1e4, 400.0 + rng.normal(0, 0.5) - (12.0 if e >= 600 else 0.0), 0.0, 0.0) for e in range(1200)]
    >>> windows = window_median_slope_mb_per_million(rows, 0.0)
    >>> abs(windows) < 0.1, round(robust_slope_mb_per_million(rows, 0.0), 1), round(slope_mb_per_million(rows, 0.0)[0], 1)
    (True, -1.2, -1.5)
    """
    levels = window_levels(samples, warmup_events, windows)
    if len(levels) < 3:
        return float("nan")
    slopes = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(levels, levels[1:]) if b[0] > a[0]]
    return float(np.median(slopes)) if slopes else float("nan")


def write_samples(samples: list[tuple[float, float, float, float]], path: Path) -> None:
    """The samples as CSV (events applied, RSS MB, join-state and monitor-state entries), so
    another slope can be tried on a run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = (f"{e:.0f},{r:.1f},{j:.0f},{m:.0f}" for e, r, j, m in samples)
    path.write_text("\n".join(["events_applied,rss_mb,join_entries,monitor_entries", *rows]) + "\n")


def plot(samples: list[tuple[float, float, float, float]], warmup_events: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = [s[0] / 1e6 for s in samples]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 6))
    top.plot(events, [s[1] for s in samples], label="worker RSS")
    top.axvline(warmup_events / 1e6, color="grey", linestyle=":", label="end of warm-up")
    levels = window_levels(samples, warmup_events)
    top.plot([x for x, _ in levels], [y for _, y in levels], "o--", color="tab:red", label=f"median RSS of {SLOPE_WINDOWS} windows")
    top.set_ylabel("RSS (MB)")
    top.legend()
    bottom.plot(events, [s[2] for s in samples], label="join-state entries")
    bottom.plot(events, [s[3] for s in samples], label="monitor-state entries")
    bottom.set_ylabel("table entries")
    bottom.set_xlabel("events applied (millions: predictions + joined pairs)")
    bottom.legend()
    fig.suptitle(f"driftstream worker memory (join window {WINDOW_S:.0f} s)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


async def _stream(settings: Settings, config: SimulationConfig, chunk: int, sampler: Sampler, backlog: int) -> dict[str, int]:
    sent = {"predictions": 0, "ground-truth": 0}
    async with DriftstreamClient(settings, validate=False) as client:
        with Progress("predictions published", total=config.events) as bar:
            for start in range(0, config.events, chunk):
                items = workload(config, start, min(chunk, config.events - start))
                got = await publish_async(client, items, chunk=len(items))
                for role, n in got.items():
                    sent[role] += n
                bar.update(got["predictions"])
                while sent["predictions"] + sent["ground-truth"] - sampler.joined > backlog:
                    check_worker(sampler.worker, "streaming")
                    await asyncio.sleep(0.1)
    return sent


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--events", type=int, help="predictions (default 10,000,000, a long run at the worker's steady rate, "
                                               "about 170 join windows, 10-15 minutes here; smoke 40,000)")
    p.add_argument("--plot", type=Path, help="PNG of RSS and table entries over events")
    p.add_argument("--partitions", type=int, default=4)
    args = p.parse_args(argv)
    events = args.events or (40_000 if args.smoke else 10_000_000)
    chunk = 10_000 if args.smoke else 50_000
    # event time passes 5x faster than predictions in smoke mode so several windows pass
    config = SimulationConfig(events=events, seed=args.seed, model_id="memory-model", event_rate=200.0 if args.smoke else 1000.0,
                              feature_drift_at=None, concept_drift_at=None)
    plot_path = args.plot or (args.json.with_suffix(".png") if args.json else Path("memory.png"))

    with Harness() as h:
        broker = h.broker()
        settings = namespaced(broker, partitions=args.partitions, join_window_s=WINDOW_S)
        create_topics(settings)
        worker = h.worker(settings)
        worker.wait_ready(120)
        sampler = Sampler(worker, settings)
        h.callback(sampler.done.set)
        sampler.sample()
        sampler.start()
        note(f"streaming {events:,} predictions, {events / config.event_rate / WINDOW_S:,.0f} join windows of event time")
        started = time.monotonic()
        sent = asyncio.run(_stream(settings, config, chunk, sampler, backlog=3 * chunk))
        total = sent["predictions"] + sent["ground-truth"]
        while consumed(worker, settings, "monitor-input") < total:
            check_worker(worker, "draining")
            if time.monotonic() - started > 3600:
                raise LoadTestError(f"worker did not apply all {total} events:\n{worker.log_tail()}")
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        sampler.done.set()
        sampler.join(5)
        sampler.sample()
        samples, held = sampler.samples, sampler.held
        expired = worker.metric("driftstream_join_outcomes_total", outcome="expired")
        matched = worker.metric("driftstream_join_outcomes_total", outcome="matched")

    # the first half warms up: allocator arenas and detector windows grow in steps for a
    # while (measured: steps until ~40 % of a 2-million run, whose slope, over 1.9 million
    # events, those steps still dominated); the second half is measured
    warmup = 0.5 * total
    slope, stderr, kept = slope_mb_per_million(samples, warmup)
    robust = robust_slope_mb_per_million(samples, warmup)
    windowed = window_median_slope_mb_per_million(samples, warmup)
    slope_from_20pct, _, _ = slope_mb_per_million(samples, 0.2 * total)
    n = len(samples)
    second_q = [s[2] for s in samples[n // 4 : n // 2]] or [0.0]
    last_q = [s[2] for s in samples[3 * n // 4 :]] or [0.0]
    bounded = max(last_q) <= 1.5 * max(max(second_q), 1.0)
    plot(samples, warmup, plot_path)
    samples_path = plot_path.with_suffix(".csv")
    write_samples(samples, samples_path)
    summary = {
        "script": "memory", "smoke": args.smoke, "predictions": sent["predictions"], "labels": sent["ground-truth"],
        "events_applied": int(samples[-1][0]), "join_window_s": WINDOW_S, "event_rate_per_event_s": config.event_rate,
        "join_windows": round(events / config.event_rate / WINDOW_S, 1), "elapsed_s": round(elapsed, 1),
        "events_per_s": round(total / elapsed, 1),
        "rss_start_mb": round(samples[0][1], 1), "rss_end_mb": round(samples[-1][1], 1),
        "rss_max_mb": round(max(s[1] for s in samples), 1),
        "warmup_events": int(warmup), "samples": n, "samples_after_warmup": kept,
        "rss_mb_per_million_events": round(slope, 3), "rss_slope_stderr": round(stderr, 3),
        "rss_mb_per_million_events_windows": round(windowed, 3), "rss_slope_windows": SLOPE_WINDOWS,
        "rss_mb_per_million_events_theil_sen": round(robust, 3),
        "rss_mb_per_million_events_after_first_fifth": round(slope_from_20pct, 3),
        "join_entries_max": int(max(s[2] for s in samples)), "join_entries_end": int(samples[-1][2]),
        "join_entries_second_quarter_max": int(max(second_q)), "join_entries_last_quarter_max": int(max(last_q)),
        "monitor_entries_end": int(samples[-1][3]),
        "monitor_held_events_max": int(max(held, default=0)), "monitor_held_events_end": int(held[-1]) if held else 0,
        "join_expired": int(expired), "join_matched": int(matched),
        "plot": str(plot_path), "samples_csv": str(samples_path),
        "targets": {
            "rss_flat": {"target": f"|MB per million events| <= {SLOPE_TARGET_MB_PER_M} (median slope of {SLOPE_WINDOWS} windows)",
                         "actual": round(windowed, 3), "met": abs(windowed) <= SLOPE_TARGET_MB_PER_M},
            "join_state_bounded": {"target": "last-quarter max <= 1.5 x second-quarter max", "actual": int(max(last_q)), "met": bounded},
        },
    }
    print_table("Worker memory", [
        ("events applied", summary["events_applied"]), ("join windows of event time", summary["join_windows"]),
        ("RSS start / end / max MB", f"{summary['rss_start_mb']} / {summary['rss_end_mb']} / {summary['rss_max_mb']}"),
        (f"RSS MB per million events after warm-up, median slope of {SLOPE_WINDOWS} windows (the target's)", f"{windowed:.3f}"),
        ("RSS MB per million events after warm-up, Theil-Sen", f"{robust:.3f}"),
        ("RSS MB per million events after warm-up, least squares", f"{slope:.3f} +- {stderr:.3f}"),
        ("join-state entries max / end", f"{summary['join_entries_max']} / {summary['join_entries_end']}"),
        ("events held for the event-time frontier max / end", f"{summary['monitor_held_events_max']} / {summary['monitor_held_events_end']}"),
        ("RSS flat (target)", summary["targets"]["rss_flat"]["met"]), ("join state bounded", bounded), ("plot", str(plot_path)),
    ], ("figure", "value"))
    return finish(summary, args.json)


if __name__ == "__main__":
    main()
