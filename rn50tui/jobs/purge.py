"""`jobs rm --purge`: delete a job's workspace, with the checks that keep it from deleting anything else."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Optional

from rn50tui.jobs.core.errors import JobsError
from rn50tui.jobs.core.store import Job

WORKSPACE_MARKS = ("raport.json", "stdout.log", "stderr.log", "supervisor.log")


def check_workspace(job: Job, db_path: Path) -> Optional[Path]:
    """The workspace to delete (None if it is gone); JobsError if it does not look like one job's own."""
    path = Path(job.workspace).resolve()
    if not path.exists():
        return None
    if not path.is_dir():
        raise JobsError(f"job {job.id}'s workspace {path} is not a directory; not deleting it")
    protected = {Path("/"), Path.home().resolve(), Path.cwd().resolve()}
    if path in protected or db_path.resolve().is_relative_to(path):
        raise JobsError(f"job {job.id}'s workspace is {path}, which holds more than the job; delete by hand")
    if not any((path / mark).exists() for mark in WORKSPACE_MARKS):
        raise JobsError(
            f"{path} has none of a job workspace's files ({', '.join(WORKSPACE_MARKS)}); delete by hand"
        )
    return path


def tree_size(path: Path) -> int:
    """Bytes under `path` (files only, links not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # removed while we counted
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def remove_tree(path: Path) -> None:
    shutil.rmtree(path)
