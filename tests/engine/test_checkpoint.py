import random
from pathlib import Path

import pytest
import torch

from engine.checkpoint import (
    BEST_FILENAME,
    Checkpointer,
    CheckpointError,
    CheckpointWriteError,
    check_resume,
    finished_schedule,
    load_checkpoint,
    remove_stale_temps,
    save_atomic,
    stale_temps,
)
from engine.config import parse_args
from engine.model import StateDictMismatch, build_model, load_weights_strict


def cfg(tmp_path, *argv):
    return parse_args(["--data-backend", "synthetic", "--workspace", str(tmp_path), *argv])


def test_save_is_atomic_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pth.tar"
    save_atomic({"epoch": 1}, path)

    def torn(obj, fh):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn)
    with pytest.raises(CheckpointWriteError, match="disk full"):
        save_atomic({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=False) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pth.tar"]  # no temp file left


def test_best_and_keep_last_n(tmp_path):
    ck = Checkpointer(cfg(tmp_path, "--gather-checkpoints", "2"), enabled=True)
    for epoch in range(1, 5):
        ck.save({"epoch": epoch}, is_best=epoch == 2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint-3.pth.tar", "checkpoint-4.pth.tar", "checkpoint.pth.tar", BEST_FILENAME]
    assert torch.load(tmp_path / BEST_FILENAME, weights_only=False)["epoch"] == 2
    assert torch.load(tmp_path / "checkpoint.pth.tar", weights_only=False)["epoch"] == 4


def test_disabled_on_other_ranks_and_with_no_checkpoints(tmp_path):
    assert Checkpointer(cfg(tmp_path), enabled=False).save({"epoch": 1}) is None
    assert Checkpointer(cfg(tmp_path, "--no-checkpoints"), enabled=True).save({"epoch": 1}) is None
    assert not any(tmp_path.iterdir())


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "torn.pth.tar"
    bad.write_bytes(b"\x80\x02garbage")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(str(bad))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(str(tmp_path / "missing.pth.tar"))


def test_port_checkpoint_with_module_prefix_and_arch_tuple_loads(tmp_path):
    src = build_model("resnet50", "fanin", 10)
    port = {
        "epoch": 3,
        "arch": ("resnet50", "fanin", 10),
        "best_prec1": 12.5,
        "state_dict": {f"module.{k}": v for k, v in src.state_dict().items()},
        "optimizer": {},
        "amp": None,
    }
    path = tmp_path / "port.pth.tar"
    torch.save(port, path)
    ckpt = load_checkpoint(str(path))
    c = cfg(tmp_path, "--num-classes", "10", "--epochs", "4", "--resume", str(path))
    check_resume(ckpt, c, str(path))
    dst = build_model("resnet50", "classic", 10)
    load_weights_strict(dst, ckpt["state_dict"])
    assert torch.equal(dst.conv1.weight, src.conv1.weight)


def test_class_count_and_arch_mismatch_are_named(tmp_path):
    path = tmp_path / "c.pth.tar"
    torch.save(
        {"epoch": 1, "arch": "resnet50", "state_dict": build_model("resnet50", "classic", 10).state_dict()},
        path,
    )
    ckpt = load_checkpoint(str(path))
    with pytest.raises(
        CheckpointError, match="has 10 classes, but --num-classes is 1000: pass --num-classes 10"
    ):
        check_resume(ckpt, cfg(tmp_path, "--resume", str(path)), str(path))
    with pytest.raises(CheckpointError, match="holds a resnet18 model"):
        check_resume({**ckpt, "arch": "resnet18"}, cfg(tmp_path, "--num-classes", "10"), str(path))
    with pytest.raises(
        StateDictMismatch, match=r"shape mismatch: fc.bias: checkpoint \(10,\) vs model \(1000,\)"
    ):
        load_weights_strict(build_model("resnet50", "classic", 1000), ckpt["state_dict"])
    partial = dict(ckpt["state_dict"])
    partial.pop("layer4.2.bn3.weight")
    partial["extra.weight"] = torch.zeros(1)
    with pytest.raises(StateDictMismatch, match=r"missing: layer4.2.bn3.weight; unexpected: extra.weight"):
        load_weights_strict(build_model("resnet50", "classic", 10), partial)


def test_epochs_not_beyond_the_checkpoint_says_what_to_pass(tmp_path):
    ckpt = {"epoch": 90, "iteration": 0, "arch": ("resnet50", "fanin", 1000), "state_dict": {}}
    with pytest.raises(
        CheckpointError, match=r"already finished 90 epochs and --epochs is 90: pass --epochs N with N > 90"
    ):
        check_resume(ckpt, cfg(tmp_path, "--epochs", "90"), "ckpt")
    check_resume({**ckpt, "iteration": 5, "epoch": 89}, cfg(tmp_path, "--epochs", "90"), "ckpt")


def test_model_is_v15_with_torchvision_names():
    model = build_model("resnet50", "classic", 1000)
    sd = model.state_dict()
    assert len(sd) == 320 and "layer1.0.downsample.0.weight" in sd and sd["fc.weight"].shape == (1000, 2048)
    block = model.layer2[0]
    assert block.conv2.stride == (2, 2) and block.conv1.stride == (1, 1)  # v1.5: stride on the 3×3


def test_a_finished_schedule_is_accepted_with_resume_finished_complete(tmp_path):
    ckpt = {"epoch": 90, "iteration": 0, "arch": ("resnet50", "fanin", 1000), "state_dict": {}}
    done = cfg(tmp_path, "--epochs", "90", "--resume-finished", "complete")
    check_resume(ckpt, done, "ckpt")
    assert finished_schedule(ckpt, done) and not finished_schedule({**ckpt, "epoch": 89}, done)


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_files_of_a_killed_save_are_found_and_a_live_writers_are_kept(tmp_path):
    import os
    import time

    dead = tmp_path / f".checkpoint.pth.tar.{_dead_pid()}.ab12cd_3.tmp"
    live = tmp_path / f".model_best.pth.tar.{os.getpid()}.zz99yy00.tmp"
    legacy_old = tmp_path / ".checkpoint.pth.tar.k2j4h5g6.tmp"  # named before the pid was in the name
    legacy_new = tmp_path / ".checkpoint-3.pth.tar.q1w2e3r4.tmp"
    for p in (dead, live, legacy_old, legacy_new):
        p.write_bytes(b"\x80partial")
    os.utime(legacy_old, (time.time() - 3600, time.time() - 3600))
    save_atomic({"epoch": 1}, tmp_path / "checkpoint.pth.tar")
    assert stale_temps(tmp_path) == sorted([dead, legacy_old])
    assert remove_stale_temps(tmp_path) == sorted([dead, legacy_old])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["checkpoint.pth.tar", live.name, legacy_new.name])


def test_a_save_names_its_temp_file_after_the_writer(tmp_path, monkeypatch):
    """While torch.save writes, the temp file carries this process's pid, so it is never taken as stale."""
    import os

    seen = []

    def spy(obj, fh):
        seen.extend(p.name for p in tmp_path.iterdir())
        assert stale_temps(tmp_path) == []
        fh.write(b"x")

    monkeypatch.setattr(torch, "save", spy)
    save_atomic({"epoch": 1}, tmp_path / "checkpoint.pth.tar")
    assert (
        len(seen) == 1
        and seen[0].startswith(f".checkpoint.pth.tar.{os.getpid()}.")
        and seen[0].endswith(".tmp")
    )


def _torn_and_random(folder: Path) -> list[Path]:
    good = folder / "checkpoint-1.pth.tar"
    torch.save({"epoch": 1, "state_dict": {"fc.weight": torch.zeros(2, 2)}}, good)
    truncated = folder / "checkpoint.pth.tar"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    noise = folder / "noise.pth.tar"
    noise.write_bytes(random.Random(0).randbytes(4096))
    return [truncated, noise]


def test_a_torn_or_random_file_is_one_line_naming_the_last_good_copy_not_weights_only_advice(tmp_path):
    for bad in _torn_and_random(tmp_path):
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(str(bad))
        text = str(err.value)
        assert "\n" not in text and "weights_only" not in text and "--trust-checkpoint" not in text, text
        assert text.startswith(f"checkpoint {bad} is not a readable checkpoint (corrupt or truncated)"), text
        assert text.endswith(f"the last good copy is {tmp_path / 'checkpoint-1.pth.tar'}: pass --resume "
                             f"{tmp_path / 'checkpoint-1.pth.tar'}"), text  # fmt: skip
