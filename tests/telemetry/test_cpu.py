"""CPU backend: psutil's real readings, plus injected clocks and sensors for the edge cases."""

from __future__ import annotations

import threading
import time
from collections import namedtuple
from types import SimpleNamespace

import psutil
import pytest

from engine.telemetry import cpu
from engine.telemetry.cpu import CpuSampler, _busy_and_total, _percent, package_temperature, read_temperatures

Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")


def test_one_card_for_the_host_with_real_readings() -> None:
    (card,) = CpuSampler().sample()
    assert (card.kind, card.index) == ("cpu", 0)
    assert card.util_percent is not None and 0 <= card.util_percent <= 100
    per_core = card.extra["per_core_percent"]
    assert len(per_core) == psutil.cpu_count(logical=True)
    assert all(p is None or 0 <= p <= 100 for p in per_core)
    assert card.mem_total_mib == psutil.virtual_memory().total // 2**20
    assert 0 < card.mem_used_mib <= card.mem_total_mib
    assert card.power_w is None and card.power_cap_w is None  # psutil has no CPU power reading


def test_busy_share_counts_like_psutil() -> None:
    before = Times(100, 0, 50, 800, 50, 0, 0, 0, 0, 0)
    # 30 s user (10 of them guest, already inside user), 10 s system, 50 s idle, 10 s iowait
    after = Times(130, 0, 60, 850, 60, 0, 0, 0, 10, 0)
    busy, total = _busy_and_total(before, after)
    assert (busy, total) == (40, 100)
    assert _percent(busy, total) == 40.0


def test_no_elapsed_time_is_none_not_zero() -> None:
    same = Times(1, 0, 1, 1, 0, 0, 0, 0, 0, 0)
    assert _percent(*_busy_and_total(same, same)) is None


def test_first_sample_waits_out_the_priming_interval() -> None:
    now = [1000.0]
    slept: list[float] = []
    sampler = CpuSampler(min_interval=0.1, clock=lambda: now[0], sleep=slept.append)
    now[0] += 0.03
    sampler.sample()
    assert slept == [pytest.approx(0.07)]
    now[0] += 1.0
    sampler.sample()
    assert len(slept) == 1  # at 1 Hz it never waits


def test_sampling_from_another_thread_sees_the_load() -> None:
    # psutil.cpu_percent keeps its baseline per thread: a sampler primed on this thread and read
    # from a worker thread would read 0.0. This one keeps its own.
    sampler = CpuSampler(min_interval=0.0)
    result: list = []

    def worker() -> None:
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:  # burn 0.3 s of CPU on this thread
            pass
        result.extend(sampler.sample())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert result[0].util_percent is not None and result[0].util_percent > 0


def test_indices_without_zero_give_nothing() -> None:
    assert CpuSampler(min_interval=0.0).sample([1]) == []


def _sensor(label: str, current: float) -> SimpleNamespace:
    return SimpleNamespace(label=label, current=current, high=None, critical=None)


def test_package_temperature_when_sensors_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    sensors = {
        "nvme": [_sensor("Composite", 38.0)],
        "coretemp": [_sensor("Package id 0", 55.0), _sensor("Core 0", 52.0), _sensor("Core 1", 57.0)],
    }
    monkeypatch.setattr(psutil, "sensors_temperatures", lambda: sensors, raising=False)
    readings = read_temperatures()
    assert readings == {"coretemp/Package id 0": 55.0, "coretemp/Core 0": 52.0, "coretemp/Core 1": 57.0}
    assert package_temperature(readings) == 55.0
    (card,) = CpuSampler(min_interval=0.0).sample()
    assert card.temp_c == 55.0


def test_amd_tctl_and_unlabelled_sensors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        psutil,
        "sensors_temperatures",
        lambda: {"k10temp": [_sensor("Tctl", 61.5), _sensor("", 48.0)]},
        raising=False,
    )
    readings = read_temperatures()
    assert readings == {"k10temp/Tctl": 61.5, "k10temp/1": 48.0}
    assert package_temperature(readings) == 61.5
    assert package_temperature({"cpu_thermal/1": 40.0, "cpu_thermal/2": 47.0}) == 47.0


def test_no_sensors_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psutil, "sensors_temperatures", lambda: {}, raising=False)
    assert CpuSampler(min_interval=0.0).sample()[0].temp_c is None
    monkeypatch.delattr(psutil, "sensors_temperatures", raising=False)  # macOS and Windows lack it
    assert read_temperatures() == {}


def test_cpu_name_is_read() -> None:
    name = cpu.cpu_name()
    assert name is None or name.strip() == name and name
