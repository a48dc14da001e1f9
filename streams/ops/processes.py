"""Stopping child processes we started in their own session (broker, workers, baselines)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any


def signal_group(process: subprocess.Popen[Any], sig: int) -> None:
    """Send ``sig`` to the process group of ``process`` (it may already be gone)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def terminate_group(process: subprocess.Popen[Any], timeout_s: float = 10.0) -> int | None:
    """SIGTERM the process group, then SIGKILL it after ``timeout_s``; the exit code."""
    if process.poll() is None:
        signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            signal_group(process, signal.SIGKILL)
            process.wait(timeout_s)
    return process.returncode
