"""Stalled jobs: a running job whose engine lives but makes no progress, and a supervisor that hangs.

The supervisor (and the Slurm follower, for its jobs) feeds :class:`StallWatch` each batch it reads.
Progress is a training LOG record (one per --print-freq iterations), a validation record or a checkpoint. A job is stalled when the time since its
last progress exceeds max(min_s, 20 × the median gap between its training records); before its first
training record it has a warm-up allowance (3 × min_s) (data loaders starting, first-iteration compilation).
The stall is a flag on a running job (`stalled_at`), cleared when progress resumes, not a status.
Readers use :func:`flag` on a Job or JobSummary for both that flag and a supervisor whose heartbeat is
stale while it lives.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Optional, Protocol

from rn50tui.jobs.core.states import Status

STALL_MIN_ENV = "RN50TUI_STALL_MIN_S"
STALL_WARMUP_ENV = "RN50TUI_STALL_WARMUP_S"  # the allowance before the first training record
HEARTBEAT_STALE_ENV = "RN50TUI_HEARTBEAT_STALE_S"
STALL_MIN_S = 600.0
STALL_FACTOR = 20.0
WARMUP_FACTOR = 3.0
HEARTBEAT_STALE_S = 120.0
ON_STALL = ("notify", "cancel")
HUNG = "supervisor hung"  # the mark of a live supervisor (or Slurm follower) whose heartbeat is stale


def stall_min_s() -> float:
    return float(os.environ.get(STALL_MIN_ENV, STALL_MIN_S))


def heartbeat_stale_s() -> float:
    return float(os.environ.get(HEARTBEAT_STALE_ENV, HEARTBEAT_STALE_S))


class StallWatch:
    """When this attempt last made progress, and whether it has been too long."""

    def __init__(self, started: float, min_s: Optional[float] = None, factor: float = STALL_FACTOR,
                 warmup_s: Optional[float] = None) -> None:  # fmt: skip
        self.min_s = stall_min_s() if min_s is None else min_s
        default_warmup = float(os.environ.get(STALL_WARMUP_ENV, WARMUP_FACTOR * self.min_s))
        self.factor, self.warmup_s = factor, default_warmup if warmup_s is None else warmup_s
        self.last_progress = started
        self.last_train: Optional[float] = None
        self.gaps: deque[float] = deque(maxlen=200)
        self.stalled = False

    def observe(self, rows: list[tuple[Any, ...]], updates: dict[str, Any], now: float) -> bool:
        """Take one batch (metric rows as the follower makes them, job updates); True if it was progress."""
        progressed = False
        for row in rows:
            at, phase = row[2], row[5]
            if phase == "train":
                if self.last_train is not None and at > self.last_train:
                    self.gaps.append(at - self.last_train)
                self.last_train = at
            if phase in (
                "train",
                "val",
                "epoch",
                "work",
            ):  # work: a prepare's progress (rn50tui/jobs/report.py)
                self.last_progress, progressed = max(self.last_progress, at), True
        if updates.get("last_checkpoint"):
            self.last_progress, progressed = max(self.last_progress, now), True
        return progressed

    def step(self, rows: list[tuple[Any, ...]], updates: dict[str, Any], now: float) -> Optional[float]:
        """One batch of a follower (the supervisor, the Slurm follower): sets the stall columns in `updates`
        (`stalled_at` None when progress ends a stall) and returns the idle time of a new stall, else None."""
        if self.observe(rows, updates, now):
            updates["last_progress_at"] = self.last_progress
            if self.stalled:
                self.stalled, updates["stalled_at"] = False, None
            return None
        idle = self.stalled_for(now)
        if idle is None or self.stalled:
            return None
        self.stalled, updates["stalled_at"] = True, now
        updates.setdefault("last_progress_at", self.last_progress)
        return idle

    def threshold(self) -> float:
        if self.last_train is None:
            return self.warmup_s
        import statistics  # fractions, decimal: not for every `jobs list`

        gap = statistics.median(self.gaps) if self.gaps else 0.0
        return max(self.min_s, self.factor * gap)

    def stalled_for(self, now: float) -> Optional[float]:
        """Seconds since the last progress when past the threshold, else None."""
        idle = now - self.last_progress
        return idle if idle > self.threshold() else None


class StallFacts(Protocol):
    """What the mark reads of a job: a Job or a JobSummary."""

    status: Status
    heartbeat: Optional[float]
    stalled_at: Optional[float]
    last_progress_at: Optional[float]


@dataclass(frozen=True)
class StallMark:
    """kind "stalled": the supervisor flagged no progress; "supervisor hung": its heartbeat is stale."""

    kind: str
    since: float  # the last progress (or heartbeat)
    for_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def flag(job: StallFacts, now: float) -> Optional[StallMark]:
    """The stall mark of an active job, or None.

    A job whose supervisor died is `interrupted` after reconcile, so an active one with a stale heartbeat
    hangs (a stopped or wedged supervisor).
    """
    if job.status is Status.RUNNING and job.stalled_at:
        since = job.last_progress_at or job.stalled_at
        return StallMark("stalled", since, round(now - since, 1))
    beat = job.heartbeat
    if job.status in (Status.STARTING, Status.RUNNING) and beat and now - beat > heartbeat_stale_s():
        return StallMark(HUNG, beat, round(now - beat, 1))
    return None
