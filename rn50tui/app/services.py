"""What a screen is given instead of reaching for the app: the store's client, the clock, the host's cards.

The app makes one Services when it starts and hands it to every screen it pushes. `client` is None until
the store has opened (in a worker), `capacity` is the fallback until the host's cards are detected: a
screen reads both at the time it needs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from rn50tui.app.clock import Clock, SystemClock
from rn50tui.app.data import AppJobManager

FALLBACK_CAPACITY = {"mlu": 0, "cuda": 0, "cpu": 1}  # until the host's cards are detected


@dataclass
class Services:
    clock: Clock = field(default_factory=SystemClock)
    poll_scale: float = 1.0  # tests and benchmarks speed polling up or slow it down
    capacity: dict[str, int] = field(default_factory=lambda: dict(FALLBACK_CAPACITY))
    client: Optional[AppJobManager] = None

    def scaled(self, seconds: float) -> float:
        return seconds * self.poll_scale
