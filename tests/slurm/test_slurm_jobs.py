"""Real jobs on a real (private, two-node) Slurm cluster: sbatch → srun → torchrun c10d → the engine.

Each test polls the store for the state it needs, with a generous deadline, never a fixed sleep.
"""

from __future__ import annotations

import json
import math
import os
import time

import pytest

from engine.events import iter_records
from rn50tui.jobs.core.errors import SubmitError
from rn50tui.jobs.core.states import Status

from ..jobs.conftest import run_cli, wait_for
from .conftest import follower_pid, kill_follower

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

_TINY = ["--image-size", "32", "-b", "4", "-p", "1", "--warmup", "0", "-j", "0"]
ONE_EPOCH = ["--epochs", "1", "--synthetic-size", "32", *_TINY]
# Two epochs of 96 iterations (768 images, 4 a batch, 2 ranks): long enough to stop in the middle.
LONG = ["--epochs", "2", "--synthetic-size", "768", *_TINY]
JOB_TIMEOUT = 600


def _submit(jm, flags, **slurm):
    return jm.submit(preset="demo", device="cpu", cards=1, engine_flags=flags, executor="slurm",
                     slurm={"nodes": 2, **slurm})  # fmt: skip


def _running(jm, job_id: int, iterations: int = 2):
    return wait_for(lambda: (j := jm.get_job(job_id)).status is Status.RUNNING and (j.iteration or 0) >= iterations
                    and j, JOB_TIMEOUT, message=f"job {job_id} to run {iterations} iterations")  # fmt: skip


def _slurm_id(job) -> str:
    return str(job.executor_handle["slurm_job_id"])


