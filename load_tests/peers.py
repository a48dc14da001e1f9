"""The foreign path's peers: other ways to do driftstream's job on the same one-event records.

The job (issue #27): join each prediction to its label by ``prediction_id``, then per model
river's ADWIN and DDM on each joined pair's error, and a windowed PSI of the prediction
score (:class:`WindowedPsi`: bins fixed from the first window, evaluated every ``step``).
No validation, no alerts, no output: less than the worker does, so a peer's rate bounds
what the same job costs on its stack.

- :func:`aiokafka_loop_rate`: a plain aiokafka loop in this process, no group, both topics,
  orjson per record, a dict join, the detectors in memory (:class:`PeerJob`).
- :func:`quix_rate`: a Quix Streams app (a subprocess, ``python -m load_tests.peers``) over
  both topics concatenated, the join in its state store (RocksDB, with its changelog
  topics), the same :class:`PeerJob` detectors in memory; with ``noop=True`` the same app
  doing nothing per record.

Each rate is predictions per second from the first record the contender saw to the last
one it processed (all predictions and all labels).

    python -m load_tests.peers --broker HOST:PORT --predictions T --labels T --expect N --out F [--noop]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition
from river.drift import ADWIN
from river.drift.binary import DDM

from schemas import codec
from streams.runtime.end_offsets import end_offsets
from streams.settings import Settings

from .arrivals import Arrivals
from .common import Harness, LoadTestError, await_result

__all__ = ["PeerJob", "WindowedPsi", "aiokafka_loop_rate", "quix_rate"]


class WindowedPsi:
    """PSI of the last ``window`` values against the first ``window`` (the reference), every
    ``step`` values, over ``bins`` quantile bins of the reference (driftstream's default
    numeric PSI: 10 bins, window 1000, step 250).

    >>> psi = WindowedPsi()
    >>> for x in np.random.default_rng(0).normal(size=3000): psi.update(float(x))
    >>> psi.evaluations, psi.value < 0.1
    (8, True)
    """

    def __init__(self, bins: int = 10, window: int = 1000, step: int = 250) -> None:
        self.bins, self.window, self.step = bins, window, step
        self.values = np.empty(window)
        self.seen = 0
        self.edges: np.ndarray | None = None
        self.reference: np.ndarray | None = None
        self.value = 0.0
        self.evaluations = 0

    def update(self, x: float) -> None:
        self.values[self.seen % self.window] = x
        self.seen += 1
        if self.seen == self.window:
            self.edges = np.unique(np.quantile(self.values, np.linspace(0, 1, self.bins + 1)[1:-1]))
            self.reference = self._shares()
        elif self.seen > self.window and self.seen % self.step == 0:
            current = self._shares()
            self.value = float(np.sum((current - self.reference) * np.log(current / self.reference)))
            self.evaluations += 1

    def _shares(self) -> np.ndarray:
        counts = np.bincount(np.searchsorted(self.edges, self.values), minlength=len(self.edges) + 1)
        return np.maximum(counts / self.window, 1e-4)


class PeerJob:
    """The per-model detectors of the job, in memory: the PSI of each prediction's score,
    ADWIN and DDM on each joined pair's error. Counts what it saw."""

    def __init__(self) -> None:
        self.models: dict[str, tuple[ADWIN, DDM, WindowedPsi]] = {}
        self.predictions = 0
        self.pairs = 0
        self.drifts = 0

    def _model(self, model_id: str) -> tuple[ADWIN, DDM, WindowedPsi]:
        detectors = self.models.get(model_id)
        if detectors is None:
            detectors = self.models[model_id] = (ADWIN(), DDM(), WindowedPsi())
        return detectors

    def prediction(self, event: dict[str, Any]) -> None:
        self.predictions += 1
        self._model(event["model_id"])[2].update(float(event["score"]))

    def pair(self, prediction: dict[str, Any], label: dict[str, Any]) -> None:
        self.pairs += 1
        adwin, ddm, _ = self._model(prediction["model_id"])
        error = prediction["prediction"] != label["label"]
        adwin.update(error)
        ddm.update(error)
        self.drifts += adwin.drift_detected + ddm.drift_detected


# -- a plain aiokafka loop ---------------------------------------------------------------------
async def _aiokafka_loop(settings: Settings, predictions_topic: str, labels_topic: str) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False,
                                fetch_max_bytes=52_428_800, max_partition_fetch_bytes=8_388_608)
    await consumer.start()
    try:
        await consumer.topics()  # fetches the metadata
        partitions = [TopicPartition(topic, p) for topic in (predictions_topic, labels_topic)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        total = sum((await end_offsets(consumer, partitions, settings.kafka_client_kwargs())).values())
        job = PeerJob()
        # either side may come first: the other waits in its dict
        waiting_labels: dict[str, dict[str, Any]] = {}
        waiting_predictions: dict[str, dict[str, Any]] = {}
        records = 0
        t0 = t1 = time.perf_counter()
        while records < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=100_000)
            for tp, messages in batches.items():
                records += len(messages)
                if tp.topic == predictions_topic:
                    for message in messages:
                        event = codec.loads(message.value)
                        job.prediction(event)
                        label = waiting_labels.pop(event["prediction_id"], None)
                        if label is None:
                            waiting_predictions[event["prediction_id"]] = event
                        else:
                            job.pair(event, label)
                else:
                    for message in messages:
                        event = codec.loads(message.value)
                        prediction = waiting_predictions.pop(event["prediction_id"], None)
                        if prediction is None:
                            waiting_labels[event["prediction_id"]] = event
                        else:
                            job.pair(prediction, event)
            t1 = time.perf_counter()
        return {"records": records, "predictions": job.predictions, "pairs": job.pairs, "elapsed_s": t1 - t0}
    finally:
        await consumer.stop()


