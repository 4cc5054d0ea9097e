"""`rn50tui jobs list|show|rm`: the jobs of a store, one line each, one in full, or removed."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from typing import Any, Callable, Optional

from rn50tui.commands import show
from rn50tui.commands.common import CliError, Parser, manager
from rn50tui.jobs.core.errors import StoreMissing
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import THIN_POINTS, JobSummary
from rn50tui.jobs.policy import stall
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
    rm.add_argument("job", type=int, nargs="?", help="job id (or --older-than)")
    rm.add_argument("--older-than", metavar="AGE", type=parse_age,
                    help="every finished job that ended more than AGE ago (90d, 12h, 30m); never an active one")  # fmt: skip
    rm.add_argument(
        "--status",
        action="append",
        metavar="S",
        help="with --older-than: only jobs with this finished status; repeatable",
    )
    rm.add_argument("--vacuum", action="store_true", help="then give the freed space back to the disk")
    rm.add_argument("--purge", action="store_true",
                    help="also delete the job's workspace (checkpoints, logs), after a confirmation naming its size")  # fmt: skip
    rm.add_argument("-y", "--yes", action="store_true",
                    help="with --purge or --older-than: do not ask (for scripts)")  # fmt: skip
    rm.set_defaults(handler=run_rm)
    vac = jsub.add_parser("vacuum", parents=[common], help="give the space of removed jobs back to the disk",
                          description="Compact the job store file (SQLite VACUUM): after `jobs rm --older-than`, "
                          "the file keeps its size until vacuumed. First thins finished jobs' per-iteration metrics "
                          "(--keep-points). Other clients wait while it runs.")  # fmt: skip
    vac.add_argument("-y", "--yes", action="store_true", help="do not ask (for scripts)")
    vac.add_argument("--keep-points", type=int, default=THIN_POINTS, metavar="N",
                     help="first thin each finished job's per-iteration metrics to about N per series (the charts "
                     "draw no more; the first, last and lowest-loss records stay) where its raport.json keeps the "
                     "full resolution for `rn50tui export`; 0: thin nothing (default 2000)")  # fmt: skip
    vac.set_defaults(handler=run_vacuum)

    pr = jsub.add_parser("priority", parents=[common], help="change a queued job's priority",
                         description="Change a queued job's priority: higher first among the jobs that fit.")  # fmt: skip
    pr.add_argument("job", type=int, help="job id")
    pr.add_argument(
        "priority", type=int, metavar="N", help="the new priority (an integer; default of a job: 0)"
    )
    pr.set_defaults(handler=run_priority)


AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """'90d', '12h', '30m', '2w', '45s' → seconds."""
    text = text.strip().lower()
    try:
        value, unit = float(text[:-1]), AGE_UNITS[text[-1]]
    except (KeyError, ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"{text!r} is not an age like 90d, 12h or 30m") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: an age is not negative")
    return value * unit


def run_priority(args: argparse.Namespace) -> int:
    jm = manager(args)
    job = jm.set_priority(args.job, args.priority)
    print(
        f"job {job.id}: priority {job.priority}" + ("" if job.status is Status.QUEUED else f", {job.status}")
    )
    return 0


def run_list(args: argparse.Namespace) -> int:
    statuses = [s for arg in args.status or [] for s in arg.split(",") if s]
    from rn50tui.jobs.core.states import parse_status

    wanted = [parse_status(s) for s in statuses] or None
    try:
        jm = manager(args)
    except StoreMissing as exc:
        if args.json:
            print("[]")
        else:
            print(f"no jobs yet ({exc})", file=sys.stderr)
        return 0
    if args.sweep is not None:
        jm.sweep(args.sweep)  # refuses an unknown sweep
        jobs = jm.job_summaries(wanted, args.limit, sweep=args.sweep)
        everything = True
    elif args.all and args.json and args.limit is None:  # every job: written as it is read, never held
        _stream_json(jm.iter_summaries(wanted))
        return 0
    else:
        everything = args.all or args.limit is not None
        if everything:
            jobs = jm.job_summaries(wanted, args.limit)
        elif wanted is not None:  # the newest RECENT_JOBS with these statuses (the jobs_status_id index)
            jobs = jm.job_summaries(wanted, RECENT_JOBS)
        else:  # every active job and the newest RECENT_JOBS
            jobs = jm.job_summaries(None, None, recent=RECENT_JOBS)
    if args.json:
        now = time.time()
        sys.stdout.write(json.dumps([show.with_stall(j.to_dict(), stall.flag(j, now)) for j in jobs]) + "\n")
    else:
        queued = [j.id for j in jobs if j.status is Status.QUEUED]
        estimates = jm.start_estimates() if queued else {}
        reasons = jm.wait_reasons(queued)  # the queue read once for all of them (not once per job)
        _print_table(jobs, lambda job: reasons.get(job.id, "it was removed"), estimates)
    if not everything and len(jobs) >= RECENT_JOBS:  # fewer: the store holds no more
        hidden = jm.count_jobs(wanted) - len(jobs)  # an index range count, not a read of the jobs
        if hidden:  # under the table; on stderr only beside --json, whose stdout is one JSON document
            print(f"({hidden} older jobs not shown: `rn50tui jobs list --all` lists every job)",
                  file=sys.stderr if args.json else sys.stdout)  # fmt: skip
    return 0


def _stream_json(jobs: Iterable[JobSummary]) -> None:
    """One JSON list, each job's object written as soon as it is read (100,000 jobs are never all held)."""
    now = time.time()
    out = sys.stdout
    out.write("[")
    for i, j in enumerate(jobs):
        out.write((", " if i else "") + json.dumps(show.with_stall(j.to_dict(), stall.flag(j, now))))
    out.write("]\n")


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
        elif j.status is Status.RUNNING and view(j, now).work:  # a prepare: images, MB and its ETA
            sys.stdout.write(f"job {j.id} {j.kind}: {view(j, now).work}\n")


