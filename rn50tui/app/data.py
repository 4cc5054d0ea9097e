"""The app's one door to the job store, the job's files and the host's cards. Worker threads only.

`AppJobManager` is the job manager (which gives each thread its own connection) with what only the app
shows: checkpoint files, the host's card sampler. Nothing here touches a widget; nothing here is
called on the UI thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from rn50tui.jobs.core.store import Job
from rn50tui.jobs.manager import JobManager

METRIC_BATCH = 250_000  # rows per read: a huge history loads over a few refreshes, the UI never waits
CHART_POINTS = 2000  # a finished job's training records the charts read (bucketed by the store), at most


@dataclass(frozen=True)
class CheckpointFile:
    name: str
    size: int
    mtime: float
    latest: bool  # the one the store says was written last
    best: bool
    note: str = ""  # an exported model: its format and parity check (rn50tui/jobs/kinds.py)


@dataclass(frozen=True)
class ClusterView:
    """A cluster's nodes as its executor gave them, or why there are none to show."""

    nodes: list[Any]  # the executor's node records (Executor.cluster_nodes)
    note: Optional[str] = None  # sinfo's error, or None


class AppJobManager(JobManager):
    """The app's job manager: its reads and requests, plus the job's files and the host's cards.

    Every method blocks, so call it from a thread worker.
    """

    def __init__(
        self, db_path: str | os.PathLike[str], *, capacity: Optional[dict[str, int]] = None,
        sampler_factory: Optional[Callable[[], Any]] = None,
    ) -> None:  # fmt: skip
        super().__init__(db_path, capacity=capacity)
        self._sampler_factory = sampler_factory

    # -- files

    def checkpoints(self, job: Job) -> list[CheckpointFile]:
        """The job's checkpoint files, newest first, then the models exported from them (export/, each
        with its format and check from its sidecar)."""
        from rn50tui.jobs.kinds import EXPORT_DIR, exported_files

        found = []
        for path in job.files.checkpoints():
            try:
                st = path.stat()
            except FileNotFoundError:
                continue  # replaced while we looked (atomic save)
            latest = job.last_checkpoint is not None and Path(job.last_checkpoint).name == path.name
            found.append(
                CheckpointFile(path.name, st.st_size, st.st_mtime, latest, path.name.startswith("model_best"))
            )
        exported = [CheckpointFile(f"{EXPORT_DIR}/{e.path.name}", e.size, e.mtime, False, False,
                                   f"{e.format} {e.precision}: {e.check_line}")
                    for e in exported_files(job.workspace)]  # fmt: skip
        return sorted(found, key=lambda c: c.mtime, reverse=True) + exported

    # -- host

    def host_sampler(self) -> Any:
        """A sampler of every card on the host (engine.telemetry.HostSampler unless one was injected)."""
        if self._sampler_factory is not None:
            return self._sampler_factory()
        from engine.telemetry.detect import HostSampler

        return HostSampler()

    def cluster(self) -> Optional[ClusterView]:
        """The cluster's partitions and nodes (one query); None where no cluster's tools are installed."""
        from rn50tui.jobs.core.errors import JobsError
        from rn50tui.jobs.executors import clusters

        for executor in clusters():
            if executor.cluster_missing():
                continue
            try:
                return ClusterView(executor.cluster_nodes())
            except JobsError as exc:
                return ClusterView([], str(exc))
        return None


def config_rows(argv: list[str]) -> list[tuple[str, str]]:
    """Every engine setting of an argv, as the engine would read it (no checks: the files may be gone)."""
    import contextlib
    import io

    from engine.config import TrainConfig, build_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            ns = build_parser().parse_args(argv)
    except SystemExit:
        return []
    names = [f for f in TrainConfig.__dataclass_fields__ if hasattr(ns, f)]
    return [(name, "" if getattr(ns, name) is None else str(getattr(ns, name))) for name in names]
