"""Stalled jobs: the stall rule, the reader's mark, and a real engine that stops iterating (a test hook)."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from rn50tui.jobs.core.states import Status
from rn50tui.jobs.manager import JobManager
from rn50tui.jobs.policy.stall import StallMark, StallWatch, flag

from .conftest import TWO_TINY_EPOCHS, close_killing_every_job, wait_for


def train(at: float) -> tuple:
    return (1, 1, at, 1, 1, "train", "{}")


def test_the_threshold_is_the_larger_of_the_minimum_and_20_median_gaps_after_a_warm_up():
    w = StallWatch(started=0.0, min_s=600, warmup_s=1800)
    assert w.stalled_for(1700) is None and w.stalled_for(1801) == 1801  # before any iteration: the warm-up
    w.observe([train(100.0), train(101.0), train(102.0), train(104.0)], {}, 104)
    assert w.threshold() == 600  # 20 × 1 s is under the minimum
    assert w.stalled_for(704) is None and w.stalled_for(705) == pytest.approx(601)
    slow = StallWatch(started=0.0, min_s=600, warmup_s=1800)
    slow.observe([train(100.0 + 60 * i) for i in range(5)], {}, 400)
    assert slow.threshold() == 1200  # 20 × the median gap of 60 s


def test_validation_and_checkpoints_count_as_progress():
    w = StallWatch(started=0.0, min_s=10, warmup_s=10)
    w.observe([train(1.0), train(2.0)], {}, 2)
    assert w.observe([(1, 1, 30.0, 1, 3, "val", "{}")], {}, 30) and w.stalled_for(35) is None
    assert w.observe([], {"last_checkpoint": "/ck.pt"}, 50) and w.last_progress == 50
    assert not w.observe([], {"raport_offset": 10}, 70) and w.stalled_for(71) == 21


def facts(status: Status, heartbeat: float, stalled_at=None, last_progress_at=None) -> SimpleNamespace:
    """The columns the mark reads (a Job or a JobSummary has them)."""
    return SimpleNamespace(
        status=status, heartbeat=heartbeat, stalled_at=stalled_at, last_progress_at=last_progress_at
    )


def test_the_mark_covers_a_flagged_job_and_a_hung_supervisor():
    running = facts(Status.RUNNING, 999.0, stalled_at=500.0, last_progress_at=100.0)
    assert flag(running, 1000.0) == StallMark("stalled", 100.0, 900.0)
    assert flag(running, 1000.0).to_dict() == {"kind": "stalled", "since": 100.0, "for_s": 900.0}
    hung = flag(facts(Status.RUNNING, 700.0), 1000.0)
    assert hung is not None and hung.kind == "supervisor hung" and hung.for_s == 300.0
    assert flag(facts(Status.RUNNING, 990.0), 1000.0) is None
    assert flag(facts(Status.COMPLETED, 1.0, stalled_at=5.0), 1000.0) is None


# ---------------------------------------------------------------------------------- a real stalled engine

TINY = TWO_TINY_EPOCHS
HOOK = """#!/bin/sh
env | grep '^RN50TUI_' | sort > "$1/$RN50TUI_EVENT.tmp" && mv "$1/$RN50TUI_EVENT.tmp" "$1/$RN50TUI_EVENT.env"
"""


@pytest.fixture
def jm(db_path, tmp_path, monkeypatch):
    for name, value in {"RN50TUI_CARDS": "mlu=0,cuda=0,cpu=1", "RN50TUI_POLL_S": "0.3", "OMP_NUM_THREADS": "1",
                        "RN50TUI_SAMPLE_INTERVAL_S": "0", "RN50TUI_CANCEL_GRACE_S": "90",
                        "RN50TUI_TEST_HANG_AFTER_ITERS": "3", "RN50TUI_STALL_MIN_S": "4",
                        "RN50TUI_STALL_WARMUP_S": "600"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    hook = tmp_path / "hook.sh"
    hook.write_text(HOOK)
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "events").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        f"[slurm]\npartition = 'x'\n[notify]\ncmd = [{json.dumps(str(hook))}, {json.dumps(str(tmp_path / 'events'))}]\n"
    )
    monkeypatch.setenv("RN50TUI_CONFIG", str(config))
    manager = JobManager(db_path)
    yield manager
    close_killing_every_job(manager)


def events(tmp_path: Path) -> dict[str, dict[str, str]]:
    return {
        p.stem: dict(ln.split("=", 1) for ln in p.read_text().splitlines())
        for p in (tmp_path / "events").glob("*.env")
    }


def marked_summary(jm: JobManager, job_id: int):
    """(the job's summary, its stall mark) once it has a mark, else None."""
    now = time.time()
    return next(((s, m) for s in jm.job_summaries() if s.id == job_id and (m := flag(s, now))), None)


@pytest.mark.slow
def test_a_stalled_engine_is_flagged_notified_and_cancelled_with_a_checkpoint_then_resumes(
    jm, tmp_path, monkeypatch
):
    job = jm.submit(preset="demo", engine_flags=TINY, on_stall="cancel")
    marked, mark = wait_for(lambda: marked_summary(jm, job.id), 300, message="the stall mark")
    assert marked.status is Status.RUNNING and mark.kind == "stalled" and mark.for_s > 4
    assert marked.iteration == 3  # it stopped where the hook stopped it
    assert marked.eta_end is not None  # the supervisor's ETA, from this job's own timings
    wait_for(lambda: "stalled" in events(tmp_path), 120, message="the stall notification")
    stalled = events(tmp_path)["stalled"]
    assert stalled["RN50TUI_JOB_ID"] == str(job.id) and stalled["RN50TUI_JOB_STATUS"] == "running"
    assert int(stalled["RN50TUI_JOB_STALLED_FOR_S"]) >= 4

    wait_for(lambda: jm.get_job(job.id).status.terminal, 300, message="the stall cancel")
    done = jm.get_job(job.id)
    assert done.status is Status.CANCELLED and "--on-stall cancel" in done.error and done.last_checkpoint
    assert done.stalled_at is None
    wait_for(lambda: "final" in events(tmp_path), 120, message="the final notification")
    assert events(tmp_path)["final"]["RN50TUI_JOB_STATUS"] == "cancelled"

    monkeypatch.delenv("RN50TUI_TEST_HANG_AFTER_ITERS")  # the next attempt's engine no longer hangs
    (tmp_path / "events" / "final.env").unlink()
    jm.resume(job.id)
    wait_for(lambda: jm.get_job(job.id).status.terminal, 300, message="the resumed job to end")
    resumed = jm.get_job(job.id)
    assert resumed.status is Status.COMPLETED and resumed.resume_from == done.last_checkpoint
    wait_for(lambda: "final" in events(tmp_path), 120, message="the final notification")
    assert events(tmp_path)["final"]["RN50TUI_JOB_STATUS"] == "completed"


@pytest.mark.slow
def test_a_hung_supervisor_is_reported_while_its_pid_lives_and_its_hook_runs_once(jm, tmp_path, monkeypatch):
    monkeypatch.delenv("RN50TUI_TEST_HANG_AFTER_ITERS")
    monkeypatch.setenv("RN50TUI_HEARTBEAT_STALE_S", "3")
    job = jm.submit(preset="demo", engine_flags=TINY)
    running = wait_for(
        lambda: (j := jm.get_job(job.id)).status is Status.RUNNING and j, 300, message="running"
    )
    os.kill(running.supervisor_pid, signal.SIGSTOP)  # alive, but it writes no heartbeat
    try:
        marked, mark = wait_for(lambda: marked_summary(jm, job.id), 120, message="the hung mark")
        assert mark.kind == "supervisor hung" and marked.status is Status.RUNNING
        first = jm.reconcile()
        assert jm.get_job(job.id).status is Status.RUNNING  # reconcile does not take a live pid for dead
        assert first.hung == [job.id] and jm.reconcile().hung == []  # the hook runs once per hang
        wait_for(lambda: "hung" in events(tmp_path), 60, message="the hung notification")
        hung = events(tmp_path)["hung"]
        assert hung["RN50TUI_JOB_ID"] == str(job.id) and int(hung["RN50TUI_JOB_STALLED_FOR_S"]) >= 3
    finally:
        os.kill(running.supervisor_pid, signal.SIGCONT)
    wait_for(lambda: jm.get_job(job.id).status.terminal, 300, message="the job to end")
    assert jm.get_job(job.id).status is Status.COMPLETED
