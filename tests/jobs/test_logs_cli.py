"""`rn50tui logs` of a job that has no output because it never started says so, and exits non-zero."""

from __future__ import annotations

from .conftest import occupy, run_cli


def test_logs_of_a_queued_job_say_it_has_not_started_and_why(store, db_path):
    holder = occupy(store)  # the only CPU slot is taken
    submitted = run_cli("submit", "--preset", "demo", db=db_path, RN50TUI_CARDS="mlu=0,cuda=0,cpu=1")
    assert submitted.returncode == 0, submitted.stderr
    job_id = int(submitted.stdout)
    out = run_cli("logs", str(job_id), db=db_path, RN50TUI_CARDS="mlu=0,cuda=0,cpu=1")
    assert out.returncode != 0 and out.stdout == ""
    assert f"job {job_id} has not started: it is queued" in out.stderr
    assert f"held by job {holder.id}" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_logs_of_a_job_cancelled_in_the_queue_say_it_never_started(store, db_path):
    occupy(store)
    job_id = int(run_cli("submit", "--preset", "demo", db=db_path, RN50TUI_CARDS="mlu=0,cuda=0,cpu=1").stdout)
    assert run_cli("cancel", str(job_id), db=db_path).returncode == 0
    for follow in ([], ["-f"]):
        out = run_cli("logs", *follow, str(job_id), db=db_path)
        assert out.returncode != 0 and f"job {job_id} never started: it is cancelled" in out.stderr
