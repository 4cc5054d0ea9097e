"""Bring the store back in line with the processes that actually exist (run by every client on start).

- A `starting` or `running` job whose supervisor is gone (pid missing, a zombie, or reused by another
  process: its start time differs) and no process of which is left is settled the way its supervisor
  would have: what the engine wrote since is read into the store, and rn50tui/jobs/verdict.py decides
  (`completed` if the engine recorded the run as finished, else mostly `interrupted`). Nothing is
  restarted: `rn50tui resume` does that.
- If that job's engine outlived its supervisor, the job becomes `interrupted` and the engine gets one
  SIGTERM (it checkpoints and stops); the job keeps its cards until no process of it is left, and is then
  settled again (an engine that was in its last validation finishes: the job ends `completed`). After
  ORPHAN_KILL_AFTER_S the rest is SIGKILLed.
- Cards held by a finished job with no process left are freed, and the scheduler runs.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from rn50tui.jobs import procs
from rn50tui.jobs.errors import TransitionError
from rn50tui.jobs.follower import Follower, attempt_state
from rn50tui.jobs.states import ACTIVE, Status
from rn50tui.jobs.store import Job, JobStore
from rn50tui.jobs.verdict import Evidence, finished, verdict

STARTUP_GRACE_S = 120.0  # a `starting` job without a supervisor pid after this long never got one
ORPHAN_KILL_AFTER_S = 300.0  # an orphaned engine that ignores SIGTERM this long is killed


@dataclass
class Report:
    """What one reconcile pass changed."""

    interrupted: list[int] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)  # settled as completed: the engine had finished
    signalled: list[int] = field(default_factory=list)  # orphaned engines sent SIGTERM
    freed: list[int] = field(default_factory=list)  # jobs whose cards went back to the pool

    @property
    def changed(self) -> bool:
        return bool(self.interrupted or self.completed or self.freed)


def supervisor_gone(job: Job, now: float, startup_grace: float = STARTUP_GRACE_S) -> Optional[str]:
    """Why the job's supervisor counts as dead, or None while it lives (or may still be starting)."""
    if job.supervisor_pid is None:
        since = job.started_at or job.updated_at or now
        if job.status is Status.STARTING and now - since > startup_grace:
            return f"its supervisor never started (waited {startup_grace:.0f} s)"
        return None
    if procs.is_alive(job.supervisor_pid, job.supervisor_started):
        return None
    return f"its supervisor (pid {job.supervisor_pid}) is gone; the job was not restarted"


def engine_alive(job: Job) -> bool:
    """True while any process of the job's current attempt exists."""
    if procs.is_alive(job.engine_pid, job.engine_started):
        return True
    return bool(job.run_token) and bool(procs.tagged_processes(job.run_token))


def reconcile(store: JobStore, now: Optional[float] = None,
              schedule: Optional[Callable[[JobStore], object]] = None) -> Report:  # fmt: skip
    """One pass; `schedule` (the scheduler) runs if cards were freed."""
    now = time.time() if now is None else now
    report = Report()
    for job in store.list_jobs(ACTIVE):
        reason = supervisor_gone(job, now)
        if reason is not None:
            _interrupt(store, job, reason, now, report)
    _free_stale_claims(store, now, report)
    if report.freed and schedule is not None:
        schedule(store)
    return report


def _interrupt(store: JobStore, job: Job, reason: str, now: float, report: Report) -> None:
    if not engine_alive(job):
        _settle(store, job, now, report, reason)
        return
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
    if procs.signal_if_alive(job.engine_pid, job.engine_started, signal.SIGTERM):
        report.signalled.append(job.id)


def _settle(store: JobStore, job: Job, now: float, report: Report, gone: Optional[str] = None) -> None:
    """Decide how an attempt with no process left ended, as its supervisor would have (verdict.py).

    `gone` is set for an active job whose supervisor died; without it, a job already marked interrupted
    (or failed) only changes if the engine's record shows it finished: it becomes `completed`.
    """
    started = (job.started_at - 1.0) if job.started_at else None
    state = attempt_state(job.id, job.attempt, job.raport_path, started)  # read outside the transaction
    with store.transaction():
        current = store.get_job(job.id)
        if (current.status, current.supervisor_pid, current.attempt) != (
            job.status,
            job.supervisor_pid,
            job.attempt,
        ):
            return  # someone else got there first (another client, or the supervisor itself)
        current = _catch_up(store, current, started)
        evidence = Evidence(None, state.run_end, state.error, state.stopping_signal, current.checkpoint_epoch,
                            current.checkpoint_iteration, current.epochs)  # fmt: skip
        if gone is None and not finished(evidence):
            return
        status, reason = verdict(evidence, cancelled=bool(current.cancel_requested), supervisor_gone=gone)
        try:
            store.transition_locked(
                job.id, status, None, {"error": reason, "finished_at": current.finished_at or now}
            )
        except TransitionError:
            return
    (report.completed if status is Status.COMPLETED else report.interrupted).append(job.id)


def _catch_up(store: JobStore, job: Job, started: Optional[float]) -> Job:
    """Store what the engine wrote after its supervisor's last read (call inside a transaction)."""
    batch = Follower(job.id, job.attempt, job.raport_path, job.raport_offset, started, job.best_top1).poll()
    if batch.rows:
        store.add_metrics(batch.rows)
    store.update_job(job.id, **batch.updates)
    return store.get_job(job.id)


def settle_finished(store: JobStore, job: Job, now: Optional[float] = None) -> bool:
    """Make a stopped job whose engine recorded a finished run `completed`; True if it is now."""
    if job.status.active or job.status in (Status.COMPLETED, Status.QUEUED) or engine_alive(job):
        return job.status is Status.COMPLETED
    report = Report()
    _settle(store, job, time.time() if now is None else now, report)
    return bool(report.completed)


def _free_stale_claims(store: JobStore, now: float, report: Report) -> None:
    holders = {c.job_id for c in store.claims()}
    for job_id in sorted(holders):
        job = store.find_job(job_id)
        if job is not None and job.status in ACTIVE:
            continue
        if job is not None and engine_alive(job):
            if now - (job.finished_at or now) > ORPHAN_KILL_AFTER_S and job.run_token:
                procs.kill_tagged(job.run_token)
            else:
                continue
        if job is not None and job.status is not Status.COMPLETED and job_id not in report.interrupted:
            _settle(store, job, now, report)  # an orphaned engine may have finished the run
        with store.transaction():
            current = store.find_job(job_id)
            if current is None or current.status not in ACTIVE:
                store.release_claims(job_id)
        report.freed.append(job_id)
