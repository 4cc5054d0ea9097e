"""The executor seam: the scheduler decides *what* may start; an executor decides *where and how* it runs.

An executor starts the attempt of a job the scheduler made `starting` (its cards already claimed), asks
it to stop, says whether anything still follows it, re-attaches where it can, and stops what a lost
attempt left behind. What it needs to find its attempt again goes into the job's `executor_handle` (a
JSON object only that executor reads: the local host name, a Slurm job id, …); the store, the CLI and
the TUI never look inside. Whatever follows an attempt (the local supervisor, a Slurm poller) writes the
job's progress, metrics and final status through the store, as every executor's follower does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Optional

from rn50tui.jobs.records import Job
from rn50tui.jobs.store import JobStore


class Executor(ABC):
    """Runs and follows the attempts of jobs somewhere; one instance serves every job of its kind."""

    name: ClassVar[str]  # what the job row's `executor` column holds
    host_cards: ClassVar[bool] = (
        True  # False: its jobs claim none of this host's cards (a cluster grants them)
    )

    @abstractmethod
    def start(self, job: Job, store: JobStore) -> None:
        """Start the attempt of a `starting` job and record its handle; LaunchError if it cannot.

        On a LaunchError the scheduler fails the job and frees its cards; nothing may be left running.
        """

    @abstractmethod
    def request_stop(self, job: Job, store: JobStore) -> None:
        """The user cancelled (the job's `cancel_requested` is set): make the attempt checkpoint and stop."""

    @abstractmethod
    def lost(self, job: Job, now: float) -> Optional[str]:
        """Why nothing follows this active job any more, or None while something does (or may yet)."""

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
