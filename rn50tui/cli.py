"""`rn50tui`: the command line of the job manager (no arguments: the terminal app).

    rn50tui submit [--preset P] [--name N] [--cards K] [--device D] [--data DIR] [-- ENGINE FLAGS…]
    rn50tui jobs list [--status S] [--json] | jobs show JOB [--json] | jobs rm JOB [--purge]
    rn50tui cancel JOB | resume JOB | logs JOB [-f] | export JOB --format csv|json|tensorboard | devices | presets
    rn50tui metrics [--listen HOST:PORT] (Prometheus)

Each command is a unit of its own in rn50tui/commands/ (its parser beside its handler); this module only
registers them, parses once and turns errors into one line and an exit status.

Every command takes --db PATH (else $RN50TUI_DB, else ./jobs.db). Exit status 0 on success; otherwise
non-zero with a one-line reason on stderr. This path imports neither torch nor textual, so it starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sqlite3
import sys
from collections.abc import Sequence
from typing import Optional

from rn50tui.commands.common import EXIT_ERROR, EXIT_USAGE, CliError, Parser, db_path, fail
from rn50tui.jobs.core.capacity import BUSY_CHECK_ENV, CARDS_ENV, CapacityError, parse_spec
from rn50tui.jobs.core.errors import JobsError
from rn50tui.jobs.core.schema import full_disk_hint

# `rn50tui --help` lists them in this order: each command's module (imported only when that command runs,
# or for the full parser of `--help`: `submit` alone builds its flags from every executor's options)
UNITS = {"submit": "rn50tui.commands.submit", "jobs": "rn50tui.commands.jobs",
         "sweep": "rn50tui.commands.sweep", "data": "rn50tui.commands.data",
         "cancel": "rn50tui.commands.cancel", "resume": "rn50tui.commands.resume",
         "logs": "rn50tui.commands.logs", "export": "rn50tui.commands.export",
         "devices": "rn50tui.commands.devices", "presets": "rn50tui.commands.presets",
         "serve": "rn50tui.commands.serve", "metrics": "rn50tui.metrics_server"}  # fmt: skip
_GLOBAL_WITH_VALUE = ("--db", "--host-cards")


def command_named(argv: Sequence[str]) -> Optional[str]:
    """The command `argv` runs, when it is plainly one of UNITS (its options skipped); None otherwise
    (no command, a top-level --help, anything unusual): then the full parser reads it."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help", "--"):
            return None
        if arg in _GLOBAL_WITH_VALUE:
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        return arg if arg in UNITS else None
    return None


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The whole CLI's parser; `only`: with that one command (a run of it imports no other command's
    module: `rn50tui jobs list` never builds `submit`'s executor flags)."""
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
    for name, module_name in UNITS.items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(module_name)
        module.add_parser(sub, common)
        if name == "data":
            sub.choices["data"].set_defaults(handler=module.run)
        elif name == "metrics":
            sub.choices["metrics"].set_defaults(handler=lambda args, m=module: m.run(args, db_path(args)))
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command_named(argv))
    args, extra = parser.parse_known_args(argv)
    if extra:
        hint = " (engine flags go after --)" if args.command == "submit" else ""
        parser.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    try:
        if args.host_cards is not None:
            parse_spec(args.host_cards)
            os.environ[CARDS_ENV] = args.host_cards  # the supervisors it starts see it too
        if args.no_busy_check:
            os.environ[BUSY_CHECK_ENV] = "0"  # likewise
        return args.handler(args) if args.command else _open_app(args)
    except CapacityError as exc:
        return fail(str(exc), EXIT_USAGE)
    except (JobsError, CliError) as exc:
        return fail(str(exc), EXIT_ERROR)
    except sqlite3.OperationalError as exc:  # the store opened, but cannot be written now (a full disk)
        return fail(
            f"cannot write the job store {db_path(args)}: {exc}{full_disk_hint(db_path(args))}", EXIT_ERROR
        )
    except BrokenPipeError:  # `rn50tui jobs list | head`
        return 0
    except KeyboardInterrupt:
        return 130


def _open_app(args: argparse.Namespace) -> int:
    from rn50tui.app.app import run_app  # textual is imported only here: the commands stay fast

    return int(run_app(db_path(args)) or 0)
