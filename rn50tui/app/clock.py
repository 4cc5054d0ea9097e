"""Injected time: every ETA, duration and age the app shows is computed from a Clock, never time.time(),
so a test with a FixedClock renders the same text on every run."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """Where the app gets "now" from (seconds since the epoch, like the store's timestamps)."""

    def now(self) -> float: ...


class SystemClock:
    """The wall clock: what the store's writers use too."""

    def now(self) -> float:
        return time.time()


@dataclass
class FixedClock:
    """A clock that only moves when told to (tests, screenshots)."""

    t: float

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
