"""Issue 28, scheduler level: dependencies, priorities with a reservation, sweeps with a parallel limit,
start estimates and the refusals at submit — a real store, fake running rows, an injected clock."""

from __future__ import annotations

import time

import pytest

from rn50tui import cli
from rn50tui.jobs.core.errors import SubmitError
from rn50tui.jobs.core.records import Job
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import JobStore
from rn50tui.jobs.manager import JobManager
from rn50tui.jobs.scheduler import claim
from rn50tui.jobs.view import start_estimates

from .conftest import occupy


def _queue(store: JobStore, device: str = "cpu", cards: int = 1, **values) -> int:
    return store.insert_job(name=f"{device}{cards}", kind="train", argv=[], device=device, cards_requested=cards,
                            workspace=str(store.path.parent / "runs" / "{id}"), **values).id  # fmt: skip


def _end(store: JobStore, job_id: int, status: Status) -> None:
    """A job that ran ends (its cards freed), as its follower records it."""
    with store.transaction():
        job = store.get_job(job_id)
        if job.status is Status.QUEUED:
            store.transition_locked(job_id, Status.STARTING, None, {})
        if store.get_job(job_id).status is Status.STARTING:
            store.transition_locked(job_id, Status.RUNNING, None, {})
        store.transition_locked(job_id, status, None, {"finished_at": time.time()})
        store.release_claims(job_id)


@pytest.fixture
def jm4(db_path, monkeypatch):
    monkeypatch.setenv("RN50TUI_CARDS", "mlu=0,cuda=0,cpu=4")
    manager = JobManager(db_path, capacity={"mlu": 0, "cuda": 0, "cpu": 4})
    yield manager
    manager.close()


# ------------------------------------------------------------------------------------------- dependencies


def test_a_dependent_waits_saying_for_which_job_then_starts_once_it_completed(store):
    a = _queue(store)
    b = _queue(store, after=[a])
    assert [j.id for j in claim(store, {"cpu": 2})] == [a]  # b does not start beside it on the free slot
    assert store.get_job(b).wait_reason == f"waits for job {a}"
    from rn50tui.jobs.scheduler import wait_reason

    assert wait_reason(store, store.get_job(b), {"cpu": 2}) == f"it waits for job {a}"
    _end(store, a, Status.COMPLETED)
    assert [j.id for j in claim(store, {"cpu": 2})] == [b]
    assert store.get_job(b).wait_reason is None


def test_a_failed_dependency_cancels_its_dependents_and_theirs_naming_it(store):
    a = _queue(store)
    b = _queue(store, after=[a])
    c = _queue(store, after=[b])
    other = _queue(store)
    claim(store, {"cpu": 1})
    _end(store, a, Status.FAILED)
    assert [j.id for j in claim(store, {"cpu": 1})] == [other]
    jb, jc = store.get_job(b), store.get_job(c)
    assert jb.status is jc.status is Status.CANCELLED
    assert f"job {a}, which it waits for, ended failed" in jb.error
    assert f"job {b}, which it waits for, ended cancelled" in jc.error
    assert jb.started_at is None and jc.started_at is None  # never ran


def test_unknown_and_failed_dependencies_and_cycles_are_refused_with_nothing_queued(store):
    with pytest.raises(SubmitError, match=r"--after 99: there is no job 99") as err:
        _queue(store, after=[99])
    assert err.value.field == "after" and store.list_jobs() == []
    a = _queue(store)
    _end(store, a, Status.FAILED)
    with pytest.raises(SubmitError, match=rf"--after {a}: job {a} ended failed"):
        _queue(store, after=[a])
    b = _queue(store)
    c = _queue(store, after=[b])
    with store.transaction(), pytest.raises(SubmitError, match="a cycle"):
        store._check_dependencies([c], job_id=b)  # b waiting for c, which waits for b
    assert [j.id for j in store.list_jobs()] == [a, b, c]


# -------------------------------------------------------------------------------------------- priorities


def test_a_high_priority_job_passes_a_queued_low_one(store):
    holder = occupy(store)
    low = _queue(store)
    high = _queue(store, priority=5)
    assert claim(store, {"cpu": 1}) == []
    _end(store, holder.id, Status.COMPLETED)
    assert [j.id for j in claim(store, {"cpu": 1})] == [high]
    assert store.get_job(low).status is Status.QUEUED


