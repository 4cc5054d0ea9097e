"""A disk that fills while a job runs: the engine fails, its supervisor waits to record it, nothing is lost."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil
import pytest

from engine.events import iter_records
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.local import procs
from rn50tui.jobs.manager import JobManager

from .conftest import close_killing_every_job, run_cli, wait_for

pytestmark = pytest.mark.slow

FLAGS = ["--epochs", "3", "--synthetic-size", "96", "--image-size", "32", "-b", "4", "-p", "1", "--warmup", "0",
         "--no-checkpoints"]  # fmt: skip


def test_a_job_on_a_disk_that_fills_ends_failed_with_the_cause_once_space_is_freed(small_disk, monkeypatch):
    disk = small_disk(64)
    for name, value in {"RN50TUI_CARDS": "mlu=0,cuda=0,cpu=1", "RN50TUI_POLL_S": "0.3",
                        "RN50TUI_SAMPLE_INTERVAL_S": "0", "OMP_NUM_THREADS": "1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    jm = JobManager(disk / "jobs.db")
    try:
        fill_then_free(jm, disk, jm.submit(preset="demo", engine_flags=FLAGS).id)
    finally:  # whatever failed, no engine or supervisor is left waiting on the small disk
        close_killing_every_job(jm)


def fill_then_free(jm: JobManager, disk: Path, job_id: int) -> None:
    running = wait_for(lambda: (j := jm.get_job(job_id)).status is Status.RUNNING and (j.iteration or 0) >= 2 and j,
                       120, message="two training iterations")  # fmt: skip
    filler = disk / "filler"
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True, timeout=60)
        psutil.wait_procs([psutil.Process(running.engine_pid)], timeout=120)  # its next record has no room
        time.sleep(2)  # several of the supervisor's rounds: it must wait, not die with the outcome
        assert procs.is_alive(running.supervisor_pid, running.supervisor_started)
        assert jm.get_job(job_id).status is Status.RUNNING  # nothing could be written, nothing was guessed
        listed = run_cli("jobs", "list", db=disk / "jobs.db")
        assert "Traceback" not in listed.stderr
        assert listed.returncode == 0 or "the disk holding it is full" in listed.stderr
    finally:
        filler.unlink(missing_ok=True)
    done = wait_for(lambda: (j := jm.get_job(job_id)).status.terminal and j, 60, message="the job's end")
    assert done.status is Status.FAILED and "the disk holding it is full" in done.error
    assert "then resume the job" in done.error and jm.claims() == []
    wait_for(lambda: not procs.is_alive(running.supervisor_pid, running.supervisor_started), 30,
             message="the supervisor to exit")  # fmt: skip
    written = sum(1 for r in iter_records(done.files.raport) if r.phase == "train")
    assert written >= 2 and len(jm.metrics(job_id, phase="train")) == written  # every record it wrote
