"""The app's one door to the job store, the job's files and the host's cards. Worker threads only.

A thin adapter over `rn50tui.jobs.manager.JobManager` (which gives each thread its own connection):
the reads the screens need, in the shape they need them, plus the user's requests. Nothing here
touches a widget; nothing here is called on the UI thread.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

from rn50tui.jobs.manager import JobManager
from rn50tui.jobs.store import DeviceSample, Job
from rn50tui.jobs.submission import Request

# The metrics the charts draw, read with SQLite's json_extract so a million rows never meet json.loads.
CHART_METRICS = (
    "train.loss",
    "train.total_ips",
    "train.lr",
    "val.top1",
    "val.top5",
    "val.loss",
    "val_ema.top1",
)
METRIC_BATCH = 250_000  # rows per read: a huge history loads over a few refreshes, the UI never waits
LOG_TAIL_BYTES = 64 * 1024  # how much of an existing log the first read shows
LOG_STREAMS = ("stdout", "stderr", "supervisor")


class MetricPoint(NamedTuple):
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
class CheckpointFile:
    name: str
    size: int
    mtime: float
    latest: bool  # the one the store says was written last
    best: bool


class Client:
    """Reads and requests for the app; every method blocks, so call it from a thread worker."""

    def __init__(
        self, db_path: str | os.PathLike[str], *, capacity: Optional[dict[str, int]] = None,
        sampler_factory: Optional[Callable[[], Any]] = None,
    ) -> None:  # fmt: skip
        self.jm = JobManager(db_path, capacity=capacity)
        self._sampler_factory = sampler_factory

    @property
    def db_path(self) -> Path:
        return self.jm.db_path

    # -- jobs

    def jobs(self) -> list[Job]:
        return self.jm.list_jobs()

    def job(self, job_id: int) -> Job:
        return self.jm.get_job(job_id)

    def metric_points(self, job_id: int, since_id: int = 0, limit: int = METRIC_BATCH) -> list[MetricPoint]:
        """Train and epoch records newer than `since_id`, oldest first, at most `limit`."""
        columns = ", ".join(f"json_extract(data, '$.\"{name}\"')" for name in CHART_METRICS)
        rows = self.jm.store.db.execute(
            f"SELECT id, attempt, time, epoch, iteration, phase, {columns} FROM metrics"
            " WHERE job_id = ? AND id > ? AND phase IN ('train', 'epoch') ORDER BY id LIMIT ?",
            [job_id, since_id, limit],
        ).fetchall()
        return list(map(MetricPoint._make, rows))

    def device_samples(self, job_id: int, since: Optional[float] = None) -> list[DeviceSample]:
        return self.jm.device_samples(job_id, since=since)

    def holders(self) -> dict[tuple[str, int], str]:
        return self.jm.holders()

    def capacity(self) -> dict[str, int]:
        return self.jm.capacity()

    # -- requests

    def reconcile(self) -> None:
        self.jm.reconcile()

    def submit(self, request: Request) -> Job:
        return self.jm.submit(request)

    def cancel(self, job_id: int) -> Job:
        return self.jm.cancel(job_id, wait=False)

    def resume(self, job_id: int) -> Job:
        return self.jm.resume(job_id)

    def delete(self, job_id: int) -> None:
        self.jm.delete(job_id)

    # -- files

    def log_path(self, job: Job, stream: str) -> Path:
        return Path(job.workspace) / f"{stream}.log"

    def checkpoints(self, job: Job) -> list[CheckpointFile]:
        """The job's checkpoint files, newest first."""
        found = []
        for path in _files(Path(job.workspace), "*.pth.tar"):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue  # replaced while we looked (atomic save)
            latest = job.last_checkpoint is not None and Path(job.last_checkpoint).name == path.name
            found.append(
                CheckpointFile(path.name, st.st_size, st.st_mtime, latest, path.name.startswith("model_best"))
            )
        return sorted(found, key=lambda c: c.mtime, reverse=True)

    # -- host

    def host_sampler(self) -> Any:
        """A sampler of every card on the host (engine.telemetry.HostSampler unless one was injected)."""
        if self._sampler_factory is not None:
            return self._sampler_factory()
        from engine.telemetry.detect import HostSampler

        return HostSampler()

    def close(self) -> None:
        self.jm.close()


def _files(folder: Path, pattern: str) -> Iterator[Path]:
    try:
        yield from folder.glob(pattern)
    except OSError:
        return


class LogFollower:
    """Reads a log file from where the last read stopped; the first read starts near its end."""

    def __init__(self, path: Path, tail_bytes: int = LOG_TAIL_BYTES) -> None:
        self.path = path
        self.offset: Optional[int] = None
        self.tail_bytes = tail_bytes

    def read(self) -> str:
        """The complete lines written since the last read ('' when none)."""
        try:
            with open(self.path, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                if self.offset is None or self.offset > size:  # first read, or the file was replaced
                    self.offset = max(0, size - self.tail_bytes)
                    if self.offset:
                        fh.seek(self.offset)
                        self.offset += len(fh.readline())  # start at a whole line
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return ""
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next read
        self.offset += end
        return chunk[:end].decode("utf-8", errors="replace")


def config_rows(argv: list[str]) -> list[tuple[str, str]]:
    """Every engine setting of an argv, as the engine would read it (no checks: the files may be gone)."""
    import contextlib
    import io

    from engine.config import TrainConfig, build_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            ns = build_parser().parse_args(argv)
    except SystemExit:
        return []
    names = [f for f in TrainConfig.__dataclass_fields__ if hasattr(ns, f)]
    return [(name, "" if getattr(ns, name) is None else str(getattr(ns, name))) for name in names]
