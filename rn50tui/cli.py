"""`rn50tui`: the command line of the job manager (no arguments: the terminal app).

    rn50tui submit [--preset P] [--name N] [--cards K] [--device D] [--data DIR] [-- ENGINE FLAGS…]
    rn50tui jobs list [--status S] [--json] | jobs show JOB [--json] | jobs rm JOB [--purge]
    rn50tui cancel JOB | resume JOB | logs JOB [-f] | export JOB --format csv|json|tensorboard | devices | presets
    rn50tui metrics [--listen HOST:PORT] (Prometheus)

Every command takes --db PATH (else $RN50TUI_DB, else ./jobs.db). Exit status 0 on success; otherwise
non-zero with a one-line reason on stderr. This path imports neither torch nor textual, so it starts fast.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import sqlite3
import sys
import time
from collections.abc import Sequence
from typing import Any, Callable, NoReturn, Optional

from engine.device_kind import NAMES as DEVICE_NAMES
from engine.events import readable_position
from rn50tui import time_to_accuracy
from rn50tui.commands import data as data_command
from rn50tui.jobs import stall
from rn50tui.jobs.busy import BUSY_CHECK_ENV
from rn50tui.jobs.capacity import CARDS_ENV, CapacityError, parse_spec
from rn50tui.jobs.errors import JobsError, StoreMissing
from rn50tui.jobs.presets import PRESETS
from rn50tui.jobs.schema import full_disk_hint
from rn50tui.jobs.states import Status
from rn50tui.jobs.store import JobSummary, default_db_path
from rn50tui.jobs.workspace import LOG_STREAMS, LogTail, last_lines
from rn50tui.timefmt import duration, local_time, short_duration, status_since

EXIT_ERROR = 1
EXIT_USAGE = 2
RECENT_JOBS = 20  # `jobs list` shows every active job and the newest RECENT_JOBS (--all: every job)


class CliError(Exception):
    """A refusal of the CLI itself (not of the job manager): printed as one line, exit 1."""


# ------------------------------------------------------------------------------------------------ parser


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (the reason and where to look), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, metavar="PATH",
                        help=f"job store (default: ${'RN50TUI_DB'} or ./jobs.db)")  # fmt: skip
    p = Parser(prog="rn50tui", parents=[common],
                                description="Train ResNet-50 the NGC way and run the jobs from a terminal. "
                                "Without a command, opens the terminal app.")  # fmt: skip
    p.add_argument("--host-cards", metavar="SPEC",
                   help=f"cards the scheduler may use, e.g. mlu=4,cuda=0,cpu=1 (also ${CARDS_ENV}; "
                   "default: what telemetry finds, one CPU job at a time)")  # fmt: skip
    p.add_argument("--no-busy-check", action="store_true",
                   help="grant cards even when something outside rn50tui uses them (memory, utilisation or "
                   f"processes past the [busy] thresholds of the config file); also {BUSY_CHECK_ENV}=0")  # fmt: skip
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    _add_submit(sub, common)
    _add_jobs(sub, common)
    data_command.add_parser(sub, common)
    c = sub.add_parser("cancel", parents=[common], help="stop a job: SIGTERM (it checkpoints), then SIGKILL",
                       description="Cancel a queued job, or stop a running one: SIGTERM so it checkpoints, "
                       "SIGKILL after the grace period. Waits until it has stopped unless --no-wait.")  # fmt: skip
    c.add_argument("job", type=int, help="job id")
    c.add_argument("--no-wait", action="store_true", help="return once the cancel is requested")
    r = sub.add_parser("resume", parents=[common], help="queue the next attempt of a stopped job",
                       description="Queue the next attempt of a failed, cancelled or interrupted job; "
                       "it continues from its last checkpoint.")  # fmt: skip
    r.add_argument("job", type=int, help="job id")
    r.add_argument("--json", action="store_true", help="print the job as JSON")
    lg = sub.add_parser("logs", parents=[common], help="print a job's output (-f to follow)",
                        description="Print the engine's stdout of a job (or its stderr, or the supervisor's log).")  # fmt: skip
    lg.add_argument("job", type=int, help="job id")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    lg.add_argument("-n", "--lines", type=int, default=None, metavar="N", help="start with the last N lines")
    lg.add_argument("--stream", choices=LOG_STREAMS, default="stdout",
                    help="which log (default stdout)")  # fmt: skip
    ex = sub.add_parser("export", parents=[common], help="write a job's full-resolution metrics as CSV or JSON",
                        description="Every metric record of a job, one row per engine log line.")  # fmt: skip
    ex.add_argument("job", type=int, help="job id")
    ex.add_argument("--format", choices=("csv", "json", "tensorboard"), default="csv",
                    help="output format (default csv); tensorboard: event files in --out DIR/<id>-<name>/")  # fmt: skip
    ex.add_argument("--out", metavar="DIR", default="runs", help="with --format tensorboard: the folder of runs (default runs)")  # fmt: skip
    ex.add_argument("--attempt", type=int, default=None, help="only this attempt")
    ex.add_argument("-o", "--output", default="-", metavar="FILE", help="file to write (default stdout)")
    sub.add_parser("devices", add_help=False, parents=[common], help="the host's cards and which job holds each",
                   description="Cards per kind with live stats (`rn50tui devices --help` for its options).")  # fmt: skip
    sub.add_parser("presets", parents=[common], help="list the presets `submit --preset` accepts",
                   description="The presets: the seed's NGC scripts and a CPU demo.")  # fmt: skip
    sv = sub.add_parser("serve", parents=[common], help="serve the app to a web browser (textual-serve)",
                        description="Serve the terminal app on http://HOST:PORT; each browser tab runs its own "
                                    "copy on the same job store.")  # fmt: skip
    sv.add_argument("--host", default="localhost", help="interface to listen on (default localhost)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    sv.add_argument("--allow-remote", action="store_true",
                    help="needed to listen beyond loopback: anyone with the printed URL (it holds the token) "
                    "can then run jobs as you")  # fmt: skip
    from rn50tui import metrics_server  # `metrics`: its parser beside its handler

    metrics_server.add_parser(sub, common)
    return p


def _add_submit(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("submit", parents=[common], help="queue a training, inference or benchmark job",
                       description="Queue a job and start it when its cards are free. Presets: "
                       + "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values())
                       + ". Engine flags after -- come after the preset's, so they win.")  # fmt: skip
    s.add_argument("--preset", metavar="P", help=f"one of {', '.join(PRESETS)}")
    s.add_argument("--name", help="job name (default: the preset's name)")
    s.add_argument("--cards", type=int, help="cards (CPU: processes) the job uses (default: the preset's)")
    s.add_argument("--device", choices=DEVICE_NAMES, help="device kind (default: the host's best)")
    s.add_argument("--data", metavar="DIR", help="dataset root with train/ and val/")
    s.add_argument("--checkpoint", metavar="PATH", help="weights to evaluate or start from (--resume)")
    s.add_argument("--json", action="store_true", help="print the new job as JSON instead of its id")
    s.add_argument("--notify-cmd", metavar="CMD",
                   help="run CMD when the job ends or stalls, with its facts in RN50TUI_JOB_* variables (split "
                   "like a shell line, never run by one; default: [notify] cmd of the config file)")  # fmt: skip
    s.add_argument("--on-stall", choices=("notify", "cancel"), default=None,
                   help="when the job makes no progress: notify (default), or cancel it with a checkpoint")  # fmt: skip
    s.add_argument("--executor", choices=("local", "slurm"), default="local",
                   help="where it runs: this host (default) or a Slurm cluster (sbatch)")  # fmt: skip
    g = s.add_argument_group(
        "slurm", "with --executor slurm; defaults from ~/.config/rn50tui/config.toml [slurm]"
    )
    g.add_argument("--nodes", type=int, help="nodes, each running --cards processes (default 1)")
    g.add_argument("--partition", help="Slurm partition")
    g.add_argument("--account", help="Slurm account")
    g.add_argument(
        "--time", metavar="LIMIT", help="time limit, e.g. 24:00:00; the engine checkpoints before it"
    )
    g.add_argument(
        "--gres", metavar="NAME", help="the cards' gres name (default mlu; some sites: gpu:mlu370)"
    )
    g.add_argument("--auto-resume", type=int, metavar="N",
                   help="resubmit a job stopped by its time limit or preemption, up to N times")  # fmt: skip
    s.add_argument(
        "engine_flags", nargs="*", metavar="-- ENGINE FLAGS", help="flags for python -m engine.train"
    )


def _add_jobs(sub: Any, common: argparse.ArgumentParser) -> None:
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
    ls.add_argument("--json", action="store_true", help="a JSON list of job objects")
    ls.epilog = ("IN-STATUS: how long the job has been in its status (queued: waiting; starting/running: since it "
                 "started; finished: since it ended). A running job that makes no progress shows "
                 "`running (stalled 12m)`: 12 minutes since its last training iteration.")  # fmt: skip
    sh = jsub.add_parser("show", parents=[common], help="everything the store knows about a job",
                         description="Everything the store knows about a job.")  # fmt: skip
    sh.add_argument("job", type=int, help="job id")
    sh.add_argument("--json", action="store_true", help="one JSON object")
    rm = jsub.add_parser("rm", parents=[common], help="remove a job that is not running (--purge: its files too)",
                         description="Remove a job and its metrics from the store; refuses a running job. "
                         "Its workspace stays on disk unless --purge.")  # fmt: skip
    rm.add_argument("job", type=int, help="job id")
    rm.add_argument("--purge", action="store_true",
                    help="also delete the job's workspace (checkpoints, logs), after a confirmation naming its size")  # fmt: skip
    rm.add_argument("-y", "--yes", action="store_true", help="with --purge: do not ask (for scripts)")


# ------------------------------------------------------------------------------------------------- main


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    if args.command != "devices" and extra:
        hint = " (engine flags go after --)" if args.command == "submit" else ""
        parser.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    try:
        if args.host_cards is not None:
            parse_spec(args.host_cards)
            os.environ[CARDS_ENV] = args.host_cards  # the supervisors it starts see it too
        if args.no_busy_check:
            os.environ[BUSY_CHECK_ENV] = "0"  # likewise
        return _dispatch(args, extra)
    except CapacityError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (JobsError, CliError) as exc:
        return _fail(str(exc), EXIT_ERROR)
    except sqlite3.OperationalError as exc:  # the store opened, but cannot be written now (a full disk)
        return _fail(f"cannot write the job store {_db(args)}: {exc}{full_disk_hint(_db(args))}", EXIT_ERROR)
    except BrokenPipeError:  # `rn50tui jobs list | head`
        return 0
    except KeyboardInterrupt:
        return 130


def _fail(message: str, code: int) -> int:
    print(f"rn50tui: error: {message.splitlines()[0] if message else 'failed'}", file=sys.stderr)
    return code


def _db(args: argparse.Namespace) -> str:
    return str(default_db_path(getattr(args, "db", None)))


def _manager(args: argparse.Namespace, create: bool = False) -> Any:
    from rn50tui.jobs.manager import JobManager

    jm = JobManager(_db(args), create=create)
    jm.reconcile()  # every client reconciles on start: dead supervisors → interrupted
    return jm


def _dispatch(args: argparse.Namespace, extra: list[str]) -> int:
    command = args.command
    if command is None:
        return _open_app(args)
    if command == "devices":
        return _devices(args, extra)
    if command == "presets":
        return _presets()
    if command == "metrics":
        from rn50tui import metrics_server

        return metrics_server.run(args, _db(args))
    if command == "data":
        return data_command.run(args)
    if command == "jobs":
        command = f"jobs {args.jobs_command}"
    handler = {
        "submit": _submit, "jobs list": _list, "jobs show": _show, "jobs rm": _rm, "cancel": _cancel,
        "resume": _resume, "logs": _logs, "export": _export, "serve": _serve,
    }[command]  # fmt: skip
    return handler(args)


def _open_app(args: argparse.Namespace) -> int:
    from rn50tui.app.app import run_app  # textual is imported only here: the commands stay fast

    return int(run_app(_db(args)) or 0)


def _serve(args: argparse.Namespace) -> int:
    """The app in a browser: textual-serve starts one `rn50tui` per browser tab, all on the same store."""
    import getpass
    import importlib.util

    from rn50tui import serve

    if importlib.util.find_spec("textual_serve") is None:
        raise CliError("serving needs textual-serve: pip install textual-serve")
    if not serve.is_loopback(args.host):
        if not args.allow_remote:
            raise CliError(f"--host {args.host} lets other machines reach the app, which can submit, cancel and "
                           "delete jobs: add --allow-remote to mean it (a token will be required)")  # fmt: skip
        print(serve.REMOTE_WARNING.format(host=args.host, port=args.port, user=getpass.getuser()), flush=True)
    app = f"{shlex.quote(sys.executable)} -m rn50tui --db {shlex.quote(os.path.abspath(_db(args)))}"
    serve.serve(app, args.host, args.port, serve.new_token())
    return 0


# ------------------------------------------------------------------------------------------------ commands


def _submit(args: argparse.Namespace) -> int:
    jm = _manager(args, create=True)
    slurm_flags = {
        k: getattr(args, k) for k in ("nodes", "partition", "account", "time", "gres", "auto_resume")
    }
    if args.executor != "slurm" and any(v is not None for v in slurm_flags.values()):
        given = ", ".join("--" + k.replace("_", "-") for k, v in slurm_flags.items() if v is not None)
        return _fail(f"{given} only apply with --executor slurm", 2)
    from rn50tui.jobs.submission import Request
    from rn50tui.jobs.userconfig import parse_cmd

    try:
        hook = parse_cmd(args.notify_cmd) if args.notify_cmd is not None else None
    except ValueError as exc:
        raise CliError(f"--notify-cmd: {exc}") from None
    request = Request(args.preset, args.name, args.cards, args.device, args.data, args.checkpoint,
                      tuple(args.engine_flags), executor=args.executor)  # fmt: skip
    job = jm.submit(request, slurm=slurm_flags if args.executor == "slurm" else None, notify_cmd=hook,
                    on_stall=args.on_stall)  # fmt: skip
    print(json.dumps(job.to_dict()) if args.json else job.id)
    return 0


def _list(args: argparse.Namespace) -> int:
    statuses = [s for arg in args.status or [] for s in arg.split(",") if s]
    from rn50tui.jobs.states import parse_status

    wanted = [parse_status(s) for s in statuses] or None
    try:
        jm = _manager(args)
    except StoreMissing as exc:
        if args.json:
            print("[]")
        else:
            print(f"no jobs yet ({exc})", file=sys.stderr)
        return 0
    everything = args.all or wanted is not None or args.limit is not None
    jobs = jm.job_summaries(wanted, args.limit, recent=None if everything else RECENT_JOBS)
    if args.json:
        now = time.time()
        sys.stdout.write(json.dumps([_with_stall(j.to_dict(), stall.flag(j, now)) for j in jobs]) + "\n")
    else:
        _print_table(jobs, lambda job: jm.wait_reason(job.id))
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


def _print_table(jobs: list[JobSummary], wait_reason: Callable[[JobSummary], str]) -> None:
    now = time.time()
    rows = [LIST_COLUMNS] + [_row(j, now) for j in jobs]
    widths = [max(map(len, column)) for column in zip(*rows)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    sys.stdout.write("".join(line.format(*r).rstrip() + "\n" for r in rows))
    for j in jobs:  # why a queued job is held back, or what a running one warns of, under the table
        if j.status is Status.QUEUED:  # the scheduler's own words: a busy card, a slot held, the order
            reason = wait_reason(j)
            sys.stdout.write(f"job {j.id} {reason[3:] if reason.startswith('it ') else ': ' + reason}\n")
        elif j.status is Status.RUNNING and j.note and j.note.startswith(("warning:", "input-bound:")):
            sys.stdout.write(f"job {j.id} {j.note}\n")


def _row(j: JobSummary, now: float) -> tuple[str, ...]:
    where = (
        f"{j.device}:{','.join(map(str, j.cards_granted))}"
        if j.cards_granted
        else f"{j.device}×{j.cards_requested}"
    )
    epoch = f"{j.epoch}/{j.epochs}" if j.epoch and j.epochs else "-"
    progress, loss, top1, ips = j.progress, j.loss, j.top1, j.ips
    return (str(j.id), j.name[:24], _status_cell(j, now), where, str(j.attempt), epoch,
            "-" if progress is None else f"{100 * progress:.0f}%", "-" if loss is None else f"{loss:.4f}",
            "-" if top1 is None else f"{top1:.2f}", "-" if ips is None else f"{ips:.1f}",
            short_duration(now - status_since(j, now)), _where(j))  # fmt: skip


def _status_cell(j: JobSummary, now: float) -> str:
    """The status, with a running job's stall mark: `running (stalled 12m)`."""
    mark = stall.flag(j, now)
    return j.status.value if mark is None else f"{j.status.value} ({mark.kind} {short_duration(mark.for_s)})"


