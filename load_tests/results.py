"""Run every load test (full or ``--smoke``), collect their JSON summaries, write RESULTS.md.

    python -m load_tests.results [--smoke] [--only NAME ...] [--out load_tests/RESULTS.md]

Each script runs in its own subprocess (a crash or hang in one does not stop the others);
its summary JSON and plot go to ``--artifacts`` (default ``load_tests/results/``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from .common import fmt, machine
from .throughput import runs_note

HERE = Path(__file__).parent
SCRIPTS = ("bench_detectors", "bench_backtest", "bench_detection", "throughput", "latency", "memory", "memory_models", "scaling", "faults",
           "startup")


def _available(name: str) -> bool:
    return importlib.util.find_spec(f"load_tests.{name}") is not None


def run_all(names: Sequence[str], smoke: bool, artifacts: Path, timeout_s: float) -> dict[str, Any]:
    artifacts.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for name in names:
        if not _available(name):
            results[name] = {"error": "script not present"}
            continue
        out = artifacts / f"{name}.json"
        out.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", f"load_tests.{name}", "--json", str(out)] + (["--smoke"] if smoke else [])
        print(f"== {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            done = subprocess.run(cmd, timeout=timeout_s, stdout=subprocess.PIPE, stderr=None, check=False)
            error = None if done.returncode == 0 else f"exit code {done.returncode}"
            sys.stdout.write(done.stdout.decode(errors="replace"))
        except subprocess.TimeoutExpired:
            error = f"timed out after {timeout_s:.0f} s"
        summary = orjson.loads(out.read_bytes()) if out.exists() else {}
        if error:
            summary["error"] = error
        for key in ("plot", "samples_csv"):  # the committed summary names no machine's folders
            if summary.get(key):
                summary[key] = os.path.relpath(summary[key], artifacts)
        summary["wall_s"] = round(time.monotonic() - started, 1)
        summary["ran_at"] = time.strftime("%Y-%m-%d %H:%M %Z")
        out.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
        results[name] = summary
    return results


def earlier(artifacts: Path, name: str) -> dict[str, Any]:
    """The summary a previous run of ``name`` left in ``artifacts`` (empty if none)."""
    path = artifacts / f"{name}.json"
    return orjson.loads(path.read_bytes()) if path.exists() else {}


def _after(total: float, before: float | None) -> float | None:
    return None if before is None else round(total - before, 3)


def _median_after(totals: list[float], befores: list[float | None]) -> float | None:
    parts = [t - b for t, b in zip(totals, befores) if b is not None]
    return round(statistics.median(parts), 3) if parts else None


def _target(targets: dict[str, Any], name: str) -> tuple[str, Any]:
    """A figure's target and whether it was met, blank where the summary has none (an
    older run's)."""
    t = targets.get(name)
    return (t["target"], t["met"]) if t else ("", "")


def _row(label: str, value: Any, target: str = "", met: Any = "") -> str:
    cells = (label, fmt(value), target, fmt(met) if met != "" else "")
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _plot_link(plot: str, artifacts: Path, out_dir: Path) -> str:
    """A link to a plot, relative to RESULTS.md (a summary names it relative to the artifacts
    folder), so the file names no machine's folders."""
    path = os.path.relpath(artifacts / plot, out_dir).replace(os.sep, "/")
    return f"[{path}]({path})"


def _runs(run: dict[str, Any] | None) -> str:
    note = runs_note(run)
    return f" ({note})" if note else ""


def _peer_rows(t: dict[str, Any]) -> list[str]:
    """The foreign path's peers (:mod:`load_tests.peers`), measured in the same rounds."""
    peers = t.get("foreign_peers")
    if not peers:
        return []
    tg, rounds = t["targets"], peers["rounds_per_s"]

    def of(name: str) -> str:
        return " (median of " + ", ".join(f"{r:,.0f}" for r in rounds[name]) + ")" if len(rounds[name]) > 1 else ""

    return [
        _row("throughput: Quix Streams app, same job (join in its state store) predictions/s" + of("quix"), peers["quix_per_s"]),
        _row("throughput: no-op Quix Streams app predictions/s" + of("quix_noop"), peers["quix_noop_per_s"]),
        _row("throughput: plain aiokafka loop, same job (state in memory) predictions/s" + of("loop"), peers["aiokafka_loop_per_s"]),
        _row("throughput: foreign / Quix Streams app", t["foreign_vs_quix"], tg["foreign_vs_quix"]["target"], tg["foreign_vs_quix"]["met"]),
        _row("throughput: foreign / plain aiokafka loop", t["foreign_vs_aiokafka_loop"], tg["foreign_vs_aiokafka_loop"]["target"],
             tg["foreign_vs_aiokafka_loop"]["met"]),
    ]


