"""Issue 28 on the private two-node cluster: a dependency between two Slurm jobs is held by Slurm itself
(`--dependency=afterok`), and rn50tui's state follows it."""

from __future__ import annotations

import pytest

from rn50tui.jobs.core.states import Status

from ..jobs.conftest import wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ONE_EPOCH = ["--epochs", "1", "--synthetic-size", "32", "--image-size", "32", "-b", "4", "-p", "1",
             "--warmup", "0", "-j", "0"]  # fmt: skip
JOB_TIMEOUT = 600


def _submit(jm, **queue):
    return jm.submit(preset="demo", device="cpu", cards=1, engine_flags=ONE_EPOCH, executor="slurm",
                     slurm={"nodes": 2}, **queue)  # fmt: skip


def _final(jm, job_id: int) -> Status:
    return wait_for(lambda: jm.get_job(job_id).status if jm.get_job(job_id).status.terminal else None,
                    JOB_TIMEOUT, message=f"job {job_id} to end")  # fmt: skip


def test_a_dependency_between_slurm_jobs_is_held_by_slurm(slurm_jm, slurm_env):
    first = _submit(slurm_jm)
    second = _submit(slurm_jm, after=[first.id])
    slurm_id = (second.executor_handle or {}).get("slurm_job_id")
    assert second.status is Status.QUEUED and slurm_id, second  # handed to Slurm at once
    shown = slurm_env.run("scontrol", "show", "job", str(slurm_id)).stdout
    assert f"afterok:{first.executor_handle['slurm_job_id']}" in shown
    assert _final(slurm_jm, first.id) is Status.COMPLETED, slurm_jm.get_job(first.id).error
    assert _final(slurm_jm, second.id) is Status.COMPLETED, slurm_jm.get_job(second.id).error
    a, b = slurm_jm.get_job(first.id), slurm_jm.get_job(second.id)
    assert a.finished_at <= b.started_at + 1.0
