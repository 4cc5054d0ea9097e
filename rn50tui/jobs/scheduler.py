"""The card-aware queue: claim free cards for queued jobs, then hand each to its executor to start.

Claims are made in one `BEGIN IMMEDIATE` transaction, and `claims` has (device, card) as its primary
key, so two schedulers running at once (two TUIs, a CLI and a finishing supervisor) never grant the same
card twice. Queued jobs are served higher priority first, then in id order (claim() has the rules:
dependencies, sweep limits, backfilling until a waiting job reserves its kind's cards); CPU and MLU queues
move independently. A CPU job takes one CPU slot whatever its process count.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional

from engine.device_kind import DeviceKind
from rn50tui.jobs.core.capacity import host_capacity
from rn50tui.jobs.core.errors import JobsError
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import Job, JobStore
from rn50tui.jobs.executors import Executor, find_executor, get_executor, host_cards
from rn50tui.jobs.view import duration

if TYPE_CHECKING:
    from rn50tui.jobs.policy.busy import Busy


def slots_needed(job: Job) -> int:
    """Cards (MLU/CUDA) or slots (CPU: one per job) a job occupies."""
    return max(1, job.cards_requested) if DeviceKind(job.device).has_cards else 1


RESERVE_ENV = "RN50TUI_RESERVE_AFTER_S"
RESERVE_AFTER_S = 600.0  # a job that waited this long for cards reserves them (no backfilling past it)


def reserve_after() -> float:
    """Seconds a job waits for cards before it reserves them ($RN50TUI_RESERVE_AFTER_S, default 10 min)."""
    try:
        return max(0.0, float(os.environ.get(RESERVE_ENV, RESERVE_AFTER_S)))
    except ValueError:
        return RESERVE_AFTER_S


def queue_order(jobs: Iterable[Any]) -> list[Any]:
    """The order the scheduler serves queued jobs in: higher priority first, then the earlier id."""
    return sorted(jobs, key=lambda j: (-(getattr(j, "priority", 0) or 0), j.id))


def settle_dependencies(store: JobStore, now: float) -> tuple[set[int], list[int]]:
    """Inside the caller's transaction: the queued jobs that still wait for another (their wait reason
    says which), and those cancelled now because one they wait for ended failed or cancelled (or was
    removed). Jobs are visited in id order, so a job's own dependents (always younger) follow it."""
    blocked: set[int] = set()
    cancelled: list[int] = []
    for job_id, _ in sorted(store.all_dependencies().items()):
        deps = store.dependencies(job_id)
        dead = [(d, s) for d, s in deps if s is None or s in (Status.FAILED, Status.CANCELLED)]
        job = store.get_job(job_id)
        executor = find_executor(job.executor)
        in_cluster = executor is not None and executor.submitted(job)
        if dead:
            d, s = dead[0]
            why = f"job {d}, which it waits for, " + ("was removed" if s is None else f"ended {s.value}")
            if in_cluster:  # its cluster holds it: its follower cancels it there and records the end
                if not job.cancel_requested:
                    store.update_job(job_id, cancel_requested=now, note=f"cancelling: {why}")
                continue
            store.transition_locked(job_id, Status.CANCELLED, [Status.QUEUED],
                                    {"error": f"cancelled: {why}", "finished_at": now, "wait_reason": None})  # fmt: skip
            cancelled.append(job_id)
            continue
        pending = [d for d, s in deps if s is not Status.COMPLETED]
        if in_cluster:
            continue  # its cluster holds it until they complete (its own dependency)
        cluster = executor is not None and not executor.host_cards
        if pending and cluster and all(executor.holds_after(store.get_job(d)) for d in pending):  # type: ignore[union-attr]
            continue  # handed to its cluster, which holds it (start() passes the dependency)
        if pending:
            blocked.add(job_id)
            why = "waits for " + ", ".join(f"job {d}" for d in pending)
            if job.wait_reason != why:
                store.update_job(job_id, wait_reason=why)
    return blocked, cancelled


