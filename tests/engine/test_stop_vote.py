"""StopVote: every rank stops at the same step, reading the vote cast one step before."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from engine.distributed import StopVote

from .test_on_device import KINDS


@pytest.fixture
def one_rank_group(tmp_path: Path) -> Iterator[Callable[[str], None]]:
    """A real process group of one rank (gloo, or the card's own backend in the device test)."""

    def start(backend: str) -> None:
        store = dist.FileStore(str(tmp_path / "store"), 1)
        dist.init_process_group(backend, store=store, rank=0, world_size=1)

    yield start
    if dist.is_initialized():
        dist.destroy_process_group()


def check_votes(vote: StopVote) -> None:
    assert vote.step(False) is False
    assert vote.step(True) is False  # cast at this step, read at the next: no wait on the card now
    assert vote.step(False) is True
    assert vote.step(False) is False  # each vote is read once
    assert vote.now(True) is True  # an epoch end agrees at once
    vote.step(True)
    assert vote.now(False) is True  # a vote still in flight counts at an epoch end
    assert vote.step(False) is False


def test_a_vote_is_read_one_step_later_and_an_epoch_end_agrees_at_once(one_rank_group):
    one_rank_group("gloo")
    check_votes(StopVote(torch.device("cpu")))


@pytest.mark.device
@pytest.mark.parametrize("kind", KINDS)
def test_the_vote_on_a_card_goes_through_pinned_memory_and_an_event(one_rank_group, kind):
    if kind == "mlu":
        import torch_mlu  # noqa: F401
    module = getattr(torch, kind)
    module.set_device(0)
    one_rank_group({"cuda": "nccl", "mlu": "cncl"}[kind])
    vote = StopVote(torch.device(kind, 0))
    assert vote._event is module.Event and vote._host.is_pinned()
    check_votes(vote)
