"""Executors: where and how a job's attempt runs (see :mod:`rn50tui.jobs.executors.base`).

`executor_for(job)` gives the executor named by the job's `executor` column; a new kind registers its
class in EXECUTORS under the name it writes there.
"""

from __future__ import annotations

from rn50tui.jobs.errors import JobsError
from rn50tui.jobs.executors.base import Executor
from rn50tui.jobs.executors.local import LocalExecutor
from rn50tui.jobs.executors.slurm import SlurmExecutor
from rn50tui.jobs.records import Job

__all__ = [
    "DEFAULT_EXECUTOR",
    "EXECUTORS",
    "Executor",
    "LocalExecutor",
    "SlurmExecutor",
    "executor_for",
    "get_executor",
]

DEFAULT_EXECUTOR = "local"
EXECUTORS: dict[str, type[Executor]] = {LocalExecutor.name: LocalExecutor, SlurmExecutor.name: SlurmExecutor}
_instances: dict[str, Executor] = {}


def get_executor(name: str) -> Executor:
    """The executor called `name` (one instance per process); JobsError names the known ones otherwise."""
    if name not in _instances:
        if name not in EXECUTORS:
            known = ", ".join(sorted(EXECUTORS))
            raise JobsError(
                f"unknown executor {name!r}: this rn50tui knows {known}; upgrade it to run this job"
            )
        _instances[name] = EXECUTORS[name]()
    return _instances[name]


def executor_for(job: Job) -> Executor:
    return get_executor(job.executor)
