"""``driftstream backtest``, and the options and report-writing tail it shares with ``replay``.

The command line sits apart from :mod:`streams.offline.backtest` so that the evaluation does not
import :mod:`streams.offline.report`, which reads the evaluation's records.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streams.exceptions import ConfigError, DriftstreamError
from streams.offline import report
from streams.offline.backtest import Evaluation, SourceEvent, evaluate, merge, read_events
from streams.offline.scoring import load_drifts
from streams.pipeline.monitor_config import MonitorConfig
from streams.runtime.gc_tuning import tune_gc
from streams.settings import Settings


def load_configs(paths: Sequence[str] | None, settings: Settings) -> list[tuple[str, str | None, MonitorConfig]]:
    """``(name, path, config)`` per ``--config``; the worker's own config when none is given."""
    chosen = list(paths or ([settings.config_path] if settings.config_path else []))
    if not chosen:
        return [("default", None, MonitorConfig())]
    stems = [Path(p).stem for p in chosen]
    if len(set(chosen)) != len(chosen):
        raise ConfigError("the same --config file is given twice")
    names = stems if len(set(stems)) == len(stems) else chosen
    return [(name, path, MonitorConfig.load(path)) for name, path in zip(names, chosen)]


def add_evaluation_options(parser: argparse.ArgumentParser) -> None:
    """Options ``backtest`` and ``replay`` share: configs, annotations, scoring, join."""
    parser.add_argument("--config", action="append", metavar="FILE",
                        help="monitoring config (TOML/YAML); repeat to compare configs, ranked "
                             "(default: DRIFTSTREAM_CONFIG_PATH, else the built-in defaults)")
    parser.add_argument("--drifts", metavar="DRIFTS.json",
                        help="annotated drifts to score against: a JSON list of {model_id, timestamp, "
                             "kind: concept|data, [width], [feature]}")
    parser.add_argument("--tolerance-s", type=float, default=900.0, metavar="S",
                        help="a detection counts if within [drift, drift + width + S] of event time "
                             "(default %(default)s)")
    parser.add_argument("--join-window-s", type=float, default=None, metavar="S",
                        help="join window in event time (default: DRIFTSTREAM_JOIN_WINDOW_S, as the worker)")


def evaluate_and_report(events: Sequence[SourceEvent], args: argparse.Namespace, settings: Settings,
                        command: str, inputs: dict[str, Any]) -> Evaluation:
    """The shared tail of ``backtest`` and ``replay``: evaluate, write the report, summarise."""
    evaluation = evaluate(
        events, load_configs(args.config, settings),
        drifts=load_drifts(args.drifts) if args.drifts else (),
        tolerance_s=args.tolerance_s,
        window_s=args.join_window_s if args.join_window_s is not None else settings.join_window_s,
        max_message_bytes=settings.max_message_bytes,
        max_clock_skew_s=settings.max_clock_skew_s,
        max_models=settings.max_models,
    )
    for item in evaluation.invalid[:10]:
        print(f"{item['where']}: {item['reason']}: {item['message']}", file=sys.stderr)
    if evaluation.invalid_count > 10:
        print(f"... and {evaluation.invalid_count - 10} more invalid input(s), listed in report.json", file=sys.stderr)
    paths = report.write(Path(args.out), report.build(evaluation, command=command, inputs=inputs), evaluation)
    print(report.summary_table(evaluation))
    if not evaluation.drifts:
        fired = {run.name: len({a["alert_id"] for a in run.result.alerts}) for run in evaluation.runs}
        print("not scored (no --drifts given): detections, delays and false alarms need annotated drifts; alerts fired: "
              + ", ".join(f"{n} ({name})" for name, n in fired.items()))
    print(f"report: {paths[0]}  {paths[1]}")
    return evaluation


def _cmd_backtest(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    tune_gc(settings.gc_threshold)
    load_configs(args.config, settings)  # a bad config is refused before the files are read
    sources = [(args.predictions, "predictions")] + ([(args.ground_truth, "ground-truth")] if args.ground_truth else [])
    read = {role: read_events(path, role) for path, role in sources}
    events = merge(read.get("predictions", []), read.get("ground-truth", []))
    if not events:
        raise DriftstreamError("no events in the input file(s)")
    inputs = {role: str(path) for path, role in sources}
    evaluate_and_report(events, args, settings, "backtest", inputs)
    return 0


def add_cli(subparsers: Any) -> None:
    """Add ``driftstream backtest``."""
    p = subparsers.add_parser(
        "backtest", help="run the pipeline offline over recorded events and score it",
        description="Run driftstream's pipeline offline (no broker) over recorded events, merged by "
                    "event time, once per monitoring config; score the detectors against annotated "
                    "drifts and write DIR/report.json and DIR/report.html.",
    )
    p.add_argument("predictions", metavar="PREDICTIONS", help="predictions, JSON lines (or .parquet with pyarrow)")
    p.add_argument("ground_truth", metavar="GROUND_TRUTH", nargs="?", help="labels, JSON lines (or .parquet)")
    p.add_argument("--out", required=True, metavar="DIR", help="where report.json and report.html go")
    add_evaluation_options(p)
    p.set_defaults(func=_cmd_backtest)
