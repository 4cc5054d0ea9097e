"""Real jobs: the real engine under a real detached supervisor, real signals, a real SQLite file.

Each test submits a shortened `demo` and polls the store for the condition it needs, never sleeping on
a guess. They take tens of seconds each on a small CPU, hence `slow`.
"""

from __future__ import annotations

import json
import os
import signal

import psutil
import pytest

from engine.events import iter_records
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.local import procs
from rn50tui.jobs.manager import JobManager

from .conftest import run_cli, wait_for

pytestmark = pytest.mark.slow

# Tiny synthetic images, logged every iteration, no warm-up (which needs more than one epoch).
_TINY = ["--image-size", "32", "-b", "4", "-p", "1", "--warmup", "0"]
# Two epochs of 8 iterations: long enough to stop mid-epoch, short enough to finish.
SHORT = ["--epochs", "2", "--synthetic-size", "32", *_TINY]
ONE_EPOCH = ["--epochs", "1", "--synthetic-size", "16", *_TINY]
JOB_TIMEOUT = 300


def _final(jm: JobManager, job_id: int) -> Status:
    return wait_for(lambda: jm.get_job(job_id).status if jm.get_job(job_id).status.terminal else None,
                    JOB_TIMEOUT, message=f"job {job_id} to end")  # fmt: skip


def _log_records(job) -> int:
    return sum(1 for r in iter_records(job.files.raport) if r.phase in ("train", "val", "epoch", "summary"))


def test_demo_goes_queued_running_completed_with_metrics_in_the_store(jm):
    job = jm.submit(preset="demo", engine_flags=SHORT, start=False)
    assert job.status is Status.QUEUED and job.name == "demo"
    assert jm.schedule() == [job.id]
    seen = {jm.get_job(job.id).status}
    wait_for(lambda: seen.add(jm.get_job(job.id).status) or jm.get_job(job.id).status.terminal, JOB_TIMEOUT,
             message="the demo to end")  # fmt: skip
    done = jm.get_job(job.id)
    assert Status.RUNNING in seen and done.status is Status.COMPLETED, done.error
    assert done.exit_code == 0 and done.progress == 1.0 and done.epoch == 2 and done.top1 is not None
    phases = [m.phase for m in jm.metrics(job.id)]
    assert phases.count("train") == 16 and phases.count("epoch") == 2 and phases[-1] == "summary"
    assert len(phases) == _log_records(done)
    assert jm.device_samples(job.id) and jm.device_samples(job.id)[0].device == "cpu"
    assert jm.claims() == [] and not procs.tagged_processes(done.run_token)


def test_a_finished_jobs_records_are_thinned_for_its_charts_and_export_still_reads_them_all(jm, monkeypatch):
    monkeypatch.setenv("RN50TUI_THIN_POINTS", "3")  # 16 training records are then more than 2 × 3
    job = jm.submit(preset="demo", engine_flags=SHORT)
    assert _final(jm, job.id) is Status.COMPLETED
    thinned = wait_for(lambda: jm._store.thinned(job.id), 30, message="the supervisor to thin the records")
    phases = [m.phase for m in jm.metrics(job.id)]
    assert 3 <= phases.count("train") < 16 and phases.count("epoch") == 2 and phases[-1] == "summary"
    assert thinned["kept"] == len(phases)
    full, note = jm.full_metrics(job.id)  # from raport.json: every record
    assert [m.phase for m in full].count("train") == 16 and "raport.json" in (note or "")
    assert "thinned" in jm.get_job(job.id).files.log("supervisor").read_text()


def test_a_killed_supervisor_is_interrupted_then_resumed_from_its_checkpoint(jm, db_path):
    job = jm.submit(preset="demo", engine_flags=SHORT)
    running = wait_for(lambda: (j := jm.get_job(job.id)).status is Status.RUNNING and (j.iteration or 0) >= 2 and j,
                       JOB_TIMEOUT, message="two iterations")  # fmt: skip
    assert running.epoch == 1
    os.kill(running.supervisor_pid, signal.SIGKILL)
    wait_for(lambda: not procs.is_alive(running.supervisor_pid, running.supervisor_started), 30)

    listed = run_cli("jobs", "list", "--json", db=db_path)
    assert listed.returncode == 0, listed.stderr
    assert {j["id"]: j["status"] for j in json.loads(listed.stdout)}[job.id] == "interrupted"
    assert "supervisor" in jm.get_job(job.id).error

    resumed = jm.resume(job.id)  # waits for the orphaned engine to checkpoint and stop
    assert resumed.attempt == 2 and resumed.status in (Status.STARTING, Status.RUNNING)
    assert _final(jm, job.id) is Status.COMPLETED, jm.get_job(job.id).error
    done = jm.get_job(job.id)
    starts = [r.data for r in iter_records(done.files.raport) if r.event == "run_start"]
    stops = [r.data for r in iter_records(done.files.raport) if r.event == "stopping"]
    assert len(starts) == 2 and len(stops) == 1
    assert (starts[1]["start_epoch"], starts[1]["start_iter"]) == (stops[0]["epoch"], stops[0]["iteration"])
    assert stops[0]["iteration"] >= 2  # it continued inside epoch 1, not from its start
    assert done.resume_from.endswith("checkpoint.pth.tar")
    second = jm.metrics(job.id, attempt=2, phase="train")
    assert second[0].epoch == 1 and second[0].iteration == stops[0]["iteration"] + 1
    assert len(jm.metrics(job.id)) == _log_records(done)


