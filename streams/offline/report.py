"""The report of a backtest or replay: ``report.json`` for machines, ``report.html`` for people.

The HTML page is self-contained (inline CSS, plots as PNG ``data:`` URIs, no scripts, no
external resources). Per config and model it plots each detector's statistic over event
time with its threshold, the alerts (vertical lines) and the annotated drifts (shaded from
``timestamp`` to ``timestamp + width``), followed by the score table.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from schemas import codec

from streams.offline.backtest import Evaluation, Run
from streams.offline.scoring import ALERTS, RANKING_RULE, SCORING_RULE, detections_from

REPORT_VERSION = 1

#: Invalid inputs listed one by one in the report (all are counted).
LIST_INVALID = 100

#: Columns of the score table: (heading, row key, format).
COLUMNS = (
    ("detector", "detector", "{}"),
    ("stream", "stream", "{}"),
    ("drifts", "relevant_drifts", "{}"),
    ("detected", "detected", "{}"),
    ("missed", "missed", "{}"),
    ("mean delay (events)", "mean_delay_events", "{:.0f}"),
    ("mean delay (s)", "mean_delay_s", "{:.1f}"),
    ("false alarms", "false_alarms", "{}"),
    ("per 10k events", "false_alarms_per_10k", "{:.2f}"),
)


def _final_alerts(alerts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    last: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        last[alert["alert_id"]] = alert
    return list(last.values())


def build(evaluation: Evaluation, *, command: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The JSON report."""
    return {
        "version": REPORT_VERSION,
        "command": command,
        "inputs": inputs,
        "events": evaluation.events,
        "elapsed_s": round(evaluation.elapsed_s, 3),
        "events_per_s": round(evaluation.events_per_s, 1),
        "invalid": {
            "count": evaluation.invalid_count,
            "by_reason": _count(item["reason"] for item in evaluation.invalid),
            "listed": evaluation.invalid[:LIST_INVALID],
        },
        "drifts": [d.to_dict() for d in evaluation.drifts],
        "tolerance_s": evaluation.tolerance_s,
        "scoring_rule": SCORING_RULE,
        "ranking_rule": RANKING_RULE,
        "runs": [
            {
                "config": run.name,
                "config_path": run.config_path,
                "rank": run.rank,
                "elapsed_s": round(run.elapsed_s, 3),
                "events_per_s": round(sum(evaluation.events.values()) / run.elapsed_s, 1) if run.elapsed_s else None,
                "summary": run.summary,
                "scores": run.scores,
                "alerts": _final_alerts(run.result.alerts),
                "alert_publications": len(run.result.alerts),
                "drift_events": len(run.result.drift_events),
                "update_requests": len(run.result.update_requests),
                "dead_letters": len(run.result.dead_letters),
                "counts": dict(sorted(run.result.counts.items())),
            }
            for run in evaluation.runs
        ],
    }


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    return fmt.format(value)


def summary_table(evaluation: Evaluation) -> str:
    """A plain-text table: per config, the alerts row and the baselines of every model."""
    lines = [f"{sum(evaluation.events.values())} events ({evaluation.events['predictions']} predictions, "
             f"{evaluation.events['ground-truth']} labels), {evaluation.invalid_count} invalid, "
             f"{evaluation.events_per_s:,.0f} events/s"]
    headings = ["rank", "config", "model", *(h for h, _, _ in COLUMNS)]
    table = [headings]
    for run in evaluation.runs:
        for row in run.scores:
            if row["detector"] == ALERTS or row["detector"].startswith("baseline"):
                table.append([str(run.rank), run.name, row["model_id"], *(_cell(row, k, f) for _, k, f in COLUMNS)])
    widths = [max(len(r[i]) for r in table) for i in range(len(headings))]
    for r in table:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)


