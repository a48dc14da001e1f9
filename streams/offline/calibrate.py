"""``driftstream calibrate``: thresholds for a false-alarm budget, from a reference period.

``driftstream calibrate REFERENCE.jsonl --false-alarms-per 100000 --out config.toml`` reads
predictions of a period the user calls normal and, per model, sets the drift threshold of
every data-drift detector (one per feature) and of the prediction-drift detector so that,
together, they raise about one false alarm per ``--false-alarms-per`` predictions: the budget
is split evenly, each detector calibrated for an expected run length (ERT) of
``per * detectors / false_alarms`` with :func:`detectors.calibration.calibrate`, which
bootstraps the detector's statistic from the reference itself. The calibration fits each
detector on a reference of ``reference_size`` predictions, so the config written sets that
size too: the worker then compares with a reference like the one calibrated.

Concept-drift detectors (ADWIN, DDM) run on the error stream and carry their own
confidence parameters; they are left as configured.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from detectors.calibration import calibrate

from streams.exceptions import ConfigError
from streams.offline.backtest import read_events
from streams.pipeline.monitor import all_numbers
from streams.pipeline.monitor_config import MonitorConfig

__all__ = ["calibrate_models", "to_toml"]




def _columns(predictions: Sequence[Mapping[str, Any]], model_id: str, limit: int) -> dict[str, list[Any]]:
    """The first ``limit`` predictions of ``model_id``: ``f:<feature>``, ``prediction``, ``score``."""
    columns: dict[str, list[Any]] = {}
    for p in (p for p in predictions if p.get("model_id") == model_id):
        if len(columns.get("prediction", ())) >= limit:
            break
        for name, value in (p.get("features") or {}).items():
            columns.setdefault(f"f:{name}", []).append(value)
        for name in ("prediction", "score"):
            columns.setdefault(name, []).append(p.get(name))
    return columns


def _spec(spec: Mapping[str, Any], values: list[Any]) -> tuple[dict[str, Any], list[Any], str]:
    """The detector config for ``values`` (numeric or categorical), the values it reads."""
    present = [v for v in values if v is not None]
    numeric = all_numbers(present)
    branch = "numeric" if numeric else "categorical"
    cfg = dict(spec[branch]) if branch in spec else dict(spec)
    return cfg, present if numeric else [str(v) for v in present], branch


def calibrate_models(
    predictions: Sequence[Mapping[str, Any]], config: MonitorConfig, *, per: float, false_alarms: float = 1.0,
    n_streams: int = 20, seed: int = 0, log: Any = None,
) -> dict[str, Any]:
    """The ``{"models": {...}}`` overrides that calibrate every model in ``predictions``."""
    if not (per > 0 and false_alarms > 0):
        raise ConfigError("--false-alarms-per and --false-alarms must be > 0")
    models: dict[str, Any] = {}
    for model_id in sorted({str(p["model_id"]) for p in predictions if p.get("model_id") is not None}):
        model = config.for_model(model_id)
        size = int(model.reference_size)
        columns = _columns(predictions, model_id, 2 * size)  # half fits, half is the null pool
        targets: list[tuple[str, str | None, dict[str, Any], list[Any]]] = []
        for name in sorted(c for c in columns if c.startswith("f:")):
            feature = name[2:]
            if model.monitors_feature(feature):
                cfg, values, _ = _spec(model.feature_detectors.get(feature, model.data_drift), columns[name])
                targets.append((feature, None, cfg, values))
        for column in ("prediction", "score"):
            if any(v is not None for v in columns.get(column, ())):
                cfg, values, branch = _spec(model.prediction_drift, columns[column])
                targets.append((column, branch, cfg, values))
        if not targets:
            continue
        ert = per * len(targets) / false_alarms
        overrides: dict[str, Any] = {"reference_size": len(next(iter(columns.values()))) // 2, "feature_detectors": {}}
        for name, branch, cfg, values in targets:
            if len(values) < 4:
                raise ConfigError(f"calibrate: model {model_id}: {name} has {len(values)} values; too few to calibrate")
            result = calibrate(cfg, values, target_ert=ert, n_streams=n_streams, seed=seed)
            tuned = result.config(cfg)
            if log is not None:
                print(f"{model_id}: {name}: {result.param} = {result.threshold:.6g} (ERT {ert:,.0f} values)", file=log)
            if branch is None:
                overrides["feature_detectors"][name] = tuned
            else:
                # prediction and score share one spec: keep the stricter threshold of the two
                current = overrides.setdefault("prediction_drift", {}).get(branch)
                stricter = result.direction == "above" and current is not None and current[result.param] > tuned[result.param]
                stricter |= result.direction == "below" and current is not None and current[result.param] < tuned[result.param]
                if not stricter:
                    overrides["prediction_drift"][branch] = tuned
        models[model_id] = overrides
    return {"models": models}


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items() if x is not None) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _value(k)


def to_toml(data: Mapping[str, Any], header: str = "") -> str:
    """``{"models": {id: overrides}}`` as TOML (one table per model; detectors inline)."""
    lines = [f"# {line}" for line in header.splitlines()]
    for model_id, overrides in data["models"].items():
        lines += ["", f"[models.{_key(model_id)}]"]
        lines += [f"{_key(k)} = {_value(v)}" for k, v in overrides.items() if not isinstance(v, Mapping)]
        for section, table in overrides.items():
            if isinstance(table, Mapping) and table:
                lines += ["", f"[models.{_key(model_id)}.{section}]"]
                lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from schemas import codec

    from streams.settings import Settings

    settings = Settings.from_env()
    config = MonitorConfig.load(args.config or settings.config_path)
    predictions = []
    for event in read_events(args.reference, "predictions"):
        try:
            obj = codec.loads(event.raw)
        except ValueError:
            continue
        if isinstance(obj, dict):
            predictions.append(obj)
    if not predictions:
        raise ConfigError(f"{args.reference}: no predictions")
    data = calibrate_models(predictions, config, per=args.false_alarms_per, false_alarms=args.false_alarms,
                            n_streams=args.streams, seed=args.seed, log=sys.stderr)
    header = (f"driftstream calibrate {args.reference} --false-alarms-per {args.false_alarms_per:g}: "
              f"about {args.false_alarms:g} false alarm(s) per {args.false_alarms_per:,.0f} predictions per model")
    text = to_toml(data, header)
    # written only if the worker accepts it: the same validation as at its start-up
    MonitorConfig.from_mapping(data, source=str(args.out))
    Path(args.out).write_text(text)
    MonitorConfig.load(args.out)
    print(f"wrote {args.out} ({len(data['models'])} model(s))")
    return 0


def add_cli(subparsers: Any) -> None:
    """Add ``driftstream calibrate``."""
    p = subparsers.add_parser(
        "calibrate", help="set detector thresholds for a false-alarm budget from reference predictions",
        description="Calibrate each data- and prediction-drift detector's threshold on a reference period "
                    "so that all of a model's detectors together raise about --false-alarms false alarms "
                    "per --false-alarms-per predictions; write a monitoring config the worker accepts.",
    )
    p.add_argument("reference", metavar="REFERENCE", help="predictions of a normal period, JSON lines (or .parquet)")
    p.add_argument("--false-alarms-per", type=float, required=True, metavar="N", help="predictions per false alarm budget")
    p.add_argument("--false-alarms", type=float, default=1.0, metavar="K", help="false alarms allowed per N (default 1)")
    p.add_argument("--out", required=True, metavar="FILE.toml", help="the config to write")
    p.add_argument("--config", metavar="FILE", help="the config to start from (default: DRIFTSTREAM_CONFIG_PATH, else built-in)")
    p.add_argument("--streams", type=int, default=20, help="bootstrap streams per detector (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_calibrate)
