"""The card-aware queue: claim free cards for queued jobs, then hand each to its executor to start.

Claims are made in one `BEGIN IMMEDIATE` transaction, and `claims` has (device, card) as its primary
key, so two schedulers running at once (two TUIs, a CLI and a finishing supervisor) never grant the same
card twice. Queued jobs are served in id order per device kind: a job waiting for 4 MLU cards is not
overtaken by a later 1-card MLU job (no starvation), while CPU and MLU queues move independently.
A CPU job takes one CPU slot whatever its process count.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from engine.device_kind import DeviceKind
from rn50tui.jobs.capacity import host_capacity
from rn50tui.jobs.errors import JobsError
from rn50tui.jobs.executors import EXECUTORS, Executor, LocalExecutor, find_executor, get_executor
from rn50tui.jobs.policy.busy import CHECKED_KINDS, Busy, busy_cards
from rn50tui.jobs.states import Status
from rn50tui.jobs.store import Job, JobStore


def slots_needed(job: Job) -> int:
    """Cards (MLU/CUDA) or slots (CPU: one per job) a job occupies."""
    return max(1, job.cards_requested) if DeviceKind(job.device).has_cards else 1


def claim(store: JobStore, capacity: dict[str, int], busy: Optional[Busy] = None) -> list[Job]:
    """Grant free cards to queued jobs in one IMMEDIATE transaction; return the jobs now `starting`.

    `busy`: cards in use outside rn50tui (rn50tui.jobs.policy.busy), never granted; a job they hold back
    records why in `wait_reason`.
    """
    granted: list[Job] = []
    now = time.time()
    busy = busy or {}
    with store.transaction():
        taken = {(c.device, c.card) for c in store.claims()}
        waiting: set[str] = set()  # kinds whose oldest queued job is still waiting: no overtaking
        for job in store.list_jobs([Status.QUEUED]):
            if not EXECUTORS.get(job.executor, LocalExecutor).host_cards:
                if get_executor(job.executor).submitted(job):
                    continue  # it waits in the cluster's queue already
                # A cluster's own scheduler grants its cards and says when it started: straight to its executor.
                store.transition_locked(job.id, Status.STARTING, [Status.QUEUED], {})
                granted.append(job)
                continue
            if job.device in waiting:
                continue
            total, need = capacity.get(job.device, 0), slots_needed(job)
            if need > total:
                store.transition_locked(job.id, Status.FAILED, None, {
                    "error": f"needs {need} {job.device} card(s); this host has {total}", "finished_at": now})  # fmt: skip
                continue
            unclaimed = [i for i in range(total) if (job.device, i) not in taken]
            free = [i for i in unclaimed if (job.device, i) not in busy][:need]
            if len(free) < need:
                waiting.add(job.device)
                held = [busy[(job.device, i)] for i in unclaimed if (job.device, i) in busy]
                why = "; ".join(held) if held and len(unclaimed) >= need else None
                if why != job.wait_reason:
                    store.update_job(job.id, wait_reason=why)
                continue
            store.add_claims(job.id, job.device, free, now)
            taken.update((job.device, card) for card in free)
            store.transition_locked(job.id, Status.STARTING, [Status.QUEUED],
                                     {"cards_granted": free, "started_at": now, "wait_reason": None})  # fmt: skip
            granted.append(job)
    return [store.get_job(j.id) for j in granted]


def schedule(
    store: JobStore,
    capacity: Optional[dict[str, int]] = None,
    executors: Callable[[str], Executor] = get_executor,
) -> list[int]:
    """Claim cards for whatever can start now and have each job's executor start it."""
    if not store.has_queued():
        return []  # the common case: nothing waits, no host detection needed
    if all(_in_a_cluster_queue(job) for job in store.list_jobs([Status.QUEUED])):
        return []  # only jobs pending in Slurm's queue: their followers move them, nothing to detect here
    started = []
    capacity = capacity if capacity is not None else host_capacity()
    for job in claim(store, capacity, _busy(store, capacity)):
        try:
            executors(job.executor).start(job, store)
            started.append(job.id)
        except JobsError as exc:  # a LaunchError, or an executor this version lacks
            fail_start(store, job.id, str(exc))
    return started


def _in_a_cluster_queue(job: Job) -> bool:
    executor = find_executor(job.executor)
    return executor is not None and executor.submitted(job)


def _busy(store: JobStore, capacity: dict[str, int]) -> Busy:
    """Sample the kinds this host's queued jobs wait for (MLU/CUDA only: cnmon/NVML run outside the
    transaction; a cluster's jobs claim none of this host's cards)."""
    kinds = {
        j.device
        for j in store.list_jobs([Status.QUEUED])
        if capacity.get(j.device) and EXECUTORS.get(j.executor, LocalExecutor).host_cards
    }
    if not kinds & set(CHECKED_KINDS):
        return {}
    claimed = {(c.device, c.card) for c in store.claims()}
    return busy_cards(kinds, claimed)


def fail_start(store: JobStore, job_id: int, message: str) -> None:
    """A job its executor could not start: failed, its cards back in the pool."""
    with store.transaction():
        job = store.get_job(job_id)
        if job.status is Status.STARTING and job.supervisor_pid is None:
            store.transition_locked(
                job_id, Status.FAILED, None, {"error": message, "finished_at": time.time()}
            )
            store.release_claims(job_id)


def wait_reason(store: JobStore, job: Job, capacity: dict[str, int]) -> str:
    """Why a queued job has not started yet, in words (the rules of claim())."""
    if not EXECUTORS.get(job.executor, LocalExecutor).host_cards:
        if job.wait_reason:  # e.g. Slurm's pending reason, as its follower last saw it
            return f"it waits: {job.wait_reason}"
        return f"it goes to its {job.executor} executor at the next scheduling (any rn50tui command)"
    if job.wait_reason:  # what the last claim recorded, e.g. a card busy outside rn50tui
        return f"it waits: {job.wait_reason}"
    total, need = capacity.get(job.device, 0), slots_needed(job)
    unit = "slot" if job.device == "cpu" else "card"
    if need > total:
        return f"it needs {need} {job.device} {unit}(s) and this host has {total}"
    ahead = [j for j in store.list_jobs([Status.QUEUED]) if j.device == job.device and j.id < job.id]
    if ahead:
        return f"it waits behind job {ahead[0].id}, queued earlier for the {job.device} {unit}s"
    holders = sorted({c.job_id for c in store.claims() if c.device == job.device})
    if holders:
        held = ", ".join(f"job {h}" for h in holders)
        return f"it waits for {need} free {job.device} {unit}(s) of {total}: held by {held}"
    return f"{need} {job.device} {unit}(s) are free: it starts at the next scheduling (any rn50tui command)"