def _with_stall(info: dict[str, Any], mark: Optional[stall.StallMark]) -> dict[str, Any]:
    """A `--json` object with its `stalled` mark (null when the job is not stalled)."""
    info["stalled"] = None if mark is None else mark.to_dict()
    return info


def _where(j: JobSummary) -> str:
    """`local`, or `slurm 123 RUNNING node[1-2]` / `slurm 124 PENDING (Resources)`."""
    from rn50tui.jobs.executors import describe

    return describe(j)


def _show(args: argparse.Namespace) -> int:
    jm = _manager(args)
    job = jm.get_job(args.job)
    info = job.to_dict()
    if job.checkpoint_epoch is not None:  # epochs from 1, as the records and `jobs list` count them
        info["checkpoint_epoch"], info["checkpoint_iteration"] = readable_position(
            job.checkpoint_epoch, job.checkpoint_iteration or 0
        )
    info["claims"] = [f"{c.device}:{c.card}" for c in jm.claims(job.id)]
    info["metric_rows"] = jm.metric_count(job.id)
    info.update(_loss_info(jm, job))
    info["logs"] = {stream: str(job.files.log(stream)) for stream in LOG_STREAMS}
    info["cards"] = _latest_cards(jm, job)
    info.update(_ema_curve(jm, job.id))
    _with_stall(info, stall.flag(job, time.time()))
    info["time_to_best"] = time_to_accuracy.history_of(info.get("time_to_best"))
    if args.json:
        print(json.dumps(info))
        return 0
    info = _readable_times(info, time.time())
    info["time_to_best"] = "\n".join(time_to_accuracy.lines(info["time_to_best"])) or None
    width = max(len(k) for k in info)
    for key, value in info.items():
        text = (
            json.dumps(value) if isinstance(value, (list, dict)) else ("-" if value is None else str(value))
        )
        lines = text.splitlines() or [""]
        print(f"{key.ljust(width)}  {lines[0]}")
        for line in lines[1:]:
            print(f"{' ' * width}  {line}")
    return 0


