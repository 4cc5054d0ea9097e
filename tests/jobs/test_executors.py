"""The executor seam: jobs carry the executor that runs them; stores from before executors upgrade."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rn50tui.jobs.core.errors import SubmitError
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import JobStore
from rn50tui.jobs.executors import EXECUTORS, LocalExecutor, executor_for
from rn50tui.jobs.local import procs
from rn50tui.jobs.manager import JobManager
from rn50tui.jobs.reconcile import reconcile
from rn50tui.jobs.submission import Request, plan

from .conftest import occupy

V2 = Path(__file__).resolve().parents[1] / "fixtures" / "jobs_v2.db"
STATUSES_V2 = ["completed", "failed", "cancelled", "interrupted", "queued", "running", "starting"]


@pytest.fixture
def v2(tmp_path: Path) -> JobStore:
    """The committed store written before executors existed, opened (and so upgraded) by this code."""
    copy = tmp_path / "jobs.db"
    shutil.copy(V2, copy)
    store = JobStore(copy)
    yield store
    store.close()


def test_a_store_from_before_executors_upgrades_with_every_job_local(v2):
    jobs = v2.list_jobs()
    assert [j.status.value for j in jobs] == STATUSES_V2
    assert {j.executor for j in jobs} == {"local"} and all(j.executor_handle is None for j in jobs)
    assert isinstance(executor_for(jobs[0]), LocalExecutor)
    assert v2.metric_count(1) == 17 and jobs[0].top1 == 12.5


def test_jobs_running_under_the_old_supervisor_are_reconciled_not_lost(v2):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # job 6 ran under a supervisor of the old code that is still alive: it stays running
        v2.update_job(6, supervisor_pid=sleeper.pid, supervisor_started=procs.start_time(sleeper.pid))
        report = reconcile(v2)
        assert report.interrupted == [7]  # its old supervisor (pid 999997) is gone
        assert v2.get_job(6).status is Status.RUNNING and [c.job_id for c in v2.claims()] == [6]
    finally:
        sleeper.kill()
        sleeper.wait()
    report = reconcile(v2)
    assert report.interrupted == [6] and v2.claims() == []
    assert "supervisor (pid" in v2.get_job(6).error


def test_the_interrupted_jobs_of_an_old_store_resume(v2, monkeypatch):
    reconcile(v2)  # the old supervisors are gone: 6 and 7 become interrupted, their cards free
    holder = occupy(v2)  # the one CPU slot is busy, so the resumed jobs wait in the queue
    jm = JobManager(v2.path, capacity={"mlu": 0, "cuda": 0, "cpu": 1})
    try:
        for job_id, attempt in ((4, 3), (6, 2), (7, 2)):
            job = jm.resume(job_id)
            assert (job.status, job.attempt, job.executor) == (Status.QUEUED, attempt, "local")
    finally:
        jm.close()
    assert v2.get_job(holder.id).status is Status.RUNNING


def test_the_local_executor_judges_only_its_own_hosts_jobs(store):
    job = occupy(store)
    store.update_job(job.id, supervisor_pid=999_999, supervisor_started=1.0)
    store.set_executor_handle(job.id, {"host": "another-host"})
    assert store.get_job(job.id).executor_handle == {"host": "another-host"}
    assert not reconcile(store).changed  # its processes are not ours to see
    store.set_executor_handle(job.id, {"host": LocalExecutor().host})
    assert reconcile(store).interrupted == [job.id]


def test_a_job_of_an_unknown_executor_is_left_alone_and_never_submitted(store, monkeypatch):
    job = occupy(store)
    store.update_job(job.id, executor="kubernetes", supervisor_pid=999_999, supervisor_started=1.0)
    assert "kubernetes" not in EXECUTORS
    assert not reconcile(store).changed and store.get_job(job.id).status is Status.RUNNING
    with pytest.raises(SubmitError, match="unknown executor 'kubernetes': use one of local, slurm"):
        plan(Request(preset="demo", executor="kubernetes"), {"cpu": 1})
