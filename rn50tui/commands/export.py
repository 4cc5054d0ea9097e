"""`rn50tui export JOB --format csv|json|tensorboard`: a job's metrics at full resolution."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from rn50tui.commands.common import CliError, manager


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `export` on the CLI's subparsers."""
    ex = sub.add_parser("export", parents=[common], help="write a job's full-resolution metrics as CSV or JSON",
                        description="Every metric record of a job, one row per engine log line. A finished job "
                        "whose metrics `jobs vacuum` thinned for the charts is read from its raport.json, at full "
                        "resolution (ids empty); stderr says so.")  # fmt: skip
    ex.add_argument("job", type=int, help="job id")
    ex.add_argument("--format", choices=("csv", "json", "tensorboard"), default="csv",
                    help="output format (default csv); tensorboard: event files in --out DIR/<id>-<name>/")  # fmt: skip
    ex.add_argument("--out", metavar="DIR", default="runs", help="with --format tensorboard: the folder of runs (default runs)")  # fmt: skip
    ex.add_argument("--attempt", type=int, default=None, help="only this attempt")
    ex.add_argument("-o", "--output", default="-", metavar="FILE", help="file to write (default stdout)")
    ex.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    jm = manager(args)
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
    metrics, note = jm.full_metrics(args.job, attempt=args.attempt)  # thinned in the store: from raport.json
    if note is not None:
        print(f"rn50tui: job {args.job}: {note}", file=sys.stderr)
    rows = [r.to_dict() for r in metrics]
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