def test_priority_changes_only_while_queued(jm4):
    job = jm4.submit(preset="demo", start=False)
    assert jm4._store.set_priority(job.id, 3).priority == 3
    _end(jm4._store, job.id, Status.COMPLETED)
    with pytest.raises(Exception, match="only a queued job's priority"):
        jm4._store.set_priority(job.id, 1)


def test_a_large_job_is_not_starved_it_reserves_after_a_wait(store, monkeypatch):
    monkeypatch.setenv("RN50TUI_RESERVE_AFTER_S", "600")
    t0 = time.time()
    holder = occupy(store, device="mlu", card=0)
    big = _queue(store, device="mlu", cards=4)
    small = _queue(store, device="mlu", cards=1)
    # before the reservation: smaller jobs backfill the free cards
    assert [j.id for j in claim(store, {"mlu": 4}, now=t0 + 1)] == [small]
    assert store.get_job(big).status is Status.QUEUED
    _end(store, small, Status.COMPLETED)
    later = _queue(store, device="mlu", cards=1)
    # the big job has waited 10 minutes: it reserves the mlu cards, the small one may not take one
    assert claim(store, {"mlu": 4}, now=t0 + 601) == []
    assert store.get_job(later).wait_reason == f"job {big} reserves the mlu cards it waits for"
    assert store.get_job(big).wait_reason.startswith("reserves the mlu cards: waited 10m")
    _end(store, holder.id, Status.COMPLETED)
    assert [j.id for j in claim(store, {"mlu": 4}, now=t0 + 602)] == [big]


# ------------------------------------------------------------------------------------------------ sweeps


def test_a_2x2_sweep_names_its_jobs_by_their_values_and_runs_at_most_its_parallel_limit(jm4):
    sweep, jobs = jm4.submit_sweep(
        jm4_request(), ["lr=1.024,2.048", "wd=3.05e-5,1e-4"], parallel=1, start=False
    )
    assert [j.name for j in jobs] == ["demo lr=1.024 wd=3.05e-5", "demo lr=1.024 wd=1e-4",
                                      "demo lr=2.048 wd=3.05e-5", "demo lr=2.048 wd=1e-4"]  # fmt: skip
    argv = jobs[1].argv
    assert argv.index("--lr=1.024") < argv.index("--weight-decay=1e-4") and argv.index(
        "--lr=1.024"
    ) > argv.index("--epochs")
    assert jobs[1].sweep_values == {"lr": "1.024", "wd": "1e-4"} and jobs[1].sweep_id == sweep
    store = jm4._store
    running = []
    for _ in range(4):  # four slots free, yet one at a time
        granted = claim(store, {"cpu": 4})
        assert len(granted) == 1
        active = [j for j in store.list_jobs([Status.STARTING, Status.RUNNING]) if j.sweep_id == sweep]
        assert len(active) == 1
        assert claim(store, {"cpu": 4}) == []
        waiting = [j for j in store.list_jobs([Status.QUEUED])]
        assert all("--sweep-parallel" in j.wait_reason for j in waiting)
        running.append(granted[0].id)
        _end(store, granted[0].id, Status.COMPLETED)
    assert sorted(running) == [j.id for j in jobs]


def jm4_request():
    from rn50tui.jobs.submission import Request

    return Request(preset="demo", engine_flags=("--epochs", "1"))


