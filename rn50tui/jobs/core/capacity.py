"""How many cards of each kind the scheduler may hand out on this host.

MLU and CUDA counts come from `engine.telemetry` (the host's cards), unless `RN50TUI_CARDS` (or the CLI's
`--host-cards`, which sets it for the children too) says otherwise: `mlu=4,cuda=0,cpu=2`. CPU "cards" are
job slots: by default one CPU job runs at a time, so two CPU jobs never fight over the same cores.
This module is the one place the job manager couples to telemetry.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache

from engine.device_kind import CARD_KINDS, KINDS, DeviceKind

CARDS_ENV = "RN50TUI_CARDS"
BUSY_CHECK_ENV = "RN50TUI_BUSY_CHECK"  # 0: grant cards even when busy (rn50tui.jobs.policy.busy reads it)
DEFAULT_CPU_SLOTS = 1


class CapacityError(ValueError):
    """A malformed RN50TUI_CARDS / --host-cards value."""


def parse_spec(spec: str) -> dict[str, int]:
    """`mlu=4,cuda=0,cpu=2` → {'mlu': 4, 'cuda': 0, 'cpu': 2}; kinds left out are not set."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kind, sep, count = part.partition("=")
        try:
            known = DeviceKind.parse(kind).value
        except ValueError:
            known = None
        if not sep or known is None or not count.strip().isdigit():
            raise CapacityError(f"bad card count {part!r} in {spec!r}: write e.g. mlu=4,cuda=0,cpu=1")
        out[known] = int(count)
    return out


def host_capacity(env: Mapping[str, str] | None = None) -> dict[str, int]:
    """Cards per kind the scheduler may grant: the override first, then the host's own cards."""
    env = os.environ if env is None else env
    counts = parse_spec(env.get(CARDS_ENV, ""))
    for kind in CARD_KINDS:
        if kind.value not in counts:
            counts[kind.value] = detected_cards(kind.value)
    counts.setdefault("cpu", DEFAULT_CPU_SLOTS)
    return {kind: counts[kind] for kind in KINDS}


@cache
def detected_cards(kind: str) -> int:
    """The number of `kind` cards telemetry sees on this host (0 when it has none or cannot tell)."""
    try:
        from engine.telemetry import TelemetryUnavailable, open_sampler
    except ImportError:  # telemetry not installed with this checkout: no cards detected
        return 0
    try:
        sampler = open_sampler(kind)
    except TelemetryUnavailable:
        return 0
    try:
        return len(sampler.sample())
    except Exception:  # noqa: BLE001 - a failing backend means "no usable cards", not a crash
        return 0
    finally:
        sampler.close()
