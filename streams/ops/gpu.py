"""GPU metrics for Prometheus, read through NVML (the ``nvidia-ml-py`` package, ``pynvml``).

:class:`GpuCollector` reports, per GPU (labels ``gpu`` index, ``name``, ``uuid``):
utilisation, memory used/total, temperature and power, plus ``driftstream_gpu_available``.
A machine without a GPU or driver is normal (laptops, CI, most workers): the collector
logs one warning, exports ``driftstream_gpu_available 0`` and never raises on a scrape.

>>> from prometheus_client import CollectorRegistry
>>> registry = CollectorRegistry()
>>> collector = register_gpu_collector(registry)
>>> registry.get_sample_value("driftstream_gpu_available") in (0.0, 1.0)
True
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

GPU_LABELS = ("gpu", "name", "uuid")

#: name suffix, help text, and how to read the value (in base units) from NVML.
_READINGS: tuple[tuple[str, str, Callable[[Any, Any], float]], ...] = (
    (
        "utilization_ratio",
        "GPU utilisation over the last sample period (0..1).",
        lambda nvml, handle: nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0,
    ),
    (
        "memory_used_bytes",
        "GPU memory in use.",
        lambda nvml, handle: float(nvml.nvmlDeviceGetMemoryInfo(handle).used),
    ),
    (
        "memory_total_bytes",
        "GPU memory installed.",
        lambda nvml, handle: float(nvml.nvmlDeviceGetMemoryInfo(handle).total),
    ),
    (
        "temperature_celsius",
        "GPU core temperature.",
        lambda nvml, handle: float(
            nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
        ),
    ),
    (
        "power_watts",
        "GPU power draw.",
        lambda nvml, handle: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
    ),
)


def _text(value: str | bytes) -> str:
    """NVML strings are ``bytes`` in old bindings and ``str`` in new ones."""
    return value.decode() if isinstance(value, bytes) else value


class GpuCollector(Collector):
    """A prometheus_client collector of per-GPU metrics read through NVML.

    ``nvml`` is the NVML binding module (default: ``pynvml``, imported on first scrape);
    tests pass a fake one. NVML is initialised once, on the first scrape. A reading a GPU
    does not support (e.g. power on some boards) is left out for that GPU only.
    """

    def __init__(self, nvml: ModuleType | None = None, prefix: str = "driftstream") -> None:
        self._nvml = nvml
        self._prefix = prefix
        self._lock = threading.Lock()
        self._initialised = False
        self._warned = False

    def describe(self) -> Iterator[Metric]:
        """The metric families, without touching NVML (used at registration)."""
        yield self._family("available", "1 if NVML reports GPUs, else 0.", ())
        for suffix, doc, _ in _READINGS:
            yield self._family(suffix, doc, GPU_LABELS)

    def collect(self) -> Iterator[Metric]:
        """Read every GPU now; only ``<prefix>_gpu_available 0`` when NVML is unusable."""
        with self._lock:
            families = self._read()
        available = self._family("available", "1 if NVML reports GPUs, else 0.", ())
        available.add_metric([], 1.0 if families else 0.0)
        yield available
        yield from families

    def _family(self, suffix: str, doc: str, labels: tuple[str, ...]) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"{self._prefix}_gpu_{suffix}", doc, labels=labels)

    def _read(self) -> list[GaugeMetricFamily]:
        """One family per reading, or ``[]`` when NVML is missing, failing or sees no GPU."""
        nvml = self._load()
        if nvml is None:
            return []
        try:
            count = nvml.nvmlDeviceGetCount()
            families = [self._family(suffix, doc, GPU_LABELS) for suffix, doc, _ in _READINGS]
            for index in range(count):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                labels = [
                    str(index),
                    _text(nvml.nvmlDeviceGetName(handle)),
                    _text(nvml.nvmlDeviceGetUUID(handle)),
                ]
                for family, (suffix, _, read) in zip(families, _READINGS):
                    try:
                        family.add_metric(labels, read(nvml, handle))
                    except nvml.NVMLError as exc:
                        log.debug("GPU %d: no %s reading (%s)", index, suffix, exc)
        except nvml.NVMLError as exc:
            self._warn_once(f"NVML query failed ({exc})")
            return []
        return families if count else []

    def _load(self) -> Any:
        """The initialised NVML module, or ``None`` (after one warning) if unusable."""
        if self._initialised:
            return self._nvml
        if self._warned:
            return None
        try:
            if self._nvml is None:
                import pynvml

                self._nvml = pynvml
            self._nvml.nvmlInit()
        except ImportError as exc:
            self._warn_once(f"the nvidia-ml-py package is not installed ({exc})")
            return None
        except self._nvml.NVMLError as exc:  # type: ignore[union-attr]
            self._warn_once(f"NVML could not start, no GPU or driver ({exc})")
            return None
        self._initialised = True
        return self._nvml

    def _warn_once(self, reason: str) -> None:
        if not self._warned:
            log.warning("GPU metrics unavailable: %s; exporting %s_gpu_available 0",
                        reason, self._prefix)
            self._warned = True


def register_gpu_collector(
    registry: CollectorRegistry, nvml: ModuleType | None = None
) -> GpuCollector:
    """Create a :class:`GpuCollector` and register it on ``registry``."""
    collector = GpuCollector(nvml)
    registry.register(collector)
    return collector


__all__ = ["GpuCollector", "register_gpu_collector", "GPU_LABELS"]
