"""Build and start the processes of a job: its detached supervisor, and the engine the supervisor runs.

The engine's argv is always a list (never a shell line): `python -m engine.train` for one process,
`python -m engine.launch --standalone --nproc-per-node K -m engine.train` for K (the same interpreter's
torchrun, never one found on PATH, wrapped so a stop exits 75 and a failure 1 without a traceback). The granted cards go to MLU_VISIBLE_DEVICES or
CUDA_VISIBLE_DEVICES; the engine starts in a new session, so its process group is its own.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Optional

from engine.device_kind import CARD_KINDS, DeviceKind
from rn50tui import child_env
from rn50tui.jobs.core.errors import LaunchError
from rn50tui.jobs.core.store import Job
from rn50tui.jobs.core.workspace import RAPORT_FILE, Workspace
from rn50tui.jobs.kinds import command as work_command
from rn50tui.jobs.kinds import is_work
from rn50tui.jobs.local.procs import RUN_TOKEN_ENV

SUPERVISOR_START_TIMEOUT_S = 60.0


def new_run_token(job: Job) -> str:
    """A tag for every process of one attempt (see procs.RUN_TOKEN_ENV)."""
    return f"{job.id}.{job.attempt}.{secrets.token_hex(6)}"


def without_flag(argv: Sequence[str], flag: str) -> list[str]:
    """argv with every `flag VALUE` / `flag=VALUE` removed."""
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == flag:
            skip = True
        elif not token.startswith(flag + "="):
            out.append(token)
    return out


def resume_checkpoint(job: Job) -> Optional[str]:
    """The checkpoint a later attempt of a training job continues from: the last one the engine reported
    (it honours --checkpoint-filename), else the workspace's rolling checkpoint; None if there is none."""
    if job.attempt <= 1 or job.kind != "train":
        return None
    for candidate in (job.last_checkpoint, str(job.files.checkpoint)):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def engine_command(job: Job, resume_from: Optional[str] = None, python: str = sys.executable) -> list[str]:
    """The argv of one attempt of `job` (a prepare or an export: rn50tui/jobs/kinds.py)."""
    if is_work(job.kind):
        return work_command(job, python)
    nproc = max(1, job.cards_requested)
    if nproc == 1:
        head = [python, "-m", "engine.train"]
    else:
        head = [python, "-m", "engine.launch", "--standalone", "--nnodes", "1",
                "--nproc-per-node", str(nproc), "-m", "engine.train"]  # fmt: skip
    return head + engine_flags(job, resume_from)


def engine_flags(job: Job, resume_from: Optional[str] = None) -> list[str]:
    """The engine's flags for one attempt of `job` (any executor): its own, the resume, the workspace."""
    flags = list(job.argv)
    if resume_from:  # a checkpoint that already holds the whole schedule completes the run, untrained
        flags = without_flag(without_flag(flags, "--resume"), "--resume-finished")
        flags += ["--resume", resume_from, "--resume-finished", "complete"]
    return flags + ["--workspace", job.workspace, "--raport-file", RAPORT_FILE]


def engine_env(job: Job, token: str, base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The engine's environment: the granted cards visible, the run token, this checkout importable."""
    env = dict(os.environ if base is None else base)
    cards = ",".join(str(c) for c in job.cards_granted or [])
    for kind in CARD_KINDS:
        if job.device == kind:
            env[kind.visible_env] = cards
        elif job.device == DeviceKind.CPU:
            env[kind.visible_env] = ""  # a CPU job must not grab a card that another job was granted
    env[RUN_TOKEN_ENV] = token
    env["RN50TUI_JOB_ID"] = str(job.id)
    env["PYTHONUNBUFFERED"] = "1"  # stdout.log follows the run live
    return child_env(env)


def start_engine(
    argv: list[str], env: dict[str, str], cwd: Path, stdout: IO[bytes], stderr: IO[bytes]
) -> subprocess.Popen:
    """Start the engine in a new session (its own process group), output to the given files."""
    try:
        return subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                start_new_session=True, close_fds=True)  # fmt: skip
    except OSError as exc:
        raise LaunchError(f"cannot start the engine ({argv[0]}): {exc}") from exc


def supervisor_command(job_id: int, db_path: Path, python: str = sys.executable) -> list[str]:
    return [python, "-m", "rn50tui.jobs.local.supervisor", str(job_id), "--db", str(db_path), "--detach"]


def start_supervisor(job_id: int, db_path: Path, workspace: Path) -> None:
    """Start the job's supervisor detached (new session, reparented to init) and wait for its handshake.

    The supervisor forks itself away; the process started here exits as soon as the detached one has
    recorded its pid in the store, so the caller never owns (nor leaves a zombie of) the supervisor.
    """
    workspace.mkdir(parents=True, exist_ok=True)
    env = child_env(os.environ)
    log_path = Workspace(workspace).log("supervisor")
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.Popen(supervisor_command(job_id, db_path), env=env, cwd=workspace,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, close_fds=True)  # fmt: skip
        except OSError as exc:
            raise LaunchError(f"cannot start the supervisor of job {job_id}: {exc}") from exc
    try:
        code = proc.wait(SUPERVISOR_START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise LaunchError(
            f"the supervisor of job {job_id} did not start in {SUPERVISOR_START_TIMEOUT_S:.0f} s"
        ) from None
    if code != 0:
        raise LaunchError(f"the supervisor of job {job_id} failed to start (exit {code}; see {log_path})")