def _processes_of(workspace) -> list[int]:
    """Processes of this machine whose command line names the job's workspace (node runners, ranks)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                    if str(workspace).encode() in fh.read():
                        found.append(int(entry.name))
            except OSError:
                pass
    return found


def _final(jm, job_id: int) -> Status:
    return wait_for(lambda: jm.get_job(job_id).status if jm.get_job(job_id).status.terminal else None,
                    JOB_TIMEOUT, message=f"job {job_id} to end")  # fmt: skip


def test_a_two_node_job_trains_to_completed_with_both_nodes_cards(slurm_jm):
    job = slurm_jm.submit(preset="demo", device="cpu", cards=1, engine_flags=ONE_EPOCH, executor="slurm",
                          slurm={"nodes": 2})  # fmt: skip
    assert job.executor == "slurm"
    assert _final(slurm_jm, job.id) is Status.COMPLETED, slurm_jm.get_job(job.id).error
    done = slurm_jm.get_job(job.id)
    assert done.world_size == 2 and done.progress == 1.0
    assert (done.executor_handle or {}).get("nodes") == "node[1-2]"
    ws = done.files.root
    assert [p.name for p in ws.glob("*.json")] == ["raport.json"]  # one raport, from rank 0
    assert len(list(ws.glob("checkpoint*.pth.tar"))) == 1
    phases = [m.phase for m in slurm_jm.metrics(job.id)]
    assert phases.count("train") == 4 and phases[-1] == "summary"  # 32 images, 4 a batch, 2 ranks
    assert phases.count("train") == sum(1 for r in iter_records(done.files.raport) if r.phase == "train")
    nodes = {s.node for s in slurm_jm.device_samples(job.id)}
    assert nodes == {"node1", "node2"}
    assert (ws / "slurm" / "attempt-1.sbatch").is_file()
    shown = run_cli("jobs", "show", str(job.id), "--json", db=slurm_jm.db_path)
    assert sorted(json.loads(shown.stdout)["cards"]) == ["node1", "node2"]


def test_cancel_from_rn50tui_checkpoints_and_leaves_no_process(slurm_jm, slurm_env):
    job = _submit(slurm_jm, LONG)
    _running(slurm_jm, job.id)
    slurm_jm.cancel(job.id)
    assert _final(slurm_jm, job.id) is Status.CANCELLED
    done = slurm_jm.get_job(job.id)
    assert (
        done.last_checkpoint and os.path.isfile(done.last_checkpoint) and (done.checkpoint_iteration or 0) > 0
    )
    wait_for(lambda: not _processes_of(done.workspace), 60, message="the job's processes to go")
    assert slurm_env.run("squeue", "-h", "-j", _slurm_id(done), check=False).stdout.strip() == ""


def test_a_time_limit_interrupts_with_a_checkpoint_and_auto_resume_finishes(slurm_jm, slurm_env):
    # The limit's signal comes `grace` s before it; Slurm checks limits every 30 s. Once the job has run
    # a few iterations the test shortens its limit so the signal is due now and the limit itself is
    # minutes away (time to checkpoint), whatever this machine's speed.
    grace = 300
    job = _submit(slurm_jm, LONG, time="20", grace=grace, auto_resume=2)
    running = _running(slurm_jm, job.id)
    elapsed = time.time() - running.started_at + 5
    limit = math.floor((elapsed + grace) / 60)
    slurm_env.run("scontrol", "update", f"JobId={_slurm_id(running)}", f"TimeLimit={limit}")
    first = wait_for(lambda: (j := slurm_jm.get_job(job.id)).attempt >= 2 and j.resume_from and j, JOB_TIMEOUT,
                     message="the auto-resumed second attempt, submitted")  # fmt: skip
    interrupted = [m for m in slurm_jm.metrics(job.id, attempt=1) if m.phase == "train"]
    assert 0 < len(interrupted) < 192
    assert first.resume_from and os.path.isfile(first.resume_from)
    assert _final(slurm_jm, job.id) is Status.COMPLETED, slurm_jm.get_job(job.id).error
    done = slurm_jm.get_job(job.id)
    assert done.attempt == 2 and done.progress == 1.0
    log = (done.files.root / "stdout.log").read_text()
    assert "checkpoint and stop" in log  # the batch script got Slurm's --signal=B:TERM


def test_a_job_that_cannot_fit_is_refused_and_nothing_is_queued(slurm_jm):
    with pytest.raises(SubmitError, match="Slurm would never run this job"):
        slurm_jm.submit(preset="demo", device="mlu", cards=8, engine_flags=ONE_EPOCH, executor="slurm",
                        slurm={"nodes": 2})  # fmt: skip
    assert slurm_jm.list_jobs() == []


def test_a_killed_follower_is_replaced_by_the_next_client_and_the_job_completes(slurm_jm, db_path):
    job = _submit(slurm_jm, ONE_EPOCH)
    wait_for(lambda: slurm_jm.get_job(job.id).status is Status.RUNNING, JOB_TIMEOUT, message="running")
    first = follower_pid(db_path)
    kill_follower(db_path)
    result = run_cli("jobs", "list", db=db_path)  # any client reconciles
    assert result.returncode == 0, result.stderr
    assert slurm_jm.get_job(job.id).status in (Status.RUNNING, Status.COMPLETED)  # not interrupted
    wait_for(lambda: follower_pid(db_path) not in (None, first), 60, message="a new follower")
    assert _final(slurm_jm, job.id) is Status.COMPLETED, slurm_jm.get_job(job.id).error
    done = slurm_jm.get_job(job.id)
    train = [m for m in slurm_jm.metrics(job.id) if m.phase == "train"]
    assert len(train) == sum(1 for r in iter_records(done.files.raport) if r.phase == "train") == 4


def test_scancel_by_hand_is_reported_as_cancelled(slurm_jm, slurm_env, tmp_path):
    told = tmp_path / "told.txt"  # the notify hook: the follower runs it on the final state it records
    hook = [
        "sh",
        "-c",
        'echo "$RN50TUI_JOB_ID $RN50TUI_JOB_STATUS" > "$0.tmp" && mv "$0.tmp" "$0"',
        str(told),
    ]
    job = slurm_jm.submit(preset="demo", device="cpu", cards=1, engine_flags=LONG, executor="slurm",
                          slurm={"nodes": 2}, notify_cmd=hook)  # fmt: skip
    running = _running(slurm_jm, job.id)
    slurm_env.run("scancel", _slurm_id(running))
    assert _final(slurm_jm, job.id) is Status.CANCELLED
    assert "scancel" in (slurm_jm.get_job(job.id).error or "")
    wait_for(told.exists, 60, message="the notify hook")
    assert told.read_text().split() == [str(job.id), "cancelled"]


def test_a_stalled_slurm_job_is_flagged_notified_and_cancelled_with_a_checkpoint(
    slurm_jm, tmp_path, monkeypatch
):
    # The engines hang after 3 iterations (a test hook); the follower, not a supervisor, watches Slurm jobs.
    for name, value in {"RN50TUI_TEST_HANG_AFTER_ITERS": "3", "RN50TUI_STALL_MIN_S": "4",
                        "RN50TUI_STALL_WARMUP_S": "600"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    told = tmp_path / "told"  # the hook writes told.<event>: "<job> <status> <stalled for>"
    hook = ["sh", "-c", 'echo "$RN50TUI_JOB_ID $RN50TUI_JOB_STATUS $RN50TUI_JOB_STALLED_FOR_S" > "$0.tmp" '
            '&& mv "$0.tmp" "$0.$RN50TUI_EVENT"', str(told)]  # fmt: skip
    job = slurm_jm.submit(preset="demo", device="cpu", cards=1, engine_flags=LONG, executor="slurm",
                          slurm={"nodes": 2}, notify_cmd=hook, on_stall="cancel")  # fmt: skip
    stalled = wait_for(lambda: (j := slurm_jm.get_job(job.id)).stalled_at and j, JOB_TIMEOUT,
                       message="the stall mark")  # fmt: skip
    assert stalled.status is Status.RUNNING and stalled.iteration == 3
    said = wait_for(lambda: told.with_suffix(".stalled").exists() and told.with_suffix(".stalled").read_text(),
                    60, message="the stall notification")  # fmt: skip
    job_id, status, stalled_for = said.split()
    assert (job_id, status) == (str(job.id), "running") and int(stalled_for) >= 4
    assert _final(slurm_jm, job.id) is Status.CANCELLED
    done = slurm_jm.get_job(job.id)
    assert "--on-stall cancel" in done.error and done.last_checkpoint and done.stalled_at is None
    wait_for(told.with_suffix(".final").exists, 60, message="the final notification")
    assert told.with_suffix(".final").read_text().split()[:2] == [str(job.id), "cancelled"]
