"""Held but idle: a card a running job holds that has shown under 5% utilisation for 10 minutes.

A forgotten or stuck job should not sit on a card unseen: `jobs show` and `rn50tui devices` mark such a
card "held, idle 14m". Pure functions of a job's card samples and a time; a card whose samples carry no
utilisation (a CPU slot) is never flagged.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Optional

IDLE_ENV = "RN50TUI_IDLE_S"
IDLE_S = 600.0  # how long a held card must stay under IDLE_UTIL before it is flagged
IDLE_UTIL = 5.0  # percent


def idle_after() -> float:
    """$RN50TUI_IDLE_S, else 10 minutes."""
    try:
        return max(0.0, float(os.environ.get(IDLE_ENV, IDLE_S)))
    except ValueError:
        return IDLE_S


def idle_cards(
    samples: Iterable[Any], now: float, after: Optional[float] = None
) -> dict[tuple[Any, ...], float]:
    """{(node, device, card): seconds idle} of the cards idle for at least `after` (default idle_after()):
    the time since the card's last sample at or above IDLE_UTIL, or since its first sample if none was."""
    after = idle_after() if after is None else after
    first: dict[tuple[Any, ...], float] = {}
    busy: dict[tuple[Any, ...], float] = {}
    measured: set[tuple[Any, ...]] = set()
    for s in samples:
        key = (s.node, s.device, s.card)
        first[key] = min(first.get(key, s.time), s.time)
        if s.util_percent is None:
            continue
        measured.add(key)
        if s.util_percent >= IDLE_UTIL:
            busy[key] = max(busy.get(key, s.time), s.time)
    out = {}
    for key in measured:
        idle = now - busy.get(key, first[key])
        if idle >= after:
            out[key] = idle
    return out
