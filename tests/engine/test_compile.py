"""`--compile`: one code path with and without it, plain checkpoint keys, stop-and-resume, warm-up apart."""

from __future__ import annotations

import json

import pytest
import torch

from engine.events import EXIT_STOPPED, iter_records, validate
from engine.model import build_model, compile_model, load_weights_strict, strip_module_prefix
from tests.conftest import run_engine


def test_wrapper_prefixes_never_reach_the_model():
    plain = build_model("resnet50", "classic", 3)
    compiled = compile_model(plain)  # lazy: nothing compiles until the first call
    keys = list(compiled.state_dict())
    assert keys[0] == "_orig_mod.conv1.weight"
    assert list(strip_module_prefix({f"module.{k}": v for k, v in compiled.state_dict().items()})) == list(
        plain.state_dict()
    )
    other = build_model("resnet50", "classic", 3)
    load_weights_strict(other, compiled.state_dict())
    assert torch.equal(other.fc.weight, plain.fc.weight)


@pytest.mark.slow
@pytest.mark.timeout(3000)  # two compiles of ResNet-50 on a busy 2-core CPU
def test_compiled_training_stops_and_resumes_with_plain_checkpoint_keys(tmp_path):
    """A few compiled CPU steps, a SIGTERM after the third, a compiled resume to the end of the epoch;
    mixup and the EMA ride along: the EMA averages the plain model's weights, saved under plain keys."""
    ws = tmp_path / "ws"
    argv = ["--data-backend", "synthetic", "--device", "cpu", "--image-size", "32", "-b", "4", "-j", "0",
            "--num-classes", "3", "--synthetic-size", "24", "--epochs", "1", "--seed", "1", "-p", "1",
            "--training-only", "--compile", "--mixup", "0.2", "--use-ema", "0.99", "--workspace", str(ws), "--raport-file", "raport.json"]  # fmt: skip
    first = run_engine(argv, cwd=tmp_path, timeout=1500, RN50TUI_STOP_AFTER_ITERS="3")
    assert first.returncode == EXIT_STOPPED, first.stderr
    mid = torch.load(ws / "checkpoint.pth.tar", weights_only=True)
    assert (mid["epoch"], mid["iteration"]) == (0, 3)
    assert not [k for k in mid["state_dict"] if k.startswith(("_orig_mod.", "module."))]
    assert not [k for k in mid["optimizer"]["state"] if not isinstance(k, int)]
    load_weights_strict(build_model("resnet50", "classic", 3), mid["state_dict"])
    assert mid["ema_updates"] == 3 and list(mid["state_dict_ema"]) == list(mid["state_dict"])
    assert not torch.equal(mid["state_dict_ema"]["fc.weight"], mid["state_dict"]["fc.weight"])

    resumed = run_engine([*argv, "--resume", str(ws / "checkpoint.pth.tar")], cwd=tmp_path, timeout=1500)
    assert resumed.returncode == 0, resumed.stderr
    end = torch.load(ws / "checkpoint.pth.tar", weights_only=True)
    assert (end["epoch"], end["iteration"]) == (1, 0) and list(end["state_dict"]) == list(mid["state_dict"])
    assert end["ema_updates"] == 6  # the resumed EMA went on from the saved one, through compiled steps
    assert not torch.equal(end["state_dict_ema"]["fc.weight"], mid["state_dict_ema"]["fc.weight"])

    recs = list(iter_records(ws / "raport.json"))
    warmups = [r.data for r in recs if r.event == "compile_warmup"]
    assert [(w["epoch"], w["iteration"]) for w in warmups] == [(1, 1), (1, 4)]  # each attempt's first step
    assert all(w["seconds"] > 0 for w in warmups)
    # the warm-up step is in no train.* window: the windows start after it, in both attempts
    assert [r.step for r in recs if r.phase == "train"] == [[1, 2], [1, 3], [1, 5], [1, 6]]
    assert all(r.data["train.total_ips"] > 0 for r in recs if r.phase == "train")
    for line in (ws / "raport.json").read_text().splitlines():
        validate(json.loads(line[len("DLLL ") :]))
