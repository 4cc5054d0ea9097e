"""Process group from torchrun's environment, rank helpers, and exact metric reductions."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

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


class StopVote:
    """Every rank stops at the same optimizer step, without stalling the card each step to ask.

    `step(flag)` reads the vote cast at the step before, then casts this one: an in-place all-reduce (MAX)
    on the device, copied to pinned host memory without blocking, an event after it. The earlier vote is
    read once the next step is queued, so the card never runs dry while the host waits for it; asking
    synchronously (a tensor made from a Python flag, then `.item()`) drained the card's queue twice a step.
    Every rank reads the same earlier vote, so all stop together, one step after the signal. `now(flag)`
    agrees at once, for epoch ends, which synchronize anyway.
    """

    def __init__(self, device: torch.device, event: Optional[type] = None) -> None:
        self.vote = torch.zeros(1, device=device)
        module = getattr(torch, device.type, None) if device.type != "cpu" else None
        self._event = event or getattr(module, "Event", None)  # torch.cuda.Event, torch.mlu.Event
        self._host = _pinned_scalar(device.type) if self._event is not None else self.vote
        self._in_flight: object = None  # the event of a vote not read yet (True on CPU: gloo is synchronous)

    def step(self, flag: bool) -> bool:
        earlier = self._read()
        self._cast(flag)
        return earlier

    def now(self, flag: bool) -> bool:
        earlier = self._read()
        self._cast(flag or earlier)
        return self._read()

    def _cast(self, flag: bool) -> None:
        self.vote.fill_(1.0 if flag else 0.0)  # a kernel, not a host-to-device copy that waits
        dist.all_reduce(self.vote, op=dist.ReduceOp.MAX)
        if self._event is None:
            self._in_flight = True
            return
        self._host.copy_(self.vote, non_blocking=True)
        done = self._event()
        done.record()
        self._in_flight = done

    def _read(self) -> bool:
        if self._in_flight is None:
            return False
        if self._in_flight is not True:
            self._in_flight.synchronize()
        self._in_flight = None
        return bool(self._host.item() > 0)


def _pinned_scalar(device_type: str) -> torch.Tensor:
    """A host scalar a card can copy into without blocking; unpinned (the copy then waits) if pinning fails.

    Current torch pins for its accelerator (CUDA, or torch_mlu's); torch 2.1 with torch_mlu needs the
    device named, an argument newer torch deprecates.
    """
    host = torch.zeros(1)
    for args in ((), (device_type,)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning, UserWarning))
                return host.pin_memory(*args)
        except (RuntimeError, TypeError):
            continue
    return host