def _ema_curve(jm: Any, job_id: int) -> dict[str, dict[int, float]]:
    """Val top-1 by epoch of the weights and of their EMA, for a --use-ema job (the last attempt's value)."""
    top1: dict[int, float] = {}
    ema: dict[int, float] = {}
    for row in jm.metrics(job_id, phase="epoch"):
        if row.epoch is not None and "val_ema.top1" in row.values:
            ema[row.epoch] = round(float(row.values["val_ema.top1"]), 3)
            if "val.top1" in row.values:
                top1[row.epoch] = round(float(row.values["val.top1"]), 3)
    return {"top1_by_epoch": top1, "ema_top1_by_epoch": ema} if ema else {}


def _latest_cards(jm: Any, job: Any) -> dict[str, list[str]]:
    """The last sample of each card, grouped by node ("this host" for a local job's cards)."""
    recent = jm.device_samples(job.id, since=(job.heartbeat or time.time()) - 120)
    latest = {(s.node or "this host", s.device, s.card): s for s in recent}
    grouped: dict[str, list[str]] = {}
    for (node, device, card), s in sorted(latest.items()):
        util = "-" if s.util_percent is None else f"{s.util_percent:.0f}%"
        mem = "-" if s.mem_used_mib is None else f"{s.mem_used_mib:.0f} MiB"
        grouped.setdefault(node, []).append(f"{device} {card} util {util} mem {mem}")
    return grouped


