"""The ``driftstream`` command line."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TextIO

from streams.exceptions import DriftstreamError, KafkaUnreachableError
from streams.settings import Settings, SettingsError

#: Exit statuses (sysexits.h, as the worker's 70 and 75): a supervisor retries 69, and
#: does not retry 2 (the command or its configuration must change first).
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69

DESCRIPTION = """\
driftstream watches ML models in production and tells their owners, within seconds,
when the data or the model's quality has drifted.

Quick start (everything on an embedded, memory-only broker):
  driftstream demo

Production: run 'driftstream worker' against Apache Kafka (DRIFTSTREAM_BROKER=kafka://host:9092).
Every setting is a DRIFTSTREAM_* environment variable (see the README).
"""


def _cmd_broker(args: argparse.Namespace) -> int:
    from streams.ops.broker import EmbeddedBroker

    broker = EmbeddedBroker(port=args.port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with broker:
        print(f"embedded broker (memory-only) ready at {broker.bootstrap_servers}", flush=True)
        # with the group timings a worker needs to start in seconds there (the defaults are Kafka's)
        embedded = Settings().for_embedded_broker(broker.url)
        print(f"  export DRIFTSTREAM_BROKER={broker.url} DRIFTSTREAM_SESSION_TIMEOUT_S={embedded.session_timeout_s:g} "
              f"DRIFTSTREAM_HEARTBEAT_INTERVAL_S={embedded.heartbeat_interval_s:g} "
              f"DRIFTSTREAM_REBALANCE_TIMEOUT_S={embedded.rebalance_timeout_s:g} DRIFTSTREAM_STATIC_MEMBERSHIP=false",
              flush=True)
        print("  Ctrl-C stops it; everything it holds is lost.", flush=True)
        stop.wait()
    print("broker stopped", flush=True)
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from streams.pipeline.monitor_config import MonitorConfig
    from streams.runtime.worker import run_worker

    settings = Settings.from_env()
    MonitorConfig.load(settings.config_path)  # a bad config stops it here, before Kafka is touched
    run_worker(settings, worker_tasks(settings))
    return 0


def worker_tasks(settings: Settings) -> list[Callable[..., Awaitable[None]]]:
    """What a worker runs beside its agents: the updater, with ``DRIFTSTREAM_RUN_UPDATER``."""
    if not settings.run_updater:
        return []
    from streams.updater.decisions import UpdaterConfig
    from streams.updater.service import run_updater

    config = UpdaterConfig.from_settings(settings)  # a bad DRIFTSTREAM_COMPARISON_* stops the worker here

    async def updater(app: Any) -> None:  # Faust passes the app to a task that takes an argument
        await run_updater(settings, asyncio.Event(), config, metrics=app.driftstream.metrics)

    return [updater]


def _cmd_config_check(args: argparse.Namespace) -> int:
    import json

    from streams.pipeline.monitor_config import MonitorConfig

    config = MonitorConfig.load(args.file)
    if args.model is not None:
        effective: Any = config.for_model(args.model).values
    else:
        effective = {"defaults": config.defaults, "models": config.models}
    print(json.dumps(effective, indent=2))
    print(f"{args.file}: ok", file=sys.stderr)
    return 0


def _cmd_topics(args: argparse.Namespace) -> int:
    from streams.runtime.topics import ensure_topics

    for topic, partitions in sorted(asyncio.run(ensure_topics(Settings.from_env())).items()):
        print(f"{topic}\t{partitions} partitions")
    return 0


def _read_lines(source: str) -> Iterator[tuple[int, str]]:
    stream: TextIO = sys.stdin if source == "-" else open(source, encoding="utf-8")  # noqa: SIM115
    try:
        for number, line in enumerate(stream, start=1):
            if line.strip():
                yield number, line
    finally:
        if stream is not sys.stdin:
            stream.close()


def describe_json_error(text: str, exc: ValueError) -> str:
    """What is wrong with a line that is not JSON, in plain words.

    >>> import orjson
    >>> def why(text):
    ...     try:
    ...         orjson.loads(text)
    ...     except orjson.JSONDecodeError as exc:
    ...         return describe_json_error(text, exc)
    >>> why("this is not json")
    "not JSON (a JSON object starts with '{', this line starts with 'this is not json')"
    >>> why('{"a": 1')
    'not JSON (unexpected end of data at column 8)'
    """
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return f"not JSON (a JSON object starts with '{{', this line starts with {stripped[:20]!r})"
    where = getattr(exc, "colno", None)
    reason = getattr(exc, "msg", None) or str(exc)
    return f"not JSON ({reason}{f' at column {where}' if where else ''})"


def _cmd_publish(args: argparse.Namespace) -> int:
    from schemas import codec
    from schemas.errors import ContractError
    from schemas.parsing import validate_ground_truth, validate_prediction

    from streams.ops.progress import Progress
    from streams.sdk.client import DriftstreamClient

    validate = validate_prediction if args.topic == "predictions" else validate_ground_truth

    async def run() -> tuple[int, int]:
        sent = invalid = 0
        batch: list[dict[str, Any]] = []
        async with DriftstreamClient(Settings.from_env(), batch_size=args.batch_size) as client:
            with Progress(f"{args.topic} events") as bar:
                for number, line in _read_lines(args.file):
                    try:
                        batch.append(validate(codec.loads(line)))
                    except ContractError as exc:
                        invalid += 1
                        print(f"line {number}: {exc} (skipped)", file=sys.stderr)
                        continue
                    except ValueError as exc:  # orjson's decode error is a ValueError
                        invalid += 1
                        print(f"line {number}: {describe_json_error(line, exc)} (skipped)", file=sys.stderr)
                        continue
                    if len(batch) >= args.batch_size:
                        sent += await client.publish(args.topic, batch)
                        bar.update(len(batch))
                        batch = []
                if batch:
                    sent += await client.publish(args.topic, batch)
                    bar.update(len(batch))
        return sent, invalid

    sent, invalid = asyncio.run(run())
    if invalid:
        print(f"published {sent} {args.topic} events; {invalid} invalid line(s) skipped (listed on stderr): exit status 1")
        return 1
    print(f"published {sent} {args.topic} events; 0 invalid line(s) skipped")
    return 0


def _cmd_alerts(args: argparse.Namespace) -> int:
    from schemas import codec

    from streams.sdk.client import DriftstreamClient

    settings = Settings.from_env()
    printed = 0

    async def run() -> None:
        nonlocal printed
        async with DriftstreamClient(settings) as client:
            async for alert in client.alerts(from_beginning=args.from_beginning, follow=args.follow):
                sys.stdout.write(codec.dumps(alert).decode() + "\n")
                sys.stdout.flush()
                printed += 1

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    if not printed:  # an empty stdout alone cannot tell "no alerts" from a command that failed
        which = "" if args.from_beginning else " new (--from-beginning shows earlier ones)"
        print(f"driftstream alerts: no{which} alerts on {settings.topic('alerts')}", file=sys.stderr)
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from streams.offline.demo import publish_simulation

    settings = Settings.from_env()
    if args.broker:
        settings = settings.replace(broker=args.broker)
    config = _simulation_config(args)
    sent = asyncio.run(publish_simulation(settings, config, rate=args.rate))
    print(f"published {sent['predictions']} predictions and {sent['ground-truth']} labels")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from streams.offline.demo import run_demo

    config = _simulation_config(args)
    return run_demo(config, rate=args.rate, partitions=args.partitions)


def _simulation_config(args: argparse.Namespace) -> Any:
    from streams.offline.simulate import SimulationConfig

    def at(value: int | None, share: float) -> int | None:
        return None if args.no_drift else (int(args.events * share) if value is None else value)

    return SimulationConfig(
        events=args.events, seed=args.seed, event_rate=args.event_rate,
        concept_drift_at=at(args.concept_drift_at, 0.6), feature_drift_at=at(args.feature_drift_at, 0.3),
    )


def _positive_float(text: str) -> float:
    value = float(text)
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _add_simulation_options(parser: argparse.ArgumentParser, events: int) -> None:
    parser.add_argument("--events", type=int, default=events, help="predictions to simulate (default %(default)s)")
    parser.add_argument("--rate", type=float, default=20_000, help="predictions published per second (default %(default)s)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default %(default)s)")
    # event time, not publishing speed: at 10 per second the demo's two drifts (30 % and 60 % of
    # 40,000 predictions) are 1,200 s apart, beyond the alert policy's 300 s group window, so
    # each is its own incident (at 50 per second they were 240 s apart: one incident)
    parser.add_argument("--event-rate", type=_positive_float, default=10.0, metavar="PER_S",
                        help="predictions per second of simulated event time (default %(default)s)")
    parser.add_argument("--concept-drift-at", type=int, default=None, metavar="N",
                        help="prediction index where the true concept flips (default: 60%% of --events)")
    parser.add_argument("--feature-drift-at", type=int, default=None, metavar="N",
                        help="prediction index where sessions_7d shifts (default: 30%% of --events)")
    parser.add_argument("--no-drift", action="store_true", help="inject no drift at all")


#: The commands this module defines. A command line that names one of them gets a parser
#: without the commands defined elsewhere: their modules load river, scipy and the offline
#: pipeline, over a second of CPU that ``driftstream worker`` paid before its first log line.
OWN_COMMANDS = frozenset({"demo", "broker", "worker", "config", "topics", "publish", "alerts", "simulate"})


def _add_commands_defined_elsewhere(sub: Any) -> None:
    """The commands that live with their subject: the offline tools and the model updater."""
    from streams.offline import backtest_cli, calibrate, replay
    from streams.updater import cli as model_cli
    from streams.updater import service as updater

    for module in (backtest_cli, calibrate, model_cli, replay, updater):
        module.add_cli(sub)


def command_named(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (its first argument, unless that is an option such as ``--help``)."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with ``command``, one of :data:`OWN_COMMANDS`, only this
    module's commands (enough to parse a command line that names it)."""
    parser = argparse.ArgumentParser(
        prog="driftstream", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="the whole loop on an embedded broker: drift in, alerts out")
    _add_simulation_options(p, 40_000)
    p.add_argument("--partitions", type=int, default=4,
                   help="partitions of each topic (default %(default)s; the alerts are the same for any number)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("broker", help="run the embedded Kafka-compatible broker (memory-only)")
    p.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: a free one)")
    p.set_defaults(func=_cmd_broker)

    p = sub.add_parser("worker", help="run the stream processor against DRIFTSTREAM_BROKER")
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser("config", help="check a monitoring config file")
    config_sub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    p = config_sub.add_parser("check", help="print the effective config (defaults merged), or the first error",
                              description="Validate FILE as the worker does at start-up and print the effective "
                                          "config as JSON: of one model with --model, else the defaults and "
                                          "every model the file names. An error is one line, exit status 2.")
    p.add_argument("file", metavar="FILE", help="monitoring config (.toml, .yaml or .yml)")
    p.add_argument("--model", metavar="MODEL_ID", help="the model whose config to print (any id: an unlisted "
                                                       "model gets the defaults)")
    p.set_defaults(func=_cmd_config_check)

    p = sub.add_parser("topics", help="create driftstream's topics (idempotent) and list them")
    p.set_defaults(func=_cmd_topics)

    p = sub.add_parser("publish", help="publish JSON-lines events from a file or stdin")
    p.add_argument("topic", choices=("predictions", "ground-truth"))
    p.add_argument("file", help="JSON-lines file, or - for stdin")
    p.add_argument("--batch-size", type=int, default=500, help="events per Kafka record (default %(default)s)")
    p.set_defaults(func=_cmd_publish)

    p = sub.add_parser("alerts", help="print alerts as JSON lines")
    p.add_argument("--follow", action="store_true", help="keep waiting for new alerts")
    p.add_argument("--from-beginning", action="store_true", help="start with the oldest alert")
    p.set_defaults(func=_cmd_alerts)

    p = sub.add_parser("simulate", help="publish a simulated model's predictions and labels")
    _add_simulation_options(p, 40_000)
    p.add_argument("--broker", default=None, help="override DRIFTSTREAM_BROKER")
    p.set_defaults(func=_cmd_simulate)

    if command not in OWN_COMMANDS:
        _add_commands_defined_elsewhere(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(command_named(argv))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KafkaUnreachableError as exc:
        print(f"driftstream {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (DriftstreamError, SettingsError) as exc:
        print(f"driftstream {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
