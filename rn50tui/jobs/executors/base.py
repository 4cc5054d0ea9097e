"""The executor seam: the scheduler decides *what* may start; an executor decides *where and how* it runs.

An executor starts the attempt of a job the scheduler made `starting` (its cards already claimed), asks
it to stop, says whether anything still follows it, re-attaches where it can, stops what a lost
attempt left behind, and settles an attempt of which nothing is left (by the verdict its follower
uses). What it needs to find its attempt again goes into the attempt's `executor_handle` (a
JSON object only that executor reads: the local host name, a Slurm job id, …); the store, the CLI and
the TUI never look inside. Whatever follows an attempt (the local supervisor, the Slurm watcher) writes
the job's progress, metrics and final status through the store, by the one lifecycle of
rn50tui/jobs/lifecycle.py.

Each executor declares its options (rn50tui/jobs/core/options.py) and prepares, checks and saves them: the
CLI's flags, the new-job form's fields and the manager's checks come from that declaration.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Optional

from rn50tui.jobs.core.errors import SubmitError, TransitionError
from rn50tui.jobs.core.options import Option, check_values
from rn50tui.jobs.core.records import Job, JobSummary
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import JobStore
from rn50tui.jobs.policy.verdict import Evidence, finished, verdict
from rn50tui.jobs.report import ReportReader, attempt_state


class Executor(ABC):
    """Runs and follows the attempts of jobs somewhere; one instance serves every job of its kind."""

    name: ClassVar[str]  # what the job row's `executor` column holds
    host_cards: ClassVar[bool] = (
        True  # False: its jobs claim none of this host's cards (a cluster grants them)
    )
    title: ClassVar[str]  # where its jobs run, in a few words (the form's "run on" choice)
    options: ClassVar[tuple[Option, ...]] = ()  # what a submit may set (CLI flags, form fields)
    options_note: ClassVar[str] = ""  # where the options' defaults come from (the CLI's group help)

    # -- the cluster it submits to, if any (`rn50tui devices --cluster`, the app's devices screen)

    cluster_columns: ClassVar[tuple[str, ...]] = ()  # the headings of a node's row()

    def cluster_missing(self) -> Optional[str]:
        """Why this host cannot see the executor's cluster (its tools absent); None when it can."""
        return f"the {self.name} executor submits to no cluster"

    def cluster_nodes(self) -> list[Any]:
        """The cluster's nodes (each with row(), cards() and its fields); JobsError if it cannot ask."""
        return []

    # -- its options: declared, prepared and checked before a row is written, saved with the job

    def prepare(self, values: Mapping[str, Any]) -> Any:
        """The job's options from the values given (None: not given); SubmitError names a bad one.
        The default: an executor without options refuses any."""
        given = sorted(k for k, v in values.items() if v is not None)
        if given and not self.options:
            raise SubmitError(
                f"the {self.name} executor takes no options (got {', '.join(given)})", field="executor"
            )
        check_values(self.options, values)
        return dict(values)

    def request_fields(self, prepared: Any) -> dict[str, Any]:
        """Fields of the submit request the options decide (e.g. nodes)."""
        return {}

    def check(self, plan: Any, prepared: Any) -> None:
        """Refuse, with a SubmitError, a planned job (rn50tui.jobs.submission.Plan) it could never run."""
        return None  # the default: whatever plan() accepted can run

    def save(self, workspace: Path, prepared: Any) -> None:
        """Keep the options beside the job (every attempt reads them)."""
        return None  # the default: no options to keep

    @abstractmethod
    def start(self, job: Job, store: JobStore) -> None:
        """Start the attempt of a `starting` job and record its handle; LaunchError if it cannot.

        A cluster executor may put the job back to `queued` once submitted (see `submitted`).

        On a LaunchError the scheduler fails the job and frees its cards; nothing may be left running.
        """

    @abstractmethod
    def request_stop(self, job: Job, store: JobStore) -> None:
        """The user cancelled (the job's `cancel_requested` is set): make the attempt checkpoint and stop."""

    @abstractmethod
    def lost(self, job: Job, now: float) -> Optional[str]:
        """Why nothing follows this active job any more, or None while something does (or may yet)."""

    def describe(self, job: Job | JobSummary) -> str:
        """Where the job's attempt runs, in a few words (`jobs list`'s WHERE, the app's detail header)."""
        return self.name

    def submitted(self, job: Job) -> bool:
        """True for a queued job this executor already handed to a cluster's scheduler: it waits in that
        queue (its follower moves it on), so this host's scheduler must not start it again."""
        return False

    def holds_after(self, dependency: Job) -> Optional[str]:
        """The cluster's own id of `dependency`, when this executor's cluster can hold a job until it
        completed (its own dependency, passed by start()); None: rn50tui holds the job itself."""
        return None

    def reattach(self, job: Job, store: JobStore) -> bool:
        """After lost(): follow the attempt again if it still runs; True if it is followed once more.

        The default cannot: the job becomes `interrupted` and `rn50tui resume` continues it.
        """
        return False

    @abstractmethod
    def processes_alive(self, job: Job) -> bool:
        """True while any process of the job's current attempt still runs (its cards stay claimed)."""

    @abstractmethod
    def stop_orphans(self, job: Job, *, force: bool = False) -> bool:
        """Stop what a lost attempt left running: ask it to checkpoint and stop, or kill it (force).

        Returns True if a request was sent. Only the client that marked the job lost calls it (a second
        polite request would make the engine stop without its checkpoint).
        """

    def settle(self, job: Job, store: JobStore, now: float, lost: Optional[str] = None) -> Optional[Status]:
        """Decide how an attempt none of whose processes is left ended, as its follower would have
        (rn50tui.jobs.policy.verdict), and record it; what the engine wrote after the follower's last read goes
        into the store first.

        `lost`: why nothing follows this active job (it is settled whatever the evidence); None: a job
        that already ended changes only if the engine's record shows the run finished (→ `completed`).
        Returns the status written; None if nothing changed or another client got there first.
        """
        started = self.attempt_started(job)
        state = attempt_state(job.id, job.attempt, job.files.raport, started)  # read outside the transaction
        with store.transaction():
            current = store.get_job(job.id)
            seen = (job.status, job.supervisor_pid, job.attempt)
            if (current.status, current.supervisor_pid, current.attempt) != seen:
                return None  # someone else got there first (another client, or the follower itself)
            current = _catch_up(store, current, started)
            evidence = Evidence(None, state.run_end, state.error, state.stopping_signal,
                                current.checkpoint_epoch, current.checkpoint_iteration, current.epochs)  # fmt: skip
            if lost is None and not finished(evidence):
                return None
            status, reason = verdict(evidence, cancelled=bool(current.cancel_requested), lost=lost)
            try:
                store.transition_locked(
                    job.id, status, None, {"error": reason, "finished_at": current.finished_at or now}
                )
            except TransitionError:
                return None
        return status

    def attempt_started(self, job: Job) -> Optional[float]:
        """When the current attempt began: the engine's records from before belong to the previous one."""
        return (job.started_at - 1.0) if job.started_at else None


def _catch_up(store: JobStore, job: Job, started: Optional[float]) -> Job:
    """Store what the engine wrote after its follower's last read (call inside a transaction)."""
    reader = ReportReader(job.id, job.attempt, job.files.raport, job.raport_offset, started, job.best_top1,
                          loss=job.loss, iters_per_epoch=job.iters_per_epoch)  # fmt: skip
    batch = reader.poll()
    if batch.rows:
        store.add_metrics(batch.rows)
    store.update_job(job.id, **batch.updates)
    return store.get_job(job.id)