def test_two_jobs_wanting_the_only_card_run_one_after_the_other(jm):
    first = jm.submit(preset="demo", name="first", engine_flags=ONE_EPOCH)
    second = jm.submit(preset="demo", name="second", engine_flags=ONE_EPOCH)
    assert second.status is Status.QUEUED and first.status in (Status.STARTING, Status.RUNNING)
    assert _final(jm, first.id) is Status.COMPLETED
    assert _final(jm, second.id) is Status.COMPLETED
    a, b = jm.get_job(first.id), jm.get_job(second.id)
    assert b.started_at >= a.finished_at and a.cards_granted == b.cards_granted == [0]


@pytest.mark.ddp
def test_cancel_a_running_two_process_job_leaves_no_process(jm):
    job = jm.submit(preset="demo", cards=2, engine_flags=SHORT)
    wait_for(lambda: (j := jm.get_job(job.id)).status is Status.RUNNING and (j.iteration or 0) >= 1, JOB_TIMEOUT,
             message="the 2-process job to train")  # fmt: skip
    token = jm.get_job(job.id).run_token
    members = procs.tagged_processes(token)
    names = [" ".join(p.cmdline()) for p in members]
    assert any("engine.launch" in n for n in names) and sum("engine.train" in n for n in names) >= 3
    cancelled = jm.cancel(job.id, wait=True)
    assert cancelled.status is Status.CANCELLED, cancelled.error
    assert cancelled.exit_code == 75  # as a cancelled one-card job: stopped after its checkpoint
    assert procs.tagged_processes(token) == []
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in members)
    events = [r.event for r in iter_records(cancelled.files.raport) if r.type == "STATUS"]
    assert "stopping" in events  # the ranks got the SIGTERM through torchrun and checkpointed
    assert jm.claims() == []


def test_an_engine_error_fails_the_job_with_its_message(jm, tmp_path):
    bogus = tmp_path / "not-a-checkpoint.pth.tar"
    bogus.write_text("this is not a checkpoint")
    job = jm.submit(preset="demo", engine_flags=[*ONE_EPOCH, "--resume", str(bogus)])
    assert _final(jm, job.id) is Status.FAILED
    failed = jm.get_job(job.id)
    assert failed.exit_code not in (0, None) and str(bogus) in failed.error
    assert jm.claims() == [] and not procs.tagged_processes(failed.run_token)


def test_a_stopped_supervisor_stops_its_engine_with_a_checkpoint(jm):
    job = jm.submit(preset="demo", engine_flags=SHORT)
    running = wait_for(lambda: (j := jm.get_job(job.id)).status is Status.RUNNING and (j.iteration or 0) >= 1 and j,
                       JOB_TIMEOUT, message="training")  # fmt: skip
    os.kill(running.supervisor_pid, signal.SIGTERM)  # e.g. the host shutting down
    assert _final(jm, job.id) is Status.INTERRUPTED
    done = jm.get_job(job.id)
    assert "supervisor received SIGTERM" in done.error and done.last_checkpoint
    assert not procs.tagged_processes(done.run_token) and jm.claims() == []


def test_running_jobs_and_a_list_loop_share_the_store_without_losing_a_row(jm, db_path, monkeypatch):
    monkeypatch.setenv("RN50TUI_CARDS", "mlu=0,cuda=0,cpu=2")  # two CPU jobs at once
    jm._capacity = None
    jobs = [jm.submit(preset="demo", name=f"c{i}", engine_flags=SHORT) for i in range(2)]
    assert all(j.status in (Status.STARTING, Status.RUNNING) for j in jobs)
    lists = 0
    while not all(jm.get_job(j.id).status.terminal for j in jobs):
        listed = run_cli("jobs", "list", "--json", db=db_path)
        assert listed.returncode == 0 and "locked" not in listed.stderr, listed.stderr
        assert len(json.loads(listed.stdout)) == 2
        lists += 1
    assert lists > 3
    for j in jobs:
        done = jm.get_job(j.id)
        assert done.status is Status.COMPLETED, done.error
        assert len(jm.metrics(j.id)) == _log_records(done) > 0
