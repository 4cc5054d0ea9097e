"""`rn50tui jobs list|show|rm`: the jobs of a store, one line each, one in full, or removed."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable, Optional

from rn50tui.commands import show
from rn50tui.commands.common import CliError, Parser, manager
from rn50tui.jobs.errors import StoreMissing
from rn50tui.jobs.policy import stall
from rn50tui.jobs.states import Status
from rn50tui.jobs.store import JobSummary
from rn50tui.jobs.view import view
from rn50tui.timefmt import short_duration, status_since

RECENT_JOBS = 20  # `jobs list` shows every active job and the newest RECENT_JOBS (--all: every job)


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `jobs` and its actions (list, show, rm) on the CLI's subparsers."""
    j = sub.add_parser("jobs", parents=[common], help="list, show or remove jobs",
                       description="List, show or remove jobs.")  # fmt: skip
    jsub = j.add_subparsers(dest="jobs_command", metavar="COMMAND", required=True, parser_class=Parser)
    ls = jsub.add_parser("list", parents=[common], help="one line per job",
                         description=f"One line per job: by default every queued, starting or running job and "
                         f"the newest {RECENT_JOBS} jobs; --all lists every job.")  # fmt: skip
    ls.add_argument("-a", "--all", action="store_true", help="every job, however many")
    ls.add_argument("--status", action="append", metavar="S",
                    help=f"only jobs with this status ({', '.join(s.value for s in Status)}); repeatable")  # fmt: skip
    ls.add_argument("--limit", type=int, help="only the newest N jobs")
    ls.add_argument("--sweep", type=int, metavar="ID", help="only the jobs of this sweep")
    ls.add_argument("--json", action="store_true", help="a JSON list of job objects")
    ls.set_defaults(handler=run_list)
    ls.epilog = ("IN-STATUS: how long the job has been in its status (queued: waiting; starting/running: since it "
                 "started; finished: since it ended). A running job that makes no progress shows "
                 "`running (stalled 12m)`: 12 minutes since its last training iteration.")  # fmt: skip
    show.add_parser(jsub, common)
    rm = jsub.add_parser("rm", parents=[common], help="remove a job that is not running (--purge: its files too)",
                         description="Remove a job and its metrics from the store; refuses a running job. "
                         "Its workspace stays on disk unless --purge.")  # fmt: skip
    rm.add_argument("job", type=int, help="job id")
    rm.add_argument("--purge", action="store_true",
                    help="also delete the job's workspace (checkpoints, logs), after a confirmation naming its size")  # fmt: skip
    rm.add_argument("-y", "--yes", action="store_true", help="with --purge: do not ask (for scripts)")
    rm.set_defaults(handler=run_rm)
    pr = jsub.add_parser("priority", parents=[common], help="change a queued job's priority",
                         description="Change a queued job's priority: higher first among the jobs that fit.")  # fmt: skip
    pr.add_argument("job", type=int, help="job id")
    pr.add_argument(
        "priority", type=int, metavar="N", help="the new priority (an integer; default of a job: 0)"
    )
    pr.set_defaults(handler=run_priority)


def run_priority(args: argparse.Namespace) -> int:
    jm = manager(args)
    job = jm.set_priority(args.job, args.priority)
    print(
        f"job {job.id}: priority {job.priority}" + ("" if job.status is Status.QUEUED else f", {job.status}")
    )
    return 0


