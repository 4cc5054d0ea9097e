"""The `rn50tui` command line: help on every command, exit codes, JSON shapes, refusals."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import re
import time
from pathlib import Path

import pytest

from rn50tui import cli
from rn50tui.commands import devices
from rn50tui.commands import jobs as jobs_command
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import JobStore
from tests.conftest import run_main as run
from tests.jobs.conftest import occupy, run_cli


@pytest.fixture
def busy(db):
    """A store whose only CPU slot is taken, so submitted jobs stay queued."""
    store = JobStore(db)
    occupy(store)
    yield store
    store.close()


def _subparsers(parser: argparse.ArgumentParser, prefix: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub, helps.get(name)
                yield from _subparsers(sub, f"{prefix}{name} ")


def test_every_command_and_option_has_help_text():
    parser = cli.build_parser()
    commands = list(_subparsers(parser))
    assert {"submit", "jobs", "jobs list", "jobs show", "jobs rm", "cancel", "resume", "logs", "export",
            "devices"} <= {name for name, _, _ in commands}  # fmt: skip
    for name, sub, summary in commands:
        assert summary and sub.description, f"`rn50tui {name}` lacks help text"
        for action in sub._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                assert action.help, (
                    f"`rn50tui {name}` option {action.option_strings or action.dest} lacks help"
                )
    assert all(a.help for a in parser._actions if not isinstance(a, argparse._SubParsersAction))


HAS_DEVICES = importlib.util.find_spec("rn50tui.commands.devices") is not None


@pytest.mark.parametrize("command", ["submit", "jobs", "jobs list", "jobs show", "jobs rm", "cancel", "resume",
                                     "logs", "export", "presets",
                                     pytest.param("devices", marks=pytest.mark.skipif(not HAS_DEVICES, reason="no devices view"))])  # fmt: skip
def test_help_exits_zero_and_describes_the_command(capsys, command):
    with pytest.raises(SystemExit) as exit_:
        cli.main([*command.split(), "--help"])
    assert exit_.value.code == 0
    assert f"rn50tui {command}" in capsys.readouterr().out


def test_refused_submit_is_one_line_on_stderr_and_queues_nothing(capsys, db):
    for args in (["--preset", "nope"], ["--preset", "ngc-amp-90e"], ["--preset", "demo", "--", "-b", "0"],
                 ["--preset", "demo", "--device", "mlu"]):  # fmt: skip
        code, out, err = run(capsys, "submit", *args)
        assert code != 0 and out == ""
        assert err.startswith("rn50tui: error: ") and err.count("\n") == 1
    assert JobStore(db).list_jobs() == []


def test_engine_flags_without_double_dash_are_a_usage_error(capsys, db):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["submit", "--preset", "demo", "--epochs", "1"])
    assert exit_.value.code == 2 and "engine flags go after --" in capsys.readouterr().err


def test_submit_list_show_cancel_resume_rm(capsys, busy):
    code, out, _ = run(capsys, "submit", "--preset", "demo", "--name", "mine", "--", "--epochs", "2")
    job_id = int(out)
    assert code == 0 and busy.get_job(job_id).status is Status.QUEUED  # the only CPU slot is taken

    code, out, _ = run(capsys, "jobs", "list", "--json")
    listed = json.loads(out)
    assert code == 0 and {"id", "name", "status"} <= set(listed[-1])
    assert (listed[-1]["id"], listed[-1]["name"], listed[-1]["status"]) == (job_id, "mine", "queued")
    _, out, _ = run(capsys, "jobs", "list")
    assert out.splitlines()[0].split()[:3] == ["ID", "NAME", "STATUS"] and "mine" in out
    _, out, _ = run(capsys, "jobs", "list", "--status", "running", "--json")
    assert [j["name"] for j in json.loads(out)] == ["holder"]

    _, out, _ = run(capsys, "jobs", "show", str(job_id), "--json")
    shown = json.loads(out)
    assert shown["argv"][-2:] == ["--epochs", "2"] and shown["preset"] == "demo" and shown["attempt"] == 1

    assert run(capsys, "cancel", str(job_id))[1] == f"job {job_id}: cancelled\n"
    code, out, _ = run(capsys, "resume", str(job_id), "--json")
    assert code == 0 and (json.loads(out)["status"], json.loads(out)["attempt"]) == ("queued", 2)

    code, _, err = run(capsys, "jobs", "rm", "1")  # the holder is running
    assert code == 1 and "job 1 is running: cancel it first" in err
    assert run(capsys, "jobs", "rm", str(job_id))[0] == 0
    code, _, err = run(capsys, "jobs", "show", str(job_id))
    assert code == 1 and err == f"rn50tui: error: no job {job_id} (see `rn50tui jobs list`)\n"


def test_resume_of_a_completed_job_is_a_clear_error(capsys, busy):
    job = busy.insert_job(name="done", kind="train", argv=[], device="cpu", cards_requested=1, workspace="w")
    busy.update_job(job.id, status="completed")
    code, _, err = run(capsys, "resume", str(job.id))
    assert code == 1 and "is completed: there is nothing to resume; start a new job" in err


def test_export_writes_every_metric_record(capsys, busy, tmp_path):
    job = busy.insert_job(name="m", kind="train", argv=[], device="cpu", cards_requested=1, workspace="w")
    with busy.transaction():
        busy.add_metrics([(job.id, 1, 1.0, 1, 5, "train", json.dumps({"train.loss": 2.0, "train.lr": 0.1})),
                          (job.id, 1, 2.0, 1, None, "epoch", json.dumps({"val.top1": 12.5}))])  # fmt: skip
    code, out, _ = run(capsys, "export", str(job.id), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["phase"] for r in rows] == ["train", "epoch"]
    assert rows[0]["train.loss"] == "2.0" and rows[1]["val.top1"] == "12.5" and rows[0]["val.top1"] == ""
    assert run(capsys, "export", str(job.id), "--format", "json", "-o", str(tmp_path / "m.json"))[0] == 0
    assert json.loads((tmp_path / "m.json").read_text())[1]["val.top1"] == 12.5
    code, out, err = run(capsys, "export", str(job.id), "--format", "csv", "--attempt", "2")
    assert code == 1 and out == "" and f"job {job.id} has one attempt, not attempt 2" in err


def test_logs_print_the_engine_output(capsys, busy, tmp_path):
    job = busy.insert_job(
        name="l", kind="train", argv=[], device="cpu", cards_requested=1, workspace=str(tmp_path / "w")
    )
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "stdout.log").write_text("one\ntwo\nthree\n")
    busy.update_job(job.id, status="failed")
    assert run(capsys, "logs", str(job.id), "-n", "2")[1] == "two\nthree\n"
    assert run(capsys, "logs", str(job.id), "-f")[1] == "one\ntwo\nthree\n"  # a finished job: follow ends


def test_list_without_a_store_creates_none(capsys, db):
    assert run(capsys, "jobs", "list", "--json")[:2] == (0, "[]\n")
    assert not db.exists()


def test_bad_host_cards_is_a_usage_error(capsys, db):
    code, _, err = run(capsys, "--host-cards", "tpu=3", "jobs", "list")
    assert code == 2 and "bad card count 'tpu=3'" in err


def test_no_command_opens_the_app_on_the_chosen_store(capsys, db, monkeypatch):
    import rn50tui.app.app

    opened = []
    monkeypatch.setattr(rn50tui.app.app, "run_app", lambda path: opened.append(path) or 0)
    code, _, _ = run(capsys)
    assert code == 0 and [Path(p).resolve() for p in opened] == [db.resolve()]


def test_the_installed_entry_point_runs_in_a_subprocess(db):
    proc = run_cli("presets", db=db)
    assert proc.returncode == 0 and proc.stdout.split()[0] == "demo"


def test_devices_learn_which_job_holds_each_card(busy, db):
    assert devices.holders(str(db)) == {("cpu", 0): "job 1 (holder)"}
    assert devices.holders(str(db.parent / "none.db")) is None


def test_show_has_the_ema_curve_and_the_early_stopping_note(capsys, db):
    from engine.events import EventWriter
    from rn50tui.jobs.report import ReportReader, commit

    store = JobStore(db)
    job = store.insert_job(
        name="ema", kind="train", argv=[], device="cpu", cards_requested=1, workspace=str(db.parent)
    )
    w = EventWriter(job.files.raport)
    w.status("run_start", config={}, start_epoch=0, start_iter=0, epochs=9, train_iters=2, val_iters=1,
             world_size=1, device="cpu")  # fmt: skip
    for epoch, (top1, ema) in enumerate([(10.0, 12.0), (30.0, 35.5), (20.0, 36.0)], start=1):
        w.metrics([epoch], {"train.loss": 1.0, "val.top1": top1, "val_ema.top1": ema, "val_ema.loss": 1.0})
    w.status("early_stop", epoch=3, best_epoch=2, patience=1, best_top1=30.0)
    reason = "early stopping: val top-1 has not improved for 1 epochs (best 30.00 at epoch 2, ...)"
    w.status("run_end", status="completed", epoch=3, best_top1=30.0, reason=reason)
    w.close()
    commit(store, job.id, ReportReader(job.id, 1, job.files.raport).poll(), [], time.time())
    store.close()

    code, out, _ = run(capsys, "jobs", "show", str(job.id), "--json")
    shown = json.loads(out)
    assert code == 0 and shown["note"] == reason
    assert shown["ema_top1_by_epoch"] == {"1": 12.0, "2": 35.5, "3": 36.0}
    assert shown["top1_by_epoch"] == {"1": 10.0, "2": 30.0, "3": 20.0}
    _, out, _ = run(capsys, "jobs", "show", str(job.id))
    assert any(line.startswith("note") and "early stopping" in line for line in out.splitlines())
    assert any(line.startswith("ema_top1_by_epoch") for line in out.splitlines())


def test_show_counts_the_checkpoint_epoch_from_one_as_the_records_do(capsys, db):
    from engine.events import EventWriter
    from rn50tui.jobs.report import ReportReader, commit

    store = JobStore(db)
    job = store.insert_job(
        name="c", kind="train", argv=[], device="cpu", cards_requested=1, workspace=str(db.parent)
    )
    w = EventWriter(job.files.raport)
    w.status("run_start", config={}, start_epoch=0, start_iter=0, epochs=2, train_iters=4, val_iters=1,
             world_size=1, device="cpu")  # fmt: skip
    w.status("epoch_start", epoch=1, train_iters=4, start_iter=0)
    w.status("checkpoint", path="c.pth.tar", epoch=1, iteration=3, is_best=False)  # stopped inside epoch 1
    w.close()
    commit(store, job.id, ReportReader(job.id, 1, job.files.raport).poll(), [], time.time())
    assert (store.get_job(job.id).checkpoint_epoch, store.get_job(job.id).checkpoint_iteration) == (0, 3)
    store.close()
    _, out, _ = run(capsys, "jobs", "show", str(job.id), "--json")
    shown = json.loads(out)
    assert (shown["epoch"], shown["checkpoint_epoch"], shown["checkpoint_iteration"]) == (1, 1, 3)


def test_jobs_list_shows_active_and_newest_jobs_and_all_with_all(capsys, busy):
    now = 1_780_000_000.0
    finished = [dict(name=f"old{i}", kind="train", argv=[], device="cpu", cards_requested=1, workspace=f"runs/{i}",
                     status="completed", attempt=1, created_at=now, updated_at=now) for i in range(jobs_command.RECENT_JOBS + 5)]  # fmt: skip
    busy.insert_jobs(finished)  # after the running holder (job 1): 25 finished jobs, ids 2..26
    code, out, err = run(capsys, "jobs", "list", "--json")
    shown = [j["id"] for j in json.loads(out)]
    assert code == 0 and shown == [1, *range(7, 27)]  # the running job, then the newest 20
    assert "5 older jobs not shown" in err and "--all" in err
    code, out, err = run(capsys, "jobs", "list", "--all")
    assert code == 0 and len(out.splitlines()) == 1 + 26 and err == ""
    assert out.splitlines()[1].split()[:3] == ["1", "holder", "running"]


def test_show_says_which_loss_the_list_shows_and_labels_the_raw_last_window(capsys, db, tmp_path):
    from engine.events import EventWriter
    from rn50tui.jobs.report import ReportReader, commit

    store = JobStore(db)
    job = store.insert_job(
        name="d", kind="train", argv=[], device="cpu", cards_requested=1, workspace=str(tmp_path)
    )
    follower = ReportReader(job.id, 1, job.files.raport)
    w = EventWriter(job.files.raport)
    w.status("run_start", config={}, start_epoch=0, start_iter=0, epochs=2, train_iters=4, val_iters=1,
             world_size=1, device="cpu")  # fmt: skip
    for it, loss in enumerate([2.0, 1.5, 1.4, 9.0], 1):  # a last window that spikes
        w.metrics([1, it], {"train.loss": loss})
    w.metrics([1], {"train.loss": 3.475, "val.loss": 1.2})
    commit(store, job.id, follower.poll(), [], 0.0)
    shown = json.loads(run(capsys, "jobs", "show", str(job.id), "--json")[1])
    assert (shown["loss"], shown["loss_is"]) == (3.475, "mean training loss of epoch 1")
    assert shown["last_window_loss"] == 9.0 and shown["last_window_is"].startswith(
        "raw mean of the last -p window"
    )
    assert json.loads(run(capsys, "jobs", "list", "--json")[1])[0]["loss"] == 3.475

    w.metrics([2, 1], {"train.loss": 1.1})  # epoch 2 runs: a smoothed value, between the mean and the window
    w.close()
    commit(store, job.id, follower.poll(), [], 0.0)
    shown = json.loads(run(capsys, "jobs", "show", str(job.id), "--json")[1])
    assert 1.1 < shown["loss"] < 3.475 and shown["loss_is"].startswith("smoothed")
    assert shown["last_window_loss"] == 1.1 and "epoch 2, to iteration 1" in shown["last_window_is"]
    _, text, _ = run(capsys, "jobs", "show", str(job.id))
    assert re.search(r"^loss_is +smoothed", text, re.M) and re.search(r"^last_window_loss +1\.1$", text, re.M)
    assert json.loads(run(capsys, "jobs", "list", "--json")[1])[0]["loss"] == shown["loss"]
    store.close()


def test_jobs_list_shows_a_running_jobs_warning_under_the_table(capsys, busy):
    warning = "warning: /ws has 60 MiB free, but this run's checkpoints need about 539 MiB"
    with busy.transaction():
        busy.update_job(1, note=warning)  # the running holder, as its follower records an engine warning
    code, out, _ = run(capsys, "jobs", "list")
    assert code == 0 and out.splitlines()[-1] == f"job 1 {warning}"
    code, out, _ = run(capsys, "jobs", "list", "--json")
    assert json.loads(out)[0]["note"] == warning
