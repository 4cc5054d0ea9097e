"""A job id is never reused and a job's workspace is its own (a removed job's files are never a new job's)."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from rn50tui.jobs.core.errors import SubmitError
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import JobStore
from rn50tui.jobs.local import procs

from .conftest import TWO_TINY_EPOCHS, wait_for

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ONE_EPOCH = TWO_TINY_EPOCHS


def _insert(store: JobStore, workspace: str, **kw) -> int:
    return store.insert_job(name="j", kind="train", argv=[], device="cpu", cards_requested=1,
                            workspace=workspace, **kw).id  # fmt: skip


def test_the_id_of_a_removed_newest_job_is_not_given_again(tmp_path):
    store = JobStore(tmp_path / "jobs.db")
    first = _insert(store, str(tmp_path / "runs" / "{id}"))
    store.delete_job(first)
    second = _insert(store, str(tmp_path / "runs" / "{id}"))
    assert (first, second) == (1, 2)
    assert store.get_job(second).workspace == str(tmp_path / "runs" / "2")
    store.close()


def test_a_store_of_before_the_id_table_continues_after_its_highest_id(tmp_path):
    path = tmp_path / "jobs.db"
    shutil.copy(FIXTURES / "jobs_v2.db", path)  # as an older rn50tui left it: no job_ids table
    store = JobStore(path)
    highest = max(j.id for j in store.list_jobs())
    store.delete_job(highest)
    assert _insert(store, str(tmp_path / "runs" / "{id}")) == highest + 1
    store.close()


def test_an_id_folder_holding_another_runs_files_is_stepped_over(tmp_path):
    store = JobStore(tmp_path / "jobs.db")
    (tmp_path / "runs" / "1").mkdir(parents=True)
    (tmp_path / "runs" / "1" / "raport.json").write_text("DLLL {}\n")
    from rn50tui.jobs.core.workspace import holds_run_files

    job_id = _insert(store, str(tmp_path / "runs" / "{id}"), workspace_taken=holds_run_files)
    assert job_id == 2 and store.get_job(job_id).workspace == str(tmp_path / "runs" / "2")
    store.close()


def test_a_chosen_workspace_of_another_job_or_run_is_refused_naming_it(manager, tmp_path):
    mine = tmp_path / "mine"
    manager.submit(preset="demo", engine_flags=["--workspace", str(mine), *ONE_EPOCH], start=False)
    with pytest.raises(SubmitError, match=f"workspace {mine} is job 1's"):
        manager.submit(preset="demo", engine_flags=["--workspace", str(mine), *ONE_EPOCH], start=False)
    used = tmp_path / "used"
    used.mkdir()
    (used / "checkpoint.pth.tar").write_bytes(b"x")
    with pytest.raises(SubmitError, match=f"workspace {used} already holds another run's files"):
        manager.submit(preset="demo", engine_flags=["--workspace", str(used), *ONE_EPOCH], start=False)
    assert [j.id for j in manager.list_jobs()] == [1]


@pytest.mark.slow
def test_a_job_after_rm_never_reads_the_removed_jobs_report_even_with_its_supervisor_killed(jm):
    first = jm.submit(preset="demo", name="first", engine_flags=ONE_EPOCH)
    wait_for(lambda: jm.get_job(first.id).status.terminal, 300, message="the first job to end")
    assert jm.get_job(first.id).status is Status.COMPLETED
    jm.delete(first.id)

    second = jm.submit(preset="demo", name="second", engine_flags=ONE_EPOCH)
    assert second.id == first.id + 1 and second.workspace != first.workspace
    running = wait_for(lambda: (j := jm.get_job(second.id)).status is Status.RUNNING and j.supervisor_pid and j,
                       120, message="the second job to run")  # fmt: skip
    assert (running.progress or 0) < 1.0  # the old report's 100% is not this job's
    os.kill(running.supervisor_pid, signal.SIGKILL)
    wait_for(lambda: not procs.is_alive(running.supervisor_pid, running.supervisor_started), 30)
    jm.reconcile()
    assert jm.get_job(second.id).status is Status.INTERRUPTED  # not `completed` from the old run_end
    jm.resume(second.id)
    wait_for(lambda: jm.get_job(second.id).status.terminal, 300, message="the resumed job to end")
    assert jm.get_job(second.id).status is Status.COMPLETED, jm.get_job(second.id).error