def _loss_info(jm: Any, job: Any) -> dict[str, Any]:
    """Which loss `loss` is, and the raw last window beside it, labelled (the list shows only `loss`)."""
    window, epoch = jm.last_metric(job.id, "train"), jm.last_metric(job.id, "epoch")
    if job.loss is None:
        means = None
    elif epoch is not None and "train.loss" in epoch.values and (window is None or epoch.id > window.id):
        means = f"mean training loss of epoch {epoch.epoch}"
    else:
        means = "smoothed training loss (moving average over about a quarter epoch)"
    raw = window.values.get("train.loss") if window is not None else None
    where = (
        f"raw mean of the last -p window (epoch {window.epoch}, to iteration {window.iteration})"
        if raw is not None
        else None
    )
    return {"loss_is": means, "last_window_loss": raw, "last_window_is": where}


def _readable_times(info: dict[str, Any], now: float) -> dict[str, Any]:
    """`jobs show` for people: epoch seconds as local date-times, plus how long it waited and ran."""
    out = {k: (local_time(v, now) if k in TIME_FIELDS and v is not None else v) for k, v in info.items()}
    if info.get("started_at") and info.get("queued_at"):
        out["waited"] = duration(info["started_at"] - info["queued_at"])
    mark = info.get("stalled")
    if mark:
        what = "no training progress" if mark["kind"] == "stalled" else "supervisor hung (stale heartbeat)"
        out["stalled"] = f"{what} for {duration(mark['for_s'])}, since {local_time(mark['since'], now)}"
    if info.get("eta_end") and info.get("status") == "running":
        out["eta"] = f"{duration(info['eta_end'] - now)} left (ends about {local_time(info['eta_end'], now)})"
    if info.get("started_at"):
        end = info.get("finished_at") or now
        out["ran"] = duration(end - info["started_at"]) + ("" if info.get("finished_at") else " so far")
    return out


