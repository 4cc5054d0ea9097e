"""A private two-node Slurm cluster for the whole session (see cluster.py), and a job manager on it.

Tests marked `slurm` skip with the reason when this host lacks Slurm or munge (`apt-get install
slurm-wlm munge`; .ci/run installs them) or cannot start daemons as root; those on the cluster with
accounting (`slurm_acct_cluster`) also when it lacks slurmdbd or MariaDB (`slurmdbd mariadb-server`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rn50tui.jobs.manager import JobManager
from rn50tui.jobs.slurm import commands
from rn50tui.jobs.slurm.lock import lock_path

from .accounting import missing_tools as accounting_tools_missing
from .cluster import Cluster, missing_tools

POLL_S = 1.0  # the follower's squeue interval in these tests (a real cluster: 10 s or more)


def _session_cluster(accounting: bool) -> Iterator[Cluster]:
    absent = missing_tools() + (accounting_tools_missing() if accounting else [])
    if absent:
        packages = "slurm-wlm munge" + (" slurmdbd mariadb-server" if accounting else "")
        pytest.skip(f"Slurm{' accounting' if accounting else ''} is not installed here (missing "
                    f"{', '.join(absent)}): apt-get install {packages}")  # fmt: skip
    if os.geteuid() != 0:
        pytest.skip("the private Slurm cluster runs its daemons as root (SlurmUser=root)")
    # Outside pytest's numbered temp dirs (another session's clean-up must not remove a live cluster),
    # and short: unix socket paths (munge's) are limited to about 100 bytes.
    root = Path(tempfile.mkdtemp(prefix="rn50tui-slurm-"))
    cluster = Cluster(root, accounting=accounting)
    try:
        cluster.start()
    except Exception as exc:  # noqa: BLE001 - the reason is the test's failure message
        cluster.stop()
        pytest.fail(f"the private Slurm cluster did not start: {exc}")
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Cluster]:
    yield from _session_cluster(accounting=False)


@pytest.fixture(scope="session")
def slurm_acct_cluster() -> Iterator[Cluster]:
    """The same cluster with accounting (its own MariaDB + slurmdbd): sacct knows purged jobs."""
    yield from _session_cluster(accounting=True)


@pytest.fixture
def slurm_target(slurm_cluster: Cluster) -> Cluster:
    """The cluster slurm_env and slurm_jm use; a test module overrides it to pick slurm_acct_cluster."""
    return slurm_cluster


@pytest.fixture
def slurm_env(slurm_target: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """This test's environment points at the private cluster, with a config file of short intervals."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_target.conf))
    config = tmp_path / "xdg" / "rn50tui" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        f'[slurm]\npartition = "debug"\npoll_interval = {POLL_S}\ngrace = 30\nsample_interval = 1\n'
    )
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config.parent.parent))
    monkeypatch.delenv("RN50TUI_CONFIG", raising=False)  # it would take precedence over XDG_CONFIG_HOME
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    commands.QUERIES.clear()
    return slurm_target


@pytest.fixture
def slurm_jm(slurm_env: Cluster, db_path: Path) -> Iterator[JobManager]:
    manager = JobManager(db_path)
    yield manager
    for job in manager.list_jobs():  # never leave a Slurm job or a follower behind, whatever failed
        slurm_id = (job.executor_handle or {}).get("slurm_job_id")
        if slurm_id and not job.status.terminal:
            slurm_env.run("scancel", str(slurm_id), check=False)
    kill_follower(db_path)
    kill_every_follower(db_path)
    manager.close()


def follower_pid(db_path: Path) -> int | None:
    try:
        text = lock_path(db_path.resolve()).read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def kill_follower(db_path: Path) -> None:
    pid = follower_pid(db_path)
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def kill_every_follower(db_path: Path) -> None:
    """Every follower process of the store, also one started so late it has not taken the lock yet."""
    wanted = [b"rn50tui.jobs.slurm.watcher", str(db_path).encode()]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if all(w in (entry / "cmdline").read_bytes() for w in wanted):
                    os.kill(int(entry.name), signal.SIGKILL)