def _row(j: JobSummary, now: float) -> tuple[str, ...]:
    v = view(j, now)  # the one view of a job (rn50tui/jobs/view.py), as the app renders it
    progress, loss, top1, ips = j.progress, j.loss, j.top1, j.ips
    return (str(j.id), j.name[:24], v.status, v.cards, str(j.attempt), (v.epoch or "-").split(" · ")[0],
            "-" if progress is None else f"{100 * progress:.0f}%", "-" if loss is None else f"{loss:.4f}",
            "-" if top1 is None else f"{top1:.2f}", "-" if ips is None else f"{ips:.1f}",
            short_duration(now - status_since(j, now)), v.where)  # fmt: skip


def _confirm(question: str, yes: bool, flag_hint: str) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise CliError(f"{flag_hint}: add --yes to confirm without a terminal")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def run_rm(args: argparse.Namespace) -> int:
    if args.older_than is not None:
        return _rm_older(args)
    if args.job is None:
        raise CliError("name a job (`rn50tui jobs rm JOB`) or pass --older-than AGE")
    if args.status or args.vacuum:
        raise CliError("--status and --vacuum go with --older-than")
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


def _rm_older(args: argparse.Namespace) -> int:
    """`jobs rm --older-than AGE [--status S] [--vacuum]`: finished jobs only, confirmed."""
    from rn50tui.jobs.core.states import parse_status

    if args.job is not None or args.purge:
        raise CliError("--older-than removes many jobs: name no job, and no --purge")
    wanted = [parse_status(s) for arg in args.status or [] for s in arg.split(",") if s] or None
    active = [s for s in wanted or [] if not s.terminal]
    if active:
        raise CliError(f"--older-than never removes {'/'.join(map(str, active))} jobs: cancel them first")
    jm = manager(args)
    ids = jm.prunable_jobs(time.time() - args.older_than, wanted)
    if not ids:
        print("no finished job is that old: nothing removed")
    else:
        what = (
            f"{len(ids)} finished jobs (ids {ids[0]}…{ids[-1]}) with their metrics; their files stay on disk"
        )
        if not _confirm(f"remove {what}?", args.yes, f"this would remove {what}"):
            print("nothing removed")
            return 1
        removed = jm.delete_jobs(ids)
        print(
            f"removed {removed} jobs"
            + (f" ({len(ids) - removed} became active again: kept)" if removed < len(ids) else "")
        )
    if args.vacuum:
        _vacuum(jm)
    return 0


def run_vacuum(args: argparse.Namespace) -> int:
    jm = manager(args)
    if not _confirm(f"compact {jm.db_path} (other clients wait while it runs)?", args.yes,
                    "vacuum would lock the store while it runs"):  # fmt: skip
        print("nothing done")
        return 1
    if args.keep_points > 0:
        jobs, rows = jm.thin_finished(args.keep_points)
        if jobs:
            print(f"thinned the metrics of {jobs} finished jobs to about {args.keep_points} records per series:"
                  f" {rows} records removed (their raport.json keeps every one for `rn50tui export`)")  # fmt: skip
    _vacuum(jm)
    return 0


def _vacuum(jm: Any) -> None:
    from rn50tui.jobs import purge

    before, after = jm.vacuum()
    print(f"vacuumed {jm.db_path}: {purge.human_size(before)} → {purge.human_size(after)}")
