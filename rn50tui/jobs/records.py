"""The rows of the job store as typed records: jobs, metric rows, device samples, card claims."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from rn50tui.jobs.states import Status
from rn50tui.jobs.workspace import Workspace

if TYPE_CHECKING:
    from engine.telemetry.stats import CardStats


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
    executor: str = "local"  # which executor runs it (rn50tui.jobs.executors)
    executor_handle: Optional[dict[str, Any]] = None  # that executor's own record of the attempt
    notify_cmd: Optional[list[str]] = None  # the job's own notify hook argv (else the config file's)
    on_stall: Optional[str] = None  # notify | cancel (None: notify)
    last_progress_at: Optional[float] = None  # the last training record, validation or checkpoint
    stalled_at: Optional[float] = None  # set while the supervisor flags the job stalled
    wait_reason: Optional[str] = None  # why a queued job is not granted cards (a card busy outside rn50tui)
    hung_notified: Optional[float] = None  # the hung supervisor's heartbeat a client already reported
    eta_end: Optional[float] = None  # when the supervisor predicts the job ends (rn50tui/jobs/eta.py)
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
        for column in ("executor_handle", "notify_cmd"):
            if row.get(column) is not None:
                row[column] = json.loads(row[column])
        return cls(**row, extra=extra)

    @property
    def files(self) -> Workspace:
        """The job's workspace folder and the files in it."""
        return Workspace(self.workspace)

    @property
    def progress(self) -> Optional[float]:
        """Fraction of the schedule's training iterations done (1.0 once completed), None if unknown."""
        return progress_of(self.status, self.epoch, self.epochs, self.iteration, self.iters_per_epoch)

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


class JobSummary(NamedTuple):
    """What a list shows of a job: everything but the engine argv and the internals; cheap to read for
    10,000 jobs (a tuple built straight from the row; cards decoded once per distinct value)."""

    id: int
    name: str
    kind: str
    preset: Optional[str]
    device: str
    cards_requested: int
    cards_granted: Optional[tuple[int, ...]]
    status: Status
    attempt: int
    created_at: Optional[float]
    started_at: Optional[float]
    finished_at: Optional[float]
    updated_at: Optional[float]
    heartbeat: Optional[float]
    epoch: Optional[int]
    epochs: Optional[int]
    iteration: Optional[int]
    iters_per_epoch: Optional[int]
    loss: Optional[float]
    lr: Optional[float]
    ips: Optional[float]
    top1: Optional[float]
    top5: Optional[float]
    best_top1: Optional[float]
    exit_code: Optional[int]
    error: Optional[str]
    executor: str
    executor_handle: Optional[dict[str, Any]]  # where the executor shows it (a Slurm job's id, state, nodes)
    queued_at: Optional[float]
    last_progress_at: Optional[float]
    stalled_at: Optional[float]
    wait_reason: Optional[str]
    eta_end: Optional[float]
    note: Optional[str]  # the engine's warning while it runs, or how a completed run ended
    time_to_best: Optional[list[dict[str, Any]]] = None  # [{top1, epoch, train_seconds}, …] (engine: best)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> JobSummary:
        """From a row of SUMMARY_COLUMNS."""
        values = list(row)
        values[6] = _cards(values[6])
        values[7] = _STATUSES[values[7]]
        values[27] = json.loads(values[27]) if values[27] else None
        if len(values) > 34:
            values[34] = json.loads(values[34]) if values[34] else None
        return cls._make(values)

    @property
    def progress(self) -> Optional[float]:
        return progress_of(self.status, self.epoch, self.epochs, self.iteration, self.iters_per_epoch)

    def to_dict(self) -> dict[str, Any]:
        """The `jobs list --json` object."""
        out = self._asdict()
        out["cards_granted"] = list(self.cards_granted) if self.cards_granted is not None else None
        out["status"] = self.status.value
        out["progress"] = self.progress
        return out


SUMMARY_COLUMNS = JobSummary._fields
_STATUSES = {s.value: s for s in Status}  # a dict lookup: Status(text) costs more, 10,000 times


@lru_cache(maxsize=256)
def _cards(text: Optional[str]) -> Optional[tuple[int, ...]]:
    return tuple(json.loads(text)) if text else None


def progress_of(status: Status | str, epoch: Optional[int], epochs: Optional[int], iteration: Optional[int],
                iters_per_epoch: Optional[int]) -> Optional[float]:  # fmt: skip
    """Fraction of the training iterations done (1.0 once completed), None while unknown."""
    if status == Status.COMPLETED:
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


# The metrics a chart draws, read with SQLite's json_extract so a million rows never meet json.loads.
CHART_METRICS = (
    "train.loss",
    "train.total_ips",
    "train.lr",
    "val.top1",
    "val.top5",
    "val.loss",
    "val_ema.top1",
)


class ChartPoint(NamedTuple):
    """One train or epoch record of a job with the chart metrics (None where the record lacks one).
    A tuple, not a dataclass: a million of them are built while a long history loads."""

    id: int
    attempt: int
    time: float
    epoch: Optional[int]
    iteration: Optional[int]
    phase: str
    loss: Optional[float]  # train.loss
    ips: Optional[float]  # train.total_ips
    lr: Optional[float]  # train.lr
    top1: Optional[float]  # val.top1
    top5: Optional[float]  # val.top5
    val_loss: Optional[float]  # val.loss
    ema_top1: Optional[float] = None  # val_ema.top1 (--use-ema)


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
    node: Optional[str] = None  # the machine holding the card (a multi-node job); None: this host

    @classmethod
    def from_stats(cls, stats: CardStats, time: float) -> DeviceSample:
        """The stored sample of a telemetry reading (the fields they share, by name)."""
        return cls(time, stats.kind, stats.index, **{name: getattr(stats, name) for name in _SHARED_STATS})

    def as_tuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_SHARED_STATS = ("name", "util_percent", "mem_used_mib", "mem_total_mib", "temp_c", "power_w", "power_cap_w")


@dataclass(frozen=True)
class Claim:
    device: str
    card: int
    job_id: int
    claimed_at: float
