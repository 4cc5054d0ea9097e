"""A checkpoint or workspace that cannot be written (full disk, size limit, no folder) is a clear error
that loses nothing."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap

import pytest
import torch

from engine import checkpoint
from engine.checkpoint import Checkpointer, CheckpointWriteError, save_atomic
from engine.config import parse_args
from engine.events import EXIT_ERROR, iter_records

from ..conftest import engine_env, run_engine

MB = 1 << 20


def test_a_write_the_kernel_refuses_names_the_file_and_keeps_the_old_checkpoint(tmp_path):
    """A real failed write: RLIMIT_FSIZE makes the kernel refuse bytes past 1 MiB (EFBIG)."""
    path = tmp_path / "checkpoint.pth.tar"
    save_atomic({"epoch": 1}, path)
    script = textwrap.dedent(f"""
        import resource, signal, torch
        from pathlib import Path
        from engine.checkpoint import save_atomic, CheckpointWriteError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, ({MB}, resource.RLIM_INFINITY))
        try:
            save_atomic({{"epoch": 2, "w": torch.zeros(4 * {MB})}}, Path({str(path)!r}))
        except CheckpointWriteError as exc:
            print(exc)
            raise SystemExit(3)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=engine_env(), capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    message = proc.stdout
    assert f"could not write checkpoint {path}" in message
    assert "it needs about 16 MiB" in message and "MiB free there" in message
    assert "the disk is full" not in message  # the disk has room: the cause is the write itself
    assert "the earlier checkpoint.pth.tar is untouched" in message
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pth.tar"]  # no temp file left


def test_a_full_disk_is_named_with_its_free_space(tmp_path, monkeypatch):
    """torch's zip writer says "unexpected pos" on a full disk; the free space tells it apart."""
    path = tmp_path / "checkpoint.pth.tar"

    def torn(obj, fh):
        fh.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 62794688 vs 62794584")

    monkeypatch.setattr(torch, "save", torn)
    monkeypatch.setattr(checkpoint, "free_bytes", lambda folder: 5 * MB)
    with pytest.raises(CheckpointWriteError) as caught:
        save_atomic({"w": torch.zeros(MB)}, path)  # 4 MiB of tensor data
    message = str(caught.value)
    assert "the disk is full" not in message and "5 MiB free there" in message  # 4 MiB would fit
    monkeypatch.setattr(checkpoint, "free_bytes", lambda folder: 1 * MB)
    with pytest.raises(CheckpointWriteError) as caught:
        save_atomic({"w": torch.zeros(MB)}, path)
    message = str(caught.value)
    assert "the disk is full (it needs about 4 MiB; 1 MiB free there)" in message
    assert "pass --workspace on a disk with room" in message
    assert "no partial checkpoint.pth.tar was left" in message
    assert list(tmp_path.iterdir()) == []


def test_a_workspace_too_small_for_the_run_is_warned_of_before_training(tmp_path, monkeypatch):
    ck = Checkpointer(parse_args(["--data-backend", "synthetic", "--workspace", str(tmp_path)]), enabled=True)
    monkeypatch.setattr(checkpoint, "free_bytes", lambda folder: 500 * MB)
    assert ck.space_note(100 * MB) is None  # checkpoint, model_best and a save's temp file: 300 MiB
    monkeypatch.setattr(checkpoint, "free_bytes", lambda folder: 250 * MB)
    note = ck.space_note(100 * MB)
    assert note is not None and "250 MiB free" in note and "about 300 MiB (3 files of 100 MiB" in note
    ck.keep = 2  # --gather-checkpoints 2 keeps two more files
    assert "about 500 MiB (5 files" in ck.space_note(100 * MB)


@pytest.mark.slow
def test_the_engine_on_a_full_disk_warns_first_then_fails_with_the_fix(small_disk, tmp_path):
    ws = small_disk(60) / "run"
    args = ["--data-backend", "synthetic", "--device", "cpu", "--image-size", "32", "-b", "8", "--num-classes",
            "10", "--epochs", "1", "--synthetic-size", "16", "-j", "0", "--workspace", str(ws)]  # fmt: skip
    proc = run_engine(args, cwd=tmp_path)
    assert proc.returncode == EXIT_ERROR, proc.stderr
    assert "warning: " + str(ws) + " has 60 MiB free, but this run's checkpoints need about" in proc.stderr
    assert "could not write checkpoint" in proc.stderr and "the disk is full" in proc.stderr
    assert "Traceback" not in proc.stderr  # a known failure: the message says it all
    raport = ws / "experiment_raport.json"
    errors = [r.data for r in iter_records(raport) if r.type == "STATUS" and r.event == "error"]
    assert errors and errors[-1]["kind"] == "CheckpointWriteError", errors
    left = sorted(p.name for p in ws.iterdir() if p.name != "tensorboard")  # the event files stay too
    assert left == [raport.name]  # no torn checkpoint, no temp file


def test_a_failed_model_best_copy_still_reports_the_complete_checkpoint(tmp_path, monkeypatch):
    """A disk with room for one checkpoint but not its model_best copy: resume has the first."""
    ck = Checkpointer(parse_args(["--data-backend", "synthetic", "--workspace", str(tmp_path)]), enabled=True)

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(checkpoint.shutil, "copyfile", full)
    reported = []
    with pytest.raises(CheckpointWriteError, match="model_best.pth.tar: the disk is full"):
        ck.save({"epoch": 1, "w": torch.ones(3)}, is_best=True, saved=reported.append)
    assert reported == [tmp_path / "checkpoint.pth.tar"]
    assert torch.load(reported[0], weights_only=True)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pth.tar"]


def test_a_workspace_that_cannot_be_created_is_a_usage_error_naming_it(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    args = ["--data-backend", "synthetic", "--device", "cpu", "--workspace", str(blocker / "ws")]
    proc = run_engine(args, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"error: cannot write to the workspace ({blocker / 'ws'}: Not a directory)" in proc.stderr
    assert "pass --workspace a folder you can write" in proc.stderr
