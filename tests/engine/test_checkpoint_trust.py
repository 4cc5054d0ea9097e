"""Checkpoints load without running code: a file that needs unpickling is refused unless trusted, and the
files today's engine (and the port) wrote still resume."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from engine.config import parse_args
from engine.events import iter_records
from engine.model import build_model
from tests.conftest import run_engine

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
    assert (start.data["start_epoch"], start.data["start_iter"]) == (0, 2)
    train_steps = [r.step for r in iter_records(ws / "raport.json") if r.phase == "train"]
    assert train_steps == [[1, 3], [1, 4]]  # the two iterations left of epoch 1, no more
    new = torch.load(ws / "checkpoint.pth.tar", weights_only=True)
    assert new["epoch"] == 1 and new["iteration"] == 0
    assert not torch.equal(new["state_dict"]["fc.weight"], old["state_dict"]["fc.weight"])  # it trained on
