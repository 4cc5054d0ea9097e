"""`rn50tui submit`: check and queue a job; the chosen executor's options are flags from its declaration."""

from __future__ import annotations

import argparse
import json
from typing import Any

from engine.device_kind import NAMES as DEVICE_NAMES
from rn50tui.commands.common import CliError, fail, manager
from rn50tui.jobs.presets import PRESETS


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `submit` on the CLI's subparsers."""
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
    q = s.add_argument_group("queue", "dependencies, priority and sweeps")
    q.add_argument("--after", metavar="JOB[,JOB…]",
                   help="wait until each of these jobs completed; if one fails or is cancelled, this one is cancelled")  # fmt: skip
    q.add_argument("--priority", type=int, default=0, metavar="N",
                   help="higher first among the queued jobs that fit (default 0; may be negative)")  # fmt: skip
    q.add_argument("--sweep", action="append", metavar="KEY=V1,V2",
                   help="queue one job per combination of values (lr → --lr, wd → --weight-decay, or any engine "
                   "--flag=V1,V2); repeatable: the product")  # fmt: skip
    q.add_argument("--sweep-parallel", type=int, metavar="N", help="run at most N jobs of the sweep at once")
    q.add_argument("-y", "--yes", action="store_true", help="allow a sweep of more than 256 jobs")
    _add_kind_options(s)
    _add_executor_options(s)
    s.add_argument(
        "engine_flags", nargs="*", metavar="-- ENGINE FLAGS", help="flags for python -m engine.train"
    )
    s.set_defaults(handler=run)


KIND_FLAGS = {"prepare": ("target", "jobs", "resize"), "export": ("format", "weights", "half")}
FLAG_OF = {"target": "--to", "jobs": "-j", "resize": "--resize", "format": "--format", "weights": "--weights",
           "half": "--half"}  # fmt: skip


def _add_kind_options(s: argparse.ArgumentParser) -> None:
    """--kind and the flags of the jobs that are not training runs (rn50tui/jobs/kinds.py)."""
    k = s.add_argument_group("kind", "jobs that are not training runs, under the same supervisor (cancel, "
                             "resume, logs)")  # fmt: skip
    k.add_argument("--kind", choices=("train", "prepare", "export"), default="train",
                   help="train (default: python -m engine.train, or the preset's kind); prepare: ImageNet's "
                   "downloads --from SRC into the recipe's layout --to DEST (as `rn50tui data prepare`); "
                   "export: the best checkpoint of the completed job --from JOB, checked, into its workspace's "
                   "export/ folder")  # fmt: skip
    k.add_argument("--from", dest="source", metavar="SRC|JOB", help="prepare: the download; export: the job")
    k.add_argument("--to", dest="target", metavar="DEST", help="prepare: the folder to write")
    k.add_argument(
        "-j", "--jobs", type=int, metavar="N", help="prepare: worker processes (default: the cores)"
    )
    k.add_argument("--resize", type=int, metavar="N", help="prepare: shorter side at most N pixels")
    k.add_argument("--format", choices=("onnx", "pt2"), help="export: onnx (default) or pt2")
    k.add_argument("--weights", choices=("best", "model", "ema"),
                   help="export: the trained weights, the EMA's, or the better of them (default best)")  # fmt: skip
    k.add_argument("--half", action="store_true", help="export: fp16 (checked against fp32)")


