"""The rows of the job store as typed records: jobs, metric rows, device samples, card claims."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.workspace import Workspace

if TYPE_CHECKING:
    from engine.telemetry.stats import CardStats


@dataclass
class Attempt:
    """One try of a job (a row of `attempts`): who ran it, where, from which checkpoint, how it ended.

    A new attempt is a new row (JobStore.new_attempt), so nothing of an earlier try carries over.
    """

    number: int = 1
    executor: str = "local"
    executor_handle: Optional[dict[str, Any]] = None  # that executor's own record of the attempt
    cards_granted: Optional[list[int]] = None
    status: Optional[Status] = None  # how it ended; None while it goes on (or, for a migrated store, unknown)
    queued_at: Optional[float] = None
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
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
    raport_offset: int = 0
    stderr_offset: int = 0
    last_progress_at: Optional[float] = None  # the last training record, validation or checkpoint
    stalled_at: Optional[float] = None  # set while the attempt is flagged stalled
    hung_notified: Optional[float] = None  # the hung supervisor's heartbeat a client already reported
    eta_end: Optional[float] = None  # when the supervisor predicts the job ends (rn50tui/jobs/policy/eta.py)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Attempt:
        """From the attempt's columns (JSON decoded here); `job_id` is dropped."""
        row.pop("job_id", None)
        for column in ("executor_handle", "cards_granted"):
            if row.get(column):
                row[column] = json.loads(row[column])
        if row.get("status"):
            row["status"] = Status(row["status"])
        return cls(**row)

    @property
    def duration(self) -> Optional[float]:
        """Seconds it ran (None before it started or, while it runs, until it ends)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["status"] = self.status.value if self.status is not None else None
        return out


ATTEMPT_FIELDS = tuple(f.name for f in fields(Attempt))
# What a Job reads through to its current attempt (`job.engine_pid` is `job.current.engine_pid`).
_DELEGATED = tuple(f for f in ATTEMPT_FIELDS if f not in ("number", "status", "queued_at", "executor"))
ATTEMPT_COLUMNS = frozenset(_DELEGATED)  # the columns JobStore.update_job writes to the current attempt


@dataclass
class Job:
    """One row of `jobs` (what was asked, the current status, the progress and best results) with its
    current attempt; the attempt's fields read through (`job.engine_pid`, `job.error`, …)."""

    id: int
    name: str
    kind: str
    argv: list[str]
    device: str
    cards_requested: int
    workspace: str
    status: Status
    attempt: int = 1  # the current attempt's number
    preset: Optional[str] = None
    created_at: Optional[float] = None
    queued_at: Optional[float] = None
    updated_at: Optional[float] = None
    epoch: Optional[int] = None
    epochs: Optional[int] = None
    iteration: Optional[int] = None
    iters_per_epoch: Optional[int] = None
    val_iters: Optional[int] = None
    world_size: Optional[int] = None
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
    notify_cmd: Optional[list[str]] = None  # the job's own notify hook argv (else the config file's)
    on_stall: Optional[str] = None  # notify | cancel (None: notify)
    wait_reason: Optional[str] = None  # why a queued job is not granted cards (a card busy outside rn50tui)
    note: Optional[str] = None  # how a completed run ended when that is news (early stopping)
    first_started_at: Optional[float] = None  # when its first attempt started
    ran_s: Optional[float] = None  # seconds its ended attempts ran, together (the current one adds its own)
    priority: int = 0  # higher first among the queued jobs that fit (rn50tui/jobs/scheduler.py)
    sweep_id: Optional[int] = None  # the sweep it belongs to (`sweeps`)
    sweep_values: Optional[dict[str, str]] = None  # its point in that sweep: {"lr": "1.024", …}
    current: Attempt = field(default_factory=Attempt)  # the attempt numbered `attempt`
    extra: dict[str, Any] = field(default_factory=dict)  # columns of later migrations this class lacks

    @classmethod
    def of(cls, **values: Any) -> Job:
        """A Job from flat values, the current attempt's among them (tests, bulk loads)."""
        attempt = {k: values.pop(k) for k in list(values) if k in _DELEGATED}
        return cls(**values, current=Attempt(number=values.get("attempt", 1),
                                             executor=values.get("executor", "local"), **attempt))  # fmt: skip

    @classmethod
    def from_row(cls, row: dict[str, Any], attempt: Optional[dict[str, Any]] = None) -> Job:
        """A Job from a `jobs` row and its current `attempts` row (both consumed); unknown columns go to
        `extra`, and the columns earlier versions kept on the job (LEGACY_JOB_COLUMNS) are dropped."""
        extra = {k: row.pop(k) for k in [k for k in row if k not in _JOB_FIELDS]}
        for legacy in _DELEGATED:
            extra.pop(legacy, None)
        row["argv"] = json.loads(row["argv"])
        row["status"] = Status(row["status"])
        if row.get("notify_cmd") is not None:
            row["notify_cmd"] = json.loads(row["notify_cmd"])
        if row.get("sweep_values") is not None:
            row["sweep_values"] = json.loads(row["sweep_values"])
        if row.get("priority") is None:
            row["priority"] = 0
        current = Attempt.from_row(attempt) if attempt and attempt.get("number") is not None else None
        return cls(
            **row, current=current or Attempt(row["attempt"], row.get("executor", "local")), extra=extra
        )

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

    @property
    def time_to_best(self) -> Any:
        """The engine's `best` records (JSON text, or None): rn50tui/time_to_accuracy.py reads them."""
        return self.extra.get("time_to_best")

    def to_dict(self) -> dict[str, Any]:
        """Everything the store knows, JSON-ready (status as its string); the current attempt's fields
        flat beside the job's, as before attempts were records."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("extra", "current")}
        out.update({name: getattr(self.current, name) for name in _DELEGATED})
        out["status"] = self.status.value
        out["progress"] = self.progress
        out.update(self.extra)
        return out


def _delegate(name: str) -> property:
    return property(lambda job: getattr(job.current, name), doc=f"The current attempt's {name}.")


for _name in _DELEGATED:
    setattr(Job, _name, _delegate(_name))

_JOB_FIELDS = frozenset(f.name for f in fields(Job)) - {"extra", "current"}


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
    first_started_at: Optional[float]  # when its first attempt started
    ran_s: Optional[float]  # seconds its ended attempts ran, together
    time_to_best: Optional[list[dict[str, Any]]] = None  # [{top1, epoch, train_seconds}, …] (engine: best)
    priority: int = 0  # higher first among the queued jobs that fit
    sweep_id: Optional[int] = None  # the sweep it belongs to
    sweep_values: Optional[dict[str, str]] = None  # its point in that sweep

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> JobSummary:
        """From a row of SUMMARY_COLUMNS (decoded by column name: SUMMARY_DECODE)."""
        values = list(row)
        for index, decode in _SUMMARY_DECODERS:
            values[index] = decode(values[index])
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
# Where each column lives: the attempt's own in `attempts` (a), the rest in `jobs` (j).
SUMMARY_SQL = tuple(f"a.{c}" if c in _DELEGATED else f"j.{c}" for c in SUMMARY_COLUMNS)
SUMMARY_FROM = "jobs j LEFT JOIN attempts a ON a.job_id = j.id AND a.number = j.attempt"
_STATUSES = {s.value: s for s in Status}  # a dict lookup: Status(text) costs more, 10,000 times


@lru_cache(maxsize=256)
def _cards(text: Optional[str]) -> Optional[tuple[int, ...]]:
    return tuple(json.loads(text)) if text else None


SUMMARY_DECODE: dict[str, Any] = {
    "cards_granted": _cards,
    "status": _STATUSES.__getitem__,
    "executor_handle": lambda text: json.loads(text) if text else None,
    "time_to_best": lambda text: json.loads(text) if text else None,
    "sweep_values": lambda text: json.loads(text) if text else None,
}
_SUMMARY_DECODERS = tuple((SUMMARY_COLUMNS.index(name), fn) for name, fn in SUMMARY_DECODE.items())


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
