"""A run the engine finished is `completed`, whatever is killed afterwards, and a killed save leaves nothing.

Real supervisors, real engines, real kill -9s, a real store; each test provokes the failure at the moment
it needs by watching raport.json and the workspace, never by sleeping on a guess.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from engine.checkpoint import load_checkpoint
from engine.events import iter_records
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.local import procs

from .conftest import run_cli, wait_for
from .test_e2e import _TINY, JOB_TIMEOUT, _final, _log_records

pytestmark = pytest.mark.slow

ONE_EPOCH = ["--epochs", "1", "--synthetic-size", "16", *_TINY]
# One epoch whose validation takes 16 iterations: long enough to be caught in the middle of it.
LONG_VALIDATION = ["--epochs", "1", "--synthetic-size", "256", *_TINY]
HOOK = """import os
if os.environ.get("RN50TUI_RUN_TOKEN") and os.environ.get("RN50TUI_TEST_HOLD_AT_EXIT"):
    import atexit, time
    atexit.register(time.sleep, 600)  # the engine lingers after its last record, as in a slow shutdown
"""


def _records(job) -> list:
    return list(iter_records(job.files.raport)) if job.files.raport.exists() else []


def _run_end(job) -> list[str]:
    return [r.data["status"] for r in _records(job) if r.event == "run_end"]


def _assert_done(jm, job_id: int) -> None:
    """Completed, its checkpoint loads and holds the schedule, nothing of it runs, its cards are free."""
    done = jm.get_job(job_id)
    assert done.status is Status.COMPLETED, done.error
    assert done.error is None and done.progress == 1.0
    ckpt = load_checkpoint(str(done.files.checkpoint))  # weights_only: a checkpoint of plain values
    assert ckpt["epoch"] == done.epochs and ckpt["iteration"] == 0
    assert not procs.tagged_processes(done.run_token) and jm.claims() == []
    assert not procs.is_alive(done.supervisor_pid, done.supervisor_started)


def test_an_engine_killed_after_recording_its_run_as_completed_ends_completed(
    jm, db_path, tmp_path, monkeypatch
):
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(HOOK)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(tmp_path / "hook"), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.setenv("RN50TUI_TEST_HOLD_AT_EXIT", "1")
    job = jm.submit(preset="demo", engine_flags=ONE_EPOCH)
    ended = wait_for(lambda: (j := jm.get_job(job.id)).engine_pid and _run_end(j) == ["completed"] and j,
                     JOB_TIMEOUT, message="the engine's run_end record")  # fmt: skip
    assert procs.is_alive(ended.engine_pid, ended.engine_started)  # still shutting down
    os.kill(ended.engine_pid, signal.SIGKILL)
    assert _final(jm, job.id) is Status.COMPLETED, jm.get_job(job.id).error
    assert jm.get_job(job.id).exit_code == -signal.SIGKILL
    _assert_done(jm, job.id)
    listed = run_cli("jobs", "list", "--json", db=db_path)
    assert {j["id"]: j["status"] for j in json.loads(listed.stdout)}[job.id] == "completed"


def _stop_in_last_validation(jm, job_id: int):
    """Wait until the engine validates its last epoch and SIGSTOP it there; return the job."""

    def validating():
        j = jm.get_job(job_id)
        recs = _records(j)
        last = j.epochs or 0
        in_val = any(r.phase == "val" and r.step[0] == last for r in recs)
        return j if j.engine_pid and last and in_val else None

    job = wait_for(validating, JOB_TIMEOUT, interval=0.02, message="the last epoch's validation")
    os.kill(job.engine_pid, signal.SIGSTOP)
    epoch_done = [r for r in _records(job) if r.phase == "epoch" and r.step[0] == job.epochs]
    if epoch_done:  # it finished validating between our read and the stop: the test's timing failed
        os.kill(job.engine_pid, signal.SIGCONT)
        pytest.fail("the engine finished its validation before it could be stopped in the middle of it")
    return job


@pytest.mark.parametrize("client", ["while the engine validates", "after the engine ended"])
def test_a_supervisor_killed_during_the_last_validation_ends_completed(jm, db_path, client):
    job = jm.submit(preset="demo", engine_flags=LONG_VALIDATION)
    job = _stop_in_last_validation(jm, job.id)
    os.kill(job.supervisor_pid, signal.SIGKILL)
    wait_for(
        lambda: not procs.is_alive(job.supervisor_pid, job.supervisor_started), 60, message="supervisor gone"
    )
    if client == "while the engine validates":
        listed = run_cli(
            "jobs", "list", "--json", db=db_path
        )  # reconciles: engine alive → interrupted + SIGTERM
        assert {j["id"]: j["status"] for j in json.loads(listed.stdout)}[job.id] == "interrupted"
    os.kill(job.engine_pid, signal.SIGCONT)  # a SIGTERM does not cut the last validation short
    wait_for(
        lambda: not procs.is_alive(job.engine_pid, job.engine_started), JOB_TIMEOUT, message="engine exit"
    )
    listed = run_cli("jobs", "list", "--json", db=db_path)
    assert listed.returncode == 0, listed.stderr
    assert {j["id"]: j["status"] for j in json.loads(listed.stdout)}[job.id] == "completed"
    _assert_done(jm, job.id)
    done = jm.get_job(job.id)
    assert _run_end(done) == ["completed"] and len(jm.metrics(job.id)) == _log_records(done)  # nothing lost
    resumed = run_cli("resume", str(job.id), db=db_path)
    assert resumed.returncode != 0 and "is completed: there is nothing to resume" in resumed.stderr


def test_resume_of_a_job_whose_last_save_was_never_reported_completes_without_training(jm, store):
    """Killed between its last checkpoint's rename and the record of it: the store believes the checkpoint
    is one epoch short, the file holds the whole schedule. Resume only records the run as finished."""
    job = jm.submit(preset="demo", engine_flags=["--epochs", "2", "--synthetic-size", "16", *_TINY])
    assert _final(jm, job.id) is Status.COMPLETED
    raport = jm.get_job(job.id).files.raport
    lines = raport.read_bytes().splitlines(keepends=True)
    last_save = max(i for i, line in enumerate(lines) if b'"event": "checkpoint"' in line)
    raport.write_bytes(b"".join(lines[:last_save]))  # the file as the kill left it: no record of the save
    store.update_job(job.id, status="failed", error="the engine was killed by SIGKILL", exit_code=-9,
                     checkpoint_epoch=1, checkpoint_iteration=0, raport_offset=raport.stat().st_size)  # fmt: skip
    resumed = jm.resume(job.id)
    assert resumed.attempt == 2
    assert _final(jm, job.id) is Status.COMPLETED, jm.get_job(job.id).error
    _assert_done(jm, job.id)
    done = jm.get_job(job.id)
    assert done.checkpoint_epoch == 2 and _run_end(done) == ["completed"]  # the second attempt's
    second = jm.metrics(job.id, attempt=2)
    assert [m.phase for m in second] == ["summary"]  # no training, no validation: nothing was missing


def _temps(workspace: Path) -> list[Path]:
    return [p for p in workspace.glob(".*.tmp")] if workspace.is_dir() else []


def test_a_save_killed_midway_leaves_a_temp_file_the_next_attempt_removes(jm):
    job = jm.submit(preset="demo", engine_flags=["--epochs", "3", "--synthetic-size", "16", *_TINY])
    workspace = Path(job.workspace)
    deadline = time.monotonic() + JOB_TIMEOUT
    while not (temps := _temps(workspace)):  # the moment a checkpoint is being written
        assert time.monotonic() < deadline and not jm.get_job(job.id).status.terminal, "no save was caught"
        time.sleep(0.005)
    running = jm.get_job(job.id)
    os.kill(running.engine_pid, signal.SIGKILL)
    assert _final(jm, job.id) is Status.FAILED
    left = _temps(workspace)
    assert left and left[0].stat().st_size >= 0 and set(left) <= set(temps) | set(_temps(workspace))
    assert jm.get_job(job.id).last_checkpoint is None or not jm.get_job(job.id).last_checkpoint.endswith(
        ".tmp"
    )
    jm.resume(job.id)
    wait_for(lambda: sum(r.event == "run_start" for r in _records(jm.get_job(job.id))) == 2, JOB_TIMEOUT,
             message="the second attempt to start")  # fmt: skip
    assert not any(p.exists() for p in left)  # removed as the next attempt started
    assert _final(jm, job.id) is Status.COMPLETED, jm.get_job(job.id).error
    _assert_done(jm, job.id)
    assert _temps(workspace) == []
    assert "a checkpoint write that was killed" in (workspace / "stderr.log").read_text()
