"""`rn50tui cancel JOB`: stop a queued or running job (it checkpoints first)."""

from __future__ import annotations

import argparse
from typing import Any

from rn50tui.commands.common import manager


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `cancel` on the CLI's subparsers."""
    c = sub.add_parser("cancel", parents=[common], help="stop a job: SIGTERM (it checkpoints), then SIGKILL",
                       description="Cancel a queued job, or stop a running one: SIGTERM so it checkpoints, "
                       "SIGKILL after the grace period. Waits until it has stopped unless --no-wait.")  # fmt: skip
    c.add_argument("job", type=int, help="job id")
    c.add_argument("--no-wait", action="store_true", help="return once the cancel is requested")
    c.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    jm = manager(args)
    job = jm.cancel(args.job, wait=not args.no_wait)
    state = job.status.value if job.status.terminal else f"{job.status.value}, stop requested"
    print(f"job {job.id}: {state}")
    return 0
