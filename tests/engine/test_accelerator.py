"""The device module: MLU through a stand-in torch_mlu (in a subprocess: the backend rename is global),
CUDA absent here, and the CPU AMP policy."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from engine import accelerator
from engine.accelerator import DeviceError, resolve_device
from tests.conftest import engine_env

FAKES = Path(__file__).resolve().parent.parent / "fakes"
FAKES_OLD = Path(__file__).resolve().parent.parent / "fakes_old"

PROBE = """
import json, torch, warnings
from engine.accelerator import resolve_device
d = resolve_device({requested!r}, amp=True, local_rank=1)
import torch_mlu
print(json.dumps({{"kind": d.kind, "device": str(d.device), "name": d.name, "amp": str(d.amp_dtype),
    "scaler": d.use_scaler, "backend": d.dist_backend, "var": d.visible_devices_var,
    "scaler_enabled": d.grad_scaler().is_enabled(), "calls": [list(c) for c in torch_mlu.calls],
    "tuning": d.tuning, "cudnn_benchmark": torch.backends.cudnn.benchmark}}))
"""


def _probe(requested: str, fakes: Path, **env: str) -> subprocess.CompletedProcess:
    e = engine_env(**env)
    e["PYTHONPATH"] = f"{fakes}:{e['PYTHONPATH']}"
    return subprocess.run(
        [sys.executable, "-c", PROBE.format(requested=requested)],
        env=e,
        cwd=fakes,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("requested", ["mlu", "auto"])
def test_mlu_through_a_stand_in_torch_mlu(requested):
    out = _probe(requested, FAKES)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["kind"] == "mlu" and got["device"] == "mlu:1" and got["name"] == "MLU370-X8"
    assert got["amp"] == "torch.float16" and got["scaler"] and got["scaler_enabled"]
    assert got["backend"] == "cncl" and got["var"] == "MLU_VISIBLE_DEVICES"
    assert ["set_device", 1] in got["calls"]
    # CNNL has no autotuner: nothing is set on torch.backends.cnnl, cuDNN's switch is left alone
    assert not [c for c in got["calls"] if c[0] == "backends.cnnl"] and not got["cudnn_benchmark"]
    assert got["tuning"] == "cnnl: no algorithm autotuner (allow_tf32=True)"


def test_mlu_local_rank_beyond_visible_cards_is_a_clear_error():
    out = _probe("mlu", FAKES, FAKE_MLU_COUNT="1")
    assert out.returncode != 0
    assert "local rank 1 has no MLU card: 1 visible (check MLU_VISIBLE_DEVICES)" in out.stderr


def test_old_torch_mlu_generation_is_refused():
    out = _probe("mlu", FAKES_OLD)
    assert out.returncode != 0
    assert "old torch 1.6 generation" in out.stderr and "torch >= 2.1" in out.stderr


def test_mlu_without_torch_mlu_says_how_to_get_it():
    with pytest.raises(DeviceError, match="torch_mlu is not installed"):
        resolve_device("mlu")


def test_cuda_absent_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="no CUDA device is available"):
        resolve_device("gpu")
    assert resolve_device("auto").kind == "cpu"


def test_cpu_amp_without_native_bf16_falls_back_to_fp32_with_a_warning(monkeypatch):
    monkeypatch.setattr(accelerator, "cpu_has_native_bf16", lambda: False)
    monkeypatch.delenv(accelerator.FORCE_CPU_BF16_VAR, raising=False)
    with pytest.warns(UserWarning, match="training in fp32 instead"):
        dev = resolve_device("cpu", amp=True)
    assert dev.amp_dtype is None and not dev.use_scaler and "12x slower" in dev.note


def test_a_caller_that_reports_the_note_itself_gets_no_second_warning(monkeypatch):
    monkeypatch.setattr(accelerator, "cpu_has_native_bf16", lambda: False)
    monkeypatch.delenv(accelerator.FORCE_CPU_BF16_VAR, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # engine.train logs dev.note once: no UserWarning beside it
        dev = resolve_device("cpu", amp=True, warn=False)
    assert "training in fp32 instead" in dev.note


def test_cpu_amp_with_native_bf16_uses_bf16_without_a_scaler(monkeypatch):
    monkeypatch.setattr(accelerator, "cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dev = resolve_device("cpu", amp=True)
    assert dev.amp_dtype == torch.bfloat16 and not dev.use_scaler
    with dev.autocast():
        y = torch.nn.Linear(4, 4)(torch.ones(2, 4))
    assert y.dtype == torch.bfloat16


def test_fp32_cpu_has_a_disabled_scaler_and_autocast():
    dev = resolve_device("cpu", amp=False)
    assert (
        not dev.grad_scaler().is_enabled() and dev.dist_backend == "gloo" and dev.visible_devices_var is None
    )
    with dev.autocast():
        assert torch.nn.Linear(4, 4)(torch.ones(2, 4)).dtype == torch.float32


def test_engine_refuses_mlu_here_with_exit_2(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.train",
            "--data-backend",
            "synthetic",
            "--device",
            "mlu",
            "--workspace",
            str(tmp_path),
        ],
        env=engine_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "error: --device mlu: torch_mlu is not installed" in out.stderr


def _fake_cuda(monkeypatch):
    class Props:
        name = "NVIDIA A100-SXM4-80GB"

    for attr, value in {
        "is_available": lambda: True,
        "device_count": lambda: 1,
        "set_device": lambda index: None,
        "get_device_properties": lambda index: Props(),
    }.items():
        monkeypatch.setattr(torch.cuda, attr, value)


def test_cuda_turns_on_cudnn_autotuning_and_cpu_does_not(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    assert resolve_device("cpu").tuning == "" and torch.backends.cudnn.benchmark is False
    _fake_cuda(monkeypatch)
    dev = resolve_device("cuda", amp=True)
    assert dev.kind == "cuda" and dev.name == "NVIDIA A100-SXM4-80GB"
    assert torch.backends.cudnn.benchmark is True and dev.tuning == "cudnn.benchmark=True"