def _scaling_rows(sc: dict[str, Any]) -> list[str]:
    """Per number of workers: the rate, its ratio to one worker's in the same run against
    0.9 x N (noted where the machine had fewer cores than N workers and the broker need),
    the split of the input partitions; then state intact and repeats over all runs."""
    rows = []
    for r in sc["runs"]:
        n, where = r["workers"], f"{r['workers']} worker{'s' if r['workers'] > 1 else ''} in one group"
        rows.append(_row(f"scaling: {where}, predictions/s (the same pre-published backlog)", r["predictions_per_s"]))
        if "target" in r:
            cores = "" if r["enough_cores"] else f"; this machine has {sc['cores']} cores, {n} workers and the broker want {n + 1}: as it is"
            rows += [_row(f"scaling: {where} / one worker (the same run{cores})", r["vs_one_worker"], r["target"], r["met"]),
                     _row(f"scaling: {where}, input partitions per worker",
                          " / ".join(",".join(x.rsplit(".", 1)[-1] for x in a if ".predictions[" in x) for a in r["assigned"]))]
    repeats = [r["repeated_outputs"] for r in sc["runs"]]
    return rows + [
        _row("scaling: every model's state intact, every run", sc["models_intact"], "yes", sc["models_intact"]),
        _row("scaling: events applied again (all runs)", sc["applied_again"]),
        _row("scaling: drift events / alerts published more than once (all runs)",
             f"{sum(x['drift-events'] for x in repeats)} / {sum(x['alerts'] for x in repeats)}"),
    ]


def _memory_slope_rows(mem: dict[str, Any]) -> list[str]:
    """The headline slope with the target (the median slope of several windows in a summary
    that has it), the others beside it."""
    tg = mem["targets"]["rss_flat"]
    if "rss_mb_per_million_events_windows" in mem:
        return [_row(f"memory: RSS MB per million events after warm-up (median slope of {mem['rss_slope_windows']} windows)",
                     mem["rss_mb_per_million_events_windows"], tg["target"], tg["met"]),
                _row("memory: RSS MB per million events after warm-up (Theil-Sen)", mem["rss_mb_per_million_events_theil_sen"]),
                _row("memory: RSS MB per million events after warm-up (least squares)", mem["rss_mb_per_million_events"])]
    return [_row("memory: RSS MB per million events after warm-up (Theil-Sen)", mem["rss_mb_per_million_events_theil_sen"], tg["target"], tg["met"]),
            _row("memory: RSS MB per million events after warm-up (least squares)", mem["rss_mb_per_million_events"])]


