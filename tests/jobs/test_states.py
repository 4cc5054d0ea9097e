from __future__ import annotations

import pytest

from rn50tui.jobs.core.errors import TransitionError
from rn50tui.jobs.core.states import TRANSITIONS, Status, check_resume, check_transition, parse_status


def test_every_status_has_a_transition_entry_and_json_value():
    assert set(TRANSITIONS) == set(Status)
    assert [s.value for s in Status] == [
        "queued", "starting", "running", "completed", "failed", "cancelled", "interrupted"]  # fmt: skip


@pytest.mark.parametrize(("old", "new"), [
    ("queued", "starting"), ("starting", "running"), ("running", "completed"), ("running", "failed"),
    ("running", "cancelled"), ("running", "interrupted"), ("failed", "queued"), ("cancelled", "queued"),
    ("interrupted", "queued"), ("queued", "cancelled"),
])  # fmt: skip
def test_allowed_moves(old, new):
    check_transition(1, Status(old), Status(new))


def test_resume_of_a_completed_job_says_why_and_what_to_do():
    with pytest.raises(
        TransitionError, match=r"job 7 is completed: there is nothing to resume; start a new job"
    ):
        check_transition(7, Status.COMPLETED, Status.QUEUED)


@pytest.mark.parametrize("old", ["running", "starting"])
def test_resume_of_a_running_job_is_refused(old):
    with pytest.raises(TransitionError, match=f"job 3 is {old}: it is still going"):
        check_resume(3, Status(old))
    if old == "running":
        with pytest.raises(TransitionError, match=f"job 3 is {old}: it is still going"):
            check_transition(3, Status(old), Status.QUEUED)


def test_only_a_submitted_cluster_job_goes_from_starting_back_to_queued_and_no_resume_does():
    check_transition(4, Status.STARTING, Status.QUEUED)  # the Slurm executor, once sbatch took it
    with pytest.raises(TransitionError, match="job 4 is already queued"):
        check_resume(4, Status.QUEUED)
    for ok in ("failed", "cancelled", "interrupted"):
        check_resume(4, Status(ok))


def test_terminal_states_move_only_by_resume_or_to_completed_when_the_run_had_finished():
    for s in (Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.INTERRUPTED):
        assert s.terminal and not s.active
        assert TRANSITIONS[s] <= {Status.QUEUED, Status.COMPLETED}
    assert TRANSITIONS[Status.COMPLETED] == frozenset()
    with pytest.raises(TransitionError, match="already cancelled"):
        check_transition(2, Status.CANCELLED, Status.CANCELLED)


def test_parse_status_lists_the_valid_names():
    assert parse_status("running") is Status.RUNNING
    with pytest.raises(TransitionError, match="use one of queued, starting"):
        parse_status("done")
