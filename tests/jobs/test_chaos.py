"""Randomized: kill -9 whatever runs a job, at random moments, resume after each; every job still completes.

Victims are drawn from every process of the running job: its supervisor, the engine (or torchrun), a rank
of a two-process job, a data-loader worker. After each kill the test does what a user would: it runs a
client (which reconciles), waits for the job to stop, and resumes it. At the end every job must be
`completed` with loadable checkpoints and no temp file, the store must pass SQLite's integrity check, and
no process of any attempt may be left.

Size: RN50TUI_CHAOS_KILLS (default 6), RN50TUI_CHAOS_JOBS (default 2: one single-process job, one
two-process torchrun job), RN50TUI_CHAOS_SEED (default: random, printed). By hand, e.g.:

    RN50TUI_CHAOS_KILLS=24 RN50TUI_CHAOS_JOBS=4 pytest -m slow tests/jobs/test_chaos.py -s
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from engine.checkpoint import load_checkpoint
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.local import procs
from rn50tui.jobs.manager import JobManager

from .conftest import wait_for

pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("RN50TUI_CHAOS_KILLS", "6"))
JOBS = int(os.environ.get("RN50TUI_CHAOS_JOBS", "2"))
STEP_TIMEOUT = 300
# Two epochs of 8 iterations, a data-loader worker per loader, tiny images: every phase comes round often.
FLAGS = ["--epochs", "2", "--synthetic-size", "32", "--image-size", "32", "-b", "4", "-p", "1", "--warmup", "0",
         "-j", "1"]  # fmt: skip


def _members(jm: JobManager, job_id: int) -> dict[str, list[psutil.Process]]:
    """The live processes of the job's attempt by role: supervisor, engine, torchrun, rank, worker."""
    job = jm.get_job(job_id)
    out: dict[str, list[psutil.Process]] = {}
    if procs.is_alive(job.supervisor_pid, job.supervisor_started):
        out["supervisor"] = [psutil.Process(job.supervisor_pid)]
    if not job.run_token:
        return out
    tagged = procs.tagged_processes(job.run_token)
    by_pid = {p.pid: p for p in tagged}
    for p in tagged:
        try:
            parent = p.ppid()
            if p.pid == job.engine_pid:
                role = "torchrun" if "engine.launch" in " ".join(p.cmdline()) else "engine"
            elif parent in by_pid and "engine.launch" in " ".join(by_pid[parent].cmdline()):
                role = "rank"
            else:
                role = "worker"  # forked by the engine or a rank
        except psutil.Error:
            continue
        out.setdefault(role, []).append(p)
    return out


def _settle(jm: JobManager, job_id: int, timeout: float = STEP_TIMEOUT) -> Status:
    """Run clients (each reconciles) until the job has stopped; return its status."""

    def stopped():
        jm.reconcile()
        job = jm.get_job(job_id)
        return job.status if job.status.terminal else None

    return wait_for(stopped, timeout, interval=0.5, message=f"job {job_id} to stop")


def _resume_until_running(jm: JobManager, job_id: int) -> None:
    status = _settle(jm, job_id)
    if status is not Status.COMPLETED:
        jm.resume(job_id)  # waits for an orphaned engine to checkpoint and stop; may queue behind another


def _wait_for_a_random_moment(jm: JobManager, job_id: int, rng: random.Random) -> str:
    """Start-up (a third of the time), else a random point of the training schedule, then a jitter of up
    to 2 s, so that saves, validations and the shut-down after the last epoch get hit too."""
    if rng.random() < 1 / 3:
        delay = rng.uniform(0.0, 8.0)
        time.sleep(delay)
        return f"{delay:.1f} s after it was seen running"
    target = rng.uniform(0.0, 1.0)

    first = jm.get_job(job_id)
    before = (first.attempt, first.epoch, first.iteration)  # progress columns may still be the last attempt's

    def reached() -> bool:
        job = jm.get_job(job_id)
        moved = (job.attempt, job.epoch, job.iteration) != before
        return not job.status.active or (moved and (job.progress or 0.0) >= target)

    wait_for(reached, STEP_TIMEOUT, interval=0.1, message="the chosen moment")
    jitter = rng.uniform(0.0, 2.0)
    time.sleep(jitter)
    return f"{jitter:.1f} s after {target:.0%} of its training"


