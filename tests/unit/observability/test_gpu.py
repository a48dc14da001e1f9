"""``streams.ops.gpu.GpuCollector`` without NVML (this machine) and with a fake NVML module."""

from __future__ import annotations

import logging
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streams.ops.gpu import GPU_LABELS, GpuCollector, register_gpu_collector

GIB = 1024**3


def _nvml_starts() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # ImportError, or any NVMLError: no usable GPU here
        return False
    pynvml.nvmlShutdown()
    return True


class FakeNVMLError(Exception):
    """Stands in for ``pynvml.NVMLError``."""


def fake_nvml(
    gpus: int = 2, init_error: bool = False, power_supported: bool = True
) -> ModuleType:
    """A module with the slice of the pynvml API the collector uses, ``gpus`` GPUs strong."""
    nvml = ModuleType("fake_nvml")
    nvml.NVMLError = FakeNVMLError  # type: ignore[attr-defined]
    nvml.NVML_TEMPERATURE_GPU = 0  # type: ignore[attr-defined]

    def init() -> None:
        if init_error:
            raise FakeNVMLError("Driver Not Loaded")

    def power(index: int) -> int:
        if not power_supported:
            raise FakeNVMLError("Not Supported")
        return 70_500 + index  # milliwatts

    functions: dict[str, Any] = {
        "nvmlInit": init,
        "nvmlDeviceGetCount": lambda: gpus,
        "nvmlDeviceGetHandleByIndex": lambda index: index,
        "nvmlDeviceGetName": lambda index: b"NVIDIA H100" if index else "NVIDIA H100",
        "nvmlDeviceGetUUID": lambda index: f"GPU-{index:04d}",
        "nvmlDeviceGetUtilizationRates": lambda index: SimpleNamespace(gpu=40 + index, memory=5),
        "nvmlDeviceGetMemoryInfo": lambda index: SimpleNamespace(
            used=(index + 1) * GIB, total=80 * GIB, free=(79 - index) * GIB
        ),
        "nvmlDeviceGetTemperature": lambda index, sensor: 50 + index,
        "nvmlDeviceGetPowerUsage": power,
    }
    for name, function in functions.items():
        setattr(nvml, name, function)
    return nvml


def _registry(nvml: ModuleType | None = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    register_gpu_collector(registry, nvml)
    return registry


def _gpu(index: int, name: str = "NVIDIA H100") -> dict[str, str]:
    return dict(zip(GPU_LABELS, (str(index), name, f"GPU-{index:04d}")))


@pytest.mark.skipif(_nvml_starts(), reason="NVML works here: see test_gpu_real.py")
def test_without_gpu_exports_only_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    registry = _registry()
    with caplog.at_level(logging.WARNING, logger="streams.ops.gpu"):
        for _ in range(3):
            families = list(registry.collect())
    assert [(f.name, [s.value for s in f.samples]) for f in families] == [
        ("driftstream_gpu_available", [0.0])
    ]
    assert len(caplog.records) == 1
    assert "GPU metrics unavailable" in caplog.records[0].getMessage()


def test_init_failure_warns_once_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    registry = _registry(fake_nvml(init_error=True))
    with caplog.at_level(logging.WARNING, logger="streams.ops.gpu"):
        assert registry.get_sample_value("driftstream_gpu_available") == 0.0
        assert registry.get_sample_value("driftstream_gpu_available") == 0.0
    assert [r.getMessage() for r in caplog.records] == [
        "GPU metrics unavailable: NVML could not start, no GPU or driver (Driver Not Loaded); "
        "exporting driftstream_gpu_available 0"
    ]


def test_per_gpu_metrics_from_fake_nvml() -> None:
    registry = _registry(fake_nvml(gpus=2))
    value = registry.get_sample_value
    assert value("driftstream_gpu_available") == 1.0
    for index in (0, 1):
        labels = _gpu(index)
        assert value("driftstream_gpu_utilization_ratio", labels) == pytest.approx(
            (40 + index) / 100
        )
        assert value("driftstream_gpu_memory_used_bytes", labels) == (index + 1) * GIB
        assert value("driftstream_gpu_memory_total_bytes", labels) == 80 * GIB
        assert value("driftstream_gpu_temperature_celsius", labels) == 50 + index
        assert value("driftstream_gpu_power_watts", labels) == pytest.approx(70.5 + index / 1000)


def test_every_family_has_one_sample_per_gpu() -> None:
    families = list(_registry(fake_nvml(gpus=3)).collect())
    assert {f.name for f in families} == {
        "driftstream_gpu_available",
        "driftstream_gpu_utilization_ratio",
        "driftstream_gpu_memory_used_bytes",
        "driftstream_gpu_memory_total_bytes",
        "driftstream_gpu_temperature_celsius",
        "driftstream_gpu_power_watts",
    }
    for family in families:
        assert family.type == "gauge"
        if family.name != "driftstream_gpu_available":
            assert [s.labels["gpu"] for s in family.samples] == ["0", "1", "2"]


def test_unsupported_reading_is_left_out_for_that_gpu_only() -> None:
    registry = _registry(fake_nvml(gpus=1, power_supported=False))
    assert registry.get_sample_value("driftstream_gpu_power_watts", _gpu(0)) is None
    assert registry.get_sample_value("driftstream_gpu_temperature_celsius", _gpu(0)) == 50


def test_zero_gpus_is_unavailable() -> None:
    assert _registry(fake_nvml(gpus=0)).get_sample_value("driftstream_gpu_available") == 0.0


def test_query_failure_after_start_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    nvml = fake_nvml()

    def lost() -> int:
        raise FakeNVMLError("GPU is lost")

    registry = _registry(nvml)
    assert registry.get_sample_value("driftstream_gpu_available") == 1.0
    nvml.nvmlDeviceGetCount = lost  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, logger="streams.ops.gpu"):
        assert registry.get_sample_value("driftstream_gpu_available") == 0.0
        assert registry.get_sample_value("driftstream_gpu_available") == 0.0
    assert len(caplog.records) == 1 and "GPU is lost" in caplog.records[0].getMessage()


def test_registration_does_not_touch_nvml() -> None:
    nvml = fake_nvml()
    nvml.nvmlInit = lambda: pytest.fail("NVML started at registration")  # type: ignore[attr-defined]
    registry = CollectorRegistry()
    collector = GpuCollector(nvml)
    registry.register(collector)
    assert {f.name for f in collector.describe()} >= {"driftstream_gpu_available"}
