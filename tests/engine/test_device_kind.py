"""Device kinds and run ends are types of the engine's torch-free contract, read the same by every layer."""

from __future__ import annotations

import re

import pytest

from engine.config import parse_args
from engine.device_kind import CARD_KINDS, KINDS, DeviceKind
from engine.events import EventWriter, RunEnd, read_from
from rn50tui.jobs.core.capacity import parse_spec
from rn50tui.jobs.submission import Request, plan
from tests.conftest import ROOT


def test_gpu_is_read_as_cuda_by_every_reader():
    assert DeviceKind.parse(" GPU ") is DeviceKind.CUDA and KINDS == ("mlu", "cuda", "cpu")
    assert CARD_KINDS == (DeviceKind.MLU, DeviceKind.CUDA)
    assert parse_args(["--device", "gpu", "--data-backend", "synthetic"]).device == "cuda"
    assert parse_spec("gpu=2,cpu=1") == {"cuda": 2, "cpu": 1}
    assert plan(Request(preset="demo", device="gpu", cards=1), {"cuda": 1, "cpu": 1}).device == "cuda"


def test_an_unknown_kind_names_the_choices():
    with pytest.raises(ValueError, match="unknown device 'tpu': use mlu, cuda, cpu, gpu"):
        DeviceKind.parse("tpu")


def test_the_gpu_alias_is_spelled_in_one_place():
    spelled = [str(p.relative_to(ROOT)) for folder in ("engine", "rn50tui") for p in (ROOT / folder).rglob("*.py")
               if re.search(r"""["']gpu["']""", p.read_text())]  # fmt: skip
    assert spelled == ["engine/device_kind.py"]


def test_the_run_end_the_engine_writes_is_the_one_readers_parse(tmp_path):
    path = tmp_path / "raport.json"
    writer = EventWriter(path)
    writer.status("run_end", status=RunEnd.STOPPED, epoch=1, iteration=3)
    writer.close()
    records, _ = read_from(path)
    assert records[-1].data["status"] == "stopped" and RunEnd(records[-1].data["status"]) is RunEnd.STOPPED
