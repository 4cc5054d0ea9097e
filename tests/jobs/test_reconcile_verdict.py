"""Reconcile decides an attempt whose supervisor died the way the supervisor would have (verdict.py).

Real raport.json files written by the engine's own EventWriter, real dead processes, a real store.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from engine.events import EventWriter
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import JobStore
from rn50tui.jobs.local import procs
from rn50tui.jobs.manager import JobManager
from rn50tui.jobs.reconcile import reconcile

from .conftest import occupy


def _dead_pid() -> tuple[int, float]:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = procs.start_time(proc.pid) or time.time()
    proc.wait()
    return proc.pid, started


def _write_run(raport: Path, epochs: int, end: str | None, last_checkpoint_epoch: int) -> None:
    """An engine's records: `epochs` epochs with a checkpoint after each, up to `last_checkpoint_epoch`."""
    w = EventWriter(raport)
    w.status("run_start", config={}, start_epoch=0, start_iter=0, epochs=epochs, train_iters=2, val_iters=1,
             world_size=1, device="cpu")  # fmt: skip
    for e in range(1, last_checkpoint_epoch + 1):
        w.metrics([e, 2], {"train.loss": 1.0})
        w.metrics([e], {"val.top1": 10.0 * e})
        w.status(
            "checkpoint", path=str(raport.parent / "checkpoint.pth.tar"), epoch=e, iteration=0, is_best=True
        )
    if end == "completed":
        w.metrics([], {"val.top1": 30.0})
    if end is not None:
        w.status("run_end", status=end, epoch=last_checkpoint_epoch)
    w.close()


def _orphaned_job(store: JobStore, tmp_path: Path) -> int:
    """A running job whose supervisor and engine are both dead, its raport not read since it started."""
    job = occupy(store)
    workspace = tmp_path / "runs" / str(job.id)
    workspace.mkdir(parents=True)
    sup, sup_started = _dead_pid()
    eng, eng_started = _dead_pid()
    store.update_job(job.id, workspace=str(workspace), supervisor_pid=sup, supervisor_started=sup_started,
                     engine_pid=eng, engine_started=eng_started, started_at=time.time() - 5)  # fmt: skip
    return job.id


def test_a_dead_supervisor_whose_engine_finished_the_run_ends_completed(store, tmp_path):
    job_id = _orphaned_job(store, tmp_path)
    _write_run(store.get_job(job_id).files.raport, epochs=2, end="completed", last_checkpoint_epoch=2)
    report = reconcile(store)
    job = store.get_job(job_id)
    assert job.status is Status.COMPLETED, job.error
    assert report.completed == [job_id] and report.freed == [job_id] and store.claims() == []
    assert job.error is None and job.checkpoint_epoch == 2 and job.top1 == 30.0
    assert [m.phase for m in store.metrics(job_id)] == ["train", "epoch", "train", "epoch", "summary"]


def test_a_last_checkpoint_without_its_run_end_record_is_still_a_finished_run(store, tmp_path):
    job_id = _orphaned_job(store, tmp_path)
    _write_run(store.get_job(job_id).files.raport, epochs=2, end=None, last_checkpoint_epoch=2)
    reconcile(store)
    assert store.get_job(job_id).status is Status.COMPLETED


def test_an_unfinished_run_is_interrupted_and_an_engine_failure_is_failed(store, tmp_path):
    half = _orphaned_job(store, tmp_path)
    _write_run(store.get_job(half).files.raport, epochs=2, end=None, last_checkpoint_epoch=1)
    reconcile(store)
    job = store.get_job(half)
    assert job.status is Status.INTERRUPTED and "supervisor" in job.error and job.checkpoint_epoch == 1


def test_an_interrupted_job_whose_orphaned_engine_then_finished_becomes_completed(store, tmp_path):
    """Reconcile saw the engine alive (interrupted, SIGTERM); the engine was in its last validation, which
    a SIGTERM does not cut short, and finished. Once it is gone, the job is settled again."""
    job_id = _orphaned_job(store, tmp_path)
    store.update_job(job_id, status="interrupted", error="its supervisor is gone", finished_at=time.time())
    _write_run(store.get_job(job_id).files.raport, epochs=2, end="completed", last_checkpoint_epoch=2)
    report = reconcile(store)
    assert store.get_job(job_id).status is Status.COMPLETED and report.completed == [job_id]
    assert store.claims() == []


def test_resume_of_a_job_whose_checkpoint_finished_the_schedule_completes_it_without_an_engine(
    db_path, store, tmp_path, monkeypatch
):
    """A job left `failed: killed by SIGKILL` after its last checkpoint (as older versions did)."""
    monkeypatch.setenv("RN50TUI_CARDS", "mlu=0,cuda=0,cpu=1")
    jm = JobManager(db_path, capacity={"mlu": 0, "cuda": 0, "cpu": 1})
    try:
        job_id = _orphaned_job(store, tmp_path)
        _write_run(jm.get_job(job_id).files.raport, epochs=2, end="completed", last_checkpoint_epoch=2)
        store.update_job(job_id, status="failed", error="the engine was killed by SIGKILL", exit_code=-9,
                         raport_offset=0, checkpoint_epoch=2, checkpoint_iteration=0, epochs=2)  # fmt: skip
        store.release_claims(job_id)
        done = jm.resume(job_id)
        assert done.status is Status.COMPLETED and done.attempt == 1 and done.supervisor_pid is not None
        assert jm.claims() == []  # nothing was scheduled
    finally:
        jm.close()
