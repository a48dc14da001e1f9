"""The model store: versioned model artifacts on disk, authenticated by their sha256.

A model ``churn`` lives in its own folder under the store root (``settings.model_store_dir``)::

    churn/v1.pkl         the model
    churn/v1.json        its metadata sidecar: model_id, version, sha256, created (event
                         time), metrics, parent_version, format
    churn/pointers.json  {"latest": <artifact>, "champion": <artifact>}

Events on ``model-updates`` carry an artifact's path and sha256, never model bytes.

**Why pickle, and when it is safe.** River models are serialised by river's own
convention, :mod:`pickle`. Unpickling runs code chosen by whoever wrote the bytes, so
:meth:`ModelStore.load` hashes the file first and refuses it unless the sha256 matches the
one the caller expects; the caller takes that hash from a record the updater itself wrote
(its pointer file, or the artifact it just saved), never from a topic (our guide: "Never
deserialize bare pickle from a topic"). Paths outside the store root are refused as well.

A hash proves integrity, not authorship: whoever can write the store folder can replace a
file and its recorded hash together. With a key (``DRIFTSTREAM_MODEL_STORE_KEY``), each
artifact is also signed (HMAC-SHA256 over its bytes, kept in the sidecar) and
:meth:`ModelStore.load` refuses one whose signature does not check out, so only holders of
the key can plant a model.

**Safe by default.** Without a key, the store signs with a random key made for this process
(:data:`_PROCESS_KEY`) and so loads only the artifacts this process wrote: a file planted in
the folder, or left by an earlier run, is refused (:class:`UntrustedArtifactError`) rather
than unpickled. The updater then starts that model afresh instead of resuming its champion;
set ``DRIFTSTREAM_MODEL_STORE_KEY`` to resume models across restarts.

>>> import tempfile
>>> store = ModelStore(tempfile.mkdtemp())
>>> store.next_version("churn")
'v1'
>>> art = store.save("churn", "v1", {"weights": [0.5]}, {"created": 1.0, "metrics": {}, "parent_version": None})
>>> store.load(art.path, art.sha256)
{'weights': [0.5]}
>>> store.set_champion("churn", art)
>>> store.champion("churn") == art, store.next_version("churn")
(True, 'v2')
>>> store.load(art.path, "0" * 64)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
streams.updater.model_store.ArtifactIntegrityError: model artifact ... has sha256 ..., expected 000...; refusing to load a tampered or corrupted file
>>> ModelStore(store.root).load(art.path, art.sha256)["weights"]  # another keyless store, same process
[0.5]
>>> signed = ModelStore(store.root, key=b"k1")
>>> signed.load(art.path, art.sha256)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
streams.updater.model_store.ArtifactIntegrityError: model artifact ... is not signed with the model store key; refusing to load it
>>> art2 = signed.save("churn", "v2", {"weights": [0.7]}, {"created": 2.0, "metrics": {}, "parent_version": "v1"})
>>> signed.load(art2.path, art2.sha256)
{'weights': [0.7]}
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import re
import secrets
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from schemas import codec
from schemas.ids import stable_id

from streams.exceptions import DriftstreamError
from streams.settings import Settings
from streams.updater import pickling

__all__ = ["Artifact", "ArtifactIntegrityError", "ModelStore", "UnsafeNameError", "check_model_id", "check_version", "version_number"]

#: The serialisation of every artifact (recorded in the sidecar).
FORMAT = "river-pickle"

_VERSION = re.compile(r"^v([0-9]+)\.pkl$")
_SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_VERSION_NAME = re.compile(r"^v([0-9]{1,9})$")


def version_number(version: Any) -> int | None:
    """The number of a store version name (``"v12"`` -> 12), ``None`` for anything else.

    >>> version_number("v12"), version_number("canary-3"), version_number(None)
    (12, None, None)
    """
    match = _VERSION_NAME.match(version) if isinstance(version, str) else None
    return int(match[1]) if match else None


class UnsafeNameError(DriftstreamError, ValueError):
    """A model id or version that would name a path outside its folder in the store."""


def check_model_id(model_id: str) -> str:
    """``model_id``, or :class:`UnsafeNameError` for one that would leave the store folder
    (a path separator, ``..``, a leading dot, a NUL): such an id comes from a record, and
    no path is built from it."""
    if not model_id or model_id.startswith(".") or ".." in model_id or any(c in model_id for c in "/\\\0"):
        raise UnsafeNameError(f"model id {model_id!r} would leave the model store folder; refused")
    return model_id


def check_version(version: str) -> str:
    """``version`` if it looks like ``v<number>``, else :class:`UnsafeNameError`."""
    if not isinstance(version, str) or not _VERSION_NAME.match(version):
        raise UnsafeNameError(f"model version {version!r} is not v<number>; refused")
    return version


class ArtifactIntegrityError(DriftstreamError):
    """A model artifact's bytes do not hash to the sha256 recorded for it."""


