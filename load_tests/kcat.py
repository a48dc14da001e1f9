"""Run ``kcat``, a Kafka client we did not write, as the foreign producer of the load tests.

Debian bookworm's librdkafka 2.0.2 cannot parse the tagged fields of the embedded broker's
ApiVersions response, so kcat is run against the current librdkafka bundled in the
confluent-kafka wheel (same soname, same C API) through ``LD_LIBRARY_PATH``; kcat itself
is unchanged. A foreign producer keys each event by ``prediction_id`` and partitions with
Kafka's default partitioner (``-X topic.partitioner=murmur2_random``), one JSON event per
record::

    run = kcat_runner()
    run("-P", "-b", bootstrap, "-t", topic, "-K", "\\t", *FOREIGN_PRODUCER, input=lines)
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from schemas import codec

KcatRunner = Callable[..., "subprocess.CompletedProcess[bytes]"]

#: What makes kcat partition like the Java client, aiokafka and our SDK.
FOREIGN_PRODUCER = ("-X", "topic.partitioner=murmur2_random")


class KcatUnavailable(RuntimeError):
    """kcat is not installed (Debian package ``kcat``)."""


def kcat_binary() -> str:
    binary = shutil.which("kcat") or shutil.which("kafkacat")
    if binary is None:
        raise KcatUnavailable("kcat is not installed (Debian package kcat; .ci/run installs it)")
    return binary


def bundled_librdkafka_env() -> dict[str, str]:
    """The environment that makes kcat load confluent-kafka's bundled librdkafka.

    The symlink directory is removed when the interpreter exits.
    """
    env = dict(os.environ)
    try:
        import confluent_kafka
    except ImportError:
        return env
    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    bundled = sorted(libs.glob("librdkafka*.so*"))
    if bundled:
        libdir = Path(tempfile.mkdtemp(prefix="kcat-lib-"))
        (libdir / "librdkafka.so.1").symlink_to(bundled[0])
        atexit.register(shutil.rmtree, libdir, True)
        env["LD_LIBRARY_PATH"] = str(libdir)
    return env


def kcat_runner() -> KcatRunner:
    """``run(*kcat_args, input=bytes, timeout=s)``: a completed kcat run (raises on failure)."""
    binary = kcat_binary()
    env = bundled_librdkafka_env()

    def run(*args: str, input: bytes | None = None, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([binary, *args], input=input, capture_output=True, check=True, timeout=timeout, env=env)

    return run


def keyed_lines(events: Iterable[Mapping[str, Any]]) -> bytes:
    """``prediction_id<TAB>json`` lines, the input of ``kcat -P -K '\\t'``."""
    return b"".join(str(e["prediction_id"]).encode() + b"\t" + codec.dumps(dict(e)) + b"\n" for e in events)


def produce_foreign(bootstrap: str, topic: str, events: Iterable[Mapping[str, Any]], timeout: float = 300) -> None:
    """Produce one event per record with kcat, keyed by ``prediction_id``, murmur2-partitioned."""
    kcat_runner()("-P", "-b", bootstrap, "-t", topic, "-K", "\t", *FOREIGN_PRODUCER, "-X", "queue.buffering.max.messages=1000000",
                  input=keyed_lines(events), timeout=timeout)
