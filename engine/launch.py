"""`python -m engine.launch [torchrun flags] -m engine.train …`: torchrun, with the engine's exit codes.

torchrun answers every rank's non-zero exit, and its own SIGTERM, with exit status 1 and a 40-line
`ChildFailedError` (or `SignalException`) traceback. A run stopped on a signal after its checkpoint exits
75 as one process; through this wrapper it exits 75 on many cards too, a failed run exits with the rank's
code and one line, and no traceback is printed. Flags and behaviour are torchrun's own
(`torch.distributed.run`), so this is a drop-in for `torchrun` in any command line.

The outcome is read from the run's own report when there is one (its last `run_end` record: rank 0
writes it before it exits), else from the ranks' exit codes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from engine.events import EXIT_OK, EXIT_STOPPED, RunEnd, iter_records

EXIT_FAILED = 1


def report_of(script_args: Sequence[str]) -> Optional[Path]:
    """The raport.json an `engine.train` command line writes (None when the flags cannot say)."""
    from engine.config import build_parser

    try:
        ns, _ = build_parser().parse_known_args(list(script_args))
    except SystemExit:  # flags the engine refuses: it will say so itself
        return None
    report = Path(ns.raport_file)
    return report if report.is_absolute() else Path(ns.workspace) / report


def last_run_end(report: Optional[Path], since: int) -> Optional[RunEnd]:
    """The status of the last `run_end` written past byte `since` of `report` (this launch's run)."""
    if report is None or not report.is_file() or report.stat().st_size <= since:
        return None
    status = None
    for record in iter_records(report):
        if record.event == "run_end":
            status = record.data.get("status")
    try:
        return RunEnd(status) if status is not None else None
    except ValueError:
        return None


def exit_code(ended: Optional[RunEnd], rank_codes: Sequence[int]) -> int:
    """One status for the whole launch: the report's verdict, else the ranks' codes (75 only if all are)."""
    if ended is RunEnd.STOPPED:
        return EXIT_STOPPED
    if ended is RunEnd.COMPLETED:
        return EXIT_OK
    if ended is not None:
        return EXIT_FAILED
    if rank_codes and all(code == EXIT_STOPPED for code in rank_codes):
        return EXIT_STOPPED
    return next((code for code in rank_codes if 0 < code < 128), EXIT_FAILED)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    report = (
        report_of(args.training_script_args)
        if args.module and args.training_script == "engine.train"
        else None
    )
    since = report.stat().st_size if report is not None and report.is_file() else 0
    try:
        run(args)
    except ChildFailedError as exc:
        failures = sorted(exc.failures.items())
        code = exit_code(last_run_end(report, since), [f.exitcode for _, f in failures])
        if code not in (EXIT_OK, EXIT_STOPPED):
            rank, first = exc.get_first_failure()
            how = (
                f"was killed by signal {-first.exitcode}"
                if first.exitcode < 0
                else f"exited with code {first.exitcode}"
            )
            print(f"error: rank {rank} {how} first ({len(failures)} of {args.nproc_per_node} ranks failed; "
                  "their output is above)", file=sys.stderr)  # fmt: skip
        return code
    except SignalException as exc:  # torchrun passed the signal on to the ranks and waited for them
        ended = last_run_end(report, since)
        if ended is None:
            print(
                f"error: stopped by {exc.sigval.name} before the run reported how it ended", file=sys.stderr
            )
            return 128 + int(exc.sigval)
        return exit_code(ended, [])
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
