"""Fixtures of the job-manager tests: a real SQLite store in tmp_path, and a way to occupy a card."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import Job, JobStore
from rn50tui.jobs.local import procs
from rn50tui.jobs.manager import JobManager

ROOT = Path(__file__).resolve().parents[2]
# A two-epoch demo on 32 synthetic 32 px images, logged every iteration: a real job in seconds.
TWO_TINY_EPOCHS = ["--epochs", "2", "--synthetic-size", "32", "--image-size", "32", "-b", "4", "-p", "1",
                   "--warmup", "0"]  # fmt: skip


def cli_env(**extra: str) -> dict[str, str]:
    """Environment of an `rn50tui` / supervisor subprocess: this checkout importable, few threads."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


def run_cli(*args: str, db: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    """`python -m rn50tui --db DB ARGS` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "rn50tui", "--db", str(db), *args], capture_output=True,
                          text=True, timeout=timeout, env=cli_env(**env), cwd=db.parent)  # fmt: skip


def occupy(store: JobStore, device: str = "cpu", card: int = 0) -> Job:
    """A `running` job holding one card, supervised (as far as reconcile can tell) by this test process."""
    job = store.insert_job(name="holder", kind="train", argv=[], device=device, cards_requested=1,
                           workspace=str(store.path.parent / "runs" / "{id}"))  # fmt: skip
    me = os.getpid()
    with store.transaction():
        store.add_claims(job.id, device, [card], time.time())
        store.update_job(job.id, status=Status.RUNNING.value, cards_granted=[card], supervisor_pid=me,
                         supervisor_started=procs.start_time(me))  # fmt: skip
    return store.get_job(job.id)


@pytest.fixture
def jm(db_path, monkeypatch):
    """A manager whose jobs really run: real supervisors and engines, polled fast, cleaned up after."""
    monkeypatch.setenv("RN50TUI_CARDS", "mlu=0,cuda=0,cpu=1")
    monkeypatch.setenv("RN50TUI_POLL_S", "0.3")
    monkeypatch.setenv("RN50TUI_SAMPLE_INTERVAL_S", "1")
    monkeypatch.setenv("RN50TUI_CANCEL_GRACE_S", "90")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    manager = JobManager(db_path)
    yield manager
    close_killing_every_job(manager)


def close_killing_every_job(manager: JobManager) -> None:
    """Kill every job's engine and supervisor, whatever failed, then close the manager."""
    for job in manager.list_jobs():
        if job.run_token:
            procs.kill_tagged(job.run_token)
        if job.supervisor_pid and procs.is_alive(job.supervisor_pid, job.supervisor_started):
            os.kill(job.supervisor_pid, signal.SIGKILL)
    manager.close()


@pytest.fixture
def manager(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> JobManager:
    """A manager with one CPU slot and no MLU/CUDA cards, whatever the host has."""
    monkeypatch.setenv("RN50TUI_CARDS", "mlu=0,cuda=0,cpu=1")
    jm = JobManager(db_path, capacity={"mlu": 0, "cuda": 0, "cpu": 1})
    yield jm
    jm.close()


def wait_for(condition, timeout: float, interval: float = 0.2, message: str = "condition"):
    """Poll `condition` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {message}")
        time.sleep(interval)
