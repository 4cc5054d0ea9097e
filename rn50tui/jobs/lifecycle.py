"""One attempt's lifecycle, the same for every executor: follow its report into the store, watch it for
stalls, decide and record how it ended (with the engine's last stderr lines on a failure), log, notify,
and queue the next attempt of an auto-resumed job.

The transports stay with their executors: the local supervisor (rn50tui/jobs/local/supervisor.py) owns the
engine process, its signals and the grace period; the Slurm watcher (rn50tui/jobs/slurm/watcher.py) owns
squeue/sacct and scancel. Both decide an ending in their own words (the verdict of rn50tui/jobs/policy/verdict.py,
a Slurm state) and hand it here, so the wording of a stall cancel, the stderr tail and the log are one.
"""

from __future__ import annotations

import contextlib
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Optional

from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import THIN_POINTS, DeviceSample, Job, JobStore
from rn50tui.jobs.core.workspace import LogTail
from rn50tui.jobs.policy import notify
from rn50tui.jobs.policy.eta import EtaModel
from rn50tui.jobs.policy.stall import StallWatch
from rn50tui.jobs.report import Batch, ReportReader, RunState, commit
from rn50tui.jobs.scheduler import schedule

STDERR_TAIL_LINES = 15


class AttemptLog:
    """`[name 2026-12-06T23:12:59] message` lines; a full disk costs the line, never the attempt."""

    def __init__(self, name: str, stream: IO[str] = sys.stderr) -> None:
        self.name, self.stream = name, stream

    def __call__(self, message: str) -> None:
        with contextlib.suppress(OSError):  # the log is a file on the job's disk, which may be full
            print(f"[{self.name} {datetime.now().isoformat(timespec='seconds')}] {message}", file=self.stream,
                  flush=True)  # fmt: skip


class AttemptReport:
    """Follows one attempt's raport.json into the store, with its stall watch and (optionally) its ETA.

    `started`: when the attempt began (the report's records from before are the previous attempt's tail);
    the stall watch starts with start_watch() once the attempt runs.
    """

    def __init__(self, store: JobStore, job: Job, started: Optional[float], log: AttemptLog,
                 eta: bool = False) -> None:  # fmt: skip
        self.store, self.job_id, self.attempt, self.log = store, job.id, job.attempt, log
        self.reader = ReportReader(job.id, job.attempt, job.files.raport, job.raport_offset, started, job.best_top1,
                               loss=job.loss, iters_per_epoch=job.iters_per_epoch)  # fmt: skip
        self.watch: Optional[StallWatch] = None
        self.eta = EtaModel() if eta else None

    @property
    def state(self) -> RunState:
        """What the attempt's records said about how it ends."""
        return self.reader.state

    def start_watch(self, since: float, stalled: bool = False) -> None:
        """Watch for stalls from `since` (the last progress); `stalled`: already reported, not twice."""
        self.watch = StallWatch(since)
        self.watch.stalled = stalled

    def poll(self, now: float) -> tuple[Batch, Optional[float]]:
        """The records since the last poll, as a batch to commit, and the idle time of a new stall."""
        batch = self.reader.poll()
        stalled_for = None
        if self.watch is not None:
            stalled_for = self.watch.step(batch.rows, batch.updates, now)
            if batch.updates.get("stalled_at", 0) is None:  # the step cleared a stall
                self.log(f"job {self.job_id}: progress again, no longer stalled")
        if self.eta is not None:  # every batch: run_start's sizes may come in one without rows
            self.eta.observe(batch.rows, batch.updates)
            if batch.rows and "eta_end" not in batch.updates:  # a prepare's own estimate comes with its work
                batch.updates["eta_end"] = self.eta.end_time()
        return batch, stalled_for

    def commit(self, batch: Batch, samples: list[DeviceSample], now: float) -> None:
        """Write the batch, samples and heartbeat in one transaction; a refused write rewinds, then raises."""
        try:
            commit(self.store, self.job_id, batch, samples, now)
        except Exception:
            self.reader.rewind(batch)
            raise

    def threshold(self) -> float:
        return self.watch.threshold() if self.watch is not None else 0.0