# -- plots -------------------------------------------------------------------------------
def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def plot_model(run: Run, model_id: str, drifts: Sequence[Any]) -> str | None:
    """One PNG (data URI) of a model's detectors over event time; None with no samples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {key.split("|", 1)[1]: samples for key, samples in sorted(run.result.samples.items())
              if key.split("|", 1)[0].split("@", 1)[0] == model_id and samples}
    if not series:
        return None
    fired = [d.timestamp for d in detections_from(run.result.drift_events, run.result.alerts)
             if d.detector == ALERTS and d.model_id == model_id]
    fig, axes = plt.subplots(len(series), 1, figsize=(12, 1.9 * len(series) + 0.6), sharex=True, squeeze=False)
    for ax, (key, unordered) in zip(axes[:, 0], series.items()):
        samples = sorted(unordered, key=lambda s: s["timestamp"])
        ts = [s["timestamp"] for s in samples]
        ax.plot(ts, [s["statistic"] for s in samples], color="#1f77b4", lw=1.2, label="statistic")
        thresholds = [s["threshold"] if s["threshold"] is not None and math.isfinite(s["threshold"]) else math.nan
                      for s in samples]
        if any(math.isfinite(t) for t in thresholds):
            ax.plot(ts, thresholds, color="#d62728", lw=1, ls="--", label="threshold")
        for d in drifts:
            if d.model_id == model_id:
                ax.axvspan(d.timestamp, d.timestamp + max(d.width, 1e-9), color="#2ca02c", alpha=0.25)
                ax.axvline(d.timestamp, color="#2ca02c", lw=1.5)
        for t in sorted(set(fired)):
            ax.axvline(t, color="#ff7f0e", lw=1, ls=":")
        ax.set_ylabel(key, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(loc="upper left", fontsize=7)
    axes[-1, 0].set_xlabel("event time (epoch s); green: annotated drift; orange dotted: an alert member fired", fontsize=8)
    fig.tight_layout()
    uri = _png(fig)
    plt.close(fig)
    return uri


# -- the page ----------------------------------------------------------------------------
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:8px 0 20px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
tr.base td{color:#777}
tr.alerts td{font-weight:600}
img{max-width:100%;border:1px solid #eee}
.note{color:#555;max-width:70em}
"""


def _table(rows: Sequence[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _, _ in COLUMNS)
    body = []
    for row in rows:
        cls = "alerts" if row["detector"] == ALERTS else "base" if row["detector"].startswith("baseline") else ""
        cells = "".join(f"<td>{html.escape(_cell(row, k, f))}</td>" for _, k, f in COLUMNS)
        body.append(f'<tr class="{cls}">{cells}</tr>')
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def render_html(report: dict[str, Any], evaluation: Evaluation) -> str:
    """The self-contained HTML page."""
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>driftstream {e(report['command'])} report</title><style>{_CSS}</style></head><body>",
        f"<h1>driftstream {e(report['command'])} report</h1>",
        f"<p>{report['events']['predictions']} predictions, {report['events']['ground-truth']} labels; "
        f"{report['invalid']['count']} invalid input(s); {report['events_per_s']:,.0f} events/s.</p>",
        f"<p class='note'><b>Scoring.</b> {e(report['scoring_rule'])}. Tolerance: {report['tolerance_s']:g} s.</p>",
        f"<p class='note'><b>Ranking.</b> {e(report['ranking_rule'])}.</p>",
    ]
    if report["invalid"]["listed"]:
        items = "".join(f"<li>{e(i['where'])}: {e(i['reason'])}: {e(i['message'])}</li>" for i in report["invalid"]["listed"])
        parts.append(f"<details><summary>invalid inputs</summary><ul>{items}</ul></details>")
    for run in evaluation.runs:
        parts.append(f"<h2>#{run.rank} config {e(run.name)}</h2>")
        models = sorted({row["model_id"] for row in run.scores})
        for model in models:
            parts.append(f"<h3>model {e(model)}</h3>")
            uri = plot_model(run, model, evaluation.drifts)
            if uri is not None:
                parts.append(f"<img alt='detectors of {e(model)} over event time' src='{uri}'>")
            parts.append(_table([row for row in run.scores if row["model_id"] == model]))
    parts.append("</body></html>")
    return "\n".join(parts)


def write(out: Path, report: dict[str, Any], evaluation: Evaluation) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``out`` (created if missing)."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "report.json", out / "report.html"
    json_path.write_bytes(codec.dumps(report))
    html_path.write_text(render_html(report, evaluation), encoding="utf-8")
    return json_path, html_path
