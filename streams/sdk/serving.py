"""The serving hook: a model server follows ``model-updates`` and serves the promoted version.

:class:`ServedModel` holds the model a server serves and its version as one tuple, replaced
in a single assignment, so a prediction uses the old model or the new one, never a mix, and
is tagged with the version that made it. On a ``promoted`` or ``rolled_back`` event for its
model it finds the artifact by (model id, version) in its own model store, never by the
event's path, checks that the event's sha256 is the store's, and loads it through
:meth:`~streams.updater.model_store.ModelStore.load` (sha256, and HMAC when a key is set). An event
that fails a check changes nothing and becomes a dead letter.

The first prediction made by a new version announces it: a ``served`` event (old version →
new, at that prediction's event time) on ``model-updates``. The worker retires the old
version's monitor from that time on (:meth:`streams.pipeline.stages.MonitorStage.control_for`); the
new version's predictions get a monitor of their own.

**Canary.** With ``canary=share`` a promoted version first serves that share of the
traffic beside the current one (the split is sticky by ``key``, e.g. the prediction id, or
exact by count without one); both are tagged with their version, so the updater compares
them side by side (:mod:`streams.updater.canary`). A second ``promoted`` of the canary (the
updater's ``auto`` policy, on a significantly better comparison) makes it the only version,
and ``rolled_back`` to the current one ends the canary; either announces ``served`` and so
retires the version that stopped serving.

:class:`ModelFollower` runs the hook beside an existing server: ``await follower.run(stop)``
in an asyncio server, or ``follower.start()`` / ``stop()`` (a background thread) in any other.

>>> import tempfile
>>> from streams.updater.model_store import ModelStore
>>> store = ModelStore(tempfile.mkdtemp())
>>> v1 = store.save("churn", "v1", {"bias": 0}, {"created": 0.0, "metrics": {}, "parent_version": None})
>>> v2 = store.save("churn", "v2", {"bias": 1}, {"created": 5.0, "metrics": {}, "parent_version": "v1"})
>>> served = ServedModel(store, "churn", predict=lambda model, x: x["a"] + model["bias"])
>>> served.load("v1")
>>> served.predict({"a": 1}, timestamp=10.0)
(1, 'v1')
>>> served.apply({"event_id": "u7", "model_id": "churn", "action": "promoted", "new_version": "v2",
...               "artifact_sha256": v2.sha256, "artifact_path": "/anything/ignored.pkl"})
True
>>> served.predict({"a": 1}, timestamp=11.0)
(2, 'v2')
>>> [(e["action"], e["model_version"], e["new_version"], e["timestamp"]) for e in served.take_events()]
[('served', 'v1', 'v2', 11.0)]
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from schemas import codec
from schemas.ids import stable_id
from schemas.parsing import RecordError, dead_letter_record
from schemas.records import ModelUpdate

from streams.settings import Settings
from streams.updater.model_store import ArtifactIntegrityError, ModelStore, UnsafeNameError

__all__ = ["ModelFollower", "ServedModel"]

log = logging.getLogger(__name__)

#: ``model-updates`` actions that change which version serves.
SWITCHES = ("promoted", "rolled_back")


def _river_predict(model: Any, features: dict[str, Any]) -> Any:
    return model.predict_one(features)


class ServedModel:
    """One model id's served version, swapped atomically (see the module docstring).
    ``predict(model, features)`` calls the loaded model; river's ``predict_one`` by default.
    ``canary``: the share of traffic a newly promoted version gets first (``None``: all)."""

    def __init__(self, store: ModelStore, model_id: str, *, predict: Callable[[Any, dict[str, Any]], Any] = _river_predict,
                 canary: float | None = None) -> None:
        if canary is not None and not 0.0 < canary < 1.0:
            raise ValueError(f"canary must be a share in (0, 1) or None, got {canary!r}")
        self.store = store
        self.model_id = model_id
        self._predict = predict
        self.canary = canary
        #: (version, model): read once per prediction, replaced whole
        self._current: tuple[str | None, Any] = (None, None)
        #: the canary's (version, model), or None; replaced whole too
        self._canary: tuple[str, Any] | None = None
        self._canary_sha256: str | None = None  # what a promotion of the canary must name
        self._count = itertools.count()  # predictions without a key, for an exact split
        self._announce: dict[str, Any] | None = None  # the switch the next prediction announces
        self._lock = threading.Lock()  # guards the two outboxes, not the served model
        self._events: list[dict[str, Any]] = []
        self._dead_letters: list[dict[str, Any]] = []

    @property
    def version(self) -> str | None:
        """The version serving all traffic, or all but the canary's share."""
        return self._current[0]

    @property
    def canary_version(self) -> str | None:
        canary = self._canary
        return canary[0] if canary else None

    def _to_canary(self, key: str | None) -> bool:
        assert self.canary is not None
        if key is not None:  # sticky: the same key always gets the same version
            return int(stable_id(self.model_id, key), 16) < self.canary * 2**128
        n = next(self._count)
        return math.floor((n + 1) * self.canary) > math.floor(n * self.canary)

    def load(self, version: str | None = None) -> None:
        """Serve ``version`` (the store's champion when ``None``), hash-checked; at start-up."""
        artifact = self.store.artifact(self.model_id, version) if version else self.store.champion(self.model_id)
        if artifact is None:
            raise FileNotFoundError(f"model {self.model_id!r} has no champion in {self.store.root}")
        self._current = (artifact.version, self.store.load(artifact.path, artifact.sha256))

    def predict(self, features: dict[str, Any], timestamp: float | None = None, *, key: str | None = None) -> tuple[Any, str | None]:
        """``(prediction, version)``: publish the prediction with that ``model_version``.
        ``timestamp`` (the prediction's event time, now by default) dates a switch's
        ``served`` event when this is the new version's first prediction. ``key`` (the
        prediction id, a user id) picks the side of a canary split."""
        version, model = self._current
        canary = self._canary
        if canary is not None and self._to_canary(key):
            version, model = canary
        if model is None:
            raise RuntimeError(f"no version of {self.model_id!r} is loaded: call load() first")
        announce = self._announce
        if announce is not None and announce["new_version"] == version:
            with self._lock:
                if self._announce is announce:
                    self._announce = None
                    self._events.append(self._served(announce, time.time() if timestamp is None else float(timestamp)))
        return self._predict(model, features), version

    def apply(self, update: dict[str, Any]) -> bool:
        """Act on one ``model-updates`` event; ``True`` when it switched the served version.
        A switch whose artifact fails a check is dead-lettered and changes nothing."""
        if update.get("model_id") != self.model_id or update.get("action") not in SWITCHES:
            return False
        version = update.get("new_version")
        canary = self._canary
        if canary is not None and (version == canary[0] and update["action"] == "promoted" or version == self.version):
            # the canary becomes the only version (promoted again), or ends (rolled back to the current one)
            if version == canary[0] and update.get("artifact_sha256") != self._canary_sha256:
                self._dead_letter(update, ArtifactIntegrityError(
                    f"model-updates promotes canary {self.model_id} {version} with sha256 {update.get('artifact_sha256')}, "
                    f"the canary served has {self._canary_sha256}; refusing to serve it alone"))
                return False
            stopped = self.version if version == canary[0] else canary[0]
            if version == canary[0]:
                self._current = canary
            self._canary = None
            self._switched(update, stopped, version)
            return True
        if version == self.version:
            return False
        try:
            artifact, model = self.store.load_named(self.model_id, version, update.get("artifact_sha256"))  # type: ignore[arg-type]
        except (UnsafeNameError, ArtifactIntegrityError, OSError, ValueError, KeyError) as exc:
            self._dead_letter(update, exc)
            return False
        if self.canary is not None and update["action"] == "promoted" and self.version is not None:
            self._canary, self._canary_sha256 = (version, model), artifact.sha256  # type: ignore[assignment]
            log.info("%s: %s serves %.0f %% of the traffic as a canary beside %s", self.model_id, version,
                     100 * self.canary, self.version)
            return True
        previous = self.version
        self._current, self._canary = (version, model), None
        self._switched(update, previous, version)
        return True

    def _switched(self, update: dict[str, Any], previous: str | None, version: str | None) -> None:
        """The next prediction of ``version`` announces that ``previous`` stopped serving."""
        with self._lock:
            self._announce = {"event_id": update.get("event_id"), "model_version": previous, "new_version": version,
                              "alert_ids": list(update.get("alert_ids") or []), "action": update["action"]}
        log.info("%s: serving %s (was %s) after %s", self.model_id, version, previous, update["action"])

    def take_events(self) -> list[dict[str, Any]]:
        """``served`` events to publish on ``model-updates``."""
        with self._lock:
            events, self._events = self._events, []
        return events

    def take_dead_letters(self) -> list[dict[str, Any]]:
        with self._lock:
            letters, self._dead_letters = self._dead_letters, []
        return letters

    def _served(self, switch: dict[str, Any], timestamp: float) -> dict[str, Any]:
        return ModelUpdate.from_dict({
            # one id per switch, whichever server announces it first: the monitor takes it once
            "event_id": stable_id(str(switch["event_id"]), "served"), "model_id": self.model_id,
            "model_version": switch["model_version"], "action": "served",
            "reason": f"{switch['new_version']} serves {self.model_id} (after {switch['action']}), replacing {switch['model_version']}",
            "alert_ids": switch["alert_ids"], "from_timestamp": timestamp, "to_timestamp": timestamp, "metrics": {},
            "new_version": switch["new_version"], "artifact_path": None, "artifact_sha256": None, "timestamp": timestamp,
        }).to_dict()

    def _dead_letter(self, update: dict[str, Any], exc: Exception) -> None:
        code = "unsafe_name" if isinstance(exc, UnsafeNameError) else "model_quarantined"
        error = RecordError(None, code, f"model-updates: {self.model_id} not switched to {update.get('new_version')!r}: {exc}",
                            codec.dumps(update))
        record = dead_letter_record("model-updates", None, None, error, time.time())
        record["dead_letter_id"] = stable_id("dead-letter", "serving", str(update.get("event_id")))
        log.error("%s", error.message)
        with self._lock:
            self._dead_letters.append(record)