def claim(store: JobStore, capacity: dict[str, int], busy: Optional[Busy] = None,
          now: Optional[float] = None) -> list[Job]:  # fmt: skip
    """Grant free cards to queued jobs in one IMMEDIATE transaction; return the jobs now `starting`.

    The rules, in order: a job waiting for another (`--after`) starts only once every one of them
    completed, and is cancelled when one ends failed or cancelled; a sweep runs at most its parallel
    limit at once; the rest are served higher priority first, then in id order, each taking the lowest
    free cards. A job that does not fit lets smaller ones behind it start (backfilling) until it has waited
    RESERVE_AFTER_S: then it reserves its kind's cards, and nothing behind it takes one until it starts.

    `busy`: cards in use outside rn50tui (rn50tui.jobs.policy.busy), never granted; a job they hold back
    records why in `wait_reason`. `now`: the clock (tests).
    """
    granted: list[Job] = []
    now = time.time() if now is None else now
    busy = busy or {}
    patience = reserve_after()
    with store.transaction():
        blocked, ended = settle_dependencies(store, now)
        limits, active = store.sweep_limits(), store.sweep_active()
        taken = {(c.device, c.card) for c in store.claims()}
        waiting: dict[str, int] = {}  # kind → the job reserving its cards (it waited long enough)
        for job in queue_order(store.list_jobs([Status.QUEUED])):
            if job.id in blocked:
                continue
            limit = limits.get(job.sweep_id) if job.sweep_id is not None else None
            if limit is not None and active.get(job.sweep_id, 0) >= limit:
                why = f"sweep {job.sweep_id} runs at most {limit} at once (--sweep-parallel)"
                if why != job.wait_reason:
                    store.update_job(job.id, wait_reason=why)
                continue
            if not host_cards(job.executor):
                if get_executor(job.executor).submitted(job):
                    continue  # it waits in the cluster's queue already
                # A cluster's own scheduler grants its cards and says when it started: straight to its executor.
                store.transition_locked(job.id, Status.STARTING, [Status.QUEUED], {"wait_reason": None})
                _count(active, job)
                granted.append(job)
                continue
            if job.device in waiting:
                why = f"job {waiting[job.device]} reserves the {job.device} cards it waits for"
                if why != job.wait_reason:
                    store.update_job(job.id, wait_reason=why)
                continue
            total, need = capacity.get(job.device, 0), slots_needed(job)
            if need > total:
                store.transition_locked(job.id, Status.FAILED, None, {
                    "error": f"needs {need} {job.device} card(s); this host has {total}", "finished_at": now})  # fmt: skip
                ended.append(job.id)
                continue
            unclaimed = [i for i in range(total) if (job.device, i) not in taken]
            free = [i for i in unclaimed if (job.device, i) not in busy][:need]
            if len(free) < need:
                held = [busy[(job.device, i)] for i in unclaimed if (job.device, i) in busy]
                why = "; ".join(held) if held and len(unclaimed) >= need else None
                if now - (job.queued_at or now) >= patience:
                    waiting[job.device] = job.id
                    why = (
                        why
                        or f"reserves the {job.device} cards: waited {duration(now - (job.queued_at or now))}"
                    )
                if why != job.wait_reason:
                    store.update_job(job.id, wait_reason=why)
                continue
            store.add_claims(job.id, job.device, free, now)
            taken.update((job.device, card) for card in free)
            store.transition_locked(job.id, Status.STARTING, [Status.QUEUED],
                                     {"cards_granted": free, "started_at": now, "wait_reason": None})  # fmt: skip
            _count(active, job)
            granted.append(job)
    if ended:  # no supervisor will run the user's hook for a job that never started
        from rn50tui.jobs.policy import notify  # its config parser: only when a hook may run

        for job_id in ended:
            notify.fire_from_client(store.get_job(job_id))
    return [store.get_job(j.id) for j in granted]


def _count(active: dict[int, int], job: Job) -> None:
    if job.sweep_id is not None:
        active[job.sweep_id] = active.get(job.sweep_id, 0) + 1


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
        if capacity.get(j.device) and host_cards(j.executor)
    }
    from rn50tui.jobs.policy.busy import CHECKED_KINDS, busy_cards  # its config file: only when sampled

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
    return wait_reasons(store, [job], capacity)[job.id]


def wait_reasons(store: JobStore, jobs: Sequence[Job], capacity: dict[str, int]) -> dict[int, str]:
    """wait_reason() of each of `jobs` (queued ones), the queue and the claims read once for all of them:
    `jobs list` with thousands of queued jobs stays linear."""
    out: dict[int, str] = {}
    orders: Optional[dict[str, list[int]]] = None
    holders: Optional[dict[str, list[int]]] = None
    by_id: dict[int, Job] = {}
    for job in jobs:
        out[job.id] = _recorded_or_capacity(job, capacity)
        if out[job.id]:
            continue
        if orders is None:  # the queue each kind serves, in the scheduler's order (one read)
            held_back = ("waits for", "sweep ")  # jobs ahead that wait for something else do not hold it back
            queued = store.list_jobs([Status.QUEUED])
            by_id = {j.id: j for j in queued}
            orders = {}
            for j in queue_order(q for q in queued if not (q.wait_reason or "").startswith(held_back)):
                orders.setdefault(j.device, []).append(j.id)
            holders = {}
            for c in store.claims():
                holders.setdefault(c.device, [])
                if c.job_id not in holders[c.device]:
                    holders[c.device].append(c.job_id)
        out[job.id] = _behind(job, orders, holders or {}, by_id, capacity)
    return out


def _recorded_or_capacity(job: Job, capacity: dict[str, int]) -> str:
    """The reason that needs no look at the queue ("" when it does)."""
    if not host_cards(job.executor):
        if job.wait_reason:  # e.g. Slurm's pending reason, as its follower last saw it
            return _waits(job.wait_reason)
        return f"it goes to its {job.executor} executor at the next scheduling (any rn50tui command)"
    if job.wait_reason:  # what the last claim recorded: a dependency, a sweep's limit, a busy card
        return _waits(job.wait_reason)
    total, need = capacity.get(job.device, 0), slots_needed(job)
    unit = "slot" if job.device == "cpu" else "card"
    if need > total:
        return f"it needs {need} {job.device} {unit}(s) and this host has {total}"
    return ""


def _behind(job: Job, orders: dict[str, list[int]], holders: dict[str, list[int]], by_id: dict[int, Job],
            capacity: dict[str, int]) -> str:  # fmt: skip
    """Why a queued job that fits this host waits: a job ahead of it, cards held, or nothing."""
    total, need = capacity.get(job.device, 0), slots_needed(job)
    unit = "slot" if job.device == "cpu" else "card"
    ids = orders.get(job.device, [])
    if job.id in ids and ids[0] != job.id:
        first = by_id[ids[0]]
        why = "of higher priority" if first.priority > job.priority else "queued earlier"
        return f"it waits behind job {first.id}, {why}, for the {job.device} {unit}s"
    held = sorted(holders.get(job.device, []))
    if held:
        names = ", ".join(f"job {h}" for h in held)
        return f"it waits for {need} free {job.device} {unit}(s) of {total}: held by {names}"
    return f"{need} {job.device} {unit}(s) are free: it starts at the next scheduling (any rn50tui command)"


def _waits(reason: str) -> str:
    """A recorded wait reason as a sentence: `it waits for job 12`, `it waits: <a cluster's pending reason>`."""
    return f"it {reason}" if reason.startswith(("waits for", "reserves")) else f"it waits: {reason}"
