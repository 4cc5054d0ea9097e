"""CPU telemetry through psutil: the host's processors as one card (kind "cpu", index 0)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from typing import Any, Callable, Optional

import psutil

from engine.telemetry.stats import CardStats

KIND = "cpu"
_MIB = 1024 * 1024
# Sensor chips that measure the CPU package, most specific first.
_CPU_CHIPS = ("coretemp", "k10temp", "zenpower", "cpu_thermal", "cpu-thermal", "soc_thermal", "acpitz")
_PACKAGE_LABELS = ("package", "tctl", "tdie", "cpu")


def cpu_name() -> Optional[str]:
    """The processor model, as the OS names it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


def _busy_and_total(before: Any, after: Any) -> tuple[float, float]:
    """Busy and total seconds between two psutil cpu_times readings, as psutil.cpu_percent counts them."""
    deltas = {name: max(0.0, getattr(after, name) - getattr(before, name)) for name in after._fields}
    # Linux counts guest time inside user/nice already.
    total = sum(deltas.values()) - deltas.get("guest", 0.0) - deltas.get("guest_nice", 0.0)
    idle = deltas.get("idle", 0.0) + deltas.get("iowait", 0.0)
    return total - idle, total


def _percent(busy: float, total: float) -> Optional[float]:
    """Busy share in percent; None when no time passed (a zero here would be made up)."""
    return round(100.0 * busy / total, 1) if total > 0 else None


def read_temperatures() -> dict[str, float]:
    """CPU sensor readings, `chip/label` → °C; empty where the machine exposes no sensor."""
    read = getattr(psutil, "sensors_temperatures", None)
    try:
        sensors = read() if read else {}
    except (OSError, RuntimeError):
        return {}
    for chip in _CPU_CHIPS:
        if sensors.get(chip):
            return {f"{chip}/{s.label or i}": float(s.current) for i, s in enumerate(sensors[chip])}
    return {}


def package_temperature(readings: dict[str, float]) -> Optional[float]:
    """The package (or Tctl) reading when there is one, else the hottest sensor."""
    for key, value in readings.items():
        if key.split("/", 1)[1].lower().startswith(_PACKAGE_LABELS):
            return value
    return max(readings.values()) if readings else None


class CpuSampler:
    """Samples the host's CPUs: total and per-core load since the previous sample, memory, temperature.

    It keeps its own cpu_times baseline, primed once here, rather than psutil.cpu_percent's: that one
    is kept per calling thread, so samples from a fresh worker thread would all read 0.0.
    """

    kind = KIND

    def __init__(
        self,
        min_interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.min_interval = min_interval
        self._clock, self._sleep = clock, sleep
        self._name = cpu_name()
        self._last = psutil.cpu_times(percpu=True)
        self._last_at = clock()

    def sample(self, indices: Optional[Sequence[int]] = None) -> list[CardStats]:
        """One CardStats for the whole host (index 0); [] when `indices` leaves it out."""
        if indices is not None and 0 not in indices:
            return []
        total, per_core = self._load()
        memory = psutil.virtual_memory()
        temperatures = read_temperatures()
        card = CardStats(
            kind=KIND,
            index=0,
            name=self._name,
            util_percent=total,
            # Used = what is not available: page cache that the kernel can drop is not "used".
            mem_used_mib=(memory.total - memory.available) // _MIB,
            mem_total_mib=memory.total // _MIB,
            temp_c=package_temperature(temperatures),
            extra={
                "per_core_percent": per_core,
                "cores_logical": psutil.cpu_count(logical=True),
                "cores_physical": psutil.cpu_count(logical=False),
                "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                "temperatures": temperatures,
            },
        )
        return [card]

    def close(self) -> None:
        """Nothing to release."""

    def _load(self) -> tuple[Optional[float], list[Optional[float]]]:
        """Total and per-core busy percent since the last call; waits out `min_interval` if called sooner."""
        waited = self._clock() - self._last_at
        if waited < self.min_interval:
            # A first sample right after start-up: wait for a truthful number instead of a 0.
            self._sleep(self.min_interval - waited)
        now = psutil.cpu_times(percpu=True)
        pairs = [_busy_and_total(before, after) for before, after in zip(self._last, now)]
        self._last, self._last_at = now, self._clock()
        per_core = [_percent(busy, total) for busy, total in pairs]
        total = _percent(sum(b for b, _ in pairs), sum(t for _, t in pairs))
        return total, per_core