def aiokafka_loop_rate(settings: Settings, predictions_topic: str, labels_topic: str, counts: dict[str, int]) -> dict[str, Any]:
    """Predictions/s of the plain aiokafka loop over both topics (from its first ``getmany``
    to the last record processed)."""
    got = asyncio.run(_aiokafka_loop(settings, predictions_topic, labels_topic))
    _check("the aiokafka loop", got, counts)
    elapsed = max(got["elapsed_s"], 1e-9)
    return {"records": got["records"], "pairs": got["pairs"], "elapsed_s": round(elapsed, 3),
            "predictions_per_s": round(counts["predictions"] / elapsed, 1)}


def _check(who: str, got: dict[str, Any], counts: dict[str, int]) -> None:
    """Every prediction seen and every label joined, or the rate means nothing."""
    if got["predictions"] != counts["predictions"] or got["pairs"] != counts["ground-truth"]:
        raise LoadTestError(f"{who} saw {got['predictions']} predictions and joined {got['pairs']} labels; "
                            f"expected {counts['predictions']} and {counts['ground-truth']}")


# -- a Quix Streams app ----------------------------------------------------------------------
def quix_rate(h: Harness, settings: Settings, predictions_topic: str, labels_topic: str, counts: dict[str, int],
              noop: bool = False, deadline_s: float = 600) -> dict[str, Any]:
    """Predictions/s of the Quix Streams app (:func:`quix_main`) over both topics, as a
    subprocess in a fresh consumer group and state directory (its own timestamps, first
    record to last)."""
    directory = Path(tempfile.mkdtemp(prefix="quix-peer-"))
    h.callback(shutil.rmtree, directory, True)
    out, log_path = directory / "result.json", directory / "quix.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed by the harness
    h.callback(log.close)
    expect = counts["predictions"] + counts["ground-truth"]
    broker = settings.broker.removeprefix("kafka://")
    process = h.popen([sys.executable, "-m", "load_tests.peers", "--broker", broker, "--predictions", predictions_topic,
                       "--labels", labels_topic, "--expect", str(expect), "--out", str(out), "--state-dir", str(directory / "state"),
                       *(["--noop"] if noop else [])], stdout=log, stderr=log, stdin=None)
    got = await_result(process, out, log_path, f"the {'no-op ' if noop else ''}Quix Streams app", deadline_s)
    if not noop:
        _check("the Quix Streams app", got, counts)
    elapsed = max(got["last_s"] - got["first_s"], 1e-9)
    return {"records": got["records"], "pairs": got["pairs"], "elapsed_s": round(elapsed, 3),
            "predictions_per_s": round(counts["predictions"] / elapsed, 1)}


def quix_main(argv: Sequence[str] | None = None) -> None:
    """The Quix Streams app: both topics concatenated into one stream keyed by
    ``prediction_id`` (the producers key them so, and partition both alike), a stateful
    ``apply`` that keeps whichever side comes first in the state store until the other
    arrives, then :class:`PeerJob`. Writes ``{"records", "predictions", "pairs", "first_s",
    "last_s"}`` to ``--out`` once ``--expect`` records went through, then stops."""
    p = argparse.ArgumentParser(description=quix_main.__doc__.splitlines()[0] if quix_main.__doc__ else None)
    p.add_argument("--broker", required=True)
    p.add_argument("--predictions", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--noop", action="store_true")
    args = p.parse_args(argv)

    from quixstreams import Application

    app = Application(broker_address=args.broker, consumer_group=f"quix-peer-{uuid.uuid4().hex[:8]}",
                      auto_offset_reset="earliest", state_dir=str(args.state_dir), loglevel="WARNING")
    job = PeerJob()
    arrivals = Arrivals(args.expect, args.out)

    def count(_: Any) -> None:
        if arrivals.count(lambda: {"predictions": job.predictions, "pairs": job.pairs}):
            app.stop()

    def join(event: dict[str, Any], state: Any) -> None:
        if "label" in event:  # a label
            prediction = state.get("prediction")
            if prediction is None:
                state.set("label", event)
            else:
                state.delete("prediction")
                job.pair(prediction, event)
        else:
            job.prediction(event)
            label = state.get("label")
            if label is None:
                state.set("prediction", event)
            else:
                state.delete("label")
                job.pair(event, label)

    inputs = [app.topic(args.predictions), app.topic(args.labels)]
    for topic in inputs:
        # the embedded broker (Tansu) describes a topic without its retention, from which
        # Quix derives its changelog's; it keeps everything, which Kafka spells -1
        topic.broker_config.extra_config.setdefault("retention.ms", "-1")
    predictions, labels = (app.dataframe(topic) for topic in inputs)
    stream = predictions.concat(labels)
    if not args.noop:
        stream = stream.update(join, stateful=True)
    stream.update(count)
    app.run()


if __name__ == "__main__":
    quix_main()
