"""Real jobs on a real (private, two-node) Slurm cluster: sbatch → srun → torchrun c10d → the engine.

Each test polls the store for the state it needs, with a generous deadline, never a fixed sleep.
"""

from __future__ import annotations

import pytest

from engine.events import iter_records
from rn50tui.jobs.states import Status

from ..jobs.conftest import wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

_TINY = ["--image-size", "32", "-b", "4", "-p", "1", "--warmup", "0", "-j", "0"]
ONE_EPOCH = ["--epochs", "1", "--synthetic-size", "32", *_TINY]
JOB_TIMEOUT = 400


def _final(jm, job_id: int) -> Status:
    return wait_for(lambda: jm.get_job(job_id).status if jm.get_job(job_id).status.terminal else None,
                    JOB_TIMEOUT, message=f"job {job_id} to end")  # fmt: skip


def test_a_two_node_job_trains_to_completed_with_both_nodes_cards(slurm_jm):
    job = slurm_jm.submit(preset="demo", device="cpu", cards=1, engine_flags=ONE_EPOCH, executor="slurm",
                          slurm={"nodes": 2})  # fmt: skip
    assert job.executor == "slurm"
    assert _final(slurm_jm, job.id) is Status.COMPLETED, slurm_jm.get_job(job.id).error
    done = slurm_jm.get_job(job.id)
    assert done.world_size == 2 and done.progress == 1.0
    assert (done.executor_handle or {}).get("nodes") == "node[1-2]"
    ws = done.raport_path.parent
    assert [p.name for p in ws.glob("*.json")] == ["raport.json"]  # one raport, from rank 0
    assert len(list(ws.glob("checkpoint*.pth.tar"))) == 1
    phases = [m.phase for m in slurm_jm.metrics(job.id)]
    assert phases.count("train") == 4 and phases[-1] == "summary"  # 32 images, 4 a batch, 2 ranks
    assert phases.count("train") == sum(1 for r in iter_records(done.raport_path) if r.phase == "train")
    nodes = {s.name.split(":")[0] for s in slurm_jm.device_samples(job.id)}
    assert nodes == {"node1", "node2"}
    assert (ws / "slurm" / "attempt-1.sbatch").is_file()
