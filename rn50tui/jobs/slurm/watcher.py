"""`python -m rn50tui.jobs.slurm.watcher --db PATH`: one process follows every Slurm job of a store.

It holds an exclusive lock (`<db>.slurm-follower.lock`) while it lives, so there is at most one per
store and a client knows at once whether one runs (reconcile starts a new one when it does not: the
jobs on the cluster keep running while nothing follows them, and nothing is lost). Each round it
reads every job's raport.json and node samples from the shared workspace; every `poll_interval` it asks
slurmctld about all the jobs at once (one squeue; for jobs squeue has forgotten, sacct where accounting
exists, else `scontrol show job`), so the load on the controller does not grow with the jobs followed.
It forwards cancels (the stop file, then scancel after the grace), records how each job ended, and
submits the next attempt of an interrupted job while its `--auto-resume` budget lasts.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Optional

from rn50tui.jobs import lifecycle
from rn50tui.jobs.core.states import ACTIVE, Status
from rn50tui.jobs.core.store import DeviceSample, Job, JobStore
from rn50tui.jobs.lifecycle import AttemptLog, AttemptReport
from rn50tui.jobs.policy.verdict import Evidence, finished
from rn50tui.jobs.slurm import commands
from rn50tui.jobs.slurm import options as slurm_options
from rn50tui.jobs.slurm.lock import lock_path
from rn50tui.jobs.slurm.outcome import FINAL_STATES, PENDING_STATES, final_status

ROUND_S = 1.0  # raport.json and samples; the controller is asked every poll_interval
HEARTBEAT_S = 15.0  # a job with no news still gets its heartbeat this often
STATS_EVERY_S = 60.0  # the watcher logs its controller queries and CPU time this often
IDLE_EXIT_ROUNDS = 3  # rounds with no Slurm job to follow before the watcher exits
EXECUTOR = "slurm"


@dataclass
class Tracked:
    """What the watcher keeps in memory about one job's current attempt."""

    attempt: int
    report: AttemptReport  # its raport.json, stall watch (from the first round it runs) and how it ends
    options: slurm_options.SlurmOptions
    sample_offsets: dict[str, int] = field(default_factory=dict)


