from __future__ import annotations

import subprocess
import sys
import time

from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import JobStore
from rn50tui.jobs.scheduler import claim, schedule

from .conftest import cli_env


def _queue(store: JobStore, device: str = "mlu", cards: int = 1, n: int = 1) -> list[int]:
    return [store.insert_job(name=f"{device}{cards}", kind="train", argv=[], device=device, cards_requested=cards,
                             workspace=str(store.path.parent / "runs" / "{id}")).id for _ in range(n)]  # fmt: skip


def test_claims_lowest_free_cards_in_queue_order(store):
    a, b, c = _queue(store, cards=2, n=3)
    started = claim(store, {"mlu": 4, "cpu": 1})
    assert [j.id for j in started] == [a, b]
    assert [j.cards_granted for j in started] == [[0, 1], [2, 3]]
    assert store.get_job(c).status is Status.QUEUED
    assert {(cl.device, cl.card): cl.job_id for cl in store.claims()} == {
        ("mlu", 0): a, ("mlu", 1): a, ("mlu", 2): b, ("mlu", 3): b}  # fmt: skip


def test_a_job_that_waited_long_is_not_overtaken_on_its_kind_but_other_kinds_move(store):
    big = _queue(store, cards=4)[0]
    small = _queue(store, cards=1)[0]
    cpu = _queue(store, device="cpu", cards=2)[0]  # a 2-process CPU job takes one CPU slot
    with store.transaction():
        store.add_claims(big, "mlu", [0], 0.0)  # a card busy: the 4-card job waits
    # past the reservation wait (10 min): the big job reserves the mlu cards (tests/jobs/test_queue.py
    # has the backfilling before it)
    started = claim(store, {"mlu": 4, "cpu": 1}, now=time.time() + 3600)
    assert [j.id for j in started] == [cpu]
    assert store.get_job(cpu).cards_granted == [0]
    assert store.get_job(small).status is Status.QUEUED


def test_a_job_wanting_more_cards_than_the_host_has_fails_instead_of_blocking(store):
    job = _queue(store, cards=8)[0]
    nxt = _queue(store, cards=1)[0]
    assert [j.id for j in claim(store, {"mlu": 4})] == [nxt]
    assert store.get_job(job).status is Status.FAILED
    assert "needs 8 mlu card(s); this host has 4" in store.get_job(job).error


def test_schedule_hands_each_claimed_job_to_its_executor_and_fails_a_launch_error(store):
    from rn50tui.jobs.core.errors import LaunchError
    from rn50tui.jobs.executors import LocalExecutor

    ok, bad = _queue(store, n=2)
    calls = []

    class Recording(LocalExecutor):  # the local executor, but its supervisor is not really started
        def start(self, job, store):
            calls.append((job.executor, job.id, job.status))
            if job.id == bad:
                raise LaunchError("no python")

    assert schedule(store, {"mlu": 2}, executors=lambda name: Recording()) == [ok]
    assert calls == [("local", ok, Status.STARTING), ("local", bad, Status.STARTING)]
    assert store.get_job(bad).status is Status.FAILED and store.get_job(bad).error == "no python"
    assert [c.job_id for c in store.claims()] == [ok]


_RACER = """
import sys, time
from rn50tui.jobs.scheduler import claim
from rn50tui.jobs.core.store import JobStore
store = JobStore(sys.argv[1])
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
for _ in range(20):
    claim(store, {"mlu": 3})
"""


def test_concurrent_schedulers_never_grant_a_card_twice(store):
    jobs = _queue(store, n=12)
    go = time.time() + 1.5
    racers = [subprocess.Popen([sys.executable, "-c", _RACER, str(store.path), str(go)], env=cli_env(),
                               stderr=subprocess.PIPE, text=True) for _ in range(4)]  # fmt: skip
    errors = [r.communicate(timeout=60)[1] for r in racers]
    assert [r.returncode for r in racers] == [0, 0, 0, 0], errors
    granted = [store.get_job(j) for j in jobs if store.get_job(j).status is Status.STARTING]
    assert len(granted) == 3
    assert sorted(c for j in granted for c in j.cards_granted) == [0, 1, 2]


def test_jobs_pending_in_slurm_alone_need_no_detection_of_this_hosts_cards(store, monkeypatch):
    from rn50tui.jobs import executors as executors_registry
    from rn50tui.jobs import scheduler

    job = store.insert_job(name="pending", kind="train", argv=[], device="mlu", cards_requested=8,
                           workspace=str(store.path.parent / "runs" / "{id}"), executor="slurm")  # fmt: skip
    store.set_executor_handle(job.id, {"slurm_job_id": "12"})
    detections = []
    monkeypatch.setattr(scheduler, "host_capacity", lambda: detections.append(1) or {"mlu": 0, "cpu": 1})
    assert schedule(store) == [] and detections == []  # cnmon / NVML are not run for it
    local = _queue(store, device="cpu")[0]
    calls = []

    class Recording(executors_registry.LocalExecutor):
        def start(self, job, store):
            calls.append(job.id)

    executors = lambda name: Recording() if name == "local" else scheduler.get_executor(name)  # noqa: E731
    assert schedule(store, executors=executors) == [local] and detections == [1]
    assert calls == [local] and store.get_job(job.id).status is Status.QUEUED