def test_sweep_show_orders_by_best_top1_and_jobs_list_filters(jm4, capsys, monkeypatch, db_path):
    sweep, jobs = jm4.submit_sweep(jm4_request(), ["lr=0.1,0.2,0.4"], start=False)
    other = jm4.submit(preset="demo", start=False)
    for job, top1 in zip(jobs, (40.0, 55.5, None)):
        jm4._store.update_job(job.id, best_top1=top1, ips=12.5)
    monkeypatch.setenv("RN50TUI_DB", str(db_path))
    assert cli.main(["sweep", "show", str(sweep)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:4] == ["ID", "VALUES", "STATUS", "BEST"]
    assert [line.split()[0] for line in lines[2:]] == [str(jobs[1].id), str(jobs[0].id), str(jobs[2].id)]
    assert "55.50" in lines[2] and "lr=0.2" in lines[2]
    assert cli.main(["jobs", "list", "--sweep", str(sweep), "--json"]) == 0
    import json

    listed = [j["id"] for j in json.loads(capsys.readouterr().out)]
    assert listed == [j.id for j in jobs] and other.id not in listed


# --------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("args, flag", [
    (["--after", "99"], "--after 99"),
    (["--after", "x"], "--after"),
    (["--sweep", "lr=0.1,abc"], "--sweep lr=abc"),
    (["--sweep=--label-smoothing=0,1.5"], "--sweep label-smoothing=1.5"),
    (["--sweep", "lr=" + ",".join(map(str, range(1, 18))), "--sweep", "wd=" + ",".join(f"1e-{i}" for i in range(1, 18))],
     "more than 256 needs --yes"),
    (["--sweep-parallel", "0", "--sweep", "lr=0.1"], "--sweep-parallel"),
])  # fmt: skip
def test_bad_queue_input_is_one_line_naming_the_flag_and_queues_nothing(
    args, flag, db_path, monkeypatch, capsys
):
    monkeypatch.setenv("RN50TUI_CARDS", "mlu=0,cuda=0,cpu=1")
    monkeypatch.setenv("RN50TUI_DB", str(db_path))
    monkeypatch.chdir(db_path.parent)
    code = cli.main(["submit", "--preset", "demo", *args])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.startswith("rn50tui: error: ") and err.count("\n") == 1 and flag in err, err
    if db_path.exists():
        assert JobStore(db_path).list_jobs() == []


def test_a_priority_that_is_not_an_integer_is_a_usage_error(db_path, monkeypatch, capsys):
    monkeypatch.setenv("RN50TUI_DB", str(db_path))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["submit", "--preset", "demo", "--priority", "high"])
    assert exit_.value.code == 2 and "--priority" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["jobs", "priority", "1", "1.5"])
    assert not db_path.exists() or JobStore(db_path).list_jobs() == []


# ------------------------------------------------------------------------------------ when will it start


def _running(job_id: int, eta_s: float, now: float, card: int = 0) -> Job:
    return Job.of(id=job_id, name="r", kind="train", argv=[], device="cpu", cards_requested=1, workspace="w",
                  status=Status.RUNNING, epochs=2, iters_per_epoch=10, epoch=1, eta_end=now + eta_s,
                  cards_granted=[card])  # fmt: skip


def _queued(job_id: int, device: str = "cpu", cards: int = 1) -> Job:
    return Job.of(id=job_id, name="q", kind="train", argv=[], device=device, cards_requested=cards,
                  workspace="w", status=Status.QUEUED)  # fmt: skip


def test_start_estimates_follow_running_etas_and_the_queue_order():
    now = 1000.0
    running = [_running(7, 2 * 3600 + 600, now), _running(8, 3600, now, card=1)]
    queued = [_queued(9), _queued(10), _queued(11)]
    est = start_estimates(queued, running, {"cpu": 2}, {}, now)
    assert est[9].text == "starts in about 1h00m, when job 8 ends"
    assert est[10].text == "starts in about 2h10m, when job 7 ends" and est[10].at == now + 7800
    assert est[11].text == "unknown: job 9 is ahead of it and has not started"


def test_start_estimates_are_unknown_without_an_eta_and_follow_dependencies():
    now = 1000.0
    no_eta = Job.of(id=7, name="r", kind="train", argv=[], device="cpu", cards_requested=1, workspace="w",
                    status=Status.RUNNING, cards_granted=[0])  # fmt: skip
    est = start_estimates([_queued(9)], [no_eta], {"cpu": 1}, {}, now)
    assert est[9].text == "unknown: job 7 has no ETA" and est[9].at is None
    est = start_estimates(
        [_queued(9), _queued(10)], [_running(7, 600, now)], {"cpu": 3}, {9: [7], 10: [9]}, now
    )
    assert est[9].text == "starts in about 10m00s, when job 7 ends"
    assert est[10].text == "unknown: it waits for job 9, which has not started"
    assert start_estimates([_queued(9)], [], {"cpu": 1}, {}, now)[9].text == "starts at the next scheduling"


