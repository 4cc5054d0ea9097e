"""The rows of the job store as typed records: jobs, metric rows, device samples, card claims."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from rn50tui.jobs.states import Status


@dataclass
class Job:
    """One row of `jobs`, with JSON columns decoded and the status as a Status."""

    id: int
    name: str
    kind: str
    argv: list[str]
    device: str
    cards_requested: int
    workspace: str
    status: Status
    attempt: int = 1
    preset: Optional[str] = None
    cards_granted: Optional[list[int]] = None
    created_at: Optional[float] = None
    queued_at: Optional[float] = None
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    updated_at: Optional[float] = None
    supervisor_pid: Optional[int] = None
    supervisor_started: Optional[float] = None
    engine_pid: Optional[int] = None
    engine_started: Optional[float] = None
    run_token: Optional[str] = None
    heartbeat: Optional[float] = None
    cancel_requested: Optional[float] = None
    exit_code: Optional[int] = None
    error: Optional[str] = None
    resume_from: Optional[str] = None
    epoch: Optional[int] = None
    epochs: Optional[int] = None
    iteration: Optional[int] = None
    iters_per_epoch: Optional[int] = None
    val_iters: Optional[int] = None
    world_size: Optional[int] = None
    raport_offset: int = 0
    stderr_offset: int = 0
    last_checkpoint: Optional[str] = None
    checkpoint_epoch: Optional[int] = None
    checkpoint_iteration: Optional[int] = None
    loss: Optional[float] = None
    lr: Optional[float] = None
    ips: Optional[float] = None
    top1: Optional[float] = None
    top5: Optional[float] = None
    val_loss: Optional[float] = None
    best_top1: Optional[float] = None
    note: Optional[str] = None  # how a completed run ended when that is news (early stopping)
    extra: dict[str, Any] = field(default_factory=dict)  # columns of later migrations this class lacks

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        """A Job from a `SELECT * FROM jobs` row (consumed); unknown columns go to `extra`."""
        extra = (
            {k: row.pop(k) for k in [k for k in row if k not in _JOB_FIELDS]}
            if len(row) != len(_JOB_FIELDS)
            else {}
        )
        row["argv"] = json.loads(row["argv"])
        granted = row["cards_granted"]
        row["cards_granted"] = json.loads(granted) if granted else None
        row["status"] = Status(row["status"])
        return cls(**row, extra=extra)

    @property
    def raport_path(self) -> Path:
        return Path(self.workspace) / "raport.json"

    @property
    def progress(self) -> Optional[float]:
        """Fraction of the schedule's training iterations done (1.0 once completed), None if unknown."""
        return progress_of(self.status.value, self.epoch, self.epochs, self.iteration, self.iters_per_epoch)

    def label(self) -> str:
        """How other views name the job: `job 12 (demo)`."""
        return f"job {self.id} ({self.name})"

    def to_dict(self) -> dict[str, Any]:
        """Everything the store knows, JSON-ready (status as its string)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out["status"] = self.status.value
        out["progress"] = self.progress
        out.update(self.extra)
        return out


_JOB_FIELDS = frozenset(f.name for f in fields(Job)) - {"extra"}

# What a list shows: everything but the engine argv and the internals; cheap to read for 10,000 jobs.
SUMMARY_COLUMNS = (
    "id", "name", "kind", "preset", "device", "cards_requested", "cards_granted", "status", "attempt",
    "created_at", "started_at", "finished_at", "updated_at", "heartbeat", "epoch", "epochs", "iteration",
    "iters_per_epoch", "loss", "lr", "ips", "top1", "top5", "best_top1", "exit_code", "error",
)  # fmt: skip


def progress_of(status: str, epoch: Optional[int], epochs: Optional[int], iteration: Optional[int],
                iters_per_epoch: Optional[int]) -> Optional[float]:  # fmt: skip
    """Fraction of the training iterations done (1.0 once completed), None while unknown."""
    if status == "completed":
        return 1.0
    if not epochs or not iters_per_epoch or not epoch:
        return None
    done = (epoch - 1) * iters_per_epoch + (iteration or 0)
    return max(0.0, min(1.0, done / (epochs * iters_per_epoch)))


@dataclass(frozen=True)
class MetricRow:
    """One engine LOG record as stored: `values` maps metric names (train.loss, val.top1, …) to numbers."""

    id: int
    job_id: int
    attempt: int
    time: float
    epoch: Optional[int]
    iteration: Optional[int]
    phase: str
    values: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "attempt": self.attempt,
            "time": self.time,
            "epoch": self.epoch,
            "iteration": self.iteration,
            "phase": self.phase,
            **self.values,
        }


@dataclass(frozen=True)
class DeviceSample:
    """One card at one time; a value the device does not report is None."""

    time: float
    device: str
    card: int
    name: Optional[str] = None
    util_percent: Optional[float] = None
    mem_used_mib: Optional[float] = None
    mem_total_mib: Optional[float] = None
    temp_c: Optional[float] = None
    power_w: Optional[float] = None
    power_cap_w: Optional[float] = None

    def as_tuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Claim:
    device: str
    card: int
    job_id: int
    claimed_at: float
