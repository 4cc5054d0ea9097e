"""Fixtures of the app tests: a real SQLite job store in tmp_path, jobs in any state, a fixed clock,
and a helper that polls the running app for a condition (never sleep-and-hope)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from rn50tui.app.app import Rn50App
from rn50tui.app.clock import FixedClock
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import Job, JobStore
from rn50tui.jobs.local import procs
from rn50tui.jobs.manager import JobManager


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Optional[bool]:
    """Run `async def` tests in a fresh event loop (no async plugin needed: App.run_test is all we use)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(pyfuncitem.obj(**args))
    return True


ROOT = Path(__file__).resolve().parents[2]
ROOT_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
}
NOW = 1_750_000_000.0  # the tests' "now": every ETA and duration renders from it
CAPACITY = {"mlu": 0, "cuda": 0, "cpu": 1}
SIZE = (150, 45)


@pytest.fixture(autouse=True)
def host_cards(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the host has, the app and every supervisor it starts see one CPU slot and no cards."""
    monkeypatch.setenv("RN50TUI_CARDS", "mlu=0,cuda=0,cpu=1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def make_app(db_path: Path, clock: Optional[FixedClock] = None, **kwargs: Any) -> Rn50App:
    return Rn50App(db_path, clock=clock or FixedClock(NOW), capacity=dict(CAPACITY), **kwargs)


def add_job(store: JobStore, status: Status, name: str = "job", **columns: Any) -> Job:
    """A job row in `status` written through the store API; a running one is 'supervised' by this process."""
    argv = columns.pop("argv", ["--data-backend", "synthetic", "-b", "32"])
    job = store.insert_job(name=name, kind=columns.pop("kind", "train"), argv=argv,
                           device=columns.pop("device", "cpu"), cards_requested=columns.pop("cards", 1),
                           workspace=str(store.path.parent / "runs" / "{id}"), preset=columns.pop("preset", None))  # fmt: skip
    if status.active:
        me = os.getpid()
        columns.setdefault("supervisor_pid", me)
        columns.setdefault("supervisor_started", procs.start_time(me))
        columns.setdefault("cards_granted", [0])
        columns.setdefault("started_at", time.time())
        if all((c.device, c.card) != (job.device, 0) for c in store.claims()):  # card 0 may be held already
            with store.transaction():
                store.add_claims(job.id, job.device, [0], time.time())
    with store.transaction():
        store.update_job(job.id, status=status.value, **columns)
    return store.get_job(job.id)


def add_metrics(store: JobStore, job: Job, rows: list[tuple[float, int, int, str, dict[str, float]]]) -> None:
    """(time, epoch, iteration, phase, values) rows, as the supervisor's follower writes them."""
    with store.transaction():
        store.add_metrics(
            [(job.id, job.attempt, t, e, i, phase, json.dumps(v)) for t, e, i, phase, v in rows]
        )


async def wait_for(pilot: Any, condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Let the app run until `condition()` is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or condition}")
        await pilot.pause(0.05)


@pytest.fixture
def cleanup_jobs(db_path: Path):
    """After a test that starts real jobs: stop whatever still runs, so no supervisor outlives it."""
    yield
    if not db_path.exists():
        return
    jm = JobManager(db_path, capacity=dict(CAPACITY))
    try:
        for job in jm.list_jobs([Status.QUEUED, Status.STARTING, Status.RUNNING]):
            with contextlib.suppress(Exception):  # best effort: the job may have ended meanwhile
                jm.cancel(job.id, wait=True, timeout=60)
    finally:
        jm.close()
