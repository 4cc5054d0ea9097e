"""CUDA telemetry through NVML (`import pynvml`, from the optional `nvidia-ml-py` package).

pynvml is imported only when a sampler is made, so hosts without it import this module freely.
Every device query is guarded: "not supported" is None, any other NVML error is None plus a note
in `extra["errors"]`. NVML numbers cards in PCI bus order and ignores `CUDA_VISIBLE_DEVICES`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, Optional

from engine.telemetry.stats import CardStats, ProcessInfo, TelemetryUnavailable

KIND = "cuda"
ENV_VISIBLE = "CUDA_VISIBLE_DEVICES"
_MIB = 1024 * 1024


def load_pynvml() -> ModuleType:
    """The pynvml module, or TelemetryUnavailable saying what is missing."""
    try:
        import pynvml
    except ImportError as exc:
        if nvidia_driver_present():
            reason = "nvidia-ml-py is not installed, though an NVIDIA driver is: pip install 'rn50tui[nvml]'"
        else:
            reason = "no NVIDIA driver, and nvidia-ml-py is not installed"
        raise TelemetryUnavailable(reason) from exc
    return pynvml


def nvidia_driver_present() -> bool:
    """Whether this host has an NVIDIA kernel driver or its tools (a hint for the missing-pynvml case)."""
    return os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi") is not None


def _init_reason(nvml: ModuleType, exc: Exception) -> str:
    """Why nvmlInit failed, in words a user can act on."""
    if isinstance(exc, getattr(nvml, "NVMLError_LibraryNotFound", ())):
        return "NVML library (libnvidia-ml.so.1) not found: no NVIDIA driver installed"
    if isinstance(exc, getattr(nvml, "NVMLError_DriverNotLoaded", ())):
        return "the NVIDIA driver is not loaded"
    return f"NVML failed to start: {exc}"


def _text(value: Any) -> Optional[str]:
    """Old pynvml versions return bytes where new ones return str."""
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _command(pid: int) -> Optional[str]:
    """A process's command line, when this host can see it (not across containers)."""
    try:
        import psutil

        return " ".join(psutil.Process(pid).cmdline()) or None
    except Exception:  # noqa: BLE001 - a vanished or foreign process just has no known command
        return None


def resolve_visible(value: Optional[str], uuids: Sequence[Optional[str]]) -> Optional[list[int]]:
    """NVML indices of the cards a `CUDA_VISIBLE_DEVICES` value names, in CUDA's logical order.

    Entries are indices or (prefixes of) UUIDs; like CUDA, the list ends at the first entry that names
    no card (so `-1` hides every card). Indices match CUDA's only under `CUDA_DEVICE_ORDER=PCI_BUS_ID`
    or on hosts whose GPUs are all alike; UUIDs always match. MIG instances are not whole cards.
    """
    if value is None:
        return None
    indices: list[int] = []
    for token in (t.strip() for t in value.split(",")):
        index = _match_card(token, uuids)
        if index is None:
            break
        if index not in indices:
            indices.append(index)
    return indices


def _match_card(token: str, uuids: Sequence[Optional[str]]) -> Optional[int]:
    if token.isdigit():
        return int(token) if int(token) < len(uuids) else None
    if not token or token.startswith("MIG-"):
        return None
    prefix = token if token.startswith("GPU-") else f"GPU-{token}"
    hits = [i for i, uuid in enumerate(uuids) if uuid and uuid.startswith(prefix)]
    return hits[0] if len(hits) == 1 else None


