"""Bring the store back in line with the processes that actually exist (run by every client on start).

Each job's executor (rn50tui.jobs.executors) judges its own processes:
- A `starting` or `running` job that nothing follows any more (for `local`: its supervisor's pid is
  missing, a zombie, or reused by another process) is re-attached if its executor can. Else, when no
  process of it is left, its executor settles it the way its follower would have: what the engine
  wrote since is read into the store, and rn50tui/jobs/policy/verdict.py decides (`completed` if the engine
  recorded the run as finished, else mostly `interrupted`). Nothing is restarted: `rn50tui resume`
  does that.
- If that job's engine outlived its follower, the job becomes `interrupted` and the engine is asked
  once to stop (it checkpoints); the job keeps its cards until no process of it is left, and is then
  settled again (an engine that was in its last validation finishes: the job ends `completed`). After
  ORPHAN_KILL_AFTER_S the rest is killed.
- Cards held by a finished job with no process left are freed, and the scheduler runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from rn50tui.jobs.core.errors import TransitionError
from rn50tui.jobs.core.states import ACTIVE, Status
from rn50tui.jobs.core.store import Job, JobStore
from rn50tui.jobs.executors import executor_for, find_executor
from rn50tui.jobs.policy import stall

ORPHAN_KILL_AFTER_S = 300.0  # an orphaned engine that ignores SIGTERM this long is killed


@dataclass
class Report:
    """What one reconcile pass changed."""

    interrupted: list[int] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)  # settled as completed: the engine had finished
    signalled: list[int] = field(default_factory=list)  # orphaned engines sent SIGTERM
    freed: list[int] = field(default_factory=list)  # jobs whose cards went back to the pool
    hung: list[int] = field(default_factory=list)  # hung supervisors reported (the hook ran) by this pass

    @property
    def changed(self) -> bool:
        return bool(self.interrupted or self.completed or self.freed)


def reconcile(store: JobStore, now: Optional[float] = None,
              schedule: Optional[Callable[[JobStore], object]] = None) -> Report:  # fmt: skip
    """One pass; `schedule` (the scheduler) runs if cards were freed or a dependency ended."""
    now = time.time() if now is None else now
    report = Report()
    for job in store.list_jobs([*ACTIVE, Status.QUEUED]):
        executor = find_executor(job.executor)
        if executor is None:
            continue  # a job of an executor this version lacks: left to the clients that have it
        if job.status is Status.QUEUED and not executor.submitted(job):
            continue  # waits for this host's scheduler: nothing follows it yet
        reason = executor.lost(job, now)
        if reason is not None and not executor.reattach(job, store):
            _interrupt(store, job, reason, now, report)
        elif reason is None:
            _report_hung(store, job, now, report)
    _free_stale_claims(store, now, report)
    if schedule is not None and (report.freed or store.dependencies_to_settle()):
        schedule(store)  # cards freed, or a job a queued one waits for ended (a cluster's follower ends it)
    return report


def _report_hung(store: JobStore, job: Job, now: float, report: Report) -> None:
    """A live supervisor (or follower) whose heartbeat is stale hangs: run the job's hook once per hang,
    from the first client that sees it (the hung process cannot)."""
    mark = stall.flag(job, now)
    if mark is None or mark.kind != stall.HUNG or job.hung_notified == job.heartbeat:
        return
    with store.transaction():
        current = store.get_job(job.id)
        if current.heartbeat != job.heartbeat or current.hung_notified == job.heartbeat:
            return  # it beat again, or another client reported it
        store.update_job(job.id, hung_notified=job.heartbeat)
    report.hung.append(job.id)
    from rn50tui.jobs.policy import notify  # its config file and subprocess: only when a hook runs

    notify.fire_from_client(current, notify.HUNG, stalled_for=mark.for_s)


def _interrupt(store: JobStore, job: Job, reason: str, now: float, report: Report) -> None:
    executor = executor_for(job)
    if not executor.processes_alive(job):
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
    from rn50tui.jobs.policy import notify

    notify.fire_from_client(store.get_job(job.id))  # the user's hook: its supervisor cannot run it
    # Only the client that made the change signals: a second SIGTERM would stop the engine uncheckpointed.
    if executor.stop_orphans(job):
        report.signalled.append(job.id)


def _settle(store: JobStore, job: Job, now: float, report: Report, lost: Optional[str] = None) -> None:
    """Have the job's executor settle an attempt with no process left (see Executor.settle)."""
    status = executor_for(job).settle(job, store, now, lost)
    if status is not None:
        (report.completed if status is Status.COMPLETED else report.interrupted).append(job.id)
        from rn50tui.jobs.policy import notify

        notify.fire_from_client(store.get_job(job.id))  # the user's hook: its supervisor cannot run it


def settle_finished(store: JobStore, job: Job, now: Optional[float] = None) -> bool:
    """Make a stopped job whose engine recorded a finished run `completed`; True if it is now."""
    if job.status.active or job.status in (Status.COMPLETED, Status.QUEUED) or _processes_alive(job):
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
        if job is not None and _processes_alive(job):
            if now - (job.finished_at or now) > ORPHAN_KILL_AFTER_S:
                executor_for(job).stop_orphans(job, force=True)
            else:
                continue
        if job is not None and job.status is not Status.COMPLETED and job_id not in report.interrupted:
            _settle(store, job, now, report)  # an orphaned engine may have finished the run
        with store.transaction():
            current = store.find_job(job_id)
            if current is None or current.status not in ACTIVE:
                store.release_claims(job_id)
        report.freed.append(job_id)


def _processes_alive(job: Job) -> bool:
    executor = find_executor(job.executor)
    return True if executor is None else executor.processes_alive(job)  # unknown: its cards stay claimed
