"""Whether a store's Slurm watcher runs (it holds `<db>.slurm-follower.lock`), and starting one.

Kept apart from the watcher itself, so the executor (imported by the job manager) need not import it.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from rn50tui import child_env


def lock_path(db: Path) -> Path:
    return db.with_name(
        db.name + ".slurm-follower.lock"
    )  # the old name: an older watcher holds this same lock


def watcher_running(db: Path) -> bool:
    """True while a watcher holds the store's lock."""
    try:
        fd = os.open(lock_path(db), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def start_watcher(db: Path) -> None:
    """Start the store's watcher, detached, unless one runs (a second start exits at once)."""
    if watcher_running(db):
        return
    env = child_env(os.environ)
    log = db.with_name(db.name + ".slurm-follower.log")
    with open(log, "ab") as out:
        subprocess.Popen([sys.executable, "-m", "rn50tui.jobs.slurm.watcher", "--db", str(db)], env=env,
                         stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                         close_fds=True)  # fmt: skip
