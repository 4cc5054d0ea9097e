"""What following many Slurm jobs costs: controller queries per minute, and the follower's CPU.

Twenty held jobs (PENDING, reason JobHeldUser) are followed for a little over a minute at the default
10 s poll; the follower's own per-minute stats line (its Slurm calls, its CPU time and its children's)
gives the figures, printed for the report. The queries must not grow with the jobs: one squeue a poll.
"""

from __future__ import annotations

import re

import pytest

from rn50tui.jobs.core.states import Status

from ..jobs.conftest import run_cli, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

JOBS = 20
POLL_S = 10.0
STATS = re.compile(r"stats: (\d+) jobs followed, ([\d.]+) controller queries/min .* CPU ([\d.]+)%")


def test_twenty_followed_jobs_cost_one_squeue_per_poll(slurm_jm, db_path):
    flags = ["--epochs", "1", "--synthetic-size", "8", "--image-size", "32", "-b", "4", "--warmup", "0"]
    jobs = [slurm_jm.submit(preset="demo", device="cpu", cards=1, engine_flags=flags, executor="slurm",
                            slurm={"nodes": 1, "sbatch_args": ["--hold"], "poll_interval": POLL_S})
            for _ in range(JOBS)]  # fmt: skip
    wait_for(lambda: all((slurm_jm.get_job(j.id).executor_handle or {}).get("pending_reason") for j in jobs),
             120, message="every job's pending reason")  # fmt: skip
    assert {slurm_jm.get_job(j.id).status for j in jobs} == {Status.QUEUED}  # waiting in Slurm's queue
    listed = run_cli("jobs", "list", db=db_path)
    assert listed.stdout.count("PENDING (JobHeldUser)") == JOBS, listed.stdout
    assert listed.stdout.count("is pending (JobHeldUser)") == JOBS, listed.stdout  # the wait lines
    log = db_path.with_name(db_path.name + ".slurm-follower.log")
    found = wait_for(lambda: [m for m in STATS.finditer(log.read_text()) if int(m[1]) == JOBS], 200,
                     message="a minute of the follower's stats")  # fmt: skip
    followed, per_minute, cpu = int(found[0][1]), float(found[0][2]), float(found[0][3])
    print(
        f"\nfollowing {followed} Slurm jobs: {per_minute:.1f} controller queries/min, follower CPU {cpu:.2f}%"
    )
    assert per_minute <= 60 / POLL_S + 1  # one squeue per poll, whatever the number of jobs
    for job in jobs:
        slurm_jm.cancel(job.id)
    for job in jobs:  # a pending job is scancelled at once
        wait_for(
            lambda j=job: slurm_jm.get_job(j.id).status is Status.CANCELLED, 120, message=f"job {job.id}"
        )
