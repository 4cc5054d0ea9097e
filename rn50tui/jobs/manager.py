"""JobManager: the one API the TUI and the CLI use for jobs. No torch, no textual.

    from rn50tui.jobs.manager import JobManager
    jm = JobManager("jobs.db")                # or None: --db / $RN50TUI_DB / ./jobs.db
    jm.reconcile()                            # on client start: dead supervisors → interrupted
    job = jm.submit(preset="demo", engine_flags=["--epochs", "1"])   # → Job (queued, or starting)
    jm.list_jobs(statuses=None, limit=None)   # → [Job] (id order); Job.to_dict() is `jobs show --json`
    jm.job_summaries(statuses=None, limit=None, recent=None)  # → [JobSummary]: `jobs list`, fast for 10,000 jobs
    jm.get_job(job.id)                        # → Job; JobNotFound if there is none
    jm.attempts(job.id)                       # → [Attempt]: every try, with how it ended
    jm.metrics(job.id, attempt=None, since_id=None, phase=None, limit=None)  # → [MetricRow], phase: train/val/epoch/summary
    jm.device_samples(job.id, since=None, card=None)              # → [DeviceSample]
    jm.cancel(job.id, wait=False)             # queued: cancelled at once; running: SIGTERM, grace, SIGKILL
    jm.resume(job.id)                         # failed/cancelled/interrupted → queued, next attempt
                                              #   (→ completed if the engine had finished the run)
    jm.delete(job.id)                         # refuses a job that is still going
    jm.chart_points(job.id, since_id=0)       # → [ChartPoint]: train/epoch records with the chart metrics
    jm.metric_count(job.id); jm.claims(job.id)  # → int; [Claim] (the cards in use)
    jm.holders()                              # {(kind, card): "job 12 (demo)"} for device views
    jm.log_path(job.id, "stdout")             # stdout / stderr / supervisor log of the job
    jm.wait_reason(job.id)                    # why a queued job has not started, in words

Every method may raise a JobsError subclass (JobNotFound, TransitionError, SubmitError, StoreError) whose
message is fit to show the user as is. Blocking calls (cancel with wait, resume of a stopping job) belong
in a worker thread; the manager opens one store connection per thread.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from rn50tui.jobs import reconcile as _reconcile
from rn50tui.jobs import scheduler
from rn50tui.jobs.core.capacity import host_capacity
from rn50tui.jobs.core.errors import JobsError, SubmitError, TransitionError
from rn50tui.jobs.core.states import ACTIVE, RESUMABLE, TERMINAL, Status, check_resume, check_transition
from rn50tui.jobs.core.store import (
    THIN_POINTS,
    Attempt,
    ChartPoint,
    Claim,
    DeviceSample,
    Job,
    JobStore,
    JobSummary,
    MetricRow,
    default_db_path,
)
from rn50tui.jobs.core.workspace import holds_run_files
from rn50tui.jobs.executors import executor_for, find_executor, get_executor
from rn50tui.jobs.policy.stall import ON_STALL
from rn50tui.jobs.view import StartEstimate, start_estimates

if TYPE_CHECKING:
    from rn50tui.jobs.submission import Request

RESUME_WAIT_S = 90.0  # how long resume waits for an interrupted job's engine to finish checkpointing


class JobManager:
    """Submit, watch, cancel, resume and delete jobs in one job store."""

    def __init__(self, db_path: str | os.PathLike[str] | None = None, *, create: bool = True,
                 capacity: Optional[dict[str, int]] = None, runs_dir: str | os.PathLike[str] | None = None) -> None:  # fmt: skip
        self.db_path = default_db_path(db_path).resolve()
        self._create = create
        self._capacity = capacity
        self.runs_dir = Path(runs_dir).resolve() if runs_dir else self.db_path.parent / "runs"
        self._local = threading.local()
        self._store  # noqa: B018 - open now, so a missing or newer store fails here, not later

    @property
    def _store(self) -> JobStore:
        """This thread's connection to the store."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = JobStore(self.db_path, create=self._create)
        return store

    def capacity(self) -> dict[str, int]:
        """Cards per kind this manager schedules on (the host's, or the one given)."""
        if self._capacity is None:
            self._capacity = host_capacity()
        return self._capacity

    # -- reading

    def list_jobs(
        self, statuses: Optional[Iterable[Status | str]] = None, limit: Optional[int] = None
    ) -> list[Job]:
        return self._store.list_jobs([Status(s) for s in statuses] if statuses is not None else None, limit)

    def job_summaries(self, statuses: Optional[Iterable[Status | str]] = None, limit: Optional[int] = None,
                      recent: Optional[int] = None, sweep: Optional[int] = None) -> list[JobSummary]:  # fmt: skip
        """Like list_jobs, as the typed rows a list shows (fast for 10,000 jobs); `recent`: the active
        jobs and the newest `recent` ones only; `sweep`: that sweep's jobs."""
        wanted = [Status(s) for s in statuses] if statuses is not None else None
        return self._store.job_summaries(wanted, limit, recent, sweep)

    def count_jobs(self, statuses: Optional[Iterable[Status | str]] = None) -> int:
        return self._store.count_jobs([Status(s) for s in statuses] if statuses is not None else None)

    def status_counts(self) -> dict[str, int]:
        """Jobs per status (one scan of the jobs_status index)."""
        return self._store.status_counts()

    def iter_summaries(self, statuses: Optional[Iterable[Status | str]] = None) -> Iterator[JobSummary]:
        """Every job (or those with `statuses`) in id order, read in batches as it is consumed."""
        return self._store.iter_summaries([Status(s) for s in statuses] if statuses is not None else None)

    def read_interrupter(self) -> Callable[[], None]:
        """What stops this thread's store read from another thread (JobStore.interrupt): a poll whose
        answer is no longer wanted (a newer filter) ends with ReadInterrupted rather than finishing."""
        return self._store.interrupt

    def change_token(self) -> int:
        """The store's change counter: changed_since(token) later reads only what changed after it."""
        return self._store.change_token()

    def changed_since(self, token: int) -> tuple[int, list[Job], list[int]]:
        """(token now, jobs changed since `token`, ids removed since it) — index reads only."""
        return self._store.changed_since(token)

    def job_window(self, *, query: str = "", sort: str = "id", reverse: bool = False, offset: int = 0,
                   limit: int = 200, active: bool = True) -> tuple[list[Job], int]:  # fmt: skip
        """One page of jobs filtered and sorted by the store, plus every active job; and the matches' count."""
        return self._store.job_window(query=query, sort=sort, reverse=reverse, offset=offset, limit=limit,
                                      active=active)  # fmt: skip

    def count_matching(self, query: str = "") -> int:
        """How many jobs match the app's filter words (all for "")."""
        return self._store.count_matching(query)

    def prunable_jobs(
        self, older_than: float, statuses: Optional[Iterable[Status | str]] = None
    ) -> list[int]:
        """Finished jobs that ended before the time `older_than` (after a reconcile: a dead job is not
        counted active, a live one never finished)."""
        self.reconcile()
        wanted = [Status(s) for s in statuses] if statuses is not None else None
        return [jid for jid in self._store.prunable_jobs(older_than, wanted)
                if not self._store.claims_of(jid)]  # fmt: skip

    def delete_jobs(self, job_ids: list[int]) -> int:
        """Remove these finished jobs (one still or again active is kept); how many went."""
        return self._store.delete_jobs(job_ids)

    def vacuum(self) -> tuple[int, int]:
        """Compact the store file; (bytes before, bytes after)."""
        return self._store.vacuum()

    def thin_finished(self, points: int = THIN_POINTS) -> tuple[int, int]:
        """Thin the per-iteration metrics of finished jobs to about `points` per series for the charts
        (JobStore.thin_metrics), only where the run's raport.json keeps the full resolution for `export`;
        (jobs thinned, rows removed)."""
        from rn50tui.jobs.lifecycle import thin_finished_job  # (not on `jobs list`'s path: it reads configs)

        jobs = removed = 0
        for job_id in self._store.thinnable_jobs(points):
            job = self._store.find_job(job_id)
            n = 0 if job is None else thin_finished_job(self._store, job, points)
            jobs, removed = jobs + bool(n), removed + n
        return jobs, removed

    def full_metrics(
        self, job_id: int, attempt: Optional[int] = None
    ) -> tuple[list[MetricRow], Optional[str]]:
        """Every metric record of a job at full resolution, and a note when it could not be: the store's
        rows, or, for a job whose rows were thinned, its raport.json (the note then says which was read)."""
        thinned = self._store.thinned(job_id)
        if thinned is None:
            return self._store.metrics(job_id, attempt=attempt), None
        job = self._store.get_job(job_id)
        raport = job.files.raport
        if not raport.is_file():
            return self._store.metrics(job_id, attempt=attempt), (
                f"job {job_id}'s metrics were thinned for the charts ({thinned['kept']} records kept of "
                f"{thinned['kept'] + thinned['removed']}) and its {raport} is gone: only the kept records are written"
            )
        from rn50tui.jobs.report import raport_rows

        starts = [(a.number, a.started_at) for a in self._store.attempts(job_id)]
        return raport_rows(job_id, raport, starts, attempt), f"full resolution read from {raport}"

    def get_job(self, job_id: int) -> Job:
        return self._store.get_job(job_id)

    def attempts(self, job_id: int) -> list[Attempt]:
        """Every attempt of the job, the first first, each with how it ended."""
        return self._store.attempts(job_id)

    def metrics(self, job_id: int, attempt: Optional[int] = None, since_id: Optional[int] = None,
                phase: Optional[str] = None, limit: Optional[int] = None) -> list[MetricRow]:  # fmt: skip
        """A job's metric records, oldest first; since_id/limit page through them for live views."""
        return self._store.metrics(job_id, attempt=attempt, since_id=since_id, phase=phase, limit=limit)

    def device_samples(
        self, job_id: int, since: Optional[float] = None, card: Optional[int] = None
    ) -> list[DeviceSample]:
        return self._store.device_samples(job_id, since=since, card=card)

    def chart_points(self, job_id: int, since_id: int = 0, limit: int = 250_000) -> list[ChartPoint]:
        """Train and epoch records newer than `since_id` with the chart metrics (live charts page on it)."""
        return self._store.chart_points(job_id, since_id, limit)

    def chart_points_sampled(self, job_id: int, points: int = 2000) -> list[ChartPoint]:
        """A finished job's chart records, at most about `points` training ones (every epoch one)."""
        return self._store.chart_points_sampled(job_id, points)

    def chart_record_count(self, job_id: int) -> int:
        """How many train and epoch records the job has (the full resolution the sampled charts stand for)."""
        return self._store.chart_record_count(job_id)

    def metric_count(self, job_id: int, attempt: Optional[int] = None) -> int:
        return self._store.metric_count(job_id, attempt)

    def last_metric(self, job_id: int, phase: str) -> Optional[MetricRow]:
        """The job's newest metric record of `phase` ('train': its raw last -p window), None if none."""
        return self._store.last_metric(job_id, phase)

    def claims(self, job_id: Optional[int] = None) -> list[Claim]:
        """The cards in use (by one job, or by all)."""
        return self._store.claims() if job_id is None else self._store.claims_of(job_id)

    def holders(self) -> dict[tuple[str, int], str]:
        """Which job holds each claimed card: {(kind, index): "job 12 (demo)"}."""
        return self._store.holders()

    def idle_cards(
        self, job_id: Optional[int] = None, now: Optional[float] = None
    ) -> dict[tuple[Any, ...], float]:
        """{(node, kind, card): seconds idle} of the cards running jobs (or one job) hold under 5%
        utilisation for 10 minutes ($RN50TUI_IDLE_S): rn50tui/jobs/policy/idle.py."""
        from rn50tui.jobs.policy.idle import idle_after, idle_cards

        now = time.time() if now is None else now
        jobs = self._store.list_jobs([Status.RUNNING]) if job_id is None else [self.get_job(job_id)]
        out: dict[tuple[Any, ...], float] = {}
        for job in jobs:
            if job.status is Status.RUNNING:
                samples = self._store.device_samples(job.id, since=now - 6 * max(idle_after(), 60.0))
                out.update(idle_cards(samples, now))
        return out

    def log_path(self, job_id: int, stream: str = "stdout") -> Path:
        return self.get_job(job_id).files.log(stream)

    # -- requests

    def submit(self, request: Optional[Request] = None, *, preset: Optional[str] = None, name: Optional[str] = None,
               cards: Optional[int] = None, device: Optional[str] = None, data: Optional[str] = None,
               checkpoint: Optional[str] = None, engine_flags: Sequence[str] = (),
               start: bool = True, executor: str = "local", notify_cmd: Optional[Sequence[str]] = None,
               on_stall: Optional[str] = None, after: Sequence[int] = (), priority: int = 0,
               **executor_options: Optional[dict[str, Any]]) -> Job:  # fmt: skip
        """Check and queue a job, then run the scheduler (unless start=False); SubmitError before queueing.

        `notify_cmd`: the job's own notify hook argv (else the config file's); `on_stall`: notify | cancel.
        `after`: the jobs it waits for (each must complete first); `priority`: higher first.

        `<executor name>={option: value}`: the options of the job's executor (its declared `options`; None:
        the request's, else the executor's defaults), e.g. `submit(request, cluster={"nodes": 2})`.
        """
        from rn50tui.jobs.submission import Request, plan  # engine.config: only a submit needs it

        request = request or Request(
            preset, name, cards, device, data, checkpoint, tuple(engine_flags), executor
        )
        notify_cmd = self._check_request(on_stall, notify_cmd, priority)
        runner, prepared, request = self._prepare(request, executor_options)
        if request.kind not in (None, "train"):  # a prepare or an export (rn50tui/jobs/kinds.py)
            p = self._work_plan(request, runner)
        else:
            p = plan(request, self.capacity() if runner.host_cards else {})
        runner.check(p, prepared)
        job = self._insert(p, runner, prepared, notify_cmd=notify_cmd, on_stall=on_stall, after=after,
                           priority=priority)  # fmt: skip
        if start:
            self.schedule()
        return self.get_job(job.id)

    def submit_sweep(self, request: Request, sweep: Sequence[str], *, parallel: Optional[int] = None,
                     yes: bool = False, start: bool = True, notify_cmd: Optional[Sequence[str]] = None,
                     on_stall: Optional[str] = None, after: Sequence[int] = (), priority: int = 0,
                     **executor_options: Optional[dict[str, Any]]) -> tuple[int, list[Job]]:  # fmt: skip
        """Queue the product of `sweep` ("lr=1.024,2.048", "wd=3.05e-5,1e-4", "--label-smoothing=0,0.1")
        as one sweep: every job checked before any is queued (a value the engine refuses names its flag;
        more than MAX_SWEEP_JOBS needs `yes`); `parallel`: at most that many of it run at once.
        Returns (the sweep's id, its jobs)."""
        from rn50tui.jobs.submission import MAX_SWEEP_JOBS, parse_sweep, plan, sweep_points, with_point

        notify_cmd = self._check_request(on_stall, notify_cmd, priority)
        if parallel is not None and (
            isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1
        ):
            raise SubmitError(
                f"--sweep-parallel must be a whole number of at least 1, not {parallel!r}", "sweep"
            )
        axes = parse_sweep(sweep)
        points = sweep_points(axes)
        if len(points) > MAX_SWEEP_JOBS and not yes:
            raise SubmitError(f"--sweep: {len(points)} jobs; more than {MAX_SWEEP_JOBS} needs --yes", "sweep")
        runner, prepared, request = self._prepare(request, executor_options)
        capacity = self.capacity() if runner.host_cards else {}
        base = plan(request, capacity)
        for key, flag, values in axes:  # each value alone first: a refusal names the one that is wrong
            for value in values:
                try:
                    plan(with_point(request, base.name, [(key, flag, value)]), capacity)
                except SubmitError as exc:
                    raise SubmitError(f"--sweep {key}={value}: {exc}", "sweep") from None
        plans = []
        for point in points:
            try:
                plans.append((point, plan(with_point(request, base.name, point), capacity)))
            except SubmitError as exc:
                where = " ".join(f"{k}={v}" for k, _, v in point)
                raise SubmitError(f"--sweep {where}: {exc}", "sweep") from None
            runner.check(plans[-1][1], prepared)
        self._store.check_dependencies(after)
        sweep_id = self._store.insert_sweep(base.name, parallel)
        jobs = [self._insert(p, runner, prepared, notify_cmd=notify_cmd, on_stall=on_stall, after=after,
                             priority=priority, sweep_id=sweep_id, sweep_values={k: v for k, _, v in point})
                for point, p in plans]  # fmt: skip
        if start:
            self.schedule()
        return sweep_id, [self.get_job(j.id) for j in jobs]

    def submit_export(self, job_id: int, **options: Any) -> Job:
        """Export a completed training job's best checkpoint as a job of its own (format onnx|pt2, weights
        best|model|ema, data DIR, half): the app's "export" and `submit --kind export --from JOB`."""
        from rn50tui.jobs.submission import Request

        return self.submit(Request(kind="export", kind_options={"source": job_id, **options}))

    def _work_plan(self, request: Request, runner: Any) -> Any:
        """The checked plan of a job that is not a training run (rn50tui/jobs/kinds.py)."""
        from rn50tui.jobs import kinds

        if request.kind not in kinds.KINDS:
            raise SubmitError(
                f"unknown job kind {request.kind!r}: use train, {', '.join(kinds.KINDS)}", "kind"
            )
        if not runner.host_cards:
            raise SubmitError(
                f"a {request.kind} job runs on this host: submit it with --executor local", "executor"
            )
        if request.engine_flags:
            raise SubmitError(f"a {request.kind} job takes no engine flags (got {' '.join(request.engine_flags)})",
                              "engine_flags")  # fmt: skip
        if self.capacity().get("cpu", 0) < 1:
            raise SubmitError(f"a {request.kind} job runs as a CPU job, and this host allows none "
                              "(RN50TUI_CARDS sets cpu=0)", "device")  # fmt: skip
        return kinds.plan(request.kind, request.kind_options or {}, self.get_job, Path.cwd(), request.name)

    def _check_request(self, on_stall: Optional[str], notify_cmd: Optional[Sequence[str]],
                       priority: int) -> Optional[Sequence[str]]:  # fmt: skip
        if on_stall is not None and on_stall not in ON_STALL:
            raise SubmitError(f"--on-stall must be one of {', '.join(ON_STALL)}, not {on_stall!r}")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise SubmitError(f"--priority must be an integer, not {priority!r}", "priority")
        if notify_cmd:  # the supervisor runs the hook from the job's workspace, not from here
            try:
                from rn50tui.jobs.policy import notify

                return notify.resolve_hook(notify_cmd, Path.cwd())
            except ValueError as exc:
                raise SubmitError(str(exc), field="notify_cmd") from None
        return notify_cmd

    def _prepare(
        self, request: Request, executor_options: dict[str, Optional[dict[str, Any]]]
    ) -> tuple[Any, Any, Request]:
        """The request's executor, its prepared options, and the request with the fields they set."""
        runner = get_executor(request.executor)
        unknown = sorted(set(executor_options) - {runner.name})
        if unknown:
            raise SubmitError(f"options for {', '.join(unknown)} given to a job of the {runner.name} executor",
                              field="executor")  # fmt: skip
        given = executor_options.get(runner.name)
        prepared = runner.prepare(dict(given if given is not None else request.executor_options or {}))
        return runner, prepared, dataclasses.replace(request, **runner.request_fields(prepared))

    def _insert(self, p: Any, runner: Any, prepared: Any, *, notify_cmd: Optional[Sequence[str]],
                on_stall: Optional[str], **values: Any) -> Job:  # fmt: skip
        job = self._store.insert_job(
            name=p.name, kind=p.kind, preset=p.preset, argv=p.argv, device=p.device, cards_requested=p.cards,
            workspace=p.workspace or str(self.runs_dir / "{id}"), executor=p.executor, on_stall=on_stall,
            notify_cmd=list(notify_cmd) if notify_cmd else None, workspace_taken=holds_run_files, **values,
        )  # fmt: skip
        runner.save(Path(job.workspace), prepared)
        return job

    def set_priority(self, job_id: int, priority: int) -> Job:
        """Change a queued job's priority, then schedule (it may start now)."""
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise SubmitError(f"the priority must be an integer, not {priority!r}", "priority")
        job = self._store.set_priority(job_id, priority)
        self.schedule()
        return job

    def dependencies(self, job_id: int) -> list[tuple[int, Optional[Status]]]:
        """The jobs a job waits for, with their status (None: removed)."""
        return self._store.dependencies(job_id)

    def sweep(self, sweep_id: int) -> dict[str, Any]:
        """{id, name, parallel, created_at} of a sweep; JobsError if there is none."""
        found = self._store.get_sweep(sweep_id)
        if found is None:
            raise JobsError(f"no sweep {sweep_id} (see `rn50tui jobs list`)")
        return found

    def sweep_jobs(self, sweep_id: int) -> list[int]:
        """The ids of a sweep's jobs."""
        return self._store.sweep_job_ids(sweep_id)

    def start_estimates(self, now: Optional[float] = None) -> dict[int, StartEstimate]:
        """When each queued job of this host should start (rn50tui/jobs/view.py: start_estimates)."""
        now = time.time() if now is None else now

        def local(job: Job) -> bool:
            found = find_executor(job.executor)
            return found is not None and found.host_cards

        queued = [j for j in self._store.list_jobs([Status.QUEUED]) if local(j)]
        active = [j for j in self._store.list_jobs([Status.STARTING, Status.RUNNING]) if local(j)]
        return start_estimates(scheduler.queue_order(queued), active, self.capacity(),
                               self._store.all_dependencies(), now)  # fmt: skip

    def schedule(self) -> list[int]:
        """Start whatever queued jobs fit on free cards; return their ids."""
        return scheduler.schedule(self._store, self._capacity)

    def wait_reason(self, job_id: int) -> str:
        """Why a queued job has not started yet, in words."""
        return scheduler.wait_reason(self._store, self.get_job(job_id), self.capacity())

    def wait_reasons(self, job_ids: Iterable[int]) -> dict[int, str]:
        """wait_reason() of each of these queued jobs, the queue read once (a list of thousands stays linear)."""
        wanted = set(job_ids)
        if not wanted:
            return {}
        jobs = [j for j in self._store.list_jobs([Status.QUEUED]) if j.id in wanted]
        jobs += [
            j for i in sorted(wanted - {j.id for j in jobs}) if (j := self._store.find_job(i))
        ]  # moved on
        return scheduler.wait_reasons(self._store, jobs, self.capacity())

    def reconcile(self) -> _reconcile.Report:
        """Mark jobs whose supervisor died as interrupted, free cards nobody uses, start what fits."""
        return _reconcile.reconcile(
            self._store, schedule=lambda store: scheduler.schedule(store, self._capacity)
        )

    def cancel(self, job_id: int, wait: bool = False, timeout: float = 180.0) -> Job:
        """Cancel a queued job at once, or ask a running job's supervisor to stop it (optionally waiting)."""
        self.reconcile()
        with self._store.transaction():
            job = self._store.get_job(job_id)
            followed = job.status in ACTIVE or _submitted(job)  # its follower ends it (a cluster's: scancel)
            if followed:
                if not job.cancel_requested:
                    self._store.update_job(job_id, cancel_requested=time.time())
            elif job.status is Status.QUEUED:
                self._store.transition_locked(job_id, Status.CANCELLED, None, {"finished_at": time.time()})
            else:
                check_transition(job_id, job.status, Status.CANCELLED)
        if followed:
            executor_for(job).request_stop(self.get_job(job_id), self._store)
        elif job.status is Status.QUEUED:  # no supervisor will run the user's hook
            from rn50tui.jobs.policy import notify

            notify.fire_from_client(self.get_job(job_id))
            if self._store.dependents(job_id):
                self.schedule()  # its dependents are cancelled with it
        if wait:
            from rn50tui.jobs.local.procs import wait_until

            wait_until(lambda: self.get_job(job_id).status in TERMINAL, timeout, interval=0.2)
        return self.get_job(job_id)

    def resume(self, job_id: int, wait: float = RESUME_WAIT_S) -> Job:
        """Queue the next attempt of a failed, cancelled or interrupted job; it continues from its checkpoint."""
        self.reconcile()
        job = self.get_job(job_id)
        check_resume(job_id, job.status)
        if self._store.claims_of(job_id):  # its engine is still stopping (checkpointing): let it finish
            executor = executor_for(job)
            from rn50tui.jobs.local.procs import wait_until

            wait_until(lambda: not executor.processes_alive(self.get_job(job_id)), wait, interval=0.2)
            self.reconcile()
            if self._store.claims_of(job_id):
                raise TransitionError(
                    f"job {job_id}'s engine (pid {job.engine_pid}) is still stopping; try again shortly"
                )
        job = self.get_job(job_id)
        if job.status is Status.COMPLETED or _reconcile.settle_finished(self._store, job):
            return self.get_job(job_id)  # the engine had finished the run: nothing is left to do
        self._store.new_attempt(job_id, expect=list(RESUMABLE))  # a new attempts row: it starts clean
        self.schedule()
        return self.get_job(job_id)

    def delete(self, job_id: int) -> None:
        """Remove a finished or queued job and its metrics (its workspace files stay on disk)."""
        self.check_deletable(job_id)
        waiting = self._store.dependents(job_id)
        self._store.delete_job(job_id)
        if waiting:
            self.schedule()  # a job that waited for it is cancelled: it can never complete

    def check_deletable(self, job_id: int) -> None:
        """TransitionError unless the job may be deleted: not active, its engine gone."""
        self.reconcile()
        job = self.get_job(job_id)
        if job.status in ACTIVE or _submitted(job):
            where = " in the cluster's queue" if _submitted(job) else ""
            raise TransitionError(
                f"job {job_id} is {job.status}{where}: cancel it first (`rn50tui cancel {job_id}`)"
            )
        if self._store.claims_of(job_id):
            raise TransitionError(f"job {job_id}'s engine is still stopping; try again shortly")

    def close(self) -> None:
        store = getattr(self._local, "store", None)
        if store is not None:
            store.close()
            self._local.store = None


def _submitted(job: Job) -> bool:
    """A queued job already handed to a cluster's scheduler (it waits there, followed)."""
    executor = find_executor(job.executor)
    return executor is not None and executor.submitted(job)