def _leftovers(root: Path) -> list[str]:
    """Processes working in the test's folder (every supervisor and engine runs in its workspace)."""
    found = []
    for p in psutil.process_iter(["pid", "cwd", "cmdline", "status"]):
        cwd = p.info.get("cwd") or ""
        if cwd.startswith(str(root)) and p.pid != os.getpid() and p.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(f"{p.pid}: {' '.join(p.info['cmdline'] or [])[:120]}")
    return found


@pytest.mark.timeout(600 + 120 * (KILLS + JOBS))  # each kill costs a restart; loaded machines are slow
def test_random_kill_9s_with_resumes_still_complete_every_job(jm, store, tmp_path, monkeypatch):
    seed = int(os.environ.get("RN50TUI_CHAOS_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"\nchaos: seed {seed}, {KILLS} kills, {JOBS} jobs")
    jobs = [
        jm.submit(preset="demo", name=f"chaos{i}", cards=2 if i % 2 else 1, engine_flags=FLAGS).id
        for i in range(JOBS)
    ]
    killed: Counter[str] = Counter()
    per_job: Counter[int] = Counter()
    budget = -(-KILLS // JOBS)  # kills per job, so that every job is hit
    tokens: set[str] = set()
    while sum(killed.values()) < KILLS:
        statuses = {j: jm.get_job(j).status for j in jobs}
        active = [j for j, st in statuses.items() if st.active]
        if not active:
            stopped = [j for j, st in statuses.items() if st.terminal and st is not Status.COMPLETED]
            if stopped:
                jm.resume(stopped[0])
            elif all(st is Status.COMPLETED for st in statuses.values()):  # all done before enough kills
                jobs.append(jm.submit(preset="demo", name=f"chaos{len(jobs)}", cards=1 + len(jobs) % 2,
                                      engine_flags=FLAGS).id)  # fmt: skip
            jm.reconcile()
            time.sleep(0.2)
            continue
        job_id = active[0]
        if per_job[job_id] >= budget:  # this one is left to finish, so that the later jobs get their turn
            _settle(jm, job_id)
            continue
        moment = _wait_for_a_random_moment(jm, job_id, rng)  # start-up, training, a save, validation
        members = _members(jm, job_id)
        if not members:
            continue
        role = rng.choice(sorted(members))
        victim = rng.choice(members[role])
        job = jm.get_job(job_id)
        if job.run_token:
            tokens.add(job.run_token)
        try:
            victim.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            continue
        killed[role] += 1
        per_job[job_id] += 1
        print(f"chaos: kill -9 {role} {victim.pid} of job {job_id}, attempt {job.attempt}, {moment} "
              f"(epoch {job.epoch}, iteration {job.iteration})")  # fmt: skip
        _resume_until_running(jm, job_id)

    attempts = 0
    for job_id in jobs:  # no more kills: each job must finish, resumed after whatever the last kill left
        for _ in range(6):
            status = _settle(jm, job_id, timeout=STEP_TIMEOUT * len(jobs))  # queued behind the others
            if status is Status.COMPLETED:
                break
            tokens.add(jm.get_job(job_id).run_token or "")
            jm.resume(job_id)
            attempts += 1
    print(f"chaos: kills by role {dict(killed)}, by job {dict(per_job)}; jobs {len(jobs)}; "
          f"resumes after the last kill {attempts}")  # fmt: skip

    for job_id in jobs:
        job = jm.get_job(job_id)
        assert job.status is Status.COMPLETED, f"job {job_id}: {job.status}: {job.error}"
        workspace = Path(job.workspace)
        ckpt = load_checkpoint(str(workspace / "checkpoint.pth.tar"))  # weights_only: plain values
        assert ckpt["epoch"] == job.epochs == 2 and ckpt["iteration"] == 0
        if (workspace / "model_best.pth.tar").exists():
            load_checkpoint(str(workspace / "model_best.pth.tar"))
        assert not list(workspace.glob(".*.tmp")), f"job {job_id} left temp files"
        tokens.add(job.run_token or "")
        tries = jm.attempts(job_id)  # one row per attempt, each with its own ending and its own processes
        assert [a.number for a in tries] == list(range(1, job.attempt + 1))
        assert tries[-1].status is Status.COMPLETED and all(a.status is not None for a in tries)
        tokens.update(a.run_token for a in tries if a.run_token)
    assert store.integrity_check() == ["ok"]
    assert jm.claims() == []
    assert all(not procs.tagged_processes(t) for t in tokens if t)
    wait_for(lambda: not _leftovers(tmp_path), 60, message=f"no process left: {_leftovers(tmp_path)}")