def on_stall(store: JobStore, job_id: int, idle: float, log: AttemptLog, threshold: float = 0.0,
             may_cancel: bool = True) -> bool:  # fmt: skip
    """A new stall: log it, run the user's hook, and with --on-stall cancel ask the attempt to stop as
    `rn50tui cancel` would (unless it is stopping already: `may_cancel` False). True if it asked."""
    limit = f" (threshold {threshold:.0f} s)" if threshold else ""
    log(f"job {job_id}: stalled, no training progress for {idle:.0f} s{limit}")
    job = store.get_job(job_id)
    notify.fire(job, notify.STALLED, log.stream, stalled_for=idle)
    if job.on_stall != "cancel" or job.cancel_requested or not may_cancel:
        return False
    log(f"job {job_id}: --on-stall cancel: asking it to checkpoint and stop")
    store.update_job(job_id, cancel_requested=time.time())
    return True


def stall_cancel_reason(idle: float, killed: bool = False) -> str:
    return f"cancelled: no progress for {idle:.0f} s (--on-stall cancel); resume continues it" + (
        " (killed after the grace period)" if killed else ""
    )


def stderr_tail(head: str, stderr: Path, offset: int) -> str:
    """The failure's reason, then the last lines the engine wrote to stderr in this attempt."""
    text = LogTail(stderr, start=offset).read_text(partial=True)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    tail = "\n".join(lines[-STDERR_TAIL_LINES:])
    return f"{head}\n{tail}" if tail else head


def ending(job: Job, status: Status, reason: Optional[str], *, stall_cancelled: Optional[float] = None,
           killed: bool = False) -> tuple[Status, Optional[str]]:  # fmt: skip
    """The transport's verdict in the words every executor uses: a stall cancel says so, a failure ends
    with the engine's last stderr lines of this attempt."""
    if status is Status.CANCELLED and stall_cancelled is not None:
        return status, stall_cancel_reason(stall_cancelled, killed)
    if status is Status.FAILED:
        return status, stderr_tail(reason or "the engine failed", job.files.log("stderr"), job.stderr_offset)
    return status, reason


def record_end(store: JobStore, job_id: int, status: Status, values: dict[str, Any],
               expect: Optional[list[Status]] = None) -> None:  # fmt: skip
    """The attempt's ending and the cards it held freed, in the caller's transaction."""
    now = time.time()
    store.transition_locked(job_id, status, expect, {"finished_at": now, "heartbeat": now, "stalled_at": None,
                                                     **values})  # fmt: skip
    store.release_claims(job_id)


def announce_end(store: JobStore, job_id: int, log: AttemptLog, what: str = "") -> Job:
    """Log how the attempt ended and run the user's hook (after record_end committed)."""
    job = store.get_job(job_id)
    log(f"job {job_id}{what} {job.status}" + (f": {job.error.splitlines()[0]}" if job.error else ""))
    notify.fire(job, notify.FINAL, log.stream)
    return job


def auto_resume(store: JobStore, job_id: int, log: AttemptLog, resumes_left: int) -> None:
    """Queue the next attempt of an interrupted job and run the scheduler (its executor starts it)."""
    try:
        store.new_attempt(job_id, expect=[Status.INTERRUPTED])
        schedule(store)
        log(f"job {job_id}: auto-resumed ({resumes_left} more allowed)")
    except Exception as exc:  # noqa: BLE001 - the job stays interrupted; `rn50tui resume` continues it
        log(f"job {job_id}: auto-resume failed: {exc}")


def thin_finished_job(store: JobStore, job: Job, points: int = THIN_POINTS) -> int:
    """Thin a finished job's per-iteration metric records to about `points` per series for the charts
    (JobStore.thin_metrics), where its raport.json keeps every record for `export` and it has more than
    2 × `points`: the store then grows with jobs, not iterations (issue 29). Returns the rows removed."""
    if not job.status.terminal or not job.files.raport.is_file() or store.metric_count(job.id) <= 2 * points:
        return 0
    return store.thin_metrics(job.id, points)
