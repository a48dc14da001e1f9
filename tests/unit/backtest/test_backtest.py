"""Backtests of a seeded simulated stream with known drifts, bad lines, and the HTML report."""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import orjson
import pytest

from schemas import codec
from streams.offline import backtest, backtest_cli
from streams.offline.scoring import ALERTS, Drift
from streams.offline.simulate import Simulation, SimulationConfig, event_time_of
from streams.pipeline.monitor_config import MonitorConfig

CONFIG = SimulationConfig(events=12_000, seed=21, feature_drift_at=4_000, concept_drift_at=8_000)
DRIFTS = [
    {"model_id": CONFIG.model_id, "timestamp": event_time_of(CONFIG, 4_000), "kind": "data", "feature": "sessions_7d"},
    {"model_id": CONFIG.model_id, "timestamp": event_time_of(CONFIG, 8_000), "kind": "concept"},
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("backtest")
    preds, labels = Simulation(CONFIG).generate()
    lines = [codec.dumps(p) for p in preds]
    lines.insert(10, b'{"prediction_id": "x", "model_id": "m", "timestamp": 1, "prediction": 1, "score": 2}')
    lines.insert(20, b"{not json")
    paths = {"predictions": folder / "p.jsonl", "ground-truth": folder / "l.jsonl", "drifts": folder / "d.json"}
    paths["predictions"].write_bytes(b"\n".join(lines) + b"\n")
    paths["ground-truth"].write_bytes(b"".join(codec.dumps(lab) + b"\n" for lab in labels))
    paths["drifts"].write_bytes(codec.dumps(DRIFTS))
    return paths


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="driftstream")
    backtest_cli.add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_known_drifts_are_detected_with_exact_delays(files: dict[str, Path]) -> None:
    events = backtest.merge(backtest.read_events(files["predictions"], "predictions"),
                            backtest.read_events(files["ground-truth"], "ground-truth"))
    drifts = [Drift(**d) for d in DRIFTS]
    evaluation = backtest.evaluate(events, [("default", None, MonitorConfig())], drifts=drifts,
                                   tolerance_s=120.0, progress=io.StringIO())
    run = evaluation.runs[0]
    rows = {r["detector"]: r for r in run.scores if r["model_id"] == CONFIG.model_id}
    # the data drift: psi on sessions_7d, delay = its first drift event's position - 4000
    onset = next(e for e in run.result.drift_events if e["feature"] == "sessions_7d" and e["drift"])
    psi = rows["psi[sessions_7d]"]
    assert psi["detected"] == 1 and psi["false_alarms"] == 0
    assert psi["delays_events"] == [onset["position"] - 4_000]
    assert psi["delays_s"] == [pytest.approx(onset["timestamp"] - DRIFTS[0]["timestamp"])]
    assert 0 < psi["delays_events"][0] <= 1_000  # within one detector window
    # the concept drift: found by at least one error-stream detector within 1500 labelled events
    concept = [rows[name] for name in ("adwin", "ddm")]
    assert any(r["detected"] == 1 and 0 <= r["delays_events"][0] <= 1_500 for r in concept)
    assert rows[ALERTS]["detected"] == 2
    assert rows["psi[age]"]["relevant_drifts"] == 0
    # bad lines are dead letters, named by file and line
    assert [(i["where"], i["reason"]) for i in evaluation.invalid] == [("p.jsonl:11", "out_of_range"), ("p.jsonl:21", "malformed_json")]


