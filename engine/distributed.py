"""Process group from torchrun's environment, rank helpers, and exact metric reductions."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_dist_info() -> DistInfo:
    """Read torchrun's variables (absent: a single process)."""
    return DistInfo(
        rank=int(os.environ.get("RANK", "0")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
    )


def init_process_group(info: DistInfo, backend: str, device: torch.device) -> None:
    """Join torchrun's rendezvous; a no-op for one process."""
    if not info.enabled or dist.is_initialized():
        return
    kwargs = {}
    if device.type == "cuda":
        kwargs["device_id"] = device  # lets NCCL bind eagerly to this rank's card
    try:
        dist.init_process_group(backend=backend, **kwargs)
    except TypeError:
        dist.init_process_group(backend=backend)  # torch < 2.3 has no device_id


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: Sequence[float], device: torch.device) -> list[float]:
    """Sum floats across ranks in float64 (sums and counts, never an average of averages)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [float(v) for v in values]
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True when any rank says so, so every rank stops at the same iteration."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
