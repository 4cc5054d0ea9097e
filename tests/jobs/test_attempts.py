"""Attempts as records: one `attempts` row per try of a job, each with its own ending, and the migration
that moves stores of earlier versions (one running under a live supervisor of that version) onto them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rn50tui.jobs.core.schema import migrations_of
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import JobStore
from rn50tui.jobs.local import procs
from rn50tui.jobs.manager import JobManager
from rn50tui.jobs.reconcile import reconcile

from .conftest import ROOT, TWO_TINY_EPOCHS, cli_env, run_cli, wait_for

V2 = Path(__file__).resolve().parents[1] / "fixtures" / "jobs_v2.db"
BEFORE_ATTEMPTS = "bb0f06e"  # the last commit whose store kept every attempt's columns on the job


def _job(store: JobStore, **kw):
    values = {"name": "demo", "kind": "train", "argv": ["-b", "4"], "device": "cpu", "cards_requested": 1,
              "workspace": str(store.path.parent / "runs" / "{id}")}  # fmt: skip
    return store.insert_job(**{**values, **kw})


def _run_and_fail(store: JobStore, job_id: int, error: str, pid: int) -> None:
    store.transition(job_id, Status.STARTING, expect=[Status.QUEUED], cards_granted=[0], started_at=100.0)
    store.transition(job_id, Status.RUNNING, expect=[Status.STARTING], engine_pid=pid, run_token=f"t{pid}",
                     raport_offset=10 * pid, eta_end=999.0, stalled_at=150.0)  # fmt: skip
    store.transition(
        job_id, Status.FAILED, expect=[Status.RUNNING], exit_code=1, error=error, finished_at=200.0
    )


def test_each_attempt_is_a_row_of_its_own_with_its_own_ending(store):
    job = _job(store)
    _run_and_fail(store, job.id, "out of memory", pid=11)
    store.update_job(job.id, cancel_requested=123.0)
    resumed = store.new_attempt(job.id, expect=[Status.FAILED])
    assert resumed.status is Status.QUEUED and resumed.attempt == 2
    # nothing of the first try is carried over by hand: the new row is clean
    assert (resumed.engine_pid, resumed.run_token, resumed.error, resumed.exit_code) == (
        None,
        None,
        None,
        None,
    )
    assert (resumed.cancel_requested, resumed.eta_end, resumed.stalled_at, resumed.cards_granted) == (
        None,
    ) * 4
    assert resumed.raport_offset == 110  # but the report is read on from where the first try stopped
    _run_and_fail(store, job.id, "NaN loss", pid=12)
    first, second = store.attempts(job.id)
    assert (first.number, first.status, first.error, first.engine_pid) == (
        1,
        Status.FAILED,
        "out of memory",
        11,
    )
    assert (second.number, second.status, second.error, second.engine_pid) == (
        2,
        Status.FAILED,
        "NaN loss",
        12,
    )
    assert first.duration == 100.0


def test_jobs_show_lists_every_attempt_with_how_it_ended(store, db_path):
    job = _job(store)
    _run_and_fail(store, job.id, "out of memory\nTraceback …", pid=11)
    store.new_attempt(job.id, expect=[Status.FAILED])
    shown = run_cli("jobs", "show", str(job.id), db=db_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("\n") > 2
    assert "  1  failed" in shown.stdout and "out of memory" in shown.stdout
    assert "  2  queued" in shown.stdout
    listed = json.loads(run_cli("jobs", "show", str(job.id), "--json", db=db_path).stdout)
    assert [a["status"] for a in listed["attempts"]] == ["failed", None]


def test_a_store_from_before_attempts_moves_every_job_and_metric_row(tmp_path):
    copy = tmp_path / "jobs.db"
    shutil.copy(V2, copy)
    store = JobStore(copy)
    assert "0010_attempts" in migrations_of(copy) and "attempts" in store.tables()
    jobs = store.list_jobs()
    assert len(jobs) == 7 and sum(store.metric_count(j.id) for j in jobs) > 0
    for job in jobs:
        (attempt,) = store.attempts(job.id)
        assert attempt.number == job.attempt and job.current == attempt
    done = store.get_job(1)
    assert (done.status, done.exit_code, done.started_at, done.top1) == (
        Status.COMPLETED,
        0,
        1_780_000_000.0,
        12.5,
    )
    assert store.attempts(1)[0].status is Status.COMPLETED and store.attempts(6)[0].status is None  # running


def _old_code(tmp_path: Path) -> Path:
    """The tree of rn50tui and engine as of BEFORE_ATTEMPTS (skips where this is not a git checkout)."""
    if shutil.which("git") is None:
        pytest.skip("git is absent")
    tree = tmp_path / "old"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE_ATTEMPTS, "rn50tui", "engine"],
                             capture_output=True)  # fmt: skip
    if archive.returncode != 0:
        pytest.skip(f"commit {BEFORE_ATTEMPTS} is not in this checkout: {archive.stderr.decode()[:200]}")
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


OLD_SUBMIT = """
import sys, time
from rn50tui.jobs.manager import JobManager
jm = JobManager(sys.argv[1])
job = jm.submit(preset="demo", engine_flags=sys.argv[2:])
deadline = time.monotonic() + 240
while time.monotonic() < deadline:
    j = jm.get_job(job.id)
    if j.status.terminal or (j.status.value == "running" and (j.iteration or 0) >= 2):
        print(j.id, j.status.value, j.supervisor_pid, flush=True)
        break
    time.sleep(0.2)
