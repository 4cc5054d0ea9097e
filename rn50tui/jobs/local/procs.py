"""Process identity, liveness and clean-up for supervised jobs.

A pid alone names nothing for long: pids are reused. A process is identified by (pid, start time); a
zombie counts as gone. Every process of a job carries RUN_TOKEN_ENV in its environment (torchrun passes
its environment to the ranks, the ranks to their data-loader workers), so the processes of a job can be
found even when they left its process group (torchrun starts each rank in a new session).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Iterable
from typing import Callable, Optional

import psutil

from rn50tui.jobs.local import liveness

RUN_TOKEN_ENV = "RN50TUI_RUN_TOKEN"
START_TIME_TOLERANCE_S = liveness.START_TIME_TOLERANCE_S
_PR_SET_CHILD_SUBREAPER = 36


start_time = liveness.start_time  # /proc on Linux (no psutil needed), psutil elsewhere
is_alive = liveness.is_alive


def signal_if_alive(pid: Optional[int], started: Optional[float], sig: int) -> bool:
    """Send `sig` to the process only if it is still the one we started; True if sent."""
    if not is_alive(pid, started):
        return False
    try:
        os.kill(pid, sig)  # type: ignore[arg-type]
    except ProcessLookupError:
        return False
    return True


def tagged_processes(token: str) -> list[psutil.Process]:
    """Every live process (not a zombie) whose environment carries this run token."""
    found = []
    me = os.getpid()
    uid = os.getuid()
    for proc in psutil.process_iter(["uids"]):
        try:
            if proc.pid == me or (uid != 0 and proc.info["uids"] and proc.info["uids"].real != uid):
                continue  # only our own processes can carry the token (and have a readable environ)
            if proc.environ().get(RUN_TOKEN_ENV) != token or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def kill_processes(procs: Iterable[psutil.Process], sig: int = signal.SIGKILL) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
            proc.send_signal(sig)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll `condition` until it holds or `timeout` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def kill_tagged(token: str, timeout: float = 10.0) -> list[int]:
    """SIGKILL every process of the run and wait until none is left; return the pids still alive."""
    procs = tagged_processes(token)
    kill_processes(procs)
    wait_until(lambda: not tagged_processes(token), timeout)
    return [p.pid for p in tagged_processes(token)]


def become_subreaper() -> bool:
    """Adopt orphaned descendants (a rank whose torchrun died) so they are reaped, not left as zombies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_adopted(keep: Optional[int] = None) -> None:
    """Collect exited children other than `keep` (the engine, which Popen.wait collects itself)."""
    try:
        children = psutil.Process().children()
    except psutil.Error:
        return
    for child in children:
        if child.pid == keep:
            continue
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(child.pid, os.WNOHANG)
