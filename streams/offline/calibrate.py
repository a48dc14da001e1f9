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

Concept-drift detectors run on the error stream of labelled predictions and carry a
confidence parameter rather than a threshold. When the reference holds labels (ground-truth
events matched by ``prediction_id``, in the same file or a second one, or a ``label`` field
on the prediction itself), each model's reference error stream is computed as the worker
computes it (classification: prediction != label; regression: |prediction - label|), and
each configured ADWIN (``delta``) and DDM (``drift_threshold``) gets the most sensitive value
of a short ladder whose false alarms on bootstrap error streams stay within its share of the
budget (:mod:`detectors.error_calibration`); they then count in the split. The run length is
counted in labelled predictions: ``ERT * labelled share``. Without labels they are left as
configured, which the config's header and stderr say.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detectors import registry
from detectors.calibration import calibrate
from detectors.error_calibration import calibrate_error_stream, count_false_alarms, ladder

from streams.exceptions import ConfigError
from streams.offline.backtest import read_events
from streams.pipeline.feeding import all_numbers, is_number
from streams.pipeline.monitor_config import MonitorConfig

__all__ = ["calibrate_models", "error_streams", "to_toml"]

#: Fewer labelled predictions than this: a model's error rate is too loose to calibrate on.
MIN_LABELLED = 100
#: Error rate of the stream on which, without labels, the defaults' false alarms are measured.
NOMINAL_ERROR_RATE = 0.2


def _is_classification_value(v: Any) -> bool:
    # as the worker decides a model's task (streams.pipeline.monitor)
    return type(v) is bool or type(v) is str or type(v) is int or (type(v) is float and v.is_integer())


def error_streams(
    predictions: Sequence[Mapping[str, Any]], labels: Sequence[Mapping[str, Any]] = (),
) -> dict[str, tuple[str, list[float], float]]:
    """Per model with labels: ``(task, errors, labelled share of its predictions)``.

    A prediction's label is its own ``label`` field, else the last ground-truth event with
    its ``prediction_id``. The task is decided by the first prediction, as the worker does.
    """
    by_id = {str(g["prediction_id"]): g["label"] for g in labels
             if g.get("prediction_id") is not None and g.get("label") is not None}
    pairs: dict[str, list[tuple[Any, Any]]] = {}
    counts: dict[str, int] = {}
    for p in predictions:
        model_id = p.get("model_id")
        if model_id is None or p.get("prediction") is None:
            continue
        model_id = str(model_id)
        counts[model_id] = counts.get(model_id, 0) + 1
        label = p.get("label")
        if label is None and p.get("prediction_id") is not None:
            label = by_id.get(str(p["prediction_id"]))
        if label is not None:
            pairs.setdefault(model_id, []).append((p["prediction"], label))
    out: dict[str, tuple[str, list[float], float]] = {}
    for model_id, items in pairs.items():
        first = next(p for p in predictions if str(p.get("model_id")) == model_id and p.get("prediction") is not None)
        if _is_classification_value(first["prediction"]):
            out[model_id] = ("classification", [0.0 if p == y else 1.0 for p, y in items], len(items) / counts[model_id])
        else:
            errors = [abs(float(p) - float(y)) for p, y in items if is_number(p) and is_number(y)]
            if errors:
                out[model_id] = ("regression", errors, len(errors) / counts[model_id])
    return out


def _concept_specs(model: Any, task: str) -> list[dict[str, Any]]:
    return [dict(spec) for spec in model.concept_drift[task]]


def _laddered(spec: Mapping[str, Any], task: str) -> bool:
    """Whether ``spec`` is calibrated for ``task`` (DDM reads 0/1 errors: classification only)."""
    binary = registry.DETECTORS[spec["type"]].domain == "binary"
    return ladder(spec) is not None and (task == "classification" or not binary)


def _describe(spec: Mapping[str, Any]) -> str:
    found = ladder(spec)
    return f"{spec['type']} {found[0]}={found[1][0]:g}" if found else str(spec["type"])


def _calibrate_concept(
    model_id: str, task: str, specs: list[dict[str, Any]], errors: list[float], ert: float, *,
    max_values: int, seed: int, log: Any,
) -> list[dict[str, Any]]:
    """``specs`` with each laddered detector set for ``ert`` labelled predictions."""
    tuned = []
    for spec in specs:
        if not _laddered(spec, task):
            tuned.append(spec)
            if log is not None:
                print(f"{model_id}: concept {spec['type']}: left as configured (no parameter ladder for it)", file=log)
            continue
        result = calibrate_error_stream(spec, errors, target_ert=ert, max_values=max_values, seed=seed)
        tuned.append(result.config(spec))
        if log is not None:
            tried = ", ".join(f"{t.value:g}: {t.false_alarms} in {t.values:,}" for t in result.trials)
            verdict = "" if result.within_budget else "; NO candidate met the budget, the most conservative is kept"
            print(f"{model_id}: concept {spec['type']}: {result.param} = {result.value:g} (ERT {ert:,.0f} labelled; "
                  f"false alarms {tried}; {result.run_lengths:.3g} run lengths simulated{verdict})", file=log)
    return tuned


