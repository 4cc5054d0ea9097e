"""The `slurm` executor: each attempt is one Slurm batch job; one watcher per store follows them all.

start() writes the attempt's batch script into the workspace (rn50tui.jobs.slurm.script), submits it
with `sbatch --parsable`, records the Slurm job id in the handle and puts the job back to `queued`: it
waits in Slurm's queue (the watcher shows Slurm's pending reason) until Slurm runs it. Then it makes
sure the store's watcher (rn50tui.jobs.slurm.watcher) runs. The cluster job does not depend on any
process of the login node: when the watcher dies, reconcile finds it lost and re-attaches by starting a
new watcher, which reads on from the offsets in the store. No card of this host is claimed: Slurm grants
the cards.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from rn50tui.jobs.core.errors import JobsError, LaunchError
from rn50tui.jobs.core.records import Job, JobSummary
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import JobStore
from rn50tui.jobs.executors.base import Executor
from rn50tui.jobs.local import launcher
from rn50tui.jobs.slurm import commands, script
from rn50tui.jobs.slurm import options as slurm_options
from rn50tui.jobs.slurm.lock import start_watcher, watcher_running

SUBMIT_GRACE_S = 120.0  # a `starting` job with no Slurm job id after this long was never submitted


def attempt_of(job: Job) -> script.Attempt:
    """The batch script's view of the job's current attempt (resuming from its last checkpoint)."""
    flags = launcher.engine_flags(job, launcher.resume_checkpoint(job))
    return script.Attempt(job.id, job.attempt, job.name, Path(job.workspace), job.device,
                          max(1, job.cards_requested), flags)  # fmt: skip


class SlurmExecutor(Executor):
    name = "slurm"
    title = "Slurm cluster"
    host_cards = False
    options = slurm_options.OPTIONS
    options_note = "defaults from ~/.config/rn50tui/config.toml [slurm]"

    cluster_columns = commands.CLUSTER_COLUMNS

    def cluster_missing(self) -> Optional[str]:
        return commands.missing()

    def cluster_nodes(self) -> list[commands.NodeInfo]:
        """Its partitions and nodes, in one sinfo."""
        try:
            return commands.sinfo()
        except commands.SlurmError as exc:  # Slurm's client without a cluster: one quiet line, no table
            gist = str(exc).removeprefix("sinfo failed: ")
            raise JobsError(f"no Slurm cluster answers from this host ({gist})") from None

    def prepare(self, values: Mapping[str, Any]) -> slurm_options.SlurmOptions:
        """Flags over the config file (and its site settings); SubmitError without Slurm or on a bad value."""
        from rn50tui.jobs.slurm import submit

        return submit.prepare(dict(values))

    def request_fields(self, prepared: slurm_options.SlurmOptions) -> dict[str, Any]:
        return {"nodes": prepared.nodes}

    def check(self, plan: Any, prepared: slurm_options.SlurmOptions) -> None:
        """`sbatch --test-only`: Slurm's own verdict (partition, account, cards per node) before queueing."""
        from rn50tui.jobs.slurm import submit

        submit.check_fits(plan.name, plan.device, plan.cards, prepared)

    def save(self, workspace: Path, prepared: slurm_options.SlurmOptions) -> None:
        slurm_options.save(workspace, prepared)

    def start(self, job: Job, store: JobStore) -> None:
        absent = commands.missing()
        if absent:
            raise LaunchError(absent)
        options = slurm_options.load(Path(job.workspace))
        attempt = attempt_of(job)
        path = script.write(attempt, options)
        stderr_offset = _size(job.files.log("stderr"))
        try:
            slurm_id = commands.sbatch(
                str(path), script.sbatch_argv(attempt, options) + self._after(job, store)
            )
        except commands.SlurmError as exc:
            raise LaunchError(f"Slurm refused job {job.id}: {exc}") from None
        handle = {
            "slurm_job_id": slurm_id,
            "submitted_at": time.time(),
            "script": str(path),
            "db": str(store.path),
        }
        resume_from = (
            attempt.engine_flags[attempt.engine_flags.index("--resume") + 1]
            if "--resume" in attempt.engine_flags
            else None
        )
        store.transition(job.id, Status.QUEUED, expect=[Status.STARTING], executor_handle=handle,
                         stderr_offset=stderr_offset, resume_from=resume_from, wait_reason=f"submitted as Slurm job {slurm_id}")  # fmt: skip
        start_watcher(store.path)

    def holds_after(self, dependency: Job) -> Optional[str]:
        """A Slurm job of this executor, submitted and not ended: `--dependency=afterok` can name it."""
        slurm_id = (dependency.executor_handle or {}).get("slurm_job_id")
        live = dependency.status in (Status.QUEUED, Status.STARTING, Status.RUNNING)
        return str(slurm_id) if dependency.executor == self.name and slurm_id and live else None

    def _after(self, job: Job, store: JobStore) -> list[str]:
        """sbatch's `--dependency=afterok:…` for the jobs it waits for that Slurm holds (the scheduler
        hands it over only when every one it still waits for is such a job), killed if one fails."""
        ids = [self.holds_after(store.get_job(d)) for d, status in store.dependencies(job.id)
               if status is not None and status is not Status.COMPLETED]  # fmt: skip
        held = [i for i in ids if i]
        return [f"--dependency=afterok:{':'.join(held)}", "--kill-on-invalid-dep=yes"] if held else []

    def describe(self, job: Job | JobSummary) -> str:
        """`slurm 123 RUNNING node[1-2]`, or `slurm 124 PENDING (Resources)`."""
        handle = job.executor_handle or {}
        parts = ["slurm", str(handle.get("slurm_job_id") or "-")]
        if not job.status.terminal:
            parts.append(handle.get("slurm_state") or "")
        if handle.get("pending_reason"):
            parts.append(f"({handle['pending_reason']})")
        elif handle.get("nodes") and handle.get("nodes") != "(null)":
            parts.append(handle["nodes"])
        return " ".join(p for p in parts if p)

    def submitted(self, job: Job) -> bool:
        return job.status is Status.QUEUED and bool((job.executor_handle or {}).get("slurm_job_id"))

    def request_stop(self, job: Job, store: JobStore) -> None:
        """The watcher reads `cancel_requested` each round; make sure one runs."""
        start_watcher(store.path)

    def lost(self, job: Job, now: float) -> Optional[str]:
        handle = job.executor_handle or {}
        if not handle.get("slurm_job_id"):
            since = job.started_at or job.updated_at or now
            return (
                f"it was never submitted to Slurm (waited {SUBMIT_GRACE_S:.0f} s)"
                if now - since > SUBMIT_GRACE_S
                else None
            )
        db = handle.get("db")
        if db and not watcher_running(Path(db)):
            return f"nothing follows Slurm job {handle['slurm_job_id']}"
        return None

    def reattach(self, job: Job, store: JobStore) -> bool:
        if not (job.executor_handle or {}).get("slurm_job_id"):
            return False
        start_watcher(store.path)
        return True

    def attempt_started(self, job: Job) -> Optional[float]:
        return (job.executor_handle or {}).get("submitted_at") or super().attempt_started(job)

    def processes_alive(self, job: Job) -> bool:
        return False  # nothing of it runs on this host, and it holds none of this host's cards

    def stop_orphans(self, job: Job, *, force: bool = False) -> bool:
        slurm_id = (job.executor_handle or {}).get("slurm_job_id")
        if not slurm_id:
            return False
        try:
            commands.scancel(str(slurm_id), signal=None if force else "TERM", batch_only=not force)
        except commands.SlurmError:
            return False
        return True


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
