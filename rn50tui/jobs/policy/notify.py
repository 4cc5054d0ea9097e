"""The user's notify hook, as pueue's callback: a command run on every final state and on a stall.

The job's facts travel in environment variables (RN50TUI_JOB_ID, _NAME, _STATUS, _EVENT, _TOP1, _ERROR,
_WORKSPACE, _STALLED_FOR_S); the argv is the user's own (config file or `submit --notify-cmd`), never
built from job text, and no shell runs it. :func:`fire` returns at once: a detached runner
(`python -m rn50tui.jobs.policy.notify`) starts the hook, kills its process group after the timeout and logs
what happened, so a failing or hanging hook never blocks the supervisor.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from rn50tui.jobs.core.store import Job
from rn50tui.jobs.core.userconfig import NotifyConfig, UserConfigError, load_notify, parse_cmd

FINAL = "final"
STALLED = "stalled"
HUNG = "hung"  # a live supervisor (or Slurm follower) with a stale heartbeat, reported by a client


def hook_env(job: Job, event: str, stalled_for: Optional[float] = None) -> dict[str, str]:
    """The job's facts for the hook (values are data, never parsed by a shell)."""
    error = (job.error or "").splitlines()
    return {
        "RN50TUI_EVENT": event,
        "RN50TUI_JOB_ID": str(job.id),
        "RN50TUI_JOB_NAME": job.name,
        "RN50TUI_JOB_STATUS": job.status.value,
        "RN50TUI_JOB_TOP1": "" if job.best_top1 is None else f"{job.best_top1:.3f}",
        "RN50TUI_JOB_ERROR": error[0] if error else "",
        "RN50TUI_JOB_WORKSPACE": job.workspace,
        "RN50TUI_JOB_STALLED_FOR_S": "" if stalled_for is None else f"{stalled_for:.0f}",
    }


def resolve_hook(argv: Sequence[str], cwd: Path) -> list[str]:
    """A job's hook as its supervisor will run it, from another folder: a relative program path made
    absolute from `cwd` (where the user typed it), a bare name found on PATH now; ValueError otherwise."""
    program = argv[0]
    if "/" in program:
        path = (cwd / program).resolve()
        if not path.is_file():
            raise ValueError(f"--notify-cmd {program}: no such file (looked in {cwd})")
        if not os.access(path, os.X_OK):
            raise ValueError(f"--notify-cmd {program} is not executable: chmod +x {path}")
        return [str(path), *argv[1:]]
    if shutil.which(program) is None:
        raise ValueError(f"--notify-cmd {program}: not found on PATH (give its path, e.g. ./{program})")
    return list(argv)


def hook_argv(job: Job, config: NotifyConfig) -> Optional[list[str]]:
    """The job's own --notify-cmd, else the config file's."""
    return list(job.notify_cmd) if job.notify_cmd else config.cmd


def fire(job: Job, event: str, log: Any, stalled_for: Optional[float] = None,
         config: Optional[NotifyConfig] = None) -> Optional[subprocess.Popen]:  # fmt: skip
    """Start the hook for `job` in a detached runner; return at once (None when there is no hook)."""
    try:
        config = config or load_notify()
    except UserConfigError as exc:
        print(f"[notify] {exc}", file=log, flush=True)
        config = NotifyConfig()
    argv = hook_argv(job, config)
    if not argv:
        return None
    env = {**os.environ, **hook_env(job, event, stalled_for)}
    runner = [
        sys.executable,
        "-m",
        "rn50tui.jobs.policy.notify",
        "--timeout",
        str(config.timeout_s),
        "--",
        *argv,
    ]
    try:
        return subprocess.Popen(runner, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)  # fmt: skip
    except OSError as exc:
        print(f"[notify] cannot start the hook runner: {exc}", file=log, flush=True)
        return None


def fire_from_client(job: Job, event: str = FINAL, stalled_for: Optional[float] = None) -> None:
    """What a client found (reconcile's interrupted, a queued job's cancel, a hung supervisor): the hook's
    output goes to the job's supervisor.log, as when its supervisor runs it."""
    path = job.files.log("supervisor")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as log:
            fire(job, event, log, stalled_for)
    except OSError:  # an unwritable workspace must not break the client that noticed the end
        return


def run_hook(argv: list[str], timeout: float) -> int:
    """The runner's work: run `argv`, kill its process group after `timeout` s, say how it went."""
    say = lambda msg: print(f"[notify {datetime.now().isoformat(timespec='seconds')}] {msg}", flush=True)  # noqa: E731
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        say(f"hook {argv[0]!r} could not start: {exc}")
        return 127
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        say(f"hook {argv[0]!r} still running after {timeout:.0f} s: killed")
        return 124
    if rc != 0:
        say(f"hook {argv[0]!r} failed with exit status {rc}")
    return rc


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m rn50tui.jobs.policy.notify", description="run a notify hook, with a timeout"
    )
    p.add_argument("--timeout", type=float, required=True)
    p.add_argument("hook", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    hook = args.hook[1:] if args.hook[:1] == ["--"] else args.hook
    return 0 if run_hook(parse_cmd(hook), args.timeout) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