class ModelFollower:
    """Feeds ``model-updates`` to a :class:`ServedModel` and publishes its ``served`` events
    and dead letters. Every server reads every update (no consumer group), from the end of
    the topic: a server starts from the store's champion (:meth:`ServedModel.load`)."""

    def __init__(self, settings: Settings, served: ServedModel) -> None:
        self.settings = settings
        self.served = served
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.ready = threading.Event()  # set once the consumer is positioned

    async def run(self, stop: asyncio.Event) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        from streams.runtime.kafka_connect import start_client

        s = self.settings
        consumer = AIOKafkaConsumer(s.topic("model-updates"), **s.kafka_client_kwargs(), group_id=None,
                                    auto_offset_reset="latest", enable_auto_commit=False)
        producer = AIOKafkaProducer(**s.kafka_client_kwargs())
        await start_client(producer, s)
        try:
            await start_client(consumer, s)
            try:
                while not consumer.assignment():
                    await asyncio.sleep(0.05)
                for tp in consumer.assignment():
                    await consumer.position(tp)  # fixes "latest" before the server is called ready
                self.ready.set()
                loop = asyncio.get_running_loop()
                while not stop.is_set():
                    batches = await consumer.getmany(timeout_ms=200)
                    for messages in batches.values():
                        for message in messages:
                            try:
                                update = ModelUpdate.from_dict(codec.loads(message.value)).to_dict()
                            except ValueError:  # another team's event on the shared topic
                                continue
                            # loading reads and hashes a file: off the event loop
                            await loop.run_in_executor(None, self.served.apply, update)
                    await self._publish(producer)
                await self._publish(producer)
            finally:
                await consumer.stop()
        finally:
            await producer.stop()

    async def _publish(self, producer: Any) -> None:
        s = self.settings
        for event in self.served.take_events():
            await producer.send(s.topic("model-updates"), codec.dumps(event), key=event["model_id"].encode())
        for letter in self.served.take_dead_letters():
            await producer.send(s.topic("dead-letter"), codec.dumps(letter), key=letter["dead_letter_id"].encode())
        await producer.flush()

    def start(self, ready_within_s: float = 30.0) -> None:
        """Run in a background thread (for a server without an event loop); returns once
        it follows the topic."""
        def main() -> None:
            self._loop = asyncio.new_event_loop()
            self._stop = asyncio.Event()
            self._loop.run_until_complete(self.run(self._stop))
            self._loop.close()

        self._thread = threading.Thread(target=main, name=f"model-follower-{self.served.model_id}", daemon=True)
        self._thread.start()
        if not self.ready.wait(ready_within_s):
            raise TimeoutError(f"model-updates not followed within {ready_within_s} s")

    def stop(self) -> None:
        """Stop the background thread, publishing what is left."""
        if self._thread is not None and self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join()
            self._thread = None
