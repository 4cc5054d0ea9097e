"""Checkpoints load without running code: a file that needs unpickling is refused unless trusted, and the
files today's engine (and the port) wrote still resume."""

from __future__ import annotations

import random
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from engine import checkpoint
from engine.accelerator import DeviceInfo
from engine.checkpoint import Checkpointer, CheckpointError, load_checkpoint
from engine.config import parse_args
from engine.distributed import DistInfo
from engine.events import EventWriter, iter_records
from engine.model import build_model
from engine.recipe import RecipeState
from engine.stopping import StopFlag
from engine.trainer import Trainer
from tests.conftest import engine_env, run_engine

TINY = ["--data-backend", "synthetic", "--device", "cpu", "--image-size", "32", "-b", "4", "-j", "0",
        "--num-classes", "3", "--synthetic-size", "16", "--seed", "1", "--training-only", "-p", "1",
        "--raport-file", "raport.json"]  # fmt: skip


def format_1_checkpoint(path: Path, epoch: int, iteration: int, scaler: dict | None = None) -> dict:
    """A checkpoint as rn50tui's engine wrote it before the format had one scaler key (format 1):
    `Trainer.state_dict()` of commit 90ccd06, field for field, with a real SGD state after one step."""
    cfg = parse_args([*TINY, "--epochs", "2"])
    model = build_model(cfg.arch, cfg.model_config, cfg.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    ckpt = {
        "epoch": epoch,
        "iteration": iteration,
        "arch": (cfg.arch, cfg.model_config, cfg.num_classes),
        "state_dict": model.state_dict(),
        "best_prec1": 0.0,
        "optimizer": opt.state_dict(),
        "amp": scaler,
        "scaler": scaler,
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
        "iters_per_epoch": 4,
        "global_batch": 4,
        "config": cfg.to_dict(),
        "class_names": [],
        "format_version": 1,
    }
    torch.save(ckpt, path)
    return ckpt


def test_a_format_1_checkpoint_stopped_inside_an_epoch_resumes_there(tmp_path):
    ckpt_path = tmp_path / "old.pth.tar"
    old = format_1_checkpoint(ckpt_path, epoch=0, iteration=2)
    ws = tmp_path / "ws"
    out = run_engine(
        [*TINY, "--epochs", "1", "--workspace", str(ws), "--resume", str(ckpt_path)], cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    start = next(r for r in iter_records(ws / "raport.json") if r.event == "run_start")
    assert (start.data["start_epoch"], start.data["start_iter"]) == (1, 2)  # 2 iterations into epoch 1
    train_steps = [r.step for r in iter_records(ws / "raport.json") if r.phase == "train"]
    assert train_steps == [[1, 3], [1, 4]]  # the two iterations left of epoch 1, no more
    new = torch.load(ws / "checkpoint.pth.tar", weights_only=True)
    assert new["epoch"] == 1 and new["iteration"] == 0
    assert not torch.equal(new["state_dict"]["fc.weight"], old["state_dict"]["fc.weight"])  # it trained on


class Payload:
    """What a hostile checkpoint carries: unpickling it calls open(marker, "w"), creating the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def hostile_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "payload-ran"
    path = tmp_path / "hostile.pth.tar"
    model = build_model("resnet50", "classic", 3)
    torch.save({"epoch": 1, "arch": "resnet50", "state_dict": model.state_dict(), "x": Payload(marker)}, path)
    assert not marker.exists()
    return path, marker


def test_a_checkpoint_with_a_malicious_reduce_is_refused_and_its_payload_never_runs(tmp_path):
    path, marker = hostile_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match=r"wants io\.open unpickled.*pass --trust-checkpoint"):
        load_checkpoint(str(path))
    assert not marker.exists()
    load_checkpoint(str(path), trust=True)  # the one way in, and it does run the payload
    assert marker.exists()


@pytest.mark.slow
def test_every_command_that_loads_a_checkpoint_refuses_it_with_exit_2(tmp_path):
    path, marker = hostile_checkpoint(tmp_path)
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (40, 40)).save(image)
    commands = [
        [
            "engine.train",
            *TINY,
            "--num-classes",
            "3",
            "--workspace",
            str(tmp_path / "ws"),
            "--resume",
            str(path),
        ],
        ["engine.train", *TINY, "--workspace", str(tmp_path / "ws2"), "--pretrained-from-file", str(path)],
        ["engine.classify", str(image), "--resume", str(path), "--device", "cpu"],
        ["engine.bench", "infer", "--resume", str(path), "--device", "cpu", "--batch-sizes", "1"],
        ["engine.export", "--resume", str(path), "--format", "pt2", "--out", str(tmp_path / "m.pt2")],
    ]
    for cmd in commands:
        out = subprocess.run([sys.executable, "-m", *cmd], env=engine_env(), cwd=tmp_path, capture_output=True,
                             text=True, timeout=300)  # fmt: skip
        assert out.returncode == 2, (cmd[0], out.stderr)
        assert "wants io.open unpickled, which can run any code" in out.stderr, out.stderr
        assert "pass --trust-checkpoint" in out.stderr and "Traceback" not in out.stderr
        assert not marker.exists(), cmd[0]


def test_what_would_need_unpickling_is_never_written(tmp_path):
    ck = Checkpointer(parse_args([*TINY, "--workspace", str(tmp_path)]), enabled=True)
    with pytest.raises(TypeError, match=r"checkpoint\['ema'\] is a torch.nn.modules.linear.Linear"):
        ck.save({"epoch": 1, "ema": torch.nn.Linear(2, 2)})
    assert not any(tmp_path.iterdir())


def test_old_torch_is_warned_about_once(tmp_path, monkeypatch):
    path = tmp_path / "w.pth.tar"
    torch.save({"state_dict": {"fc.weight": torch.zeros(1)}}, path)
    monkeypatch.setattr(checkpoint, "_warned_unsafe_torch", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_checkpoint(str(path))  # this torch is >= 2.6: nothing to say
    monkeypatch.setattr(torch, "__version__", "2.1.0+mlu1.17")
    with pytest.warns(UserWarning, match=r"torch 2.1.0\+mlu1.17 is older than 2.6.*CVE-2025-32434"):
        load_checkpoint(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_checkpoint(str(path))  # once per process


def small_trainer(tmp_path: Path, use_scaler: bool = True) -> Trainer:
    """A real Trainer on the CPU whose device trains in fp16 with a GradScaler, as MLU and CUDA do."""
    cfg = parse_args([*TINY, "--epochs", "5", "--workspace", str(tmp_path)])
    dev = DeviceInfo("cpu", torch.device("cpu"), "cpu", torch.bfloat16, use_scaler, "gloo")
    model = build_model(cfg.arch, cfg.model_config, cfg.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", enabled=use_scaler)
    return Trainer(cfg=cfg, dev=dev, dist=DistInfo(), model=model, ddp_model=model, optimizer=opt,
                   scaler=scaler, train_loader=None, val_loader=None, writer=EventWriter(None),
                   checkpointer=Checkpointer(cfg, enabled=False), stop=StopFlag(), accumulation=1,
                   recipe=RecipeState())  # fmt: skip


def scaler_state(scale: float) -> dict:
    return {"scale": scale, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
            "_growth_tracker": 7}  # fmt: skip


def test_load_state_dict_reads_the_ports_keys(tmp_path):
    src = build_model("resnet50", "fanin", 3)
    port = {"epoch": 3, "arch": ("resnet50", "fanin", 3), "best_prec1": 12.5,
            "state_dict": {f"module.{k}": v for k, v in src.state_dict().items()},
            "optimizer": {}, "amp": scaler_state(1024.0)}  # fmt: skip
    t = small_trainer(tmp_path)
    assert t.load_state_dict(port, "port.pth.tar") == (3, 0)
    assert t.best_top1 == 12.5 and t.scaler.get_scale() == 1024.0
    assert torch.equal(t.model.conv1.weight, src.conv1.weight)


def test_load_state_dict_reads_format_1_and_the_round_trip_is_exact(tmp_path):
    old = format_1_checkpoint(tmp_path / "old.pth.tar", epoch=2, iteration=0, scaler=scaler_state(512.0))
    t = small_trainer(tmp_path)
    assert t.load_state_dict({**old, "amp": None}, "old.pth.tar") == (2, 0)  # format 1's `scaler` key
    assert t.scaler.get_scale() == 512.0 and t.scaler.state_dict()["_growth_tracker"] == 7
    assert t.optimizer.state_dict()["state"][0]["momentum_buffer"].abs().sum() > 0
    saved = t.state_dict(epoch=2, iteration=0)
    assert "scaler" not in saved and saved["amp"]["scale"] == 512.0  # one key, the port's
    expected = torch.rand(3)
    other = small_trainer(tmp_path)
    other.load_state_dict(saved, "saved")
    assert torch.equal(torch.rand(3), expected)  # the RNG state came back with it
    for key, value in t.model.state_dict().items():
        assert torch.equal(other.model.state_dict()[key], value), key
