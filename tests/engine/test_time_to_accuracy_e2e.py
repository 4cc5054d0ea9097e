"""Issue 27 end to end, as a user runs the engine: stop at a target, time to accuracy across a resume,
the input-bound note of a slow loader, and an exact resume in the middle of a resize ramp."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.data.testing import make_image_folder
from engine.events import EXIT_STOPPED, iter_records
from engine.testhooks import SLOW_LOADER_VAR
from rn50tui.jobs.report import ReportReader
from tests.conftest import run_engine
from tests.engine.test_train_e2e import TINY, assert_schema

pytestmark = pytest.mark.slow


def records(ws: Path) -> list:
    return list(iter_records(ws / "raport.json"))


def follow(ws: Path) -> dict:
    """The job columns the job manager's follower makes of the run's records."""
    return ReportReader(1, 1, ws / "raport.json").poll().updates


@pytest.fixture(scope="module")
def two_classes(tmp_path_factory) -> Path:
    """An easy 2-class set: 16 images a class to train on, 4 to validate."""
    return make_image_folder(
        tmp_path_factory.mktemp("data"), {"train": 16, "val": 4}, num_classes=2, size=(48, 48)
    )


def test_a_run_ends_completed_at_its_target_with_the_note_and_the_time(tmp_path, two_classes):
    """2 balanced classes: any classifier's top-1 is at least 10% unless it is nearly always wrong, so the
    first validation reaches the target and epochs 2 and 3 never run."""
    out = run_engine(
        [
            str(two_classes),
            *TINY,
            "--num-classes",
            "2",
            "--epochs",
            "3",
            "--lr",
            "0.01",
            "--target-top1",
            "10",
            "--workspace",
            str(tmp_path),
        ],  # fmt: skip
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    recs = records(tmp_path)
    end = next(r.data for r in recs if r.event == "run_end")
    assert end["status"] == "completed" and end["epoch"] == 1
    assert end["reason"].startswith("reached ") and " top-1 at epoch 1 after " in end["reason"]
    assert end["reason"].endswith(" of training")
    best = [r.data for r in recs if r.event == "best"]
    assert len(best) == 1 and best[0]["epoch"] == 1 and best[0]["train_seconds"] > 0
    epoch = next(r.data for r in recs if r.phase == "epoch")
    assert epoch["run.train_seconds"] == pytest.approx(best[0]["train_seconds"])
    assert not [r for r in recs if r.event == "epoch_start" and r.data["epoch"] > 1]
    assert (tmp_path / "model_best.pth.tar").is_file()  # the target's epoch is kept as the best
    assert [r.data["is_best"] for r in recs if r.event == "checkpoint"] == [True]
    updates = follow(tmp_path)
    assert updates["note"] == end["reason"]
    assert '"epoch": 1' in updates["time_to_best"]
    assert_schema(tmp_path)


@pytest.mark.parametrize("slow", [True, False], ids=["slow-loader", "fast-loader"])
def test_a_slow_loader_gets_the_input_bound_note_and_a_fast_one_does_not(tmp_path, two_classes, slow):
    env = {SLOW_LOADER_VAR: "1.5"} if slow else {}
    out = run_engine(
        [
            str(two_classes),
            *TINY,
            "--num-classes",
            "2",
            "--epochs",
            "1",
            "--training-only",
            "--workspace",
            str(tmp_path),
        ],  # fmt: skip
        cwd=tmp_path,
        **env,
    )
    assert out.returncode == 0, out.stderr
    recs = records(tmp_path)
    ratio = next(r.data for r in recs if r.phase == "epoch")["train.data_wait_ratio"]
    bound = [r.data for r in recs if r.event == "input_bound"]
    note = follow(tmp_path).get("note")
    if slow:
        assert ratio > 0.1 and len(bound) == 1 and bound[0]["workers"] == 0
        assert note == bound[0]["message"] and note.startswith("input-bound: the cards waited for data ")
        assert "more loader workers (-j, now 0)" in note
    else:
        assert ratio <= 0.1 and not bound and note is None
    assert_schema(tmp_path)


def test_a_stop_in_the_middle_of_a_resize_ramp_resumes_as_a_straight_run_with_its_training_time(tmp_path):
    """Crop 32 → 64 → 96 px over epochs 1–3; the stop falls inside epoch 2 (64 px). The weights equal a
    straight run's, and the training time and time-to-best records carry on from the checkpoint."""
    common = [
        "--data-backend", "synthetic", *TINY, "--num-classes", "4", "--epochs", "3", "--synthetic-size", "16",
        "--lr", "0.01", "-p", "1", "--resize-schedule", "32:96:1:3", "--val-flip",
    ]  # fmt: skip
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert run_engine([*common, "--workspace", str(straight)], cwd=tmp_path).returncode == 0
    first = run_engine([*common, "--workspace", str(stopped)], cwd=tmp_path, RN50TUI_STOP_AFTER_ITERS="3")
    assert first.returncode == EXIT_STOPPED, first.stderr
    mid = torch.load(stopped / "checkpoint.pth.tar", weights_only=True)
    assert (mid["epoch"], mid["iteration"]) == (1, 1)  # 2 iterations an epoch: inside epoch 2, at 64 px
    assert mid["train_seconds"] > 0 and [h["epoch"] for h in mid["time_to_best"]] == [1]
    resumed = run_engine(
        [*common, "--workspace", str(stopped), "--resume", str(stopped / "checkpoint.pth.tar")], cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    a = torch.load(straight / "checkpoint.pth.tar", weights_only=True)
    b = torch.load(stopped / "checkpoint.pth.tar", weights_only=True)
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    assert b["train_seconds"] > mid["train_seconds"]
    recs = records(stopped)
    totals = [r.data["run.train_seconds"] for r in recs if r.phase == "epoch"]
    assert len(totals) == 3 and totals == sorted(totals) and totals[1] > mid["train_seconds"]
    history = [r.data["history"] for r in recs if r.event == "best"][-1]
    assert history[0] == mid["time_to_best"][0]  # the first attempt's best, carried over the resume
    assert [h["epoch"] for h in b["time_to_best"]] == [h["epoch"] for h in history]
    assert_schema(stopped)
