"""``driftstream model list|show|promote|rollback|rebaseline``: the model store's lineage, by hand.

``list`` and ``show`` read the store (``DRIFTSTREAM_MODEL_STORE_DIR``): versions, parents,
metrics, sha256 and who decided. ``rollback`` makes an earlier version the champion again
(its artifact checked first) and publishes ``rolled_back`` on ``model-updates``, as the
updater does, so servers following the topic (:mod:`streams.sdk.serving`) switch to it.
``promote`` makes a stored version the champion and publishes ``promoted``: servers switch
to it, and a server serving it as a canary serves it alone (how an operator ends a canary
that the default ``publish`` comparison policy leaves running). A running updater follows
both. ``rebaseline`` publishes ``rebaseline_requested``: the worker re-baselines that
version's monitor. Each records ``decided_by: cli:<user>``.

>>> import tempfile
>>> from streams.updater.model_store import ModelStore
>>> store = ModelStore(tempfile.mkdtemp())
>>> _ = store.save("churn", "v1", {}, {"created": 1.0, "metrics": {}, "parent_version": None, "decided_by": "updater"})
>>> _ = store.save("churn", "v2", {}, {"created": 2.0, "metrics": {"improvement": 0.3}, "parent_version": "v1", "decided_by": "updater"})
>>> store.set_champion("churn", store.artifact("churn", "v2"))
>>> event = rollback(store, "churn", None, decided_by="cli:ops", timestamp=3.0)
>>> event["action"], event["model_version"], event["new_version"], store.champion("churn").version
('rolled_back', 'v2', 'v1', 'v1')
>>> [(r["version"], r["parent"], r["champion"]) for r in lineage(store, "churn")]
[('v1', None, True), ('v2', 'v1', False)]
>>> event = promote(store, "churn", "v2", decided_by="cli:ops", timestamp=4.0)
>>> event["action"], event["model_version"], event["new_version"], store.champion("churn").version
('promoted', 'v1', 'v2', 'v2')
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import time
from typing import Any

from schemas import codec
from schemas.ids import stable_id
from schemas.records import ModelUpdate

from streams.exceptions import DriftstreamError
from streams.settings import Settings
from streams.updater.model_store import ModelStore

__all__ = ["add_cli", "lineage", "promote", "rebaseline_request", "rollback"]


def lineage(store: ModelStore, model_id: str) -> list[dict[str, Any]]:
    """One row per stored version of ``model_id``, oldest first."""
    versions = store.versions(model_id)
    if not versions:
        raise DriftstreamError(f"no model {model_id!r} in the model store {store.root}")
    champion = store.champion(model_id)
    return [{
        "version": a.version, "parent": a.metadata.get("parent_version"), "champion": champion is not None and champion.version == a.version,
        "created": a.metadata.get("created"), "decided_by": a.metadata.get("decided_by"), "sha256": a.sha256,
        "signed": "hmac_sha256" in a.metadata, "metrics": a.metadata.get("metrics") or {},
    } for a in versions]


def _update(model_id: str, version: str | None, action: str, new_version: str | None, reason: str, timestamp: float,
            metrics: dict[str, Any], artifact: Any = None) -> dict[str, Any]:
    return ModelUpdate.from_dict({
        "event_id": stable_id("cli", model_id, version or "", action, new_version or "", timestamp), "model_id": model_id,
        "model_version": version, "action": action, "reason": reason, "alert_ids": [], "from_timestamp": timestamp,
        "to_timestamp": timestamp, "metrics": metrics, "new_version": new_version,
        "artifact_path": artifact.path if artifact else None, "artifact_sha256": artifact.sha256 if artifact else None,
        "timestamp": timestamp,
    }).to_dict()


def rollback(store: ModelStore, model_id: str, to_version: str | None, *, decided_by: str, timestamp: float) -> dict[str, Any]:
    """Make ``to_version`` (the champion's parent by default) the champion, once its artifact
    passes the store's checks; the ``rolled_back`` event to publish."""
    current = store.champion(model_id)
    if current is None:
        raise DriftstreamError(f"model {model_id!r} has no champion in the model store {store.root}")
    target = to_version or current.metadata.get("parent_version")
    if not target:
        raise DriftstreamError(f"{model_id} {current.version} has no parent to roll back to; name one with --to")
    artifact = _make_champion(store, model_id, target, current.version)
    reason = f"rolled back by {decided_by}: {current.version} -> {target}"
    return _update(model_id, current.version, "rolled_back", target, reason, timestamp,
                   {"decided_by": decided_by, "promoted_version": current.version, "previous_version": target}, artifact)


def promote(store: ModelStore, model_id: str, version: str, *, decided_by: str, timestamp: float) -> dict[str, Any]:
    """Make the stored ``version`` the champion, once its artifact passes the store's
    checks; the ``promoted`` event to publish (``model_version``: the champion before)."""
    current = store.champion(model_id)
    previous = current.version if current else None
    artifact = _make_champion(store, model_id, version, previous)
    reason = f"promoted by {decided_by}: {previous or 'no champion'} -> {version}"
    return _update(model_id, previous, "promoted", version, reason, timestamp,
                   {"decided_by": decided_by, "previous_version": previous}, artifact)


def _make_champion(store: ModelStore, model_id: str, version: str, current: str | None) -> Any:
    if version == current:
        raise DriftstreamError(f"{model_id} {version} is already the champion")
    try:
        artifact = store.artifact(model_id, version)
    except FileNotFoundError:
        raise DriftstreamError(f"{model_id} has no version {version} in the model store {store.root}") from None
    store.load(artifact.path, artifact.sha256)  # refuses a tampered (or, with a key, unsigned) artifact
    store.set_champion(model_id, artifact)
    return artifact


def rebaseline_request(model_id: str, version: str | None, *, decided_by: str, reason: str, timestamp: float) -> dict[str, Any]:
    """The ``rebaseline_requested`` event for the monitor of ``model_id`` [``version``]."""
    return _update(model_id, version, "rebaseline_requested", None, f"{reason} ({decided_by})", timestamp, {"decided_by": decided_by})


async def _publish(settings: Settings, event: dict[str, Any]) -> None:
    from aiokafka import AIOKafkaProducer

    from streams.runtime.kafka_connect import start_client

    producer = AIOKafkaProducer(**settings.kafka_client_kwargs())
    await start_client(producer, settings)
    try:
        await producer.send_and_wait(settings.topic("model-updates"), codec.dumps(event), key=event["model_id"].encode())
    finally:
        await producer.stop()


def _cmd(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    store = ModelStore.from_settings(settings)
    decided_by = f"cli:{getpass.getuser()}"
    if args.model_command == "list":
        for model_id in store.models():
            rows = lineage(store, model_id)
            champion = next((r["version"] for r in rows if r["champion"]), "-")
            print(f"{model_id}\tchampion {champion}\t{len(rows)} version(s), latest {rows[-1]['version']}")
        return 0
    if args.model_command == "show":
        for r in lineage(store, args.model):
            print(codec.dumps(r).decode())
        return 0
    if args.model_command == "rollback":
        event = rollback(store, args.model, args.to, decided_by=decided_by, timestamp=time.time())
    elif args.model_command == "promote":
        event = promote(store, args.model, args.version, decided_by=decided_by, timestamp=time.time())
    else:
        event = rebaseline_request(args.model, args.version, decided_by=decided_by, reason=args.reason, timestamp=time.time())
    asyncio.run(_publish(settings, event))
    print(f"published {event['action']} {event['event_id']}: {event['reason']}")
    return 0


def add_cli(subparsers: Any) -> None:
    """Add ``driftstream model ...`` to the command line."""
    p = subparsers.add_parser("model", help="model versions: list, show, promote, rollback, rebaseline")
    sub = p.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    sub.add_parser("list", help="every model in DRIFTSTREAM_MODEL_STORE_DIR with its champion").set_defaults(func=_cmd)
    q = sub.add_parser("show", help="a model's versions (JSON lines): parent, metrics, sha256, who decided")
    q.add_argument("model", metavar="MODEL")
    q.set_defaults(func=_cmd)
    q = sub.add_parser("promote", help="make a stored version the champion and publish promoted (ends a canary)")
    q.add_argument("model", metavar="MODEL")
    q.add_argument("version", metavar="VERSION")
    q.set_defaults(func=_cmd)
    q = sub.add_parser("rollback", help="make an earlier version the champion and publish rolled_back")
    q.add_argument("model", metavar="MODEL")
    q.add_argument("--to", metavar="VERSION", help="the version to serve (default: the champion's parent)")
    q.set_defaults(func=_cmd)
    q = sub.add_parser("rebaseline", help="publish rebaseline_requested: the monitor takes a new reference")
    q.add_argument("model", metavar="MODEL")
    q.add_argument("--version", metavar="VERSION", help="the monitored model_version (default: none)")
    q.add_argument("--reason", default="re-baseline requested from the command line")
    q.set_defaults(func=_cmd)
