"""What every CLI command shares: the exit codes, the one-line refusal, the parser class, the store."""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from rn50tui.jobs.core.store import default_db_path

EXIT_ERROR = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A refusal of the CLI itself (not of the job manager): printed as one line, exit 1."""


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (the reason and where to look), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def fail(message: str, code: int) -> int:
    """Say why on stderr, in one line; return the exit status."""
    print(f"rn50tui: error: {message.splitlines()[0] if message else 'failed'}", file=sys.stderr)
    return code


def db_path(args: argparse.Namespace) -> str:
    """--db PATH, else $RN50TUI_DB, else ./jobs.db."""
    return str(default_db_path(getattr(args, "db", None)))


def manager(args: argparse.Namespace, create: bool = False) -> Any:
    """The job manager of the store, reconciled: every client reconciles on start (dead supervisors →
    interrupted, lost cluster jobs re-attached)."""
    from rn50tui.jobs.manager import JobManager

    jm = JobManager(db_path(args), create=create)
    jm.reconcile()
    return jm


def job_or_sweep(text: str) -> tuple[str, int]:
    """`12` → ("job", 12); `sweep:3` → ("sweep", 3); argparse's type for JOB|sweep:ID arguments."""
    kind, _, number = text.rpartition(":")
    if kind not in ("", "sweep") or not number.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is neither a job id nor sweep:ID")
    return (kind or "job", int(number))
