"""Is a process still the one that started at a given time? The question every client asks of each active
local job's supervisor (reconcile), answered on Linux from /proc without importing psutil (~30 ms of
`rn50tui jobs list`'s start-up); elsewhere through psutil. Same numbers as psutil's create_time()."""

from __future__ import annotations

import os
import sys
from functools import cache
from typing import Optional

START_TIME_TOLERANCE_S = 0.05  # start times come from clock ticks: equal for the same process


@cache
def _boot_time() -> float:
    with open("/proc/stat", "rb") as fh:
        for line in fh:
            if line.startswith(b"btime"):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def start_time(pid: int) -> Optional[float]:
    """The process's start time (seconds since the epoch), None if there is no such live process (a zombie
    has exited)."""
    if not sys.platform.startswith("linux"):
        return _psutil_start_time(pid)
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as fh:
            data = fh.read()
        fields = data[data.rindex(b")") + 2 :].split()  # after "pid (comm) ": state is field 3
        if fields[0] == b"Z":
            return None
        return int(fields[19]) / os.sysconf("SC_CLK_TCK") + _boot_time()  # field 22: starttime in ticks
    except (FileNotFoundError, ProcessLookupError):
        return None
    except (OSError, ValueError, IndexError):
        return _psutil_start_time(pid)


def _psutil_start_time(pid: int) -> Optional[float]:
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def is_alive(pid: Optional[int], started: Optional[float]) -> bool:
    """True if `pid` is still the process that started at `started` (and has not exited)."""
    if not pid or started is None:
        return False
    now_started = start_time(pid)
    return now_started is not None and abs(now_started - started) <= START_TIME_TOLERANCE_S