TIME_FIELDS = {"created_at", "queued_at", "started_at", "finished_at", "updated_at", "heartbeat",
               "supervisor_started", "engine_started", "cancel_requested", "last_progress_at", "stalled_at", "eta_end"}  # fmt: skip


def _rm(args: argparse.Namespace) -> int:
    jm = _manager(args)
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


def _cancel(args: argparse.Namespace) -> int:
    jm = _manager(args)
    job = jm.cancel(args.job, wait=not args.no_wait)
    state = job.status.value if job.status.terminal else f"{job.status.value}, stop requested"
    print(f"job {job.id}: {state}")
    return 0


def _resume(args: argparse.Namespace) -> int:
    jm = _manager(args)
    job = jm.resume(args.job)
    if args.json:
        print(json.dumps(job.to_dict()))
    elif job.status is Status.COMPLETED:
        print(f"job {job.id}: completed (its engine had already finished the run; nothing to resume)")
    else:
        print(f"job {job.id}: attempt {job.attempt} {job.status.value}")
    return 0


def _logs(args: argparse.Namespace) -> int:
    jm = _manager(args)
    path = jm.log_path(args.job, args.stream)
    if not path.exists():
        job = jm.get_job(args.job)
        note = _not_started(jm, job)
        if note is not None and not (args.follow and job.status is Status.QUEUED):
            raise CliError(note)
        print(note or f"job {job.id} is {job.status.value}: no {args.stream} output yet", file=sys.stderr)
    tail = LogTail(path)
    first = tail.read(partial=True)
    _write(first if args.lines is None else last_lines(first, args.lines))
    while args.follow:
        _write(tail.read())
        job = jm.get_job(args.job)
        if job.status.terminal:
            _write(tail.read(partial=True))  # what was written while the job ended
            note = None if path.exists() else _not_started(jm, job)
            if note is not None:  # e.g. cancelled while it waited in the queue
                raise CliError(note)
            break
        time.sleep(0.5)
    return 0


