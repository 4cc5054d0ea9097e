"""Tests that need a real MLU or CUDA card (`pytest -m device`); skipped where none is present."""

from __future__ import annotations

import pytest
import torch

from engine.events import iter_records
from tests.conftest import run_engine

pytestmark = pytest.mark.device


def available_kinds() -> list[str]:
    kinds = []
    try:
        import torch_mlu  # noqa: F401

        if torch.mlu.is_available():  # type: ignore[attr-defined]
            kinds.append("mlu")
    except ImportError:
        pass
    if torch.cuda.is_available():
        kinds.append("cuda")
    return kinds


KINDS = available_kinds() or [pytest.param("none", marks=pytest.mark.skip(reason="no MLU or CUDA card here"))]


@pytest.mark.parametrize("kind", KINDS)
def test_amp_nhwc_training_on_the_card_checkpoints_a_grad_scaler(tmp_path, kind):
    out = run_engine(
        [
            "--data-backend",
            "synthetic",
            "--device",
            kind,
            "--amp",
            "--memory-format",
            "nhwc",
            "-b",
            "32",
            "--image-size",
            "64",
            "--num-classes",
            "10",
            "--epochs",
            "1",
            "--synthetic-size",
            "256",
            "-p",
            "2",
            "--workspace",
            str(tmp_path),
            "--raport-file",
            "raport.json",
        ],
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    ckpt = torch.load(tmp_path / "checkpoint.pth.tar", weights_only=True)  # device RNG state included
    assert ckpt["amp"] and ckpt["amp"]["scale"] > 0  # fp16 with a GradScaler on MLU and CUDA
    assert isinstance(ckpt["rng"][kind], torch.Tensor)
    start = next(r for r in iter_records(tmp_path / "raport.json") if r.event == "run_start")
    assert start.data["device"] == kind and start.data["amp"] == "float16"
    train = [r.data for r in iter_records(tmp_path / "raport.json") if r.phase == "train"]
    assert all("train.grad_scale" in d for d in train)


@pytest.mark.parametrize("kind", KINDS)
def test_bench_train_reports_peak_device_memory(tmp_path, kind):
    import json
    import subprocess
    import sys

    from tests.conftest import engine_env

    log = tmp_path / "b.jsonl"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.bench",
            "train",
            "--device",
            kind,
            "-b",
            "32",
            "--iters",
            "5",
            "--warmup",
            "2",
            "--amp",
            "--log",
            str(log),
        ],
        cwd=tmp_path,
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    record = json.loads(log.read_text())
    assert record["peak_memory_mib"] > 0 and record["device"] == kind


@pytest.mark.parametrize("kind", KINDS)
def test_mixup_and_ema_on_the_card_match_the_cpu(tmp_path, kind):
    """The mix and the EMA update run on the card and give the CPU's numbers."""
    from engine.ema import EMA
    from engine.mixup import draw, mix

    dev = torch.device(kind)
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))
    d = draw(0.2, 16, 1, 0, 3, 0)
    cpu = mix(x.clone(), y, d, 10, 0.1)
    card = mix(x.clone().to(dev), y.to(dev), d, 10, 0.1)
    assert card[0].device.type == kind and card[1].device.type == kind
    torch.testing.assert_close(card[0].cpu(), cpu[0])
    torch.testing.assert_close(card[1].cpu(), cpu[1])
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).to(dev)
    ema = EMA(model, 0.9)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update()
    assert next(ema.module.parameters()).device.type == kind
    expected = 0.1 * (model[0].weight - 1.0) + 0.9 * model[0].weight  # update 0: decay min(0.9, 1/10)
    torch.testing.assert_close(ema.module[0].weight, expected)


@pytest.mark.parametrize("kind", KINDS)
def test_a_batch_too_big_for_the_card_fails_with_the_fix(tmp_path, kind):
    out = run_engine(["--data-backend", "synthetic", "--device", kind, "-b", "4096", "--image-size", "224",
                      "--num-classes", "10", "--epochs", "1", "--synthetic-size", "4096", "-j", "0",
                      "--workspace", str(tmp_path)], cwd=tmp_path)  # fmt: skip
    assert out.returncode == 1, out.stderr[-2000:]
    assert "error: out of memory at batch 4096 per card" in out.stderr and "Traceback" not in out.stderr