class UntrustedArtifactError(ArtifactIntegrityError):
    """With no store key set: an artifact this process did not write (it is never unpickled)."""


#: The signing key of a store with no ``DRIFTSTREAM_MODEL_STORE_KEY``: random per process, so
#: such a store loads only what this process wrote.
_PROCESS_KEY = secrets.token_bytes(32)


@dataclass(frozen=True)
class Artifact:
    """A stored model version: where it is, its sha256, and its metadata sidecar."""

    path: str
    sha256: str
    version: str
    metadata: dict[str, Any]


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ModelStore:
    """Versioned, hash-checked (and, with a ``key``, signed) model artifacts in one folder
    per model."""

    def __init__(self, root: str | os.PathLike[str], *, key: bytes | None = None) -> None:
        self.root = Path(root).resolve()
        #: whether a key was given; without one, only this process's artifacts load
        self.keyed = key is not None
        self._key = key if key is not None else _PROCESS_KEY

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelStore:
        key = settings.model_store_key
        return cls(settings.model_store_dir, key=key.get_secret_value().encode() if key else None)

    def _signature(self, data: bytes) -> str | None:
        return hmac.new(self._key, data, hashlib.sha256).hexdigest() if self._key else None

    def folder(self, model_id: str) -> Path:
        """The folder of ``model_id``: its name when that is a safe file name, else a
        sanitised name made unique by a short hash (:class:`UnsafeNameError` for an id
        that tries to leave the store, see :func:`check_model_id`)."""
        check_model_id(model_id)
        if _SAFE.match(model_id):
            return self.root / model_id
        return self.root / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', model_id)[:48]}-{stable_id(model_id)[:8]}"

    def next_version(self, model_id: str) -> str:
        """``v<n+1>`` where ``v<n>`` is the highest version stored for ``model_id``."""
        folder = self.folder(model_id)
        numbers = [int(m.group(1)) for p in folder.glob("v*.pkl") if (m := _VERSION.match(p.name))] if folder.is_dir() else []
        return f"v{max(numbers, default=0) + 1}"

    def save(self, model_id: str, version: str, model: Any, metadata: dict[str, Any]) -> Artifact:
        """Write ``model`` as ``<version>.pkl`` with its JSON sidecar and make it ``latest``.

        ``metadata`` gives ``created`` (event time), ``metrics`` and ``parent_version``; the
        store adds ``model_id``, ``version``, ``sha256`` and ``format``.
        """
        check_version(version)
        folder = self.folder(model_id)
        folder.mkdir(parents=True, exist_ok=True)
        # equal models, equal bytes (sets sorted, sharing settled): a replay after a crash
        # writes the artifact it wrote before, in any process
        data = pickling.dumps(model)
        sha256 = hashlib.sha256(data).hexdigest()
        path = folder / f"{version}.pkl"
        _write_atomically(path, data)
        sidecar = {**metadata, "model_id": model_id, "version": version, "sha256": sha256, "format": FORMAT}
        signature = self._signature(data)
        if signature is not None:
            sidecar["hmac_sha256"] = signature
        _write_atomically(folder / f"{version}.json", codec.dumps(sidecar))
        artifact = Artifact(str(path), sha256, version, sidecar)
        self._set_pointer(model_id, "latest", artifact)
        return artifact

    def load(self, path: str | os.PathLike[str], expected_sha256: str) -> Any:
        """The model at ``path``, unpickled only if its bytes hash to ``expected_sha256``.

        Raises :class:`ArtifactIntegrityError` on a mismatch and ``ValueError`` for a path
        outside the store.
        """
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(self.root):
            raise ValueError(f"model artifact {path} is outside the model store {self.root}; refusing to load it")
        data = resolved.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise ArtifactIntegrityError(
                f"model artifact {path} has sha256 {actual}, expected {expected_sha256}; "
                "refusing to load a tampered or corrupted file"
            )
        signature = self._signature(data)
        if signature is not None:
            try:
                recorded = codec.loads(resolved.with_suffix(".json").read_bytes()).get("hmac_sha256")
            except (OSError, ValueError, AttributeError):
                recorded = None
            if not isinstance(recorded, str) or not hmac.compare_digest(recorded, signature):
                if not self.keyed:
                    raise UntrustedArtifactError(
                        f"model artifact {path} was not written by this process and DRIFTSTREAM_MODEL_STORE_KEY "
                        "is not set; refusing to unpickle it (set the key to resume models across restarts)"
                    )
                raise ArtifactIntegrityError(
                    f"model artifact {path} is not signed with the model store key; refusing to load it"
                )
        return pickle.loads(data)  # checked by the sha256 (and signature) above

    def artifact(self, model_id: str, version: str) -> Artifact:
        """The stored ``version`` of ``model_id``, read from its sidecar in the store's own
        folder: the way to find an artifact named by a record (never its path).
        :class:`UnsafeNameError` for a bad id or version, ``FileNotFoundError`` if absent."""
        check_version(version)
        folder = self.folder(model_id)
        sidecar = codec.loads((folder / f"{version}.json").read_bytes())
        return Artifact(str(folder / f"{version}.pkl"), sidecar["sha256"], version, sidecar)

    def load_named(self, model_id: str, version: str, sha256: Any) -> tuple[Artifact, Any]:
        """The stored ``version`` of ``model_id`` and its model, when its sha256 is the one a
        ``model-updates`` event names (an event's path is never followed): what a serving hook
        and an updater do with a promotion or a rollback they did not make.
        :class:`ArtifactIntegrityError` when the hashes differ, else as :meth:`artifact` and
        :meth:`load`."""
        artifact = self.artifact(model_id, version)
        if artifact.sha256 != sha256:
            raise ArtifactIntegrityError(
                f"model-updates names {model_id} {version} with sha256 {sha256}, the store has "
                f"{artifact.sha256}; refusing to load it")
        return artifact, self.load(artifact.path, artifact.sha256)

    def versions(self, model_id: str) -> list[Artifact]:
        """Every stored version of ``model_id``, oldest first."""
        folder = self.folder(model_id)
        found = sorted(int(m.group(1)) for p in folder.glob("v*.pkl") if (m := _VERSION.match(p.name))) if folder.is_dir() else []
        return [self.artifact(model_id, f"v{n}") for n in found if (folder / f"v{n}.json").exists()]

    def models(self) -> list[str]:
        """The model ids with a champion or a version in the store, sorted."""
        ids = []
        for pointers in self.root.glob("*/pointers.json"):
            latest = codec.loads(pointers.read_bytes()).get("latest") or {}
            model_id = (latest.get("metadata") or {}).get("model_id")
            if isinstance(model_id, str):
                ids.append(model_id)
        return sorted(ids)

    def set_champion(self, model_id: str, artifact: Artifact) -> None:
        """Record ``artifact`` as the model's champion (survives a restart)."""
        self._set_pointer(model_id, "champion", artifact)

    def champion(self, model_id: str) -> Artifact | None:
        """The champion recorded for ``model_id``, if any."""
        return self._pointer(model_id, "champion")

    def latest(self, model_id: str) -> Artifact | None:
        """The most recently saved artifact of ``model_id``, if any."""
        return self._pointer(model_id, "latest")

    def _pointers(self, model_id: str) -> dict[str, Any]:
        path = self.folder(model_id) / "pointers.json"
        return codec.loads(path.read_bytes()) if path.exists() else {}

    def _pointer(self, model_id: str, name: str) -> Artifact | None:
        value = self._pointers(model_id).get(name)
        return Artifact(**value) if value else None

    def _set_pointer(self, model_id: str, name: str, artifact: Artifact) -> None:
        pointers = {**self._pointers(model_id), name: asdict(artifact)}
        _write_atomically(self.folder(model_id) / "pointers.json", codec.dumps(pointers))

    # -- the updater's own state ---------------------------------------------------------
    #: Where the updater keeps its checkpoints; a model id never starts with a dot, so no
    #: model folder can be this one.
    STATE_FOLDER = ".updater-state"

    def save_state(self, name: str, state: Any, metadata: dict[str, Any]) -> None:
        """Write a checkpoint of the updater (``name``: a safe file name) with the sha256 and
        signature an artifact has; a crash leaves the previous checkpoint whole."""
        if not _SAFE.match(name):
            raise UnsafeNameError(f"updater state name {name!r} is not a safe file name; refused")
        folder = self.root / self.STATE_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        data = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        sha256 = hashlib.sha256(data).hexdigest()
        # the pickle first, under a name of its sha256, then the sidecar that points at it:
        # the sidecar never names bytes that are not yet there
        path = folder / f"{name}-{sha256[:16]}.pkl"
        _write_atomically(path, data)
        sidecar = {**metadata, "sha256": sha256, "file": path.name, "hmac_sha256": self._signature(data)}
        _write_atomically(folder / f"{name}.json", codec.dumps(sidecar))
        for stale in folder.glob(f"{name}-*.pkl"):
            if stale != path:
                stale.unlink(missing_ok=True)

    def load_state(self, name: str) -> tuple[Any, dict[str, Any]] | None:
        """The checkpoint ``name`` and its metadata, checked like an artifact; ``None`` if
        there is none."""
        folder = self.root / self.STATE_FOLDER
        try:
            sidecar = codec.loads((folder / f"{name}.json").read_bytes())
        except FileNotFoundError:
            return None
        path = folder / str(sidecar["file"])
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sidecar["sha256"]:
            raise ArtifactIntegrityError(f"updater state {path} does not hash to its recorded sha256; refusing to load it")
        if not isinstance(sidecar.get("hmac_sha256"), str) or not hmac.compare_digest(sidecar["hmac_sha256"], self._signature(data) or ""):
            raise (ArtifactIntegrityError if self.keyed else UntrustedArtifactError)(
                f"updater state {path} is not signed with this store's key; refusing to unpickle it")
        return pickle.loads(data), sidecar  # checked by the sha256 and signature above
