"""Timing one inference configuration: warm it up until its iteration time settles, then measure.

A fixed count of warm-up iterations left the first configuration of a run cold (thread pools, allocator,
kernel caches): `--batch-sizes 1,1,8` reported batch 1 twice, differently. Now each configuration runs
windows of `window` iterations until two consecutive windows' mean times differ by less than `tolerance`,
or its `budget_s` is spent (then the row says so).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

Step = Callable[[], None]  # one iteration, synchronised: it returns when the result is ready


@dataclass
class Warmup:
    """How a configuration was warmed up."""

    iters: int
    seconds: float
    settled: bool  # False: the time budget ran out first

    def label(self) -> str:
        return f"{self.iters} it{'' if self.settled else ', unsettled'}"


def describe(min_iters: int, window: int, tolerance: float, budget_s: float) -> str:
    return (f"warm-up per configuration: {min_iters} iterations, then windows of {window} until two in a row "
            f"differ by < {100 * tolerance:g}% in mean time (at most {budget_s:g} s)")  # fmt: skip


def _window_mean(step: Step, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n


def settle(step: Step, min_iters: int, window: int, tolerance: float, budget_s: float) -> Warmup:
    """Run `step` until its time per iteration settles (or `budget_s` passes); compiles happen here too."""
    start = time.perf_counter()
    for _ in range(min_iters):
        step()
    iters, previous = min_iters, None
    while True:
        mean = _window_mean(step, window)
        iters += window
        if previous is not None and abs(mean - previous) <= tolerance * previous:
            return Warmup(iters, time.perf_counter() - start, True)
        if time.perf_counter() - start >= budget_s:
            return Warmup(iters, time.perf_counter() - start, False)
        previous = mean


def measure(step: Step, iters: int) -> list[float]:
    """Sorted seconds of `iters` single iterations."""
    lat = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        lat.append(time.perf_counter() - t0)
    return sorted(lat)


def percentile(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))]