class SlurmWatcher:
    def __init__(self, db: Path, log: IO[str] = sys.stderr) -> None:
        self.db = db
        self.store = JobStore(db, create=False)
        self.log = AttemptLog("slurm-follower", log)
        self.tracked: dict[int, Tracked] = {}
        self.states: dict[str, commands.JobState] = {}
        self.next_query = 0.0
        self.accounting: Optional[bool] = None
        self.stats_since, self.stats_queries, self.stats_cpu = time.monotonic(), 0, _cpu_seconds()

    def jobs(self) -> list[Job]:
        followed = self.store.list_jobs([Status.QUEUED, *ACTIVE])  # queued: pending in Slurm's queue
        return [j for j in followed if j.executor == EXECUTOR and _slurm_id(j)]

    def run(self) -> int:
        idle = 0
        while idle < IDLE_EXIT_ROUNDS:
            if not self.db.exists():  # the store was deleted: nothing is left to follow for
                self._log(f"the job store {self.db} is gone: exiting")
                return 1
            jobs = self.jobs()
            idle = 0 if jobs else idle + 1
            if jobs:
                self.round(jobs, time.time())
            self._stats(len(jobs))
            time.sleep(ROUND_S)
        return 0

    def _stats(self, followed: int) -> None:
        """Every minute: the controller queries and the CPU time (own and of the Slurm commands) it cost."""
        now = time.monotonic()
        if now - self.stats_since < STATS_EVERY_S:
            return
        cpu = _cpu_seconds()
        minutes = (now - self.stats_since) / 60.0
        queries = sum(commands.QUERIES.values())
        self._log(f"stats: {followed} jobs followed, {(queries - self.stats_queries) / minutes:.1f} controller "
                  f"queries/min ({dict(commands.QUERIES)} in all), CPU {100 * (cpu - self.stats_cpu) / (60 * minutes):.2f}%")  # fmt: skip
        self.stats_since, self.stats_queries, self.stats_cpu = now, queries, cpu

    def round(self, jobs: list[Job], now: float) -> None:
        interval = min(self._tracked(j).options.poll_interval for j in jobs)
        if now >= self.next_query:
            self.next_query = now + interval
            self._query([_slurm_id(j) for j in jobs])
        for job in jobs:
            try:
                self.follow(job, self.states.get(_slurm_id(job)), now)
            except Exception as exc:  # noqa: BLE001 - one job's trouble must not stop the others
                self._log(f"job {job.id}: {exc!r}")

    def _query(self, ids: list[str]) -> None:
        try:
            states = commands.squeue(ids)
            gone = [i for i in ids if i not in states]
            if gone:
                states.update(self._finished(gone))
            self.states = states
        except commands.SlurmError as exc:
            self._log(f"cannot ask Slurm, keeping the last answer: {exc}")

    def _finished(self, ids: list[str]) -> dict[str, commands.JobState]:
        """Jobs squeue no longer lists (rare: only after MinJobAge), from sacct or scontrol."""
        if self.accounting is None:
            self.accounting = commands.accounting_enabled()
        found: dict[str, commands.JobState] = {}
        if self.accounting:
            found = commands.sacct(ids)
            ids = [i for i in ids if i not in found]  # not recorded (yet): slurmctld may still know it
        for job_id in ids:
            state = commands.scontrol_job(job_id)
            found[job_id] = state or commands.JobState(job_id, "")
        return found

    # -- one job

    def follow(self, job: Job, state: Optional[commands.JobState], now: float) -> None:
        tracked = self._tracked(job)
        handle = dict(job.executor_handle or {})
        if job.cancel_requested:
            self._stop(job, handle, state, tracked.options, now)
        if state is not None:
            handle.update(slurm_state=state.state, pending_reason=state.reason if state.state in PENDING_STATES
                          else None, nodes=state.nodes or handle.get("nodes"))  # fmt: skip
        final = state is not None and (state.state in FINAL_STATES or state.state == "")
        self._commit(job, tracked, handle, now, force=final)
        if final:
            self._finish(job, handle, state, tracked, now)
        elif state is not None and state.state in PENDING_STATES and job.status is Status.QUEUED:
            why = f"Slurm job {state.job_id} is {state.state.lower()}" + (
                f" ({state.reason})" if state.reason else ""
            )
            if why != job.wait_reason:
                self.store.update_job(job.id, wait_reason=why)
        elif state is not None and state.state not in PENDING_STATES and job.status is not Status.RUNNING:
            with self.store.transaction():
                self._run_locked(job, now)

    def _run_locked(self, job: Job, now: float) -> None:
        """Slurm runs the job: queued (in Slurm's queue) → starting → running, in the caller's transaction."""
        if job.status is Status.QUEUED:
            self.store.transition_locked(job.id, Status.STARTING, [Status.QUEUED], {"wait_reason": None})
        self.store.transition_locked(job.id, Status.RUNNING, [Status.STARTING], {"started_at": now})

    def _commit(self, job: Job, tracked: Tracked, handle: dict[str, Any], now: float, force: bool) -> None:
        """New records and samples, the handle if it changed, a heartbeat now and then: idle jobs cost no write."""
        if job.status is Status.RUNNING and tracked.report.watch is None:  # a new attempt, or a takeover
            tracked.report.start_watch(
                job.last_progress_at or job.started_at or now, job.stalled_at is not None
            )
        batch, stalled_for = tracked.report.poll(now)
        samples = self._samples(job, tracked)
        handle["sample_offsets"] = dict(tracked.sample_offsets)
        if tracked.report.state.run_end:  # kept for a watcher that takes over after this one died
            handle["run_end"] = tracked.report.state.run_end
        news = batch.rows or samples or len(batch.updates) > 1 or batch.offset != job.raport_offset
        stale = now - (job.heartbeat or 0) > HEARTBEAT_S
        if force or news or stale or handle != (job.executor_handle or {}):
            tracked.report.commit(batch, samples, now)
            self.store.set_executor_handle(job.id, handle)
        if stalled_for is not None and lifecycle.on_stall(self.store, job.id, stalled_for, self.log):
            handle["stall_cancelled"] = stalled_for  # for the ending's words, by whichever watcher sees it
            self.store.set_executor_handle(job.id, handle)

    def _tracked(self, job: Job) -> Tracked:
        tracked = self.tracked.get(job.id)
        if tracked is None or tracked.attempt != job.attempt:
            started = (job.executor_handle or {}).get("submitted_at")
            report = AttemptReport(self.store, job, started, self.log, eta=True)
            offsets = dict((job.executor_handle or {}).get("sample_offsets") or {})
            options = slurm_options.load(Path(job.workspace))
            tracked = self.tracked[job.id] = Tracked(job.attempt, report, options, offsets)
        return tracked

    def _samples(self, job: Job, tracked: Tracked) -> list[DeviceSample]:
        """New lines of every node's sample file (each sample names its node)."""
        out = []
        for path in sorted((Path(job.workspace) / "slurm" / "nodes").glob("*.jsonl")):
            offset = tracked.sample_offsets.get(path.stem, 0)
            with open(path, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
            end = data.rfind(b"\n") + 1
            tracked.sample_offsets[path.stem] = offset + end
            for line in data[:end].splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    out.append(sample_from_line(json.loads(line)))
        return out

    def _stop(self, job: Job, handle: dict[str, Any], state: Optional[commands.JobState],
              options: slurm_options.SlurmOptions, now: float) -> None:  # fmt: skip
        """A cancel: the stop file first (the engine checkpoints), scancel after the grace period."""
        slurm_id = _slurm_id(job)
        if "stop_sent_at" not in handle:
            handle["stop_sent_at"] = now
            stop = Path(job.workspace) / "slurm" / f"stop-{slurm_id}"
            stop.parent.mkdir(parents=True, exist_ok=True)
            stop.write_text("cancel\n")
            self._log(f"job {job.id}: cancel requested; asked Slurm job {slurm_id} to checkpoint and stop")
        grace = float(options.grace)
        pending = state is not None and state.state in PENDING_STATES
        if not handle.get("scancelled") and (pending or now - handle["stop_sent_at"] > grace):
            handle["scancelled"] = True
            with contextlib.suppress(commands.SlurmError):
                commands.scancel(slurm_id)

    def _finish(self, job: Job, handle: dict[str, Any], state: commands.JobState, tracked: Tracked,
                now: float) -> None:  # fmt: skip
        stop = Path(job.workspace) / "slurm" / f"stop-{_slurm_id(job)}"
        stop_reason = stop.read_text().strip() if stop.exists() else None
        run = tracked.report.state
        run_end = run.run_end or handle.get("run_end")
        stored = self.store.get_job(job.id)  # the last checkpoint the engine reported, committed above
        evidence = Evidence(None, run_end, run.error, run.stopping_signal, stored.checkpoint_epoch,
                            stored.checkpoint_iteration, stored.epochs)  # fmt: skip
        if finished(evidence):  # the one rule of local jobs too: a run the engine finished is completed
            status, reason = Status.COMPLETED, None
        else:
            status, reason = final_status(state.state, run_end, bool(job.cancel_requested), stop_reason)
        if status is Status.FAILED:
            reason = _failure_head(state, run.error)
        status, reason = lifecycle.ending(job, status, reason, stall_cancelled=handle.get("stall_cancelled"))
        options = tracked.options
        ran = job.status is not Status.QUEUED or status not in (Status.CANCELLED, Status.FAILED)
        with self.store.transaction():
            if ran and job.status is not Status.RUNNING:  # it ran between two polls: say so first
                self._run_locked(job, now)
            lifecycle.record_end(self.store, job.id, status, {
                "error": reason, "finished_at": now, "executor_handle": handle,
                "exit_code": _exit_code(state.exit_code), "wait_reason": None}, [Status.RUNNING] if ran else [job.status])  # fmt: skip
        self.tracked.pop(job.id, None)
        lifecycle.announce_end(self.store, job.id, self.log, f" (Slurm {_slurm_id(job)}, {state.state})")
        if status is Status.INTERRUPTED and job.attempt <= options.auto_resume:
            lifecycle.auto_resume(self.store, job.id, self.log, options.auto_resume - job.attempt)

    def _log(self, message: str) -> None:
        self.log(message)


def sample_from_line(d: dict[str, Any]) -> DeviceSample:
    return DeviceSample(float(d["time"]), d["device"], int(d["card"]), d.get("name"), d.get("util_percent"),
                        d.get("mem_used_mib"), d.get("mem_total_mib"), d.get("temp_c"), d.get("power_w"),
                        d.get("power_cap_w"), node=str(d["node"]))  # fmt: skip


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _slurm_id(job: Job) -> str:
    return str((job.executor_handle or {}).get("slurm_job_id") or "")


def _exit_code(text: str) -> Optional[int]:
    head = (text or "").split(":")[0]
    return int(head) if head.isdigit() else None


def _failure_head(state: commands.JobState, message: Optional[str]) -> str:
    """`Slurm job 12 FAILED (NonZeroExitCode): the engine's error` (the stderr tail follows)."""
    head = f"Slurm job {state.job_id} {state.state or 'vanished'}" + (
        f" ({state.reason})" if state.reason else ""
    )
    return f"{head}: {message}" if message else head


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m rn50tui.jobs.slurm.watcher", description=__doc__.splitlines()[0]
    )
    p.add_argument("--db", required=True, help="the job store")
    args = p.parse_args(argv)
    db = Path(args.db).resolve()
    fd = os.open(lock_path(db), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another watcher has the store
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    watcher = SlurmWatcher(db)
    while True:
        if watcher.run():
            return 1
        fcntl.flock(fd, fcntl.LOCK_UN)
        # A job submitted while this one was deciding to exit found the lock held: look once more.
        if not watcher.jobs():
            return 0
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # a new watcher took over


if __name__ == "__main__":
    sys.exit(main())
