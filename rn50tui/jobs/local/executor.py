"""The `local` executor: a detached supervisor on this host runs the engine and follows it.

The supervisor (`python -m rn50tui.jobs.local.supervisor`) records its pid and start time on the job, the
engine's pid, start time and run token (see :mod:`rn50tui.jobs.local.procs`); a pid is only trusted together
with its start time. The handle records the host, so a store shared between hosts is reconciled only
by the clients of the host whose processes it names (a row without a handle, written before executors
existed, is this host's: every job then ran locally).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Optional

from rn50tui.jobs.core.records import Job
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import JobStore
from rn50tui.jobs.executors.base import Executor
from rn50tui.jobs.local import liveness

STARTUP_GRACE_S = 120.0  # a `starting` job without a supervisor pid after this long never got one


def _procs():  # psutil: imported by the first process check, not by `jobs list` describing finished jobs
    from rn50tui.jobs.local import procs

    return procs


class LocalExecutor(Executor):
    name = "local"
    title = "this host"

    def __init__(self, host: Optional[str] = None, startup_grace: float = STARTUP_GRACE_S) -> None:
        self.host = host or os.uname().nodename  # socket.gethostname(), without importing socket
        self.startup_grace = startup_grace

    def start(self, job: Job, store: JobStore) -> None:
        store.set_executor_handle(job.id, {"host": self.host})
        from rn50tui.jobs.local.launcher import start_supervisor

        start_supervisor(job.id, store.path, Path(job.workspace))

    def request_stop(self, job: Job, store: JobStore) -> None:
        """Nothing to send: the supervisor reads `cancel_requested` every poll and forwards SIGTERM."""

    def lost(self, job: Job, now: float) -> Optional[str]:
        if not self._here(job):
            return None  # another host's processes: only its own clients can judge them
        if job.supervisor_pid is None:
            since = job.started_at or job.updated_at or now
            if job.status is Status.STARTING and now - since > self.startup_grace:
                return f"its supervisor never started (waited {self.startup_grace:.0f} s)"
            return None
        if liveness.is_alive(job.supervisor_pid, job.supervisor_started):  # /proc: no psutil import
            return None
        return f"its supervisor (pid {job.supervisor_pid}) is gone; the job was not restarted"

    def processes_alive(self, job: Job) -> bool:
        if not self._here(job):
            return True  # cannot see them: keep the cards until that host's clients free them
        if liveness.is_alive(job.engine_pid, job.engine_started):
            return True
        return bool(job.run_token) and bool(_procs().tagged_processes(job.run_token))

    def stop_orphans(self, job: Job, *, force: bool = False) -> bool:
        if force:
            if not job.run_token:
                return False
            _procs().kill_tagged(job.run_token)
            return True
        return _procs().signal_if_alive(job.engine_pid, job.engine_started, signal.SIGTERM)

    def _here(self, job: Job) -> bool:
        host = (job.executor_handle or {}).get("host")
        return host is None or host == self.host