def test_cli_compares_configs_and_writes_both_reports(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    strict = tmp_path / "strict.toml"
    strict.write_text('[defaults.concept_drift]\nclassification = [{type = "ddm", warm_start = 500}]\n')
    out = tmp_path / "out"
    argv = ["backtest", str(files["predictions"]), str(files["ground-truth"]), "--drifts", str(files["drifts"]),
            "--tolerance-s", "120", "--config", str(strict), "--out", str(out)]
    assert _run(argv) == 0
    captured = capsys.readouterr()
    assert "events/s" in captured.err and "p.jsonl:21: malformed_json" in captured.err
    assert "baseline: always alarm" in captured.out and "report:" in captured.out
    report = orjson.loads((out / "report.json").read_bytes())
    assert report["invalid"]["count"] == 2 and report["events"]["predictions"] == CONFIG.events + 2
    assert [run["config"] for run in report["runs"]] == ["strict"]
    assert report["runs"][0]["summary"]["detected"] == 2
    html = (out / "report.html").read_text()
    assert html.count("<img") == 1 and "data:image/png;base64," in html
    assert "http://" not in html and "https://" not in html and "<script" not in html


def test_parquet_input_gives_the_same_run(files: dict[str, Path], tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [orjson.loads(line) for line in files["ground-truth"].read_bytes().splitlines()]
    path = tmp_path / "labels.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert [e.raw for e in backtest.read_events(path, "ground-truth")] == [codec.dumps(r) for r in rows]


def _png_pixels(path: Path) -> np.ndarray:
    import matplotlib.image

    return np.asarray(matplotlib.image.imread(str(path)))


def test_html_report_renders_plots_in_chromium(files: dict[str, Path], tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (Debian package chromium; CI installs it)")
    out = tmp_path / "out"
    assert _run(["backtest", str(files["predictions"]), str(files["ground-truth"]), "--drifts",
                 str(files["drifts"]), "--tolerance-s", "120", "--out", str(out)]) == 0
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    url = (out / "report.html").as_uri()
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, timeout=60, check=True)
    assert dom.stdout.count(b"<img") == 1 and b'src="data:image/png;base64,' in dom.stdout
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1200,2000", url],
                   capture_output=True, timeout=60, check=True)
    raw = shot.read_bytes()
    assert raw.startswith(b"\x89PNG") and zlib.crc32(raw) != 0
    pixels = _png_pixels(shot)
    assert pixels.shape[:2] == (2000, 1200)
    assert float(pixels[..., :3].std()) > 0.05  # not a blank page: plots drawn


def test_rivers_detectors_alone_are_scored_beside_the_alerts(files: dict[str, Path]) -> None:
    from river import drift

    from streams.offline.river_baseline import ADWIN_ALONE, DDM_ALONE

    events = backtest.merge(backtest.read_events(files["predictions"], "predictions"),
                            backtest.read_events(files["ground-truth"], "ground-truth"))
    evaluation = backtest.evaluate(events, [("default", None, MonitorConfig())], drifts=[Drift(**d) for d in DRIFTS],
                                   tolerance_s=120.0, progress=io.StringIO())
    rows = {r["detector"]: r for r in evaluation.runs[0].scores if r["model_id"] == CONFIG.model_id}
    assert rows[ADWIN_ALONE]["stream"] == "pairs" and rows[DDM_ALONE]["relevant_drifts"] == 1
    # the same figures as a plain loop over the errors in the order their labels arrive
    preds, labels = Simulation(CONFIG).generate()
    predicted = {p["prediction_id"]: p for p in preds}
    pairs = sorted((max(lab["timestamp"], predicted[lab["prediction_id"]]["timestamp"]),
                    float(predicted[lab["prediction_id"]]["prediction"] != lab["label"])) for lab in labels)
    adwin = drift.ADWIN()
    first_after = None
    for known_at, error in pairs:
        adwin.update(error)
        if adwin.drift_detected and known_at >= DRIFTS[1]["timestamp"] and first_after is None:
            first_after = known_at
    assert rows[ADWIN_ALONE]["delays_s"] == [pytest.approx(first_after - DRIFTS[1]["timestamp"])]
    assert "baseline: river ADWIN alone" in backtest_summary(evaluation)


def backtest_summary(evaluation: backtest.Evaluation) -> str:
    from streams.offline import report

    return report.summary_table(evaluation)
