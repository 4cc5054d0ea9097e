"""Bring the store back in line with the processes that actually exist (run by every client on start).

Each job's executor (rn50tui.jobs.executors) judges its own processes:
- A `starting` or `running` job that nothing follows any more (for `local`: its supervisor's pid is
  missing, a zombie, or reused by another process) is re-attached if its executor can, else it becomes
  `interrupted`. Nothing is restarted: `rn50tui resume` does that.
- If that job's engine outlived its follower, it is asked once to stop (it checkpoints), and the job
  keeps its cards until no process of it is left; after ORPHAN_KILL_AFTER_S the rest is killed.
- Cards held by a finished job with no process left are freed, and the scheduler runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from rn50tui.jobs.errors import JobsError, TransitionError
from rn50tui.jobs.executors import executor_for
from rn50tui.jobs.states import ACTIVE, Status
from rn50tui.jobs.store import Job, JobStore

ORPHAN_KILL_AFTER_S = 300.0  # an orphaned engine that ignores SIGTERM this long is killed


@dataclass
class Report:
    """What one reconcile pass changed."""

    interrupted: list[int] = field(default_factory=list)
    signalled: list[int] = field(default_factory=list)  # orphaned engines sent SIGTERM
    freed: list[int] = field(default_factory=list)  # jobs whose cards went back to the pool

    @property
    def changed(self) -> bool:
        return bool(self.interrupted or self.freed)


def reconcile(store: JobStore, now: Optional[float] = None,
              schedule: Optional[Callable[[JobStore], object]] = None) -> Report:  # fmt: skip
    """One pass; `schedule` (the scheduler) runs if cards were freed."""
    now = time.time() if now is None else now
    report = Report()
    for job in store.list_jobs(ACTIVE):
        try:
            executor = executor_for(job)
        except JobsError:
            continue  # a job of an executor this version lacks: left to the clients that have it
        reason = executor.lost(job, now)
        if reason is not None and not executor.reattach(job, store):
            _interrupt(store, job, reason, now, report)
    _free_stale_claims(store, now, report)
    if report.freed and schedule is not None:
        schedule(store)
    return report


def _interrupt(store: JobStore, job: Job, reason: str, now: float, report: Report) -> None:
    with store.transaction():
        current = store.get_job(job.id)
        if current.status != job.status or current.supervisor_pid != job.supervisor_pid:
            return  # someone else got there first (another client, or the supervisor itself)
        try:
            store.transition_locked(job.id, Status.INTERRUPTED, None, {"error": reason, "finished_at": now})
        except TransitionError:
            return
    report.interrupted.append(job.id)
    # Only the client that made the change signals: a second SIGTERM would stop the engine uncheckpointed.
    if executor_for(job).stop_orphans(job):
        report.signalled.append(job.id)


def _free_stale_claims(store: JobStore, now: float, report: Report) -> None:
    holders = {c.job_id for c in store.claims()}
    for job_id in sorted(holders):
        job = store.find_job(job_id)
        if job is not None and job.status in ACTIVE:
            continue
        if job is not None and _processes_alive(job):
            if now - (job.finished_at or now) > ORPHAN_KILL_AFTER_S:
                executor_for(job).stop_orphans(job, force=True)
            else:
                continue
        with store.transaction():
            current = store.find_job(job_id)
            if current is None or current.status not in ACTIVE:
                store.release_claims(job_id)
        report.freed.append(job_id)


def _processes_alive(job: Job) -> bool:
    try:
        return executor_for(job).processes_alive(job)
    except JobsError:
        return True  # an executor this version lacks: its cards stay claimed
