"""The follower's sacct path on a real cluster with accounting (its own slurmdbd + MariaDB, accounting.py).

slurmctld forgets a finished job MinJobAge (5 s here) after it ends; a follower that was not running then
finds it only through sacct. Each test waits for the purge (squeue no longer lists the job), never sleeps.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from rn50tui.jobs.core.states import Status
from rn50tui.jobs.manager import JobManager
from rn50tui.jobs.slurm import commands

from ..jobs.conftest import wait_for
from .cluster import Cluster
from .conftest import kill_follower
from .test_slurm_jobs import LONG, ONE_EPOCH  # tiny synthetic runs; LONG is cancelled long before its end

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

JOB_TIMEOUT = 300
RECORDED = ("squeue", "sacct", "scontrol")


@pytest.fixture
def slurm_target(slurm_acct_cluster: Cluster) -> Cluster:
    """slurm_env and slurm_jm (conftest.py) on the cluster with accounting."""
    return slurm_acct_cluster


@pytest.fixture
def slurm_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put recording wrappers of squeue, sacct and scontrol first on PATH; the file they append to.

    The follower is a separate process (its QUERIES counter is its own): the wrappers show which of
    the real commands it ran, and with which arguments.
    """
    bin_dir, log = tmp_path / "bin", tmp_path / "slurm-calls.log"
    bin_dir.mkdir()
    for tool in RECORDED:
        real = shutil.which(tool)
        assert real, f"{tool} is not on PATH"
        wrapper = bin_dir / tool
        wrapper.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\nexec "{real}" "$@"\n')
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def _calls(log: Path, tool: str, slurm_id: str) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [ln for ln in lines if ln.split()[0] == tool and slurm_id in ln.split()[-1].split(",")]


def _slurm_id(job) -> str:
    return str(job.executor_handle["slurm_job_id"])


def _purged(cluster: Cluster, slurm_id: str) -> None:
    """Wait until slurmctld has forgotten the job (it ended MinJobAge ago): only sacct knows it now."""
    wait_for(lambda: not cluster.run("squeue", "-h", "-t", "all", "-j", slurm_id, check=False).stdout.strip(),
             JOB_TIMEOUT, interval=1, message=f"Slurm job {slurm_id} to end and leave squeue")  # fmt: skip


def _final(jm: JobManager, job_id: int) -> Status:
    return wait_for(lambda: (s := jm.get_job(job_id).status).terminal and s, JOB_TIMEOUT,
                    message=f"job {job_id} to end")  # fmt: skip


def _submit_and_orphan(jm: JobManager, db_path: Path, flags: list[str]):
    """A 1-node CPU job, running; then its follower is killed (nothing follows it any more)."""
    job = jm.submit(preset="demo", device="cpu", cards=1, engine_flags=flags, executor="slurm",
                    slurm={"nodes": 1})  # fmt: skip
    running = wait_for(lambda: (j := jm.get_job(job.id)).status is Status.RUNNING and j, JOB_TIMEOUT,
                       message=f"job {job.id} running")  # fmt: skip
    kill_follower(db_path)
    return running


def test_a_job_that_ended_unfollowed_and_left_squeue_completes_through_sacct(
    slurm_jm, slurm_env, slurm_calls, db_path
):
    job = _submit_and_orphan(slurm_jm, db_path, ONE_EPOCH)
    slurm_id = _slurm_id(job)
    _purged(slurm_env, slurm_id)
    assert slurm_jm.get_job(job.id).status is Status.RUNNING  # nothing noticed the end yet

    JobManager(db_path).reconcile()  # the next client re-attaches: a new follower
    assert _final(slurm_jm, job.id) is Status.COMPLETED, slurm_jm.get_job(job.id).error
    done = slurm_jm.get_job(job.id)
    assert done.executor_handle["slurm_state"] == "COMPLETED" and done.executor_handle["nodes"] == "node1"
    assert done.exit_code == 0
    assert _calls(slurm_calls, "sacct", slurm_id), slurm_calls.read_text()
    assert not _calls(slurm_calls, "scontrol", slurm_id)  # `scontrol show job` is the no-accounting path


def test_scancel_by_hand_while_nothing_follows_is_cancelled_through_sacct(
    slurm_jm, slurm_env, slurm_calls, db_path
):
    job = _submit_and_orphan(slurm_jm, db_path, LONG)
    slurm_id = _slurm_id(job)
    slurm_env.run("scancel", slurm_id)
    _purged(slurm_env, slurm_id)
    raw = slurm_env.run("sacct", "-X", "-n", "-P", "-o", "State", "-j", slurm_id).stdout.strip()
    assert raw == "CANCELLED by 0"  # what the follower has to parse

    JobManager(db_path).reconcile()
    # Without sacct (scontrol knows nothing of a purged job) it would end `failed`: "vanished".
    assert _final(slurm_jm, job.id) is Status.CANCELLED, slurm_jm.get_job(job.id).error
    done = slurm_jm.get_job(job.id)
    assert "scancel" in (done.error or "") and done.executor_handle["slurm_state"] == "CANCELLED"
    assert _calls(slurm_calls, "sacct", slurm_id)


def test_sacct_reports_states_nodes_and_exit_codes_of_finished_jobs(slurm_env):
    assert commands.accounting_enabled()
    submit = ["sbatch", "--parsable", "-o", "/dev/null"]
    failed = slurm_env.run(*submit, "-N", "2", "--wrap", "exit 3").stdout.strip()
    completed = slurm_env.run(*submit, "-N", "1", "--wrap", "true").stdout.strip()
    never_ran = slurm_env.run(*submit, "--begin", "now+3600", "--wrap", "true").stdout.strip()
    slurm_env.run("scancel", never_ran)
    for slurm_id in (failed, completed, never_ran):
        _purged(slurm_env, slurm_id)
    raw = slurm_env.run("sacct", "-X", "-n", "-P", "-o", "State,NodeList", "-j", never_ran).stdout.strip()
    assert raw == "CANCELLED by 0|None assigned"

    states = commands.sacct([failed, completed, never_ran, "999999"])  # an id it never saw is left out
    assert set(states) == {failed, completed, never_ran}
    assert states[never_ran] == commands.JobState(never_ran, "CANCELLED", "", "", "0:0")  # no node
    assert states[failed] == commands.JobState(failed, "FAILED", "", "node[1-2]", "3:0")
    assert states[completed].state == "COMPLETED" and states[completed].exit_code == "0:0"
    assert states[completed].nodes in ("node1", "node2")
    assert commands.QUERIES["sacct"] == 1  # one call for all of them
