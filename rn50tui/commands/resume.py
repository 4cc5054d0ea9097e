"""`rn50tui resume JOB`: queue the next attempt of a stopped job."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rn50tui.commands.common import job_or_sweep, manager
from rn50tui.jobs.core.states import RESUMABLE, Status


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `resume` on the CLI's subparsers."""
    r = sub.add_parser("resume", parents=[common], help="queue the next attempt of a stopped job",
                       description="Queue the next attempt of a failed, cancelled or interrupted job; "
                       "it continues from its last checkpoint.")  # fmt: skip
    r.add_argument(
        "job", type=job_or_sweep, metavar="JOB", help="job id, or sweep:ID for every stopped job of a sweep"
    )
    r.add_argument("--json", action="store_true", help="print the job as JSON")
    r.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    jm = manager(args)
    kind, number = args.job
    if kind == "sweep":
        jm.sweep(number)  # refuses an unknown sweep
        jobs = [jm.resume(j) for j in jm.sweep_jobs(number) if jm.get_job(j).status in RESUMABLE]
        if args.json:
            print(json.dumps([j.to_dict() for j in jobs]))
        for job in [] if args.json else jobs:
            print(f"job {job.id}: attempt {job.attempt} {job.status.value}")
        if not jobs and not args.json:
            print(f"sweep {number}: nothing to resume (no job of it failed, was cancelled or interrupted)")
        return 0
    job = jm.resume(number)
    if args.json:
        print(json.dumps(job.to_dict()))
    elif job.status is Status.COMPLETED:
        print(f"job {job.id}: completed (its engine had already finished the run; nothing to resume)")
    else:
        print(f"job {job.id}: attempt {job.attempt} {job.status.value}")
    return 0