def _kind_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of a prepare or export request; CliError for flags of another kind."""
    given = {n: getattr(args, n) for n in FLAG_OF if getattr(args, n) not in (None, False)}
    mine = KIND_FLAGS.get(args.kind, ())
    for name in given:
        if name not in mine:
            owner = next(kind for kind, names in KIND_FLAGS.items() if name in names)
            raise CliError(f"{FLAG_OF[name]} only applies with --kind {owner}")
    if args.kind == "train":
        if args.source is not None:
            raise CliError("--from only applies with --kind prepare or --kind export")
        return {}
    wrong = [flag for flag, on in (("--preset", args.preset), ("--checkpoint", args.checkpoint),
                                   ("--sweep", args.sweep), ("--cards", args.cards), ("--device", args.device),
                                   ("--data", args.data and args.kind == "prepare"),
                                   ("engine flags", args.engine_flags)) if on]  # fmt: skip
    if wrong:
        raise CliError(f"{', '.join(wrong)}: not for a {args.kind} job (see `rn50tui submit --help`)")
    options: dict[str, Any] = {"source": args.source, **given}  # target: --to
    if args.kind == "export" and args.data:
        options["data"] = args.data
    return options


def _add_executor_options(s: argparse.ArgumentParser) -> None:
    """--executor, and a group of flags per executor from its declared options (rn50tui/jobs/core/options.py)."""
    from rn50tui.jobs.executors import DEFAULT_EXECUTOR, EXECUTORS

    s.add_argument("--executor", choices=tuple(EXECUTORS), default=DEFAULT_EXECUTOR,
                   help="where it runs: " + "; ".join(f"{n}: {e.title}" for n, e in EXECUTORS.items())
                   + f" (default {DEFAULT_EXECUTOR})")  # fmt: skip
    for name, executor in EXECUTORS.items():
        if not executor.options:
            continue
        g = s.add_argument_group(
            name, f"with --executor {name}" + (f"; {executor.options_note}" if executor.options_note else "")
        )
        for o in executor.options:
            default = f" (default {o.default})" if o.default is not None else ""
            g.add_argument(
                o.flag, dest=o.name, type=o.type, metavar=o.metavar, default=None, help=o.help + default
            )


def _executor_options(args: argparse.Namespace) -> dict[str, Any]:
    """The chosen executor's options as given ({name: value}); CliError for another executor's flags."""
    from rn50tui.jobs.executors import EXECUTORS

    chosen = EXECUTORS[args.executor]
    other = [
        o for n, e in EXECUTORS.items() if n != args.executor for o in e.options if o not in chosen.options
    ]
    given = [o.flag for o in other if getattr(args, o.name, None) is not None]
    if given:
        owners = sorted({n for n, e in EXECUTORS.items() for o in e.options if o.flag in given})
        raise CliError(f"{', '.join(given)} only apply with --executor {'/'.join(owners)}")
    return {o.name: getattr(args, o.name) for o in chosen.options}


def run(args: argparse.Namespace) -> int:
    try:
        options = _executor_options(args)
        kind_options = _kind_options(args)
    except CliError as exc:  # a usage error, as argparse's own
        return fail(str(exc), 2)
    after = parse_after(args.after)  # refused before the store is opened
    if args.sweep_parallel is not None and not args.sweep:
        raise CliError("--sweep-parallel only applies with --sweep")
    jm = manager(args, create=True)
    from rn50tui.jobs.core.userconfig import parse_cmd
    from rn50tui.jobs.submission import Request

    try:
        hook = parse_cmd(args.notify_cmd) if args.notify_cmd is not None else None
    except ValueError as exc:
        raise CliError(f"--notify-cmd: {exc}") from None
    if args.kind != "train":  # a prepare or an export (rn50tui/jobs/kinds.py)
        request = Request(name=args.name, executor=args.executor, kind=args.kind, kind_options=kind_options)
    else:
        request = Request(args.preset, args.name, args.cards, args.device, args.data, args.checkpoint,
                          tuple(args.engine_flags), executor=args.executor)  # fmt: skip
    queue = {"notify_cmd": hook, "on_stall": args.on_stall, "after": after, "priority": args.priority}
    if args.sweep:
        sweep_id, jobs = jm.submit_sweep(request, args.sweep, parallel=args.sweep_parallel, yes=args.yes,
                                         **queue, **{args.executor: options or None})  # fmt: skip
        if args.json:
            print(json.dumps({"sweep": sweep_id, "jobs": [j.to_dict() for j in jobs]}))
        else:
            print(f"sweep {sweep_id}: jobs {', '.join(str(j.id) for j in jobs)}")
        return 0
    job = jm.submit(request, **queue, **{args.executor: options or None})
    print(json.dumps(job.to_dict()) if args.json else job.id)
    return 0


def parse_after(text: str | None) -> list[int]:
    """`12,13` → [12, 13]; CliError naming --after for anything else."""
    if not text:
        return []
    ids = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():
            raise CliError(f"--after: {part!r} is not a job id (write JOB[,JOB…], e.g. --after 12,13)")
        ids.append(int(part))
    return ids
