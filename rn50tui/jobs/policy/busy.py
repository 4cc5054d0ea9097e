"""Cards busy outside rn50tui: a notebook or a colleague's run started by hand holds a card the store
thinks is free. From one telemetry sample per kind (memory used, utilisation, processes where the backend
reports them), a card rn50tui has not claimed is busy when a process holds it, or its memory or
utilisation is past the thresholds. The scheduler does not grant a busy card, and a queued job that
waits because of one records why (`wait_reason`, shown by `jobs list`, `jobs show` and the app).

Thresholds: `[busy]` in the user config (mem_mib, util_percent); off with `rn50tui --no-busy-check`
or RN50TUI_BUSY_CHECK=0 (the supervisors the CLI starts see it too). Only MLU and CUDA cards are checked.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable, Optional

from engine.device_kind import CARD_KINDS
from rn50tui.jobs.core.capacity import BUSY_CHECK_ENV
from rn50tui.jobs.core.userconfig import UserConfigError, load_tables

CHECKED_KINDS = tuple(k.value for k in CARD_KINDS)  # mlu, cuda: what cnmon / NVML report
DEFAULT_MEM_MIB = 2048.0  # an idle card shows some driver memory (967 MiB on a recorded MLU220)
DEFAULT_UTIL_PERCENT = 20.0

Busy = dict[tuple[str, int], str]  # (kind, card) → why it is busy
Sample = Callable[[str], list[Any]]  # kind → CardStats of every card of that kind


@dataclass(frozen=True)
class BusyPolicy:
    enabled: bool = True
    mem_mib: float = DEFAULT_MEM_MIB
    util_percent: float = DEFAULT_UTIL_PERCENT


def load_policy() -> BusyPolicy:
    """The environment's switch and the config file's `[busy]` thresholds (defaults if unreadable)."""
    enabled = os.environ.get(BUSY_CHECK_ENV, "1").strip().lower() not in ("0", "no", "off", "false")
    try:
        table = load_tables().get("busy", {})
    except UserConfigError:
        table = {}
    table = table if isinstance(table, dict) else {}
    return BusyPolicy(
        enabled=enabled and bool(table.get("check", True)),
        mem_mib=float(table.get("mem_mib", DEFAULT_MEM_MIB)),
        util_percent=float(table.get("util_percent", DEFAULT_UTIL_PERCENT)),
    )


def outside_use(cards: Iterable[Any], claimed: set[tuple[str, int]], policy: BusyPolicy) -> Busy:
    """The unclaimed cards that something outside rn50tui uses, with a one-line reason each."""
    busy: Busy = {}
    for card in cards:
        if card.key in claimed:
            continue  # ours: its processes and memory are a job's
        procs = [p for p in card.processes if p.pid]
        mem, util = card.mem_used_mib, card.util_percent
        if (
            procs
            or (mem is not None and mem > policy.mem_mib)
            or (util is not None and util > policy.util_percent)
        ):
            busy[card.key] = reason(card, procs)
    return busy


def reason(card: Any, procs: list[Any]) -> str:
    """`MLU 2 in use outside rn50tui: 11.2 GiB, pid 4711`."""
    parts = []
    if card.util_percent:
        parts.append(f"{card.util_percent:.0f}% busy")
    if card.mem_used_mib is not None:
        parts.append(f"{card.mem_used_mib / 1024:.1f} GiB")
    if procs:
        parts.append(("pid " if len(procs) == 1 else "pids ") + ", ".join(str(p.pid) for p in procs[:4]))
    return f"{card.kind.upper()} {card.index} in use outside rn50tui: {', '.join(parts)}"


def telemetry_sample(kind: str) -> list[Any]:
    """Every card of `kind` now ([] when the backend is absent or fails: then nothing is held back)."""
    try:
        from engine.telemetry import open_sampler

        sampler = open_sampler(kind)
    except Exception:  # noqa: BLE001 - TelemetryUnavailable or a broken backend
        return []
    try:
        return sampler.sample(None)
    except Exception:  # noqa: BLE001 - one failed sample: schedule as if nothing were busy
        return []
    finally:
        sampler.close()


def busy_cards(kinds: Iterable[str], claimed: set[tuple[str, int]], policy: Optional[BusyPolicy] = None,
               sample: Sample = telemetry_sample) -> Busy:  # fmt: skip
    """The busy-outside cards of these kinds (none when the check is off)."""
    policy = policy or load_policy()
    if not policy.enabled:
        return {}
    busy: Busy = {}
    for kind in sorted(set(kinds) & set(CHECKED_KINDS)):
        busy.update(outside_use(sample(kind), claimed, policy))
    return busy
