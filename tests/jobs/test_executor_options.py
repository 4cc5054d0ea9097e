"""An executor owns its options: the CLI's flags, the form's checks and the manager's refusals all come
from its declaration, so a third executor needs no change to the manager, the CLI or the app."""

from __future__ import annotations

import pytest

from rn50tui.app.jobform import FormValues, check, to_request
from rn50tui.cli import build_parser
from rn50tui.jobs.core.errors import SubmitError
from rn50tui.jobs.presets import PRESETS

from .third_executor import register


def test_a_third_executors_options_become_cli_flags_in_its_own_group(monkeypatch, capsys):
    register(monkeypatch)
    args = build_parser().parse_args(["submit", "--executor", "cloud", "--region", "eu-1", "--gpus", "2"])
    assert (args.executor, args.region, args.gpus, args.spot) == ("cloud", "eu-1", 2, None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["submit", "--help"])
    text = capsys.readouterr().out
    assert "with --executor cloud; defaults from the cloud's console" in text
    assert "--gpus GPUS" in text and "GPUs per machine (default 1)" in text and "cloud: a cloud" in text


def test_another_executors_flag_is_refused_by_the_cli(monkeypatch, tmp_path, capsys):
    from rn50tui.cli import main

    register(monkeypatch)
    assert main(["--db", str(tmp_path / "jobs.db"), "submit", "--preset", "demo", "--region", "eu-1"]) == 2
    assert "--region only apply with --executor cloud" in capsys.readouterr().err


def test_the_form_checks_a_third_executors_fields_by_its_declaration(monkeypatch):
    register(monkeypatch)
    capacity = {"mlu": 0, "cuda": 0, "cpu": 1}
    typo = check(FormValues(executor="cloud", options={"gpus": "two"}), capacity)
    assert typo.errors == {"gpus": "gpus must be an integer"}
    zero = check(FormValues(executor="cloud", options={"gpus": "0"}), capacity)
    assert zero.errors == {"gpus": "--gpus must be at least 1, got 0"}
    place = check(FormValues(executor="cloud", options={"region": "mars"}), capacity)
    assert place.errors == {"region": "--region 'mars' is not a region (eu-1)"}
    fine = check(FormValues(executor="cloud", options={"region": "eu-1", "gpus": "2"}), capacity)
    assert fine.ok, fine.errors
    request = to_request(FormValues(executor="cloud", options={"region": "eu-1"}), PRESETS["demo"], [])
    assert request.executor_options == {"region": "eu-1", "gpus": None}  # spot is a flag only


def test_the_manager_refuses_a_bad_option_before_queueing(monkeypatch, manager):
    register(monkeypatch)
    with pytest.raises(SubmitError, match="--gpus must be at least 1, got 0") as refused:
        manager.submit(preset="demo", executor="cloud", cloud={"gpus": 0}, start=False)
    assert refused.value.field == "gpus"
    with pytest.raises(SubmitError, match="options for elsewhere given to a job of the cloud executor"):
        manager.submit(preset="demo", executor="cloud", elsewhere={"gpus": 1}, start=False)
    with pytest.raises(SubmitError, match="the local executor takes no options"):
        manager.submit(preset="demo", local={"gpus": 1}, start=False)
    assert manager.list_jobs() == []
