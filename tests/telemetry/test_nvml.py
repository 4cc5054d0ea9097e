"""NVML backend through a stand-in module shaped like pynvml (same functions, errors, units)."""

from __future__ import annotations

import sys

import pytest

from engine.telemetry import detect
from engine.telemetry.nvml import NvmlSampler, resolve_visible
from engine.telemetry.stats import TelemetryUnavailable

from .conftest import make_fake_pynvml, two_gpus


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch):
    module = make_fake_pynvml(two_gpus())
    monkeypatch.setitem(sys.modules, "pynvml", module)
    return module


def test_cards_with_units_converted(fake_nvml) -> None:
    sampler = NvmlSampler()
    a100, k80 = sampler.sample()
    assert (a100.kind, a100.index, a100.name) == ("cuda", 0, "NVIDIA A100-SXM4-80GB")
    assert a100.uuid == "GPU-aaaa1111-2222-3333-4444-555566667777"
    assert a100.bus_id == "00000000:07:00.0"
    assert a100.util_percent == 93
    assert a100.extra["mem_util_percent"] == 41
    assert (a100.mem_used_mib, a100.mem_total_mib) == (61440, 81920)  # bytes → MiB
    assert a100.temp_c == 64
    assert (a100.power_w, a100.power_cap_w) == (312.456, 400.0)  # milliwatts → watts
    assert a100.extra["driver"] == "550.54.15"
    assert [(p.pid, p.mem_used_mib) for p in a100.processes] == [(4242, 61000), (4243, None)]
    assert a100.extra["errors"] == []
    # bytes from an old pynvml are decoded
    assert (k80.name, k80.uuid, k80.bus_id) == (
        "Tesla K80",
        "GPU-bbbb9999-8888-7777-6666-555544443333",
        "00000000:86:00.0",
    )


def test_not_supported_is_none_never_zero(fake_nvml) -> None:
    a100, k80 = NvmlSampler().sample()
    assert a100.extra["fan_percent"] is None  # a datacenter card has no fan reading
    assert k80.temp_c is None and k80.power_w is None and k80.power_cap_w is None
    assert k80.util_percent == 0  # reported as 0, so 0
    assert not any("Not Supported" in e for e in k80.extra["errors"])


def test_other_nvml_errors_are_none_and_noted(fake_nvml) -> None:
    _, k80 = NvmlSampler().sample()
    assert k80.processes == []
    assert k80.extra["errors"] == ["nvmlDeviceGetComputeRunningProcesses: Insufficient Permissions"]


def test_sample_some_cards_and_ignore_unknown_indices(fake_nvml) -> None:
    sampler = NvmlSampler()
    assert [c.index for c in sampler.sample([1])] == [1]
    assert [c.index for c in sampler.sample([1, 0, 7])] == [1, 0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", []),
        ("1,0", [1, 0]),
        ("GPU-bbbb9999", [1]),  # a UUID prefix, as CUDA accepts
        ("bbbb9999-8888", [1]),  # without the GPU- prefix
        ("GPU-aaaa1111-2222-3333-4444-555566667777,1", [0, 1]),
        ("-1", []),  # CUDA's way to hide every card
        ("0,7,1", [0]),  # CUDA ignores everything after an entry that names no card
        ("MIG-1234,0", []),
        ("GPU-,1", []),  # an ambiguous prefix names no card
    ],
)
def test_resolve_cuda_visible_devices(value: str | None, expected: list[int] | None) -> None:
    uuids = [two_gpus()[0]["uuid"], two_gpus()[1]["uuid"].decode()]
    assert resolve_visible(value, uuids) == expected


def test_sample_visible_maps_by_uuid(fake_nvml) -> None:
    sampler = NvmlSampler(env={"CUDA_VISIBLE_DEVICES": "GPU-bbbb"})
    (card,) = sampler.sample_visible()
    assert card.index == 1
    assert [c.index for c in sampler.sample_visible("1,0")] == [1, 0]


def test_close_shuts_nvml_down_once(fake_nvml) -> None:
    sampler = NvmlSampler()
    sampler.close()
    sampler.close()
    assert fake_nvml.calls == ["nvmlInit", "nvmlShutdown"]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            "NVMLError_LibraryNotFound",
            "NVML library (libnvidia-ml.so.1) not found: no NVIDIA driver installed",
        ),
        ("NVMLError_DriverNotLoaded", "the NVIDIA driver is not loaded"),
        ("NVMLError_NoPermission", "NVML failed to start: Insufficient Permissions"),
    ],
)
def test_nvml_that_cannot_start_is_a_reason(monkeypatch: pytest.MonkeyPatch, error: str, reason: str) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_pynvml([], init_error=error))
    with pytest.raises(TelemetryUnavailable) as raised:
        NvmlSampler()
    assert str(raised.value) == reason
    assert detect.detect_backends(env={"PATH": ""})["cuda"] == reason


def test_missing_pynvml_is_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    monkeypatch.setattr("engine.telemetry.nvml.nvidia_driver_present", lambda: False)
    with pytest.raises(TelemetryUnavailable, match=r"^no NVIDIA driver, and nvidia-ml-py is not installed$"):
        NvmlSampler()
    monkeypatch.setattr("engine.telemetry.nvml.nvidia_driver_present", lambda: True)
    with pytest.raises(TelemetryUnavailable, match=r"pip install 'rn50tui\[nvml\]'"):
        NvmlSampler()


def test_no_gpu_is_reported_as_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_pynvml([]))
    report = detect.sample_all(env={"PATH": ""})
    assert report.cards["cuda"] == []
    assert report.unavailable["cuda"] == "NVML sees no card"


@pytest.mark.device
def test_real_nvml_when_present() -> None:
    pytest.importorskip("pynvml")
    try:
        sampler = NvmlSampler()
    except TelemetryUnavailable as exc:
        pytest.skip(f"no usable NVML here: {exc}")
    cards = sampler.sample()
    sampler.close()
    if not cards:
        pytest.skip("NVML sees no card")
    for card in cards:
        assert card.name and card.mem_total_mib and card.mem_total_mib > 0