# ------------------------------------------------------------------------ a cluster holds its own dependent


def test_a_cluster_job_after_a_submitted_one_goes_to_the_cluster_with_afterok(store, monkeypatch):
    from pathlib import Path

    from rn50tui.jobs.scheduler import schedule
    from rn50tui.jobs.slurm import commands
    from rn50tui.jobs.slurm import executor as slurm_executor
    from rn50tui.jobs.slurm import options as slurm_options

    calls: list[list[str]] = []
    monkeypatch.setattr(commands, "missing", lambda: None)
    monkeypatch.setattr(
        commands, "sbatch", lambda script, extra=(), test_only=False: calls.append(list(extra)) or "102"
    )
    monkeypatch.setattr(slurm_executor, "start_watcher", lambda path: None)
    first = _queue(store, executor="slurm")
    store.update_job(first, executor_handle={"slurm_job_id": "101"})  # pending in the cluster's queue
    local = occupy(store).id  # a local job running on the only CPU slot
    second = _queue(store, executor="slurm", after=[first])
    third = _queue(store, executor="slurm", after=[local])
    for job_id in (second, third):
        slurm_options.save(Path(store.get_job(job_id).workspace), slurm_options.SlurmOptions())
    schedule(store, {"cpu": 0})
    assert (
        len(calls) == 1 and "--dependency=afterok:101" in calls[0] and "--kill-on-invalid-dep=yes" in calls[0]
    )
    assert store.get_job(second).executor_handle["slurm_job_id"] == "102"
    assert store.get_job(third).wait_reason == f"waits for job {local}"  # rn50tui holds it: a local job
    # the dependency fails: the held job is cancelled through its follower (scancel), not behind its back
    _end(store, first, Status.FAILED)
    schedule(store, {"cpu": 1})
    held = store.get_job(second)
    assert held.status is Status.QUEUED and held.cancel_requested and f"job {first}" in held.note


# ---------------------------------------------------------------------------------------- held but idle


def test_a_held_card_under_5_percent_for_10_minutes_is_flagged_idle():
    from rn50tui.jobs.core.records import DeviceSample
    from rn50tui.jobs.policy.idle import idle_cards
    from rn50tui.jobs.view import idle_mark as mark

    now = 10_000.0
    samples = [
        DeviceSample(now - 900 + 60 * i, "mlu", 0, util_percent=90.0 if i == 0 else 1.0) for i in range(15)
    ]
    samples += [DeviceSample(now - 900 + 60 * i, "mlu", 1, util_percent=80.0) for i in range(15)]
    samples += [
        DeviceSample(now - 900 + 60 * i, "cpu", 0) for i in range(15)
    ]  # no utilisation: never flagged
    idle = idle_cards(samples, now, after=600)
    assert idle == {(None, "mlu", 0): 900.0} and mark(idle[(None, "mlu", 0)]) == "held, idle 15m"
    assert idle_cards(samples, now - 400, after=600) == {}


# ------------------------------------------------------------------------------------ the new-job form


def test_the_form_checks_after_priority_and_sweep_as_you_type():
    from rn50tui.app.jobform import FormValues, check

    cap = {"mlu": 0, "cuda": 0, "cpu": 1}
    bad = check(FormValues(preset="demo", after="1,x", priority="high"), cap)
    assert set(bad.errors) == {"after", "priority"}
    bad = check(FormValues(preset="demo", sweep="lr=0.1,abc"), cap)
    assert list(bad.errors) == ["sweep"] and "--sweep lr=abc" in bad.errors["sweep"]
    assert "sweep_parallel" in check(FormValues(preset="demo", sweep_parallel="2"), cap).errors
    good = check(
        FormValues(preset="demo", after="3", priority="-2", sweep="lr=0.1,0.2", sweep_parallel="1"), cap
    )
    assert good.ok and good.queue == {"after": [3], "priority": -2, "sweep": ["lr=0.1,0.2"], "parallel": 1}
