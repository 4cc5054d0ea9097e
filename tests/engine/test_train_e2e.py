"""The engine end to end, as a user runs it: `python -m engine.train` in a subprocess on a tiny dataset."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.data.testing import make_image_folder
from engine.events import EXIT_STOPPED, iter_records, readable_position, validate
from tests.conftest import engine_env, run_engine

TINY = [
    "--device",
    "cpu",
    "--image-size",
    "32",
    "-b",
    "8",
    "-j",
    "0",
    "--seed",
    "1",
    "--raport-file",
    "raport.json",
]


def records(ws: Path) -> list:
    return list(iter_records(ws / "raport.json"))


def epoch_metrics(ws: Path) -> list[dict]:
    return [r.data for r in records(ws) if r.phase == "epoch"]


def assert_schema(ws: Path) -> None:
    """Every line the engine wrote follows the schema of engine/events.py."""
    import json

    lines = (ws / "raport.json").read_text().splitlines()
    assert lines
    for line in lines:
        assert line.startswith("DLLL ")
        validate(json.loads(line[5:]))


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    return make_image_folder(
        tmp_path_factory.mktemp("data") / "imagenet", {"train": 24, "val": 6}, num_classes=4, size=(64, 64)
    )


def test_synthetic_runs_with_no_dataset_and_follows_the_schema(tmp_path):
    out = run_engine(
        [
            "--data-backend",
            "synthetic",
            *TINY,
            "--num-classes",
            "4",
            "--epochs",
            "1",
            "--synthetic-size",
            "16",
            "--workspace",
            str(tmp_path),
        ],
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert_schema(tmp_path)
    recs = records(tmp_path)
    start = next(r for r in recs if r.event == "run_start")
    assert start.data["train_iters"] == 2 and start.data["val_iters"] >= 1 and start.data["device"] == "cpu"
    assert [r.data["status"] for r in recs if r.event == "run_end"] == ["completed"]
    summary = [r for r in recs if r.phase == "summary"][0].data
    assert summary["train.total_ips"] > 0 and "val.top1" in summary and summary["data.skipped_images"] == 0
    assert {"train.loss", "train.total_ips", "train.lr"} <= {
        k for r in recs if r.phase == "train" for k in r.data
    }
    assert (tmp_path / "checkpoint.pth.tar").is_file() and (tmp_path / "model_best.pth.tar").is_file()


def test_amp_on_a_cpu_without_bf16_says_so_once(tmp_path):
    from engine.accelerator import cpu_has_native_bf16

    out = run_engine(["--data-backend", "synthetic", *TINY, "--num-classes", "4", "--epochs", "1",
                      "--synthetic-size", "8", "--amp", "--workspace", str(tmp_path)], tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    said = (out.stdout + out.stderr).count("training in fp32 instead")
    assert said == (0 if cpu_has_native_bf16() else 1), out.stderr


def test_bad_flag_fails_before_any_work(tmp_path):
    out = run_engine(
        ["--data-backend", "synthetic", "--epochs", "0", "--workspace", str(tmp_path)], cwd=tmp_path
    )
    assert out.returncode == 2 and "error: --epochs must be at least 1" in out.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_image_folder_two_epochs_loss_falls_and_evaluate_reproduces_top1(tmp_path, image_folder):
    ws = tmp_path / "ws"
    args = [str(image_folder), *TINY, "--image-size", "64", "-b", "16", "--num-classes", "4", "--epochs", "2",
            "--lr", "0.002", "-p", "2", "--seed", "3", "-j", "2", "--workspace", str(ws)]  # fmt: skip
    out = run_engine(args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert_schema(ws)
    e1, e2 = epoch_metrics(ws)
    assert e2["train.loss"] < e1["train.loss"]
    assert e1["train.total_ips"] > 0 and 0 <= e2["val.top1"] <= 100
    for name in ("checkpoint.pth.tar", "model_best.pth.tar"):
        assert (ws / name).is_file()
    ckpt = torch.load(ws / "checkpoint.pth.tar", weights_only=False)
    assert ckpt["epoch"] == 2 and ckpt["arch"] == ("resnet50", "classic", 4) and ckpt["iteration"] == 0
    assert ckpt["best_prec1"] == max(e1["val.top1"], e2["val.top1"])

    # --evaluate reproduces the last validation from the checkpoint; --epochs (the old "+1" rule) is ignored
    ev = tmp_path / "eval"
    out = run_engine(
        [
            str(image_folder),
            *TINY,
            "--image-size",
            "64",
            "-b",
            "16",
            "--num-classes",
            "4",
            "--evaluate",
            "--resume",
            str(ws / "checkpoint.pth.tar"),
            "--epochs",
            "3",
            "--workspace",
            str(ev),
        ],
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    summary = [r for r in records(ev) if r.phase == "summary"][0].data
    assert summary["val.top1"] == pytest.approx(e2["val.top1"])
    assert summary["val.loss"] == pytest.approx(e2["val.loss"], rel=1e-4)
    assert {"val.top5", "val.total_ips", "val.compute_latency_at95", "val.compute_latency_at99"} <= set(
        summary
    )


@pytest.mark.slow
def test_stop_and_resume_gives_the_same_weights_as_a_straight_run(tmp_path):
    """N steps straight == N/2 + SIGTERM + resume + N/2 (CPU, fixed seed). The stop is a real SIGTERM the
    engine sends itself at a chosen iteration (RN50TUI_STOP_AFTER_ITERS), so the point is deterministic."""
    common = [
        "--data-backend",
        "synthetic",
        *TINY,
        "--num-classes",
        "4",
        "--epochs",
        "2",
        "--synthetic-size",
        "48",
        "--lr",
        "0.01",
        "--warmup",
        "1",
        "--lr-schedule",
        "cosine",
        "--optimizer-batch-size",
        "16",
        "-p",
        "2",
        "--training-only",
    ]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert run_engine([*common, "--workspace", str(straight)], cwd=tmp_path).returncode == 0
    first = run_engine([*common, "--workspace", str(stopped)], cwd=tmp_path, RN50TUI_STOP_AFTER_ITERS="4")
    assert first.returncode == EXIT_STOPPED, first.stderr
    mid = torch.load(stopped / "checkpoint.pth.tar", weights_only=False)
    assert (mid["epoch"], mid["iteration"]) == (0, 4)  # 6 iterations per epoch: stopped inside the first
    resumed = run_engine(
        [*common, "--workspace", str(stopped), "--resume", str(stopped / "checkpoint.pth.tar")], cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    a = torch.load(straight / "checkpoint.pth.tar", weights_only=False)
    b = torch.load(stopped / "checkpoint.pth.tar", weights_only=False)
    assert a["epoch"] == b["epoch"] == 2
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    # raport.json is appended across the attempts, and tells the stop apart from the end
    recs = records(stopped)
    assert [r.data["status"] for r in recs if r.event == "run_end"] == ["stopped", "completed"]
    assert [r.data["iteration"] for r in recs if r.event == "stopping"] == [4]
    # one count of epochs in every record a person reads: the stop inside epoch 1 says epoch 1, as the
    # epoch_start before it does, and the resumed run starts in epoch 1 (the checkpoint file says 0 done)
    first_start = next(r.data for r in recs if r.event == "epoch_start")
    stop = next(r.data for r in recs if r.event == "stopping")
    mid_ckpt = next(r.data for r in recs if r.event == "checkpoint")
    second_run = [r.data for r in recs if r.event == "run_start"][1]
    assert first_start["epoch"] == stop["epoch"] == mid_ckpt["epoch"] == 1 and mid_ckpt["iteration"] == 4
    assert (second_run["start_epoch"], second_run["start_iter"]) == (1, 4)
    assert_schema(stopped)


@pytest.mark.slow
def test_stop_and_resume_with_mixup_and_ema_reproduces_weights_and_ema_weights(tmp_path):
    """As above with --mixup and --use-ema: the mixup draws and the EMA continue exactly where they stopped."""
    common = [
        "--data-backend", "synthetic", *TINY, "--num-classes", "4", "--epochs", "2",
        "--synthetic-size", "48", "--lr", "0.01", "--optimizer-batch-size", "16", "-p", "2",
        "--training-only", "--mixup", "0.2", "--label-smoothing", "0.1", "--use-ema", "0.9",
    ]  # fmt: skip
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert run_engine([*common, "--workspace", str(straight)], cwd=tmp_path).returncode == 0
    first = run_engine([*common, "--workspace", str(stopped)], cwd=tmp_path, RN50TUI_STOP_AFTER_ITERS="4")
    assert first.returncode == EXIT_STOPPED, first.stderr
    mid = torch.load(stopped / "checkpoint.pth.tar", weights_only=True)  # plain tensors and numbers
    assert (mid["epoch"], mid["iteration"], mid["ema_updates"]) == (0, 4, 2)
    resumed = run_engine(
        [*common, "--workspace", str(stopped), "--resume", str(stopped / "checkpoint.pth.tar")], cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    a = torch.load(straight / "checkpoint.pth.tar", weights_only=True)
    b = torch.load(stopped / "checkpoint.pth.tar", weights_only=True)
    assert a["ema_updates"] == b["ema_updates"] == 6  # 2 epochs × 3 optimizer steps
    for key in ("state_dict", "state_dict_ema"):
        for name, value in a[key].items():
            torch.testing.assert_close(b[key][name], value, rtol=1e-5, atol=1e-6, msg=f"{key} {name}")
    assert not torch.equal(a["state_dict_ema"]["fc.weight"], a["state_dict"]["fc.weight"])
    losses = [r.data["train.loss"] for r in records(straight) if r.phase == "epoch"]
    assert all(loss == loss and loss > 0 for loss in losses)
    assert_schema(stopped)


@pytest.mark.slow
def test_external_sigterm_checkpoints_and_exits_with_the_stop_status(tmp_path):
    ws = tmp_path / "ws"
    cmd = [
        sys.executable,
        "-m",
        "engine.train",
        "--data-backend",
        "synthetic",
        *TINY,
        "--num-classes",
        "4",
        "--epochs",
        "50",
        "--synthetic-size",
        "400",
        "-p",
        "1",
        "--workspace",
        str(ws),
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=engine_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while time.time() < deadline and not any(r.phase == "train" for r in records(ws)):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_STOPPED, err
    ckpt = torch.load(ws / "checkpoint.pth.tar", weights_only=False)
    stop = [r for r in records(ws) if r.event == "stopping"][0].data
    assert stop["signal"] == "SIGTERM" and readable_position(ckpt["epoch"], ckpt["iteration"]) == (
        stop["epoch"],
        stop["iteration"],
    )
    out = run_engine(
        [
            "--data-backend",
            "synthetic",
            *TINY,
            "--num-classes",
            "4",
            "--epochs",
            str(ckpt["epoch"] + 1),
            "--synthetic-size",
            "400",
            "--workspace",
            str(ws),
            "--resume",
            str(ws / "checkpoint.pth.tar"),
            "--training-only",
        ],
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    starts = [r.data for r in records(ws) if r.event == "epoch_start"]
    assert starts[-1]["start_iter"] in (0, stop["iteration"])


def test_resume_refuses_a_finished_schedule_and_a_missing_file(tmp_path):
    ws = tmp_path / "ws"
    base = [
        "--data-backend",
        "synthetic",
        *TINY,
        "--num-classes",
        "4",
        "--synthetic-size",
        "8",
        "--training-only",
    ]
    assert run_engine([*base, "--epochs", "1", "--workspace", str(ws)], cwd=tmp_path).returncode == 0
    out = run_engine(
        [*base, "--epochs", "1", "--workspace", str(ws), "--resume", str(ws / "checkpoint.pth.tar")],
        cwd=tmp_path,
    )
    assert out.returncode == 2 and "pass --epochs N with N > 1" in out.stderr
    out = run_engine([*base, "--resume", str(ws / "nope.pth.tar")], cwd=tmp_path)
    assert out.returncode == 2 and "no such file" in out.stderr
    out = run_engine(
        [
            *base,
            "--num-classes",
            "5",
            "--epochs",
            "2",
            "--resume",
            str(ws / "checkpoint.pth.tar"),
            "--workspace",
            str(ws),
        ],
        cwd=tmp_path,
    )
    assert out.returncode == 2 and "has 4 classes, but --num-classes is 5" in out.stderr
    errors = [r.data["message"] for r in records(ws) if r.event == "error"]
    assert any("has 4 classes" in m for m in errors)  # the job manager reads the reason from the report


@pytest.mark.slow
def test_corrupt_images_are_skipped_and_counted(tmp_path, image_folder):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    (data / "train" / "class_0" / "0_0.JPEG").write_bytes(b"not a jpeg at all")
    base = [str(data), *TINY, "--num-classes", "4", "--epochs", "1", "--training-only"]
    ws = tmp_path / "ws"
    out = run_engine([*base, "--max-bad-fraction", "0.1", "--workspace", str(ws)], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "0_0.JPEG" in out.stderr  # the warning names the file
    summary = [r for r in records(ws) if r.phase == "summary"][0].data
    assert summary["data.skipped_images"] == 1
    strict = ["--max-bad-fraction", "0.001", "-p", "100", "--workspace", str(tmp_path / "strict")]
    out = run_engine([*base, *strict], cwd=tmp_path)
    assert out.returncode == 1 and "could not be read" in out.stderr and "--max-bad-fraction" in out.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "Ctrl-C", "hang-up"]
)
def test_a_signal_to_the_whole_group_with_loader_workers_still_checkpoints(tmp_path, image_folder, sig):
    """A terminal's Ctrl-C, a dropped SSH session's hang-up or a scheduler's group SIGTERM also reaches the
    data-loader workers: they must not die before the training loop has written its checkpoint, and none
    may be left afterwards."""
    import psutil

    ws = tmp_path / "ws"
    # fmt: off
    args = [str(image_folder), *TINY, "--num-classes", "4", "-b", "4", "--image-size", "64", "--epochs", "40",
            "-p", "1", "-j", "2", "--workspace", str(ws)]
    # fmt: on
    cmd = [sys.executable, "-m", "engine.train", *args]
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=engine_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not any(r.phase == "train" and r.step[0] == 2 for r in records(ws)):
            time.sleep(0.2)
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert len(workers) == 4  # persistent: 2 for training, 2 for validation
        os.killpg(proc.pid, sig)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == EXIT_STOPPED, err[-2000:]
        stop = [r.data for r in records(ws) if r.event == "stopping"][0]
        ckpt = torch.load(ws / "checkpoint.pth.tar", weights_only=False)
        assert readable_position(ckpt["epoch"], ckpt["iteration"]) == (stop["epoch"], stop["iteration"])
        assert stop["iteration"] > 0  # a mid-epoch position, not the last epoch's checkpoint
    finally:
        if proc.poll() is None:  # a failed assertion must not leave the run behind
            os.killpg(proc.pid, signal.SIGKILL)
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive
