from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import JobStore
from rn50tui.jobs.local import procs
from rn50tui.jobs.local.executor import STARTUP_GRACE_S
from rn50tui.jobs.reconcile import reconcile

from .conftest import occupy


def _running(store: JobStore, pid: int | None, started: float | None, **kw) -> int:
    job = occupy(store)
    store.update_job(job.id, supervisor_pid=pid, supervisor_started=started, **kw)
    return job.id


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)


def test_a_live_supervisor_is_left_alone(store):
    job = occupy(store)
    assert not reconcile(store).changed
    assert store.get_job(job.id).status is Status.RUNNING


def test_a_dead_supervisor_means_interrupted_and_free_cards(store):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    started = procs.start_time(dead.pid)
    dead.wait()
    job_id = _running(store, dead.pid, started)
    scheduled = []
    report = reconcile(store, schedule=scheduled.append)
    job = store.get_job(job_id)
    assert report.interrupted == [job_id] and report.freed == [job_id] and scheduled == [store]
    assert job.status is Status.INTERRUPTED and f"supervisor (pid {dead.pid}) is gone" in job.error
    assert store.claims() == []


def test_a_reused_pid_is_not_mistaken_for_the_supervisor(store):
    me = os.getpid()
    job_id = _running(store, me, procs.start_time(me) - 100.0)  # same pid, another process's start time
    assert reconcile(store).interrupted == [job_id]


def test_a_starting_job_without_a_supervisor_gets_a_grace_period(store):
    job_id = _running(store, None, None, status="starting")
    assert not reconcile(store).changed
    assert reconcile(store, now=time.time() + STARTUP_GRACE_S + 1).interrupted == [job_id]
    assert "never started" in store.get_job(job_id).error


def _checkpointing_sleeper() -> subprocess.Popen:
    """Like an engine: on SIGTERM it takes a moment (its checkpoint) before it dies of the signal."""
    code = ("import os, signal, sys, time\n"
            "def stop(*_):\n"
            "    time.sleep(1.0)\n"
            "    signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "signal.signal(signal.SIGTERM, stop)\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout.readline().strip() == "ready"  # the handler is in place before anyone signals
    return proc


def test_an_orphaned_engine_gets_one_sigterm_and_keeps_its_cards_until_gone(store):
    engine = _checkpointing_sleeper()
    job_id = _running(store, 999_999, 1.0, engine_pid=engine.pid, engine_started=procs.start_time(engine.pid))
    report = reconcile(store)
    assert report.signalled == [job_id] and report.freed == []
    assert engine.wait(10) == -signal.SIGTERM
    second = reconcile(store)
    assert second.signalled == [] and second.freed == [job_id]
    assert store.claims() == []