def render(results: dict[str, Any], smoke: bool, artifacts: Path = HERE / "results", out_dir: Path = HERE) -> str:
    m = machine()
    lines = [
        "# driftstream load test results", "",
        "Generated by `python -m load_tests.results" + (" --smoke" if smoke else "") + "`; do not edit by hand.", "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')} (each script's own run: see Scripts)",
        f"- mode: {'smoke (seconds-long runs: sanity, not performance)' if smoke else 'full'}",
        f"- machine: {m['cores']} cores, {m['memory_gib']} GiB memory, {m['cpu']}",
        f"- python {m['python']} on {m['platform']}", "",
        "| figure | value | target | met |", "|---|---|---|---|",
    ]
    t = results.get("throughput", {})
    if t and "error" not in t:
        tg = t["targets"]
        lines += [
            _row("throughput: SDK predictions/s per worker" + _runs(t.get("sdk_run")), t["sdk_predictions_per_s"], tg["sdk_predictions_per_s"]["target"], tg["sdk_predictions_per_s"]["met"]),
            _row("throughput: raw aiokafka predictions/s (no decoding)", t["raw_aiokafka_per_s"]),
            _row("throughput: raw aiokafka predictions/s (orjson)", t["raw_aiokafka_json_per_s"]),
            # its target of 0.30 was retired by #27: no pipeline's least work reaches it (below)
            _row("throughput: SDK / raw aiokafka", t["sdk_vs_raw_aiokafka"]),
            *([_row("throughput: the stages alone (in process, no Kafka) predictions/s", t["stages_in_process_per_s"], *_target(tg, "stages_in_process_per_s")),
               _row("throughput: the stages alone, microseconds per prediction", t["stages_us_per_prediction"]),
               _row("throughput: SDK / the stages alone (the same run)", t["sdk_vs_stages_in_process"], *_target(tg, "sdk_vs_stages_in_process"))]
              if "stages_in_process_per_s" in t else []),
            *([_row("throughput: the least work any pipeline does (orjson, a dict join, river DDM and ADWIN; in process, no Kafka) predictions/s",
                    t["minimum_in_process_per_s"]),
               _row("throughput: that least work / raw aiokafka (an upper bound of SDK / raw aiokafka)", t["minimum_vs_raw_aiokafka"])]
              if "minimum_in_process_per_s" in t else []),
            *([_row("throughput: SDK publisher, async client over lists, predictions/s", t["sdk_publish_per_s"],
                    tg["sdk_publish_per_s"]["target"], tg["sdk_publish_per_s"]["met"]),
               _row("throughput: SDK publisher, sync client, microseconds per publish_prediction (queued)", t["publisher"]["sync_us_per_call"]),
               _row("throughput: SDK publisher, sync client one event per call, predictions/s with the flush",
                    t["publisher"]["sync_predictions_per_s_with_flush"])] if "publisher" in t else []),
            _row("throughput: foreign (kcat) predictions/s per worker" + _runs(t.get("foreign_run")), t["foreign_predictions_per_s"]),
            _row("throughput: no-op Faust agent predictions/s", t["faust_noop_per_s"]),
            _row("throughput: foreign / no-op Faust", t["foreign_vs_faust_noop"], tg["foreign_vs_faust_noop"]["target"], tg["foreign_vs_faust_noop"]["met"]),
            *_peer_rows(t),
        ]
    lat = results.get("latency", {})
    if lat and "error" not in lat:
        for run in lat.get("runs", [lat]):
            where = f", {run.get('partitions', '?')} partitions, {run.get('idle_partitions', 0)} idle"
            lines += [_row(f"latency: alerts measured at {fmt(lat['rate_per_s'])}/s, {lat['models']} models{where}", run["alerts"], run["target"].get("alerts", "")),
                      _row(f"latency: p50 s{where}", run["p50_s"]), _row(f"latency: p99 s{where}", run["p99_s"], run["target"].get("p99_s", "< 0.5"), run["target"]["met"])]
    mem = results.get("memory", {})
    if mem and "error" not in mem:
        tg = mem["targets"]
        lines += [_row("memory: events applied", mem["events_applied"]),
                  *_memory_slope_rows(mem),
                  _row("memory: join-state entries (max / end)", f"{mem['join_entries_max']} / {mem['join_entries_end']}", tg["join_state_bounded"]["target"], tg["join_state_bounded"]["met"])]
        if mem.get("plot"):
            lines.append(_row("memory: plot", _plot_link(mem["plot"], artifacts, out_dir)))
    per_model = results.get("memory_models", {})
    if per_model and "error" not in per_model:
        lines.append(_row(f"memory: RSS bytes per model ({per_model['models']:,} models held, "
                          f"{per_model['events_per_model']} predictions each)", per_model["rss_bytes_per_model"]))
    sc = results.get("scaling", {})
    if sc and "error" not in sc and "runs" in sc:
        lines += _scaling_rows(sc)
    elif sc and "error" not in sc:  # a summary from before --workers (one worker, then a second joining)
        lines += [_row("scaling: one worker predictions/s", sc["one_worker_predictions_per_s"]),
                  _row("scaling: two workers predictions/s", sc["two_workers_predictions_per_s"]),
                  _row("scaling: partitions split", " / ".join(",".join(x for x in a if "predictions" in x) for a in sc["assigned_two_workers"])),
                  _row("scaling: every model's state intact", sc["models_intact"], "yes", sc["models_intact"])]
        if "repeated_outputs" in sc:
            lines += [_row("scaling: events applied again after the rebalance", sc["applied_again"]),
                      _row("scaling: drift events / alerts published more than once",
                           f"{sc['repeated_outputs']['drift-events']} / {sc['repeated_outputs']['alerts']}")]
    st = results.get("startup", {})
    if st and "error" not in st:
        tg, loading = st["targets"], st["until_first_log_line_s"]
        restarts = len(st["restart_s"])
        relaunched = [x for x in loading[1:] if x is not None]
        lines += [_row("start-up: s from launching a worker to its first event applied (embedded broker)", st["launch_s"],
                       tg["launch_s"]["target"], tg["launch_s"]["met"]),
                  _row(f"start-up: s from a SIGKILL restart (same instance id) to its first event applied, max of {restarts} "
                       f"(median {fmt(st['restart_median_s'])})", st["restart_max_s"], tg["restart_s"]["target"], tg["restart_s"]["met"]),
                  _row("start-up: s of those before the worker's first log line (loading Python and its modules), launch / "
                       "restarts' median", f"{fmt(loading[0])} / {fmt(statistics.median(relaunched)) if relaunched else '-'}"),
                  _row("start-up: s from that first log line to the first event applied (the worker's own start), launch / "
                       "restarts' median", f"{fmt(_after(st['launch_s'], loading[0]))} / "
                       f"{fmt(_median_after(st['restart_s'], loading[1:]))}"),
                  _row("start-up: the machine's 1-minute load average at the end of the run", st["load_average_1m"])]
    det = results.get("bench_detection", {})
    if det and "error" not in det:
        lines += ["", f"## Detection quality ({det['seeds']} seeds; delays in predictions, labels {det['label_delay']} late and "
                      f"{det['label_missing']:.0%} missing; river alone: ADWIN() and DDM() on the same error stream)", "",
                  "| scenario | found | delay p50 | delay p90 | river ADWIN p50 | river DDM p50 | ratio | incidents per drift | false incidents | met |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in det["scenarios"]:
            false = f"{fmt(r['false_per_100k'])} per 100k" if "false_per_100k" in r else fmt(r["false_incidents"])
            per_drift = ",".join(map(str, r["incidents_per_drift"])) if "incidents_per_drift" in r else "-"
            found = f"{r['detected']}/{r['seeds']}" if "detected" in r else "-"
            lines.append(f"| {r['scenario']} | {found} | {fmt(r.get('delay_median'))} | {fmt(r.get('delay_p90'))} | "
                         f"{fmt(r.get('river_adwin_median'))} | {fmt(r.get('river_ddm_median'))} | {fmt(r.get('ratio'))} | "
                         f"{per_drift} | {false} | {fmt(r['met'])} |")
        for name, t in det["targets"].items():
            lines.append(f"| target: {name} | | | | | | {t['target']} | | | {fmt(t['met'])} |")
    lines += ["", "## Faults", "", "| fault | events in | accounted | lost | duplicated outputs | recovery s | ok | note |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results.get("faults", {}).get("faults", {}).items():
        note = r.get("outcome") or (r.get("error", "").splitlines() or [""])[0][:120]
        lines.append(f"| {name} | {fmt(r.get('events_in'))} | {fmt(r.get('accounted'))} | {fmt(r.get('lost'))} | "
                     f"{fmt(r.get('duplicated_outputs'))} | {fmt(r.get('recovery_s'))} | {fmt(r.get('ok'))} | {note} |")
    lines += ["", "## Scripts", "", "| script | ran at | wall s | status |", "|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r.get('ran_at', '')} | {fmt(r.get('wall_s'))} | {r.get('error') or 'ok'} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--only", action="append", choices=SCRIPTS)
    p.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    p.add_argument("--artifacts", type=Path, default=HERE / "results")
    p.add_argument("--timeout", type=float, default=3600.0, help="per script, seconds")
    args = p.parse_args(argv)
    chosen = args.only or list(SCRIPTS)
    ran = run_all(chosen, args.smoke, args.artifacts, args.timeout)
    # scripts not run this time keep the results of their last run (the table says when)
    results = {name: ran[name] if name in ran else earlier(args.artifacts, name) for name in SCRIPTS}
    results = {name: r for name, r in results.items() if r}
    args.out.write_text(render(results, args.smoke, args.artifacts, args.out.parent))
    print(f"wrote {args.out}", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