class NvmlSampler:
    """Samples CUDA cards through NVML. Raises TelemetryUnavailable when NVML cannot start."""

    kind = KIND

    def __init__(self, module: Optional[ModuleType] = None, env: Optional[Mapping[str, str]] = None) -> None:
        self.nvml = module if module is not None else load_pynvml()
        self.env = dict(os.environ if env is None else env)
        try:
            self.nvml.nvmlInit()
        except self.nvml.NVMLError as exc:
            raise TelemetryUnavailable(_init_reason(self.nvml, exc)) from exc
        self._open = True
        self._not_supported = getattr(self.nvml, "NVMLError_NotSupported", ())
        self.driver = _text(self._query([], "nvmlSystemGetDriverVersion"))

    def count(self) -> int:
        """How many cards NVML sees (0 when it cannot say)."""
        return self._query([], "nvmlDeviceGetCount") or 0

    def sample(self, indices: Optional[Sequence[int]] = None) -> list[CardStats]:
        """Every card, or those with the given NVML indices (in that order)."""
        count = self.count()
        wanted = range(count) if indices is None else [i for i in indices if 0 <= i < count]
        return [self._card(i) for i in wanted]

    def uuids(self) -> list[Optional[str]]:
        """Each card's UUID, by NVML index (None where NVML will not say)."""
        handles = [self._query([], "nvmlDeviceGetHandleByIndex", i) for i in range(self.count())]
        return [_text(self._query([], "nvmlDeviceGetUUID", h)) if h is not None else None for h in handles]

    def sample_visible(self, visible: Optional[str] = None) -> list[CardStats]:
        """The cards a process with this `CUDA_VISIBLE_DEVICES` sees (default: ours), in its order."""
        value = visible if visible is not None else self.env.get(ENV_VISIBLE)
        return self.sample(resolve_visible(value, self.uuids()))

    def close(self) -> None:
        """Shut NVML down once; later samples need a new sampler."""
        if self._open:
            self._open = False
            self._query([], "nvmlShutdown")

    def _query(self, errors: list[str], name: str, *args: Any) -> Any:
        """nvml.<name>(*args); None when unsupported, missing from this pynvml, or failing (noted)."""
        function = getattr(self.nvml, name, None)
        if function is None:
            return None
        try:
            return function(*args)
        except self._not_supported:
            return None
        except self.nvml.NVMLError as exc:
            errors.append(f"{name}: {exc}")
            return None

    def _card(self, index: int) -> CardStats:
        errors: list[str] = []
        card = CardStats(kind=KIND, index=index, extra={"driver": self.driver, "errors": errors})
        handle = self._query(errors, "nvmlDeviceGetHandleByIndex", index)
        if handle is None:
            return card

        def query(name: str, *args: Any) -> Any:
            return self._query(errors, name, handle, *args)

        card.name = _text(query("nvmlDeviceGetName"))
        card.uuid = _text(query("nvmlDeviceGetUUID"))
        pci = query("nvmlDeviceGetPciInfo")
        card.bus_id = _text(getattr(pci, "busId", None))
        self._fill_load(card, query)
        card.processes = self._processes(query)
        return card

    def _fill_load(self, card: CardStats, query: Any) -> None:
        """Utilisation, memory, temperature, power and fan, each None where unsupported."""
        rates = query("nvmlDeviceGetUtilizationRates")
        card.util_percent = float(rates.gpu) if rates is not None else None
        card.extra["mem_util_percent"] = float(rates.memory) if rates is not None else None
        memory = query("nvmlDeviceGetMemoryInfo")
        card.mem_used_mib = memory.used // _MIB if memory is not None else None
        card.mem_total_mib = memory.total // _MIB if memory is not None else None
        temp = query("nvmlDeviceGetTemperature", getattr(self.nvml, "NVML_TEMPERATURE_GPU", 0))
        card.temp_c = float(temp) if temp is not None else None
        card.power_w = _watts(query("nvmlDeviceGetPowerUsage"))
        card.power_cap_w = _watts(query("nvmlDeviceGetEnforcedPowerLimit"))
        fan = query("nvmlDeviceGetFanSpeed")
        card.extra["fan_percent"] = float(fan) if fan is not None else None

    def _processes(self, query: Any) -> list[ProcessInfo]:
        found = query("nvmlDeviceGetComputeRunningProcesses") or []
        return [
            ProcessInfo(
                pid=int(p.pid),
                mem_used_mib=p.usedGpuMemory // _MIB
                if getattr(p, "usedGpuMemory", None) is not None
                else None,
                command=_command(int(p.pid)),
            )
            for p in found
        ]


def _watts(milliwatts: Optional[int]) -> Optional[float]:
    """NVML reports power in milliwatts."""
    return None if milliwatts is None else milliwatts / 1000.0
