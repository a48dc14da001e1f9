"""A worker in a child process: start, wait until ready, scrape, stop or kill.

Used by ``driftstream demo``, the integration tests and the load tests, so all of them
exercise the real ``driftstream worker`` command.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from prometheus_client.parser import text_string_to_metric_families

from streams.exceptions import DriftstreamError
from streams.ops.broker import free_port
from streams.ops.processes import signal_group, terminate_group
from streams.settings import Settings


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the ``samples`` (a :meth:`WorkerProcess.scrape`) of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


class WorkerProcess:
    """``with WorkerProcess(settings) as worker: worker.wait_ready()``."""

    def __init__(self, settings: Settings, *, log_path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> None:
        if settings.web_port == 6066:
            settings = settings.replace(web_port=free_port())
        self.settings = settings
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="driftstream-worker-", suffix=".log")[1])
        self.extra_env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def start(self) -> WorkerProcess:
        env = {**os.environ, **self.settings.to_env(), **self.extra_env, "PYTHONUNBUFFERED": "1"}
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )
        log.close()
        return self

    def get(self, path: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=timeout_s) as response:  # noqa: S310 - loopback
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, limit: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def wait_until(self, condition: Callable[[], bool], deadline_s: float, what: str) -> float:
        """Poll ``condition`` until true; raise with the worker's log after ``deadline_s``."""
        start = time.monotonic()
        while time.monotonic() - start < deadline_s:
            if not self.alive():
                raise DriftstreamError(f"worker exited ({self.process.returncode if self.process else '?'}) while waiting for {what}:\n{self.log_tail()}")
            with contextlib.suppress(OSError, ValueError):
                if condition():
                    return time.monotonic() - start
            time.sleep(0.1)
        raise DriftstreamError(f"timed out after {deadline_s:.0f} s waiting for {what}; worker log:\n{self.log_tail()}")

    def wait_ready(self, deadline_s: float = 60.0) -> float:
        return self.wait_until(lambda: self.get("/ready")[0] == 200, deadline_s, "the worker to be ready")

    def scrape(self) -> Samples:
        """All samples of ``/metrics``: ``{(name, sorted labels): value}``."""
        status, body = self.get("/metrics")
        if status != 200:
            raise DriftstreamError(f"/metrics answered {status}")
        samples: Samples = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        return total(self.scrape(), name, **labels)

    def stop(self, timeout_s: float = 20.0) -> int | None:
        return terminate_group(self.process, timeout_s) if self.process is not None else None

    def kill(self) -> None:
        """SIGKILL the worker (and anything it started): a crash, for fault tests."""
        process = self.process
        if process is not None and process.poll() is None:
            signal_group(process, signal.SIGKILL)
            process.wait(10)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
