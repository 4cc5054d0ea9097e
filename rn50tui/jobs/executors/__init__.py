"""Executors: where and how a job's attempt runs (see :mod:`rn50tui.jobs.executors.base`).

`executor_for(job)` gives the executor named by the job's `executor` column; a new kind registers its
class in EXECUTORS under the name it writes there. Each executor lives with its transport
(`rn50tui.jobs.local`, `rn50tui.jobs.slurm`) and is imported on first use: those packages import the
base class from here, and a `jobs list` never pays for a transport it does not touch.
"""

from __future__ import annotations

import importlib
from typing import Any, Optional

from rn50tui.jobs.core.errors import JobsError
from rn50tui.jobs.core.records import Job, JobSummary
from rn50tui.jobs.executors.base import Executor

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
    "host_cards",
    "registry",
]

DEFAULT_EXECUTOR = "local"
_BUILT_IN = {
    "local": "rn50tui.jobs.local.executor:LocalExecutor",
    "slurm": "rn50tui.jobs.slurm.executor:SlurmExecutor",
}
_instances: dict[str, Executor] = {}
_registry: dict[str, type[Executor]] = {}


def registry() -> dict[str, type[Executor]]:
    """Every executor by the name its jobs carry; the built-in ones are imported on the first call."""
    for kind in _BUILT_IN:
        _load(kind)
    return _registry


def _load(kind: str) -> Optional[type[Executor]]:
    """The class of one executor, its module imported on first use (a local job never imports Slurm's)."""
    if kind not in _registry and kind in _BUILT_IN:
        module, cls = _BUILT_IN[kind].split(":")
        _registry[kind] = getattr(importlib.import_module(module), cls)
    return _registry.get(kind)


def __getattr__(name: str) -> Any:
    """`EXECUTORS` (the registry) and the built-in classes, imported the first time someone asks (PEP 562)."""
    if name == "EXECUTORS":
        return registry()
    if name in ("LocalExecutor", "SlurmExecutor"):
        return next(c for c in registry().values() if c.__name__ == name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_executor(name: str) -> Executor:
    """The executor called `name` (one instance per process); JobsError names the known ones otherwise."""
    if name not in _instances:
        cls = _load(name)
        if cls is None:
            known = registry()
            raise JobsError(
                f"unknown executor {name!r}: this rn50tui knows {', '.join(sorted(known))}; upgrade it to run this job"
            )
        _instances[name] = cls()
    return _instances[name]


def host_cards(name: str) -> bool:
    """Whether the executor called `name` runs on this host's cards (an unknown one is assumed to)."""
    cls = _load(name)
    return cls.host_cards if cls is not None else True


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
    return [get_executor(name) for name, cls in registry().items() if not cls.host_cards]
