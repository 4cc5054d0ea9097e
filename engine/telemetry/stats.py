"""The records every telemetry backend returns, and the exception it raises when it cannot sample."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

from engine.device_kind import KINDS  # noqa: F401 - the kinds, in the order every listing shows them


class TelemetryUnavailable(Exception):
    """A backend cannot sample on this host; the message says why, in words a user can act on."""


@dataclass
class ProcessInfo:
    """A process that holds memory on a card."""

    pid: int
    mem_used_mib: Optional[int] = None
    command: Optional[str] = None


@dataclass
class CardStats:
    """One card's sample. Every value a device does not report is None, never a made-up 0.

    `index` is the physical index the backend itself uses (cnmon's Card column, NVML's index), so it
    stays the same whatever `MLU_VISIBLE_DEVICES` / `CUDA_VISIBLE_DEVICES` a job runs with.
    """

    kind: str
    index: int
    name: Optional[str] = None
    util_percent: Optional[float] = None
    mem_used_mib: Optional[int] = None
    mem_total_mib: Optional[int] = None
    temp_c: Optional[float] = None
    power_w: Optional[float] = None
    power_cap_w: Optional[float] = None
    bus_id: Optional[str] = None
    uuid: Optional[str] = None
    processes: list[ProcessInfo] = field(default_factory=list)
    # What a backend knows beyond the common fields: fan, firmware, driver, per-core load, ...
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int]:
        """(kind, physical index): the key the job store uses for a card."""
        return (self.kind, self.index)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (processes as dicts)."""
        return dataclasses.asdict(self)


class Sampler(Protocol):
    """What each backend offers: sample some or all physical cards, then close."""

    kind: str

    def sample(self, indices: Optional[Sequence[int]] = None) -> list[CardStats]: ...

    def close(self) -> None: ...


def select(cards: list[CardStats], indices: Optional[Sequence[int]]) -> list[CardStats]:
    """The cards with the given physical indices, in the order asked (all of them for None)."""
    if indices is None:
        return list(cards)
    by_index = {card.index: card for card in cards}
    return [by_index[i] for i in indices if i in by_index]
