"""``GpuCollector`` against the real NVML: runs only where a GPU and its driver are present."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from streams.ops.gpu import register_gpu_collector

pynvml = pytest.importorskip("pynvml")

try:
    pynvml.nvmlInit()
except pynvml.NVMLError as exc:
    pytest.skip(f"NVML does not start here ({exc}): no GPU or driver", allow_module_level=True)


def _samples(registry: CollectorRegistry, name: str) -> dict[str, float]:
    """``{gpu index: value}`` of one family."""
    family = next(f for f in registry.collect() if f.name == name)
    return {s.labels["gpu"]: s.value for s in family.samples}


def test_real_gpu_values_are_sane() -> None:
    registry = CollectorRegistry()
    register_gpu_collector(registry)
    assert registry.get_sample_value("driftstream_gpu_available") == 1.0
    count = pynvml.nvmlDeviceGetCount()
    utilization = _samples(registry, "driftstream_gpu_utilization_ratio")
    used = _samples(registry, "driftstream_gpu_memory_used_bytes")
    total = _samples(registry, "driftstream_gpu_memory_total_bytes")
    temperature = _samples(registry, "driftstream_gpu_temperature_celsius")
    assert sorted(utilization) == sorted(total) == [str(i) for i in range(count)]
    for gpu in total:
        assert 0.0 <= utilization[gpu] <= 1.0
        assert total[gpu] > 0 and 0 <= used[gpu] <= total[gpu]
        assert 0 < temperature[gpu] < 120
    for watts in _samples(registry, "driftstream_gpu_power_watts").values():
        assert 0 < watts < 2_000


def test_real_gpu_labels_name_each_device() -> None:
    registry = CollectorRegistry()
    register_gpu_collector(registry)
    family = next(f for f in registry.collect() if f.name == "driftstream_gpu_memory_total_bytes")
    for sample in family.samples:
        assert sample.labels["name"] and sample.labels["uuid"].startswith(("GPU-", "MIG-"))
