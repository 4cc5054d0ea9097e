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


class RecordingEvent:
    """A stand-in shaped like torch.cuda.Event: record() marks the stream, synchronize() waits for it."""

    log: list[tuple[str, int]] = []
    made = 0

    def __init__(self) -> None:
        RecordingEvent.made += 1
        self.n = RecordingEvent.made

    def record(self) -> None:
        self.log.append(("record", self.n))

    def synchronize(self) -> None:
        self.log.append(("wait", self.n))


def test_each_step_waits_only_for_the_vote_of_the_step_before(one_rank_group):
    """The card path's order, with a stand-in event: cast k is waited for at step k+1, never at step k."""
    one_rank_group("gloo")
    RecordingEvent.log, RecordingEvent.made = [], 0
    vote = StopVote(torch.device("cpu"), event=RecordingEvent)
    assert vote._host is not vote.vote  # the result is copied out to a host tensor
    vote.step(False)
    assert RecordingEvent.log == [("record", 1)]  # the first step waits for nothing
    assert vote.step(True) is False
    assert vote.step(False) is True
    assert RecordingEvent.log == [("record", 1), ("wait", 1), ("record", 2), ("wait", 2), ("record", 3)]
    assert vote.now(False) is False
    # an epoch end reads the vote in flight, then casts and waits for its own
    assert RecordingEvent.log[-3:] == [("wait", 3), ("record", 4), ("wait", 4)]


def test_pinning_falls_back_to_naming_the_device_then_to_plain_memory(monkeypatch):
    """torch 2.1 with torch_mlu pins only with the device named; where nothing pins, the copy just waits."""
    from engine import distributed

    calls = []

    def mlu_2_1_pinning(self, *device):
        calls.append(device)
        if not device:
            raise RuntimeError("Found no NVIDIA driver on your system")
        return self + 1  # marks the tensor this call returned

    monkeypatch.setattr(torch.Tensor, "pin_memory", mlu_2_1_pinning)
    assert distributed._pinned_scalar("mlu").item() == 1.0 and calls == [(), ("mlu",)]

    def nothing_pins(self, *device):
        raise RuntimeError("Cannot access accelerator device when none is available")

    monkeypatch.setattr(torch.Tensor, "pin_memory", nothing_pins)
    assert distributed._pinned_scalar("mlu").item() == 0.0
