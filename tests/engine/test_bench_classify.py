"""The benchmark modes and the single-image classifier, run as users run them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.data.testing import render_image
from engine.model import build_model
from tests.conftest import engine_env

pytestmark = pytest.mark.slow


def run_module(module: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_bench_train_prints_the_table_and_appends_a_record(tmp_path):
    log = tmp_path / "bench.jsonl"
    for _ in range(2):
        out = run_module(
            "engine.bench",
            [
                "train",
                "-b",
                "4",
                "--image-size",
                "32",
                "--iters",
                "2",
                "--warmup",
                "1",
                "--device",
                "cpu",
                "--log",
                str(log),
            ],
            tmp_path,
        )
        assert out.returncode == 0, out.stderr
    assert "images/s per card" in out.stdout and "data time" in out.stdout
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 2
    assert rows[0]["cards"] == 1 and rows[0]["batch_size"] == 4 and rows[0]["precision"] == "fp32"
    assert rows[0]["images_per_s"] > 0 and rows[0]["device"] == "cpu" and rows[0]["peak_memory_mib"] is None


@pytest.mark.parametrize(("mode", "flag"), [("train", "--log"), ("infer", "--json")])
def test_a_record_file_that_cannot_be_written_is_refused_before_the_run(tmp_path, mode, flag):
    missing = tmp_path / "no-such-folder" / "bench.jsonl"
    out = run_module("engine.bench", [mode, "--device", "cpu", flag, str(missing)], tmp_path)
    assert out.returncode == 2, out.stderr
    assert f"error: {flag} {missing}: No such file or directory; create its folder" in out.stderr
    assert "Traceback" not in out.stderr and not missing.parent.exists()


def test_bench_infer_prints_latency_percentiles_per_batch_and_precision(tmp_path):
    out = run_module(
        "engine.bench",
        [
            "infer",
            "--batch-sizes",
            "1,2",
            "--iters",
            "3",
            "--warmup",
            "1",
            "--image-size",
            "32",
            "--device",
            "cpu",
            "--json",
            str(tmp_path / "i.jsonl"),
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "p99 ms" in out.stdout
    rows = [json.loads(line) for line in (tmp_path / "i.jsonl").read_text().splitlines()]
    assert [(r["precision"].startswith("amp"), r["batch_size"]) for r in rows] == [
        (False, 1),
        (False, 2),
        (True, 1),
        (True, 2),
    ]
    assert all(r["latency_p99_ms"] >= r["latency_p90_ms"] > 0 for r in rows)


def test_bench_without_a_mode_says_which_exist(tmp_path):
    out = run_module("engine.bench", [], tmp_path)
    assert out.returncode == 2 and "{data,handover,train,infer,report}" in out.stdout


def test_classify_prints_top_k_with_class_names(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet50", "classic", 3)
    ckpt = tmp_path / "c.pth.tar"
    torch.save(
        {
            "epoch": 1,
            "arch": ("resnet50", "classic", 3),
            "state_dict": model.state_dict(),
            "class_names": ["cat", "dog", "fox"],
        },
        ckpt,
    )
    img = tmp_path / "x.jpg"
    render_image(0, 0, 80, 60).save(img)
    out = run_module(
        "engine.classify",
        [str(img), "--resume", str(ckpt), "--image-size", "64", "--device", "cpu"],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == str(img) and len(lines) == 4  # top-5 of 3 classes is top-3
    assert {line.split()[-1] for line in lines[1:]} == {"cat", "dog", "fox"}
    probs = [float(line.split()[0].rstrip("%")) for line in lines[1:]]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 100) < 0.1
    bad = run_module("engine.classify", [str(tmp_path / "missing.jpg"), "--resume", str(ckpt)], tmp_path)
    assert bad.returncode == 2 and "no such image" in bad.stderr
