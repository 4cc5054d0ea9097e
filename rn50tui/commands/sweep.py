"""`rn50tui sweep show ID`: one table of a sweep's jobs, its values, status, best top-1 and rate."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rn50tui.commands.common import Parser, manager

COLUMNS = ("ID", "VALUES", "STATUS", "BEST TOP1", "TIME TO BEST", "IMG/S")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `sweep` and its action (show) on the CLI's subparsers."""
    s = sub.add_parser("sweep", parents=[common], help="show a sweep's jobs (queued with submit --sweep)",
                       description="The jobs of a sweep (rn50tui submit --sweep KEY=V1,V2 …).")  # fmt: skip
    ssub = s.add_subparsers(dest="sweep_command", metavar="COMMAND", required=True, parser_class=Parser)
    sh = ssub.add_parser("show", parents=[common], help="one table: values, status, best top-1, img/s",
                         description="One line per job of the sweep, the best top-1 first.")  # fmt: skip
    sh.add_argument("sweep", type=int, metavar="ID", help="sweep id")
    sh.add_argument("--json", action="store_true", help="one JSON object")
    sh.set_defaults(handler=run_show)


def rows_by_best(jobs: list[Any]) -> list[Any]:
    """The sweep's jobs, the best top-1 first; jobs without one last, in id order."""
    return sorted(jobs, key=lambda j: (j.best_top1 is None, -(j.best_top1 or 0.0), j.id))


def run_show(args: argparse.Namespace) -> int:
    from rn50tui.time_to_accuracy import history_of
    from rn50tui.timefmt import duration

    jm = manager(args)
    sweep = jm.sweep(args.sweep)
    jobs = rows_by_best(jm.job_summaries(sweep=args.sweep))
    if args.json:
        print(json.dumps({**sweep, "jobs": [j.to_dict() for j in jobs]}))
        return 0
    limit = f", at most {sweep['parallel']} at once" if sweep["parallel"] else ""
    print(f"sweep {sweep['id']}: {sweep['name']} ({len(jobs)} jobs{limit})")
    rows = [COLUMNS]
    for j in jobs:
        values = " ".join(f"{k}={v}" for k, v in (j.sweep_values or {}).items()) or "-"
        history = history_of(j.time_to_best) or []
        to_best = duration(history[-1]["train_seconds"]) if history else "-"
        rows.append((str(j.id), values, j.status.value, "-" if j.best_top1 is None else f"{j.best_top1:.2f}",
                     to_best, "-" if j.ips is None else f"{j.ips:.1f}"))  # fmt: skip
    widths = [max(map(len, column)) for column in zip(*rows)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    sys.stdout.write("".join(line.format(*r).rstrip() + "\n" for r in rows))
    return 0
