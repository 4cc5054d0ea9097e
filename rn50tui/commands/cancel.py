"""`rn50tui cancel JOB`: stop a queued or running job (it checkpoints first)."""

from __future__ import annotations

import argparse
from typing import Any

from rn50tui.commands.common import job_or_sweep, manager


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `cancel` on the CLI's subparsers."""
    c = sub.add_parser("cancel", parents=[common], help="stop a job: SIGTERM (it checkpoints), then SIGKILL",
                       description="Cancel a queued job, or stop a running one: SIGTERM so it checkpoints, "
                       "SIGKILL after the grace period. Waits until it has stopped unless --no-wait.")  # fmt: skip
    c.add_argument(
        "job", type=job_or_sweep, metavar="JOB", help="job id, or sweep:ID for every job of a sweep"
    )
    c.add_argument("--no-wait", action="store_true", help="return once the cancel is requested")
    c.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    jm = manager(args)
    kind, number = args.job
    if kind == "sweep":
        jm.sweep(number)  # refuses an unknown sweep
        ids = [j for j in jm.sweep_jobs(number) if not jm.get_job(j).status.terminal]
        for job_id in ids:  # every request first, then wait for all
            jm.cancel(job_id)
        if not args.no_wait:
            for job_id in ids:
                jm.cancel(job_id, wait=True)
    else:
        ids = [number]
        jm.cancel(number, wait=not args.no_wait)
    for job_id in ids:
        job = jm.get_job(job_id)
        state = job.status.value if job.status.terminal else f"{job.status.value}, stop requested"
        print(f"job {job.id}: {state}")
    if kind == "sweep" and not ids:
        print(f"sweep {number}: nothing to cancel (every job of it has ended)")
    return 0