def _defaults_note(model_id: str, task: str, specs: list[dict[str, Any]], ert: float, seed: int) -> str:
    """Why the concept-drift detectors were left as they are, and their false alarms on a
    stationary Bernoulli(NOMINAL_ERROR_RATE) error stream (a few hundred thousand values)."""
    rng = np.random.default_rng(seed)
    stream = rng.binomial(1, NOMINAL_ERROR_RATE, 200_000).astype(float)
    measured = []
    for spec in specs:
        if task == "classification" or registry.DETECTORS[spec["type"]].domain != "binary":
            alarms, seen = count_false_alarms(spec, [stream])
            measured.append(f"{_describe(spec)}: {alarms} false alarm(s) in {seen:,}")
    rate = f"; on a stationary Bernoulli({NOMINAL_ERROR_RATE:g}) error stream " + ", ".join(measured) if measured else ""
    return (f"{model_id}: concept-drift detectors left as configured ({', '.join(_describe(s) for s in specs)}): "
            f"the reference holds no labels for this model{rate} (budget: 1 per {ert:,.0f})")


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
    n_streams: int = 20, seed: int = 0, log: Any = None, labels: Sequence[Mapping[str, Any]] = (),
    error_values: int = 1_000_000, notes: list[str] | None = None,
) -> dict[str, Any]:
    """The ``{"models": {...}}`` overrides that calibrate every model in ``predictions``.

    ``labels``: ground-truth events (or a ``label`` on the predictions) for the
    concept-drift detectors; ``error_values``: values simulated per candidate at most;
    ``notes``: receives a line per model whose concept-drift detectors were not calibrated.
    """
    if not (per > 0 and false_alarms > 0):
        raise ConfigError("--false-alarms-per and --false-alarms must be > 0")
    models: dict[str, Any] = {}
    errors = error_streams(predictions, labels)
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
        labelled = errors.get(model_id)
        task = labelled[0] if labelled is not None else None
        concept = _concept_specs(model, task) if task is not None else []
        calibrated = [s for s in concept if _laddered(s, task)]  # type: ignore[arg-type]  # task is set with concept
        usable = labelled is not None and len(labelled[1]) >= MIN_LABELLED
        if not targets and not (usable and calibrated):
            continue
        ert = per * (len(targets) + (len(calibrated) if usable else 0)) / false_alarms
        overrides: dict[str, Any] = {}
        if targets:
            overrides = {"reference_size": len(next(iter(columns.values()))) // 2, "feature_detectors": {}}
        if usable and calibrated:
            _, errs, share = labelled  # type: ignore[misc]
            overrides["concept_drift"] = {task: _calibrate_concept(
                model_id, task, concept, errs, ert * share, max_values=error_values, seed=seed, log=log)}
        else:
            specs = _concept_specs(model, task or "classification")
            if labelled is None:
                note = _defaults_note(model_id, task or "classification", specs, ert, seed)
            elif not calibrated:
                note = (f"{model_id}: concept-drift detectors left as configured ({', '.join(_describe(s) for s in specs)}): "
                        f"none has a parameter ladder for {task}")
            else:
                note = (f"{model_id}: concept-drift detectors left as configured: {len(labelled[1])} labelled "
                        f"predictions in the reference, fewer than {MIN_LABELLED}")
            if notes is not None:
                notes.append(note)
            if log is not None:
                print(note, file=log)
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
    predictions: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    sources = [(args.reference, "predictions")] + ([(args.ground_truth, "ground-truth")] if args.ground_truth else [])
    for path, role in sources:
        for event in read_events(path, role):
            try:
                obj = codec.loads(event.raw)
            except ValueError:
                continue
            if isinstance(obj, dict):
                # a ground-truth event carries a label and no prediction; a prediction may carry both
                (predictions if "prediction" in obj or "features" in obj else labels).append(obj)
    if not predictions:
        raise ConfigError(f"{args.reference}: no predictions")
    notes: list[str] = []
    data = calibrate_models(predictions, config, per=args.false_alarms_per, false_alarms=args.false_alarms,
                            n_streams=args.streams, seed=args.seed, log=sys.stderr, labels=labels,
                            error_values=args.error_values, notes=notes)
    header = "\n".join([
        f"driftstream calibrate {args.reference} --false-alarms-per {args.false_alarms_per:g} --seed {args.seed}: "
        f"about {args.false_alarms:g} false alarm(s) per {args.false_alarms_per:,.0f} predictions per model", *notes])
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
                    "(and, when the reference has labels, each ADWIN's delta and DDM's drift_threshold on its "
                    "error stream) so that all of a model's detectors together raise about --false-alarms "
                    "false alarms per --false-alarms-per predictions; write a monitoring config the worker accepts.",
    )
    p.add_argument("reference", metavar="REFERENCE", help="predictions of a normal period, JSON lines (or .parquet)")
    p.add_argument("ground_truth", metavar="GROUND_TRUTH", nargs="?",
                   help="labels of the reference's predictions, if not in REFERENCE itself (JSON lines or .parquet)")
    p.add_argument("--false-alarms-per", type=float, required=True, metavar="N", help="predictions per false alarm budget")
    p.add_argument("--false-alarms", type=float, default=1.0, metavar="K", help="false alarms allowed per N (default 1)")
    p.add_argument("--out", required=True, metavar="FILE.toml", help="the config to write")
    p.add_argument("--config", metavar="FILE", help="the config to start from (default: DRIFTSTREAM_CONFIG_PATH, else built-in)")
    p.add_argument("--streams", type=int, default=20, help="bootstrap streams per detector (default 20)")
    p.add_argument("--error-values", type=int, default=1_000_000, metavar="N",
                   help="error values simulated per concept-drift candidate at most (default 1,000,000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_calibrate)
