"""Executors: where and how a job's attempt runs (see :mod:`rn50tui.jobs.executors.base`).

`executor_for(job)` gives the executor named by the job's `executor` column; a new kind registers its
class in EXECUTORS under the name it writes there.
"""

from __future__ import annotations

from typing import Optional

from rn50tui.jobs.errors import JobsError
from rn50tui.jobs.executors.base import Executor
from rn50tui.jobs.executors.local import LocalExecutor
from rn50tui.jobs.executors.slurm import SlurmExecutor
from rn50tui.jobs.records import Job, JobSummary

__all__ = [
    "DEFAULT_EXECUTOR",
    "EXECUTORS",
    "Executor",
    "LocalExecutor",
    "SlurmExecutor",
    "clusters",
    "describe",
    "executor_for",
    "find_executor",
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


def find_executor(name: str) -> Optional[Executor]:
    """The executor called `name`, or None when this version lacks it (its jobs are left alone)."""
    try:
        return get_executor(name)
    except JobsError:
        return None


def describe(job: Job | JobSummary) -> str:
    """Where the job runs, in a few words (`local`, `slurm 12 RUNNING node[1-2]`); an unknown executor's name."""
    executor = find_executor(job.executor)
    return executor.describe(job) if executor is not None else job.executor


def clusters() -> list[Executor]:
    """The executors that hand jobs to a cluster's own scheduler (they can show its nodes)."""
    return [get_executor(name) for name, cls in EXECUTORS.items() if not cls.host_cards]