"""


@pytest.mark.slow
def test_a_running_job_of_the_previous_version_is_still_supervised_after_the_migration(tmp_path, monkeypatch):
    old = _old_code(tmp_path)
    db = tmp_path / "jobs.db"
    env = cli_env(PYTHONPATH=str(old), RN50TUI_CARDS="mlu=0,cuda=0,cpu=1", RN50TUI_POLL_S="0.3",
                  RN50TUI_SAMPLE_INTERVAL_S="1")  # fmt: skip
    flags = list(TWO_TINY_EPOCHS)
    out = subprocess.run([sys.executable, "-c", OLD_SUBMIT, str(db), *flags], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    job_id, status, pid = out.stdout.split()
    assert status == "running" and "0010_attempts" not in migrations_of(db)
    job_id, pid = int(job_id), int(pid)
    monkeypatch.setenv("RN50TUI_CARDS", "mlu=0,cuda=0,cpu=1")
    jm = JobManager(db, capacity={"mlu": 0, "cuda": 0, "cpu": 1})  # today's code: migrates the store
    try:
        assert "0010_attempts" in migrations_of(db)
        assert reconcile(jm._store).interrupted == []  # its supervisor lives on: it is not lost
        job = jm.get_job(job_id)
        assert job.status is Status.RUNNING and job.supervisor_pid == pid
        beat = job.heartbeat
        wait_for(
            lambda: (jm.get_job(job_id).heartbeat or 0) > beat, 60, message="a heartbeat after the migration"
        )
        done = wait_for(
            lambda: (j := jm.get_job(job_id)).status.terminal and j, 300, message="the job to end"
        )
        assert done.status is Status.COMPLETED, done.error
        assert (done.exit_code, done.epoch, done.progress) == (0, 2, 1.0) and done.finished_at
        (attempt,) = jm._store.attempts(job_id)
        assert attempt.status is Status.COMPLETED and attempt.exit_code == 0
        phases = [m.phase for m in jm.metrics(job_id)]
        assert phases.count("train") == 16 and phases.count("epoch") == 2 and phases[-1] == "summary"
        wait_for(
            lambda: not procs.is_alive(pid, done.supervisor_started), 60, message="the supervisor to exit"
        )
    finally:
        job = jm.get_job(job_id)
        if job.run_token:
            procs.kill_tagged(job.run_token)
        if procs.is_alive(pid, job.supervisor_started):
            os.kill(pid, 9)
        jm.close()