def run_list(args: argparse.Namespace) -> int:
    statuses = [s for arg in args.status or [] for s in arg.split(",") if s]
    from rn50tui.jobs.states import parse_status

    wanted = [parse_status(s) for s in statuses] or None
    try:
        jm = manager(args)
    except StoreMissing as exc:
        if args.json:
            print("[]")
        else:
            print(f"no jobs yet ({exc})", file=sys.stderr)
        return 0
    everything = args.all or wanted is not None or args.limit is not None or args.sweep is not None
    if args.sweep is not None:
        jm.sweep(args.sweep)  # refuses an unknown sweep
    jobs = jm.job_summaries(wanted, args.limit, recent=None if everything else RECENT_JOBS, sweep=args.sweep)
    if args.json:
        now = time.time()
        sys.stdout.write(json.dumps([show.with_stall(j.to_dict(), stall.flag(j, now)) for j in jobs]) + "\n")
    else:
        estimates = jm.start_estimates() if any(j.status is Status.QUEUED for j in jobs) else {}
        _print_table(jobs, lambda job: jm.wait_reason(job.id), estimates)
    if not everything and len(jobs) >= RECENT_JOBS:  # fewer: the store holds no more
        hidden = jm.count_jobs() - len(jobs)
        if hidden:  # under the table; on stderr only beside --json, whose stdout is one JSON document
            print(f"({hidden} older jobs not shown: `rn50tui jobs list --all` lists every job)",
                  file=sys.stderr if args.json else sys.stdout)  # fmt: skip
    return 0


LIST_COLUMNS = (
    "ID",
    "NAME",
    "STATUS",
    "DEVICE",
    "TRY",
    "EPOCH",
    "PROGRESS",
    "LOSS",
    "TOP1",
    "IMG/S",
    "IN-STATUS",
    "WHERE",
)


def _print_table(jobs: list[JobSummary], wait_reason: Callable[[JobSummary], str],
                 estimates: Optional[dict[int, Any]] = None) -> None:  # fmt: skip
    now = time.time()
    rows = [LIST_COLUMNS] + [_row(j, now) for j in jobs]
    widths = [max(map(len, column)) for column in zip(*rows)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    sys.stdout.write("".join(line.format(*r).rstrip() + "\n" for r in rows))
    for j in jobs:  # why a queued job is held back, or what a running one warns of, under the table
        if j.status is Status.QUEUED:  # the scheduler's own words: a busy card, a slot held, the order
            reason = wait_reason(j)
            estimate = (estimates or {}).get(j.id)
            when = f"; {estimate.text}" if estimate is not None else ""
            sys.stdout.write(
                f"job {j.id} {reason[3:] if reason.startswith('it ') else ': ' + reason}{when}\n"
            )
        elif j.status is Status.RUNNING and j.note and j.note.startswith(("warning:", "input-bound:")):
            sys.stdout.write(f"job {j.id} {j.note}\n")


def _row(j: JobSummary, now: float) -> tuple[str, ...]:
    v = view(j, now)  # the one view of a job (rn50tui/jobs/view.py), as the app renders it
    progress, loss, top1, ips = j.progress, j.loss, j.top1, j.ips
    return (str(j.id), j.name[:24], v.status, v.cards, str(j.attempt), (v.epoch or "-").split(" · ")[0],
            "-" if progress is None else f"{100 * progress:.0f}%", "-" if loss is None else f"{loss:.4f}",
            "-" if top1 is None else f"{top1:.2f}", "-" if ips is None else f"{ips:.1f}",
            short_duration(now - status_since(j, now)), v.where)  # fmt: skip


def run_rm(args: argparse.Namespace) -> int:
    jm = manager(args)
    job = jm.get_job(args.job)
    if not args.purge:
        jm.delete(args.job)
        print(f"removed job {args.job} (its files stay in {job.workspace}; --purge deletes them)")
        return 0
    from rn50tui.jobs import purge

    workspace = purge.check_workspace(job, jm.db_path)  # refuses before anything is removed
    jm.check_deletable(args.job)
    size = purge.tree_size(workspace) if workspace else 0
    what = f"{workspace} ({purge.human_size(size)}, checkpoints included)" if workspace else "nothing on disk"
    if workspace and not args.yes:
        if not sys.stdin.isatty():
            raise CliError(f"--purge would delete {what}: add --yes to confirm without a terminal")
        answer = input(f"delete job {job.id} ({job.name}) and its workspace {what}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return 1
    jm.delete(args.job)
    if workspace:
        purge.remove_tree(workspace)
    print(f"removed job {args.job} and {what}")
    return 0
