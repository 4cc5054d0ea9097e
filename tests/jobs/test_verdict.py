"""The one rule for how an attempt ended, shared by the live supervisor and reconcile."""

from __future__ import annotations

import pytest

from rn50tui.jobs.core.states import Status
from rn50tui.jobs.policy.verdict import Evidence, schedule_finished, verdict

DONE_CKPT = {"checkpoint_epoch": 3, "checkpoint_iteration": 0, "epochs": 3}


@pytest.mark.parametrize("exit_code", [0, -9, 1, None], ids=["exit 0", "SIGKILL", "exit 1", "unseen"])
def test_a_run_the_engine_recorded_as_completed_is_completed_however_it_died(exit_code):
    assert verdict(Evidence(exit_code, run_end="completed")) == (Status.COMPLETED, None)
    assert verdict(Evidence(exit_code, run_end="completed"), cancelled=True)[0] is Status.COMPLETED
    assert verdict(Evidence(exit_code, run_end="completed"), lost="gone")[0] is Status.COMPLETED


@pytest.mark.parametrize("exit_code", [-9, None])
def test_a_checkpoint_holding_the_whole_schedule_is_a_finished_run(exit_code):
    """Killed between the last save and its `run_end` record: the checkpoint alone says it is done."""
    assert verdict(Evidence(exit_code, **DONE_CKPT), lost="gone")[0] is Status.COMPLETED
    partial = Evidence(exit_code, checkpoint_epoch=2, checkpoint_iteration=5, epochs=3)
    assert verdict(partial, lost="gone")[0] is not Status.COMPLETED


def test_schedule_finished_needs_an_end_of_epoch_checkpoint_at_the_last_epoch():
    assert schedule_finished(3, 0, 3) and schedule_finished(4, None, 3)
    assert not schedule_finished(3, 7, 3)  # a stop inside epoch 4 of a longer schedule
    assert not schedule_finished(2, 0, 3) and not schedule_finished(None, None, 3)
    assert not schedule_finished(3, 0, None)  # the schedule's length unknown: never guess


def test_without_a_finished_record_the_exit_status_and_the_record_decide():
    assert verdict(Evidence(-9)) == (Status.FAILED, "the engine was killed by SIGKILL")
    assert verdict(Evidence(1, run_end="failed", error="DataError: bad")) == (Status.FAILED, "DataError: bad")
    assert verdict(Evidence(75, run_end="stopped", stopping_signal="SIGTERM"))[0] is Status.INTERRUPTED
    assert verdict(Evidence(-15), cancelled=True, killed=True) == (
        Status.CANCELLED,
        "cancelled (killed after the grace period)",
    )
    assert verdict(Evidence(75), supervisor_signal="SIGTERM")[0] is Status.INTERRUPTED


def test_a_cancel_whose_stopping_checkpoint_failed_says_so():
    error = "could not write checkpoint /ws/checkpoint.pth.tar: the disk is full"
    status, reason = verdict(Evidence(1, run_end="failed", error=error), cancelled=True)
    assert status is Status.CANCELLED
    assert reason == f"cancelled; the engine failed while stopping: {error}"


def test_an_exit_nobody_saw_is_interrupted_unless_the_engine_recorded_its_failure():
    assert verdict(Evidence(None), lost="its supervisor died") == (
        Status.INTERRUPTED,
        "its supervisor died",
    )
    assert verdict(Evidence(None, run_end="stopped"), lost="x")[0] is Status.INTERRUPTED
    assert verdict(Evidence(None, run_end="failed", error="boom"), lost="x") == (
        Status.FAILED,
        "boom",
    )
