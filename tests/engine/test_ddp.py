"""Real 2-process data-parallel runs through torchrun with the gloo backend, on CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from engine.events import iter_records, readable_position
from tests.conftest import engine_env

pytestmark = [pytest.mark.ddp, pytest.mark.slow]

# Batch 1 per rank at 64 px: BatchNorm sees one image per forward on both sides of the comparison, so
# 2 ranks × 1 == 1 process × 1 with 2 accumulation steps, step for step.
COMMON = [
    "--data-backend",
    "synthetic",
    "--device",
    "cpu",
    "--image-size",
    "64",
    "--num-classes",
    "4",
    "--synthetic-size",
    "12",
    "--epochs",
    "2",
    "--warmup",
    "1",
    "--lr",
    "0.01",
    "--lr-schedule",
    "cosine",
    "-j",
    "0",
    "--seed",
    "5",
    "-p",
    "2",
    "--raport-file",
    "raport.json",
]


def torchrun(nproc: int, args: list[str], cwd: Path, launcher: str = "torch.distributed.run") -> list[str]:
    return [
        sys.executable,
        "-m",
        launcher,
        "--nproc-per-node",
        str(nproc),
        "--master-port",
        str(29500 + os.getpid() % 1000),
        "-m",
        "engine.train",
        *args,
    ]


def run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, cwd=cwd, env=engine_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=timeout
    )


def test_two_ranks_equal_one_process_over_the_same_global_batch(tmp_path):
    ddp_ws, single_ws = tmp_path / "ddp", tmp_path / "single"
    out = run(torchrun(2, [*COMMON, "-b", "1", "--workspace", str(ddp_ws)], tmp_path), tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    out = run(
        [
            sys.executable,
            "-m",
            "engine.train",
            *COMMON,
            "-b",
            "1",
            "--optimizer-batch-size",
            "2",
            "--workspace",
            str(single_ws),
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]

    # one checkpoint, one report and one set of TensorBoard files, written by rank 0 alone
    assert sorted(p.name for p in ddp_ws.iterdir()) == [
        "checkpoint.pth.tar",
        "model_best.pth.tar",
        "raport.json",
        "tensorboard",
    ]
    assert len(list((ddp_ws / "tensorboard").iterdir())) == 1
    starts = [r for r in iter_records(ddp_ws / "raport.json") if r.event == "run_start"]
    assert len(starts) == 1 and starts[0].data["world_size"] == 2 and starts[0].data["train_iters"] == 6
    a = torch.load(ddp_ws / "checkpoint.pth.tar", weights_only=False)
    b = torch.load(single_ws / "checkpoint.pth.tar", weights_only=False)
    assert not any(k.startswith("module.") for k in a["state_dict"])
    params = [n for n, _ in torch.nn.Module.named_parameters(_model())]
    for name in params:  # buffers differ by design: DDP keeps rank 0's BN running statistics
        torch.testing.assert_close(
            a["state_dict"][name], b["state_dict"][name], rtol=1e-4, atol=1e-5, msg=name
        )
    # validation is sharded and reduced exactly: both runs saw the whole val set with the same weights
    val_a = [r.data for r in iter_records(ddp_ws / "raport.json") if r.phase == "epoch"]
    assert all("val.top1" in m for m in val_a) and len(val_a) == 2


def test_mixup_ema_and_accumulation_run_on_two_ranks(tmp_path):
    ws = tmp_path / "ws"
    flags = [*COMMON, "-b", "2", "--optimizer-batch-size", "8", "--synthetic-size", "16", "--mixup", "0.2",
             "--label-smoothing", "0.1", "--use-ema", "0.99", "--workspace", str(ws)]  # fmt: skip
    out = run(torchrun(2, flags, tmp_path), tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    ckpt = torch.load(ws / "checkpoint.pth.tar", weights_only=True)
    assert ckpt["ema_updates"] == 4  # 16 images / (2 ranks × 2) = 4 mini-batches, 2 per step, 2 epochs
    epochs = [r.data for r in iter_records(ws / "raport.json") if r.phase == "epoch"]
    assert len(epochs) == 2
    assert all(m["train.loss"] == m["train.loss"] and {"val_ema.top1", "val.top1"} <= set(m) for m in epochs)


def _model():
    from engine.model import build_model

    return build_model("resnet50", "classic", 4)


def _ranks(launcher: psutil.Process) -> list[psutil.Process]:
    return [p for p in launcher.children(recursive=True) if "engine.train" in " ".join(p.cmdline())]


def start_training_launcher(
    tmp_path: Path, launcher: str = "torch.distributed.run"
) -> tuple[subprocess.Popen, list[psutil.Process], Path]:
    """A long 2-rank run in its own session; returns once rank 0 has logged a training iteration."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    ws = tmp_path / "ws"
    long_run = ["-b", "2", "--synthetic-size", "400", "--epochs", "5", "-p", "1", "--training-only"]
    proc = subprocess.Popen(
        torchrun(2, [*COMMON, *long_run, "--workspace", str(ws)], tmp_path, launcher),
        cwd=tmp_path,
        env=engine_env(OMP_NUM_THREADS="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not any(r.phase == "train" for r in iter_records(ws / "raport.json")):
        time.sleep(0.3)
    ranks = _ranks(psutil.Process(proc.pid))
    assert len(ranks) == 2
    return proc, ranks, ws


def test_sigterm_to_the_launcher_group_stops_every_rank_with_one_checkpoint(tmp_path):
    proc, ranks, ws = start_training_launcher(tmp_path)
    os.killpg(proc.pid, signal.SIGTERM)  # what a user's Ctrl-C or a scheduler's stop does
    proc.communicate(timeout=180)
    _, alive = psutil.wait_procs(ranks, timeout=30)
    assert not alive
    recs = list(iter_records(ws / "raport.json"))
    stops = [r.data for r in recs if r.event == "stopping"]
    assert len(stops) == 1  # rank 0 alone reports
    ckpt = torch.load(ws / "checkpoint.pth.tar", weights_only=False)
    assert readable_position(ckpt["epoch"], ckpt["iteration"]) == (stops[0]["epoch"], stops[0]["iteration"])
    assert ckpt["iteration"] > 0


def test_sigterm_to_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    """Only rank 1 is signalled (a node's own stop): its vote reaches rank 0, which checkpoints."""
    proc, ranks, ws = start_training_launcher(tmp_path)
    next(p for p in ranks if p.environ().get("RANK") == "1").send_signal(signal.SIGTERM)
    proc.communicate(timeout=180)  # a rank left training alone would wait in the all-reduce forever
    _, alive = psutil.wait_procs(ranks, timeout=30)
    assert not alive
    recs = list(iter_records(ws / "raport.json"))
    stops = [r.data for r in recs if r.event == "stopping"]
    assert len(stops) == 1 and recs[-1].event == "run_end" and recs[-1].data["status"] == "stopped"
    ckpt = torch.load(ws / "checkpoint.pth.tar", weights_only=False)
    assert readable_position(ckpt["epoch"], ckpt["iteration"]) == (stops[0]["epoch"], stops[0]["iteration"])


def test_a_dying_rank_takes_the_job_down_with_its_error_visible(tmp_path):
    proc, ranks, ws = start_training_launcher(tmp_path)
    next(p for p in ranks if p.environ().get("RANK") == "1").kill()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "engine.train" in err and ("Signal 9" in err or "SIGKILL" in err or "exitcode" in err)
    _, alive = psutil.wait_procs(ranks, timeout=60)
    assert not alive
    # rank 0 saw its peer go and said so in the report, which the job manager shows as the failure reason
    status = [r for r in iter_records(ws / "raport.json") if r.type == "STATUS"]
    assert status[-1].event == "run_end" and status[-1].data["status"] == "failed"
    assert status[-2].event == "error" and status[-2].data["message"]


def test_through_engine_launch_a_stop_exits_75_and_a_dead_rank_1_each_without_a_traceback(tmp_path):
    proc, ranks, ws = start_training_launcher(tmp_path / "stop", "engine.launch")
    os.killpg(proc.pid, signal.SIGTERM)  # what the job's cancel does
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 75, err[-3000:]  # as one process stopped with a checkpoint exits
    assert "Traceback" not in err and "ChildFailedError" not in err, err[-3000:]
    assert (ws / "checkpoint.pth.tar").is_file()

    proc, ranks, ws = start_training_launcher(tmp_path / "dies", "engine.launch")
    next(p for p in ranks if p.environ().get("RANK") == "1").kill()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-3000:]
    assert "ChildFailedError" not in err, err[-3000:]  # rank 0's own error above stays visible
    assert err.strip().splitlines()[-1].startswith("error: rank 1 was killed by signal 9 first"), err[-3000:]
    psutil.wait_procs(ranks, timeout=60)


def readme_command(marker: str) -> list[str]:
    """The README's torchrun command that contains `marker`, as tokens (continuation lines joined)."""
    import re
    import shlex

    from tests.conftest import ROOT

    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    block = next(b for b in blocks if marker in b)
    return shlex.split(block.replace("\\\n", " "))


def shrink(tokens: list[str], data: Path, ws: Path, nproc: int) -> tuple[list[str], dict[str, str]]:
    """Run a README command on this CPU: 2 processes, a tiny dataset, one short epoch (later flags win)."""
    env = {}
    while "=" in tokens[0]:
        key, value = tokens.pop(0).split("=", 1)
        env[key] = value
    assert tokens[0] == "torchrun"
    out = [sys.executable, "-m", "torch.distributed.run"]
    for tok in tokens[1:]:
        out.append({"/data/imagenet": str(data), "./ws": str(ws), "/shared/ws": str(ws)}.get(tok, tok))
    i = out.index("--nproc-per-node")
    out[i + 1] = str(nproc)
    out += [
        "--device",
        "cpu",
        "--epochs",
        "1",
        "--warmup",
        "0",
        "-b",
        "4",
        "--image-size",
        "32",
        "-j",
        "0",
        "--num-classes",
        "4",
        "-p",
        "1",
        "--optimizer-batch-size",
        "8",
    ]
    return out, env


def test_the_readme_four_card_command_runs_on_two_cpu_processes(tmp_path):
    from engine.data.testing import make_image_folder

    data = make_image_folder(tmp_path / "imagenet", {"train": 4, "val": 2}, num_classes=4, size=(40, 40))
    cmd, env = shrink(readme_command("MLU_VISIBLE_DEVICES=0,1,2,3 torchrun"), data, tmp_path / "ws", 2)
    assert env == {"MLU_VISIBLE_DEVICES": "0,1,2,3"} and "--pyamp" in cmd and "cosine" in cmd
    cmd.insert(cmd.index("-m", 3), f"--master-port={29600 + os.getpid() % 1000}")
    out = subprocess.run(
        cmd, cwd=tmp_path, env=engine_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    recs = list(iter_records(tmp_path / "ws" / "raport.json"))
    assert [r.data["world_size"] for r in recs if r.event == "run_start"] == [2]
    assert [r.data["status"] for r in recs if r.event == "run_end"] == ["completed"]


def test_the_readme_two_machine_command_rendezvous_on_localhost(tmp_path):
    """Two "machines" (two torchrun launchers, one process each) meet through the c10d rendezvous."""
    from engine.data.testing import make_image_folder

    data = make_image_folder(tmp_path / "imagenet", {"train": 4, "val": 2}, num_classes=4, size=(40, 40))
    cmd, _ = shrink(readme_command("--nnodes 2"), data, tmp_path / "ws", 1)
    port = 29700 + os.getpid() % 1000
    cmd = [tok.replace("HOST0:29400", f"127.0.0.1:{port}") for tok in cmd]
    procs = [
        subprocess.Popen(
            cmd,
            cwd=tmp_path,
            env=engine_env(OMP_NUM_THREADS="1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
    recs = list(iter_records(tmp_path / "ws" / "raport.json"))
    assert [r.data["world_size"] for r in recs if r.event == "run_start"] == [2]