def _not_started(jm: Any, job: Any) -> Optional[str]:
    """What to say about a job that has no engine output because it never started; None if it did."""
    if job.status is Status.QUEUED:
        return f"job {job.id} has not started: it is queued; {jm.wait_reason(job.id)}"
    if job.status.terminal and job.engine_pid is None:
        why = f": {job.error.splitlines()[0]}" if job.error else ""
        return f"job {job.id} never started: it is {job.status.value}{why}"
    return None


def _write(data: bytes) -> None:
    if data:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def _export(args: argparse.Namespace) -> int:
    jm = _manager(args)
    job = jm.get_job(args.job)
    if args.attempt is not None and not 1 <= args.attempt <= job.attempt:
        tries = f"attempts 1 to {job.attempt}" if job.attempt > 1 else "one attempt"
        raise CliError(
            f"job {job.id} has {tries}, not attempt {args.attempt}: pass --attempt 1…{job.attempt}"
        )
    if args.format == "tensorboard":  # a folder of event files, not rows: rn50tui/tensorboard_export.py
        from rn50tui.tensorboard_export import export_job

        print(export_job(jm, args.job, args.out, args.attempt))
        return 0
    rows = [r.to_dict() for r in jm.metrics(args.job, attempt=args.attempt)]
    if args.output == "-":
        _write_rows(rows, args.format, sys.stdout)
    else:
        with open(args.output, "w", newline="", encoding="utf-8") as out:
            _write_rows(rows, args.format, out)
    return 0


def _write_rows(rows: list[dict[str, Any]], fmt: str, out: Any) -> None:
    if fmt == "json":
        json.dump(rows, out)
        out.write("\n")
    else:
        _write_csv(rows, out)


def _write_csv(rows: list[dict[str, Any]], out: Any) -> None:
    from engine.events import METRICS

    fixed = ["id", "job_id", "attempt", "time", "epoch", "iteration", "phase"]
    seen = {k for r in rows for k in r} - set(fixed)
    names = [m for m in METRICS if m in seen] + sorted(seen - set(METRICS))
    writer = csv.DictWriter(out, fieldnames=fixed + names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def _presets() -> int:
    for p in PRESETS.values():
        print(f"{p.name:<14} {p.kind:<6} {p.description}")
    return 0


def _devices(args: argparse.Namespace, extra: list[str]) -> int:
    from rn50tui import devices

    parser = Parser(prog="rn50tui devices", conflict_handler="resolve",
                                     description="The host's cards, live stats, and which job holds each.")  # fmt: skip
    parser.add_argument("--db", default=getattr(args, "db", None), metavar="PATH", help="job store")
    devices.add_arguments(parser)
    parser.add_argument(
        "--cluster", action="store_true", help="the Slurm cluster's partitions and nodes (sinfo)"
    )
    dargs = parser.parse_args(extra)
    if dargs.cluster:
        return _cluster_devices(dargs)
    return int(devices.run(dargs, _holders(getattr(dargs, "db", None))) or 0)


def _cluster_devices(args: argparse.Namespace) -> int:
    """`rn50tui devices --cluster`: sinfo's partitions and nodes, cards in use and in all."""
    from rn50tui.jobs.slurm import commands

    absent = commands.missing()
    if absent:
        return _fail(absent.replace("--executor slurm", "--cluster"), EXIT_ERROR)
    nodes = commands.sinfo()
    if args.json:
        print(
            json.dumps(
                [{**n.__dict__, "cards_used": n.cards()[0], "cards_total": n.cards()[1]} for n in nodes]
            )
        )
        return 0
    rows = [commands.CLUSTER_COLUMNS] + [n.row() for n in nodes]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    sys.stdout.write("".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in rows))
    return 0


def _holders(db: Optional[str]) -> Optional[dict[tuple[str, int], str]]:
    """Which job holds each card, or None when there is no job store here."""
    from rn50tui.jobs.manager import JobManager

    try:
        jm = JobManager(default_db_path(db), create=False)
    except StoreMissing:
        return None
    jm.reconcile()
    return jm.holders()


if __name__ == "__main__":
    sys.exit(main())
