"""Shared helpers: fake `cnmon` executables and a stand-in for the pynvml module."""

from __future__ import annotations

import stat
import types
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "cnmon"


def write_script(directory: Path, body: str, name: str = "cnmon") -> Path:
    """An executable shell script `name` in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def fake_cnmon(tmp_path: Path):
    """Factory: a `cnmon` script that prints the given file; returns the directory to put on PATH."""

    def make(source: Path) -> Path:
        bindir = tmp_path / "bin"
        write_script(bindir, f"cat '{source}'")
        return bindir

    return make


class _Obj(types.SimpleNamespace):
    """Attribute bag, like pynvml's structures and friendly objects."""


def make_fake_pynvml(devices: list[dict], init_error: str | None = None) -> types.ModuleType:
    """A module shaped like pynvml: the same function names, errors and units (mW, bytes).

    Each device dict may name functions in "unsupported" (they raise NVMLError_NotSupported) or in
    "denied" (they raise NVMLError_NoPermission).
    """
    nvml = types.ModuleType("pynvml")

    class NVMLError(Exception):
        def __init__(self, value: int = 999) -> None:
            super().__init__(value)
            self.value = value

        def __str__(self) -> str:
            return self.text

        text = "Unknown Error"

    def error_class(name: str, code: int, text: str) -> type:
        return type(
            name, (NVMLError,), {"text": text, "__init__": lambda self: NVMLError.__init__(self, code)}
        )

    nvml.NVMLError = NVMLError
    nvml.NVMLError_NotSupported = error_class("NVMLError_NotSupported", 3, "Not Supported")
    nvml.NVMLError_NoPermission = error_class("NVMLError_NoPermission", 4, "Insufficient Permissions")
    nvml.NVMLError_DriverNotLoaded = error_class("NVMLError_DriverNotLoaded", 9, "Driver Not Loaded")
    nvml.NVMLError_LibraryNotFound = error_class(
        "NVMLError_LibraryNotFound", 12, "NVML Shared Library Not Found"
    )
    nvml.NVML_TEMPERATURE_GPU = 0
    nvml.calls = []

    def nvmlInit() -> None:
        nvml.calls.append("nvmlInit")
        if init_error:
            raise getattr(nvml, init_error)()

    def nvmlShutdown() -> None:
        nvml.calls.append("nvmlShutdown")

    def device_call(name: str, getter):
        def call(handle, *args):
            device = devices[handle]
            if name in device.get("unsupported", ()):
                raise nvml.NVMLError_NotSupported()
            if name in device.get("denied", ()):
                raise nvml.NVMLError_NoPermission()
            return getter(device, *args)

        call.__name__ = name
        return call

    def handle_by_index(index: int) -> int:
        if not 0 <= index < len(devices):
            raise NVMLError(2)
        return index

    def temperature(device: dict, sensor: int) -> int:
        assert sensor == nvml.NVML_TEMPERATURE_GPU
        return device["temp"]

    nvml.nvmlInit = nvmlInit
    nvml.nvmlShutdown = nvmlShutdown
    nvml.nvmlSystemGetDriverVersion = lambda: "550.54.15"
    nvml.nvmlDeviceGetCount = lambda: len(devices)
    nvml.nvmlDeviceGetHandleByIndex = handle_by_index
    getters = {
        "nvmlDeviceGetName": lambda d: d["name"],
        "nvmlDeviceGetUUID": lambda d: d["uuid"],
        "nvmlDeviceGetPciInfo": lambda d: _Obj(busId=d["bus"]),
        "nvmlDeviceGetUtilizationRates": lambda d: _Obj(gpu=d["util"], memory=d["mem_util"]),
        "nvmlDeviceGetMemoryInfo": lambda d: _Obj(
            total=d["total"], used=d["used"], free=d["total"] - d["used"]
        ),
        "nvmlDeviceGetTemperature": temperature,
        "nvmlDeviceGetPowerUsage": lambda d: d["power_mw"],
        "nvmlDeviceGetEnforcedPowerLimit": lambda d: d["limit_mw"],
        "nvmlDeviceGetFanSpeed": lambda d: d["fan"],
        "nvmlDeviceGetComputeRunningProcesses": lambda d: [
            _Obj(pid=pid, usedGpuMemory=mem) for pid, mem in d.get("procs", [])
        ],
    }
    for name, getter in getters.items():
        setattr(nvml, name, device_call(name, getter))
    return nvml


GIB = 1024**3
MIB = 1024**2


def two_gpus() -> list[dict]:
    """An A100 running a job, and an older card whose NVML lacks power, fan and temperature."""
    return [
        {
            "name": "NVIDIA A100-SXM4-80GB",
            "uuid": "GPU-aaaa1111-2222-3333-4444-555566667777",
            "bus": "00000000:07:00.0",
            "util": 93,
            "mem_util": 41,
            "total": 80 * GIB,
            "used": 61440 * MIB,
            "temp": 64,
            "power_mw": 312_456,
            "limit_mw": 400_000,
            "fan": 0,
            "procs": [(4242, 61000 * MIB), (4243, None)],
            "unsupported": ["nvmlDeviceGetFanSpeed"],
        },
        {
            # Old pynvml answers bytes for strings.
            "name": b"Tesla K80",
            "uuid": b"GPU-bbbb9999-8888-7777-6666-555544443333",
            "bus": b"00000000:86:00.0",
            "util": 0,
            "mem_util": 0,
            "total": 12 * GIB,
            "used": 0,
            "temp": 0,
            "power_mw": 0,
            "limit_mw": 0,
            "fan": 0,
            "unsupported": [
                "nvmlDeviceGetTemperature",
                "nvmlDeviceGetPowerUsage",
                "nvmlDeviceGetEnforcedPowerLimit",
                "nvmlDeviceGetFanSpeed",
            ],
            "denied": ["nvmlDeviceGetComputeRunningProcesses"],
        },
    ]
