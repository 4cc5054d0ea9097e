from __future__ import annotations

import sys

from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import Job
from rn50tui.jobs.local.launcher import engine_command, engine_env, resume_checkpoint, without_flag
from rn50tui.jobs.local.procs import RUN_TOKEN_ENV
from rn50tui.jobs.slurm.executor import attempt_of


def _job(tmp_path, **kw) -> Job:
    values = dict(id=5, name="j", kind="train", argv=["--lr", "0.1", "--resume", "old.pth"], device="mlu",
                  cards_requested=1, workspace=str(tmp_path), status=Status.STARTING, cards_granted=[2])  # fmt: skip
    values.update(kw)
    return Job.of(**values)


def test_one_card_runs_the_engine_module_with_the_managed_flags(tmp_path):
    argv = engine_command(_job(tmp_path))
    assert argv[:3] == [sys.executable, "-m", "engine.train"]
    assert argv[-4:] == ["--workspace", str(tmp_path), "--raport-file", "raport.json"]


def test_several_cards_go_through_this_interpreters_torchrun(tmp_path):
    argv = engine_command(_job(tmp_path, cards_requested=4, cards_granted=[0, 1, 2, 3]))
    assert argv[:3] == [sys.executable, "-m", "engine.launch"]
    assert argv[argv.index("--nproc-per-node") + 1] == "4" and "--standalone" in argv
    assert argv[argv.index("-m", 3) + 1] == "engine.train"


def test_a_resume_replaces_the_earlier_resume_flag(tmp_path):
    argv = engine_command(_job(tmp_path), resume_from="/w/checkpoint.pth.tar")
    assert argv.count("--resume") == 1 and argv[argv.index("--resume") + 1] == "/w/checkpoint.pth.tar"
    # a checkpoint that already holds the whole schedule completes the run instead of failing every resume
    assert argv[argv.index("--resume-finished") + 1] == "complete" and argv.count("--resume-finished") == 1
    assert "--resume-finished" not in engine_command(_job(tmp_path))  # a first attempt keeps the strict check
    assert without_flag(["a", "--resume=x", "b", "--resume", "y", "c"], "--resume") == ["a", "b", "c"]


def test_a_slurm_attempt_resumes_with_the_same_flags_as_a_local_one(tmp_path):
    """A resumed Slurm job whose checkpoint holds the whole schedule completes too, as a local one does."""
    (tmp_path / "checkpoint.pth.tar").write_bytes(b"x")
    job = _job(tmp_path, attempt=2, executor="slurm")
    flags = attempt_of(job).engine_flags
    assert flags == engine_command(job, resume_from=str(tmp_path / "checkpoint.pth.tar"))[3:]
    assert flags[flags.index("--resume-finished") + 1] == "complete"


def test_resume_checkpoint_only_for_later_attempts_of_training_with_a_checkpoint(tmp_path):
    assert resume_checkpoint(_job(tmp_path, attempt=2)) is None
    (tmp_path / "checkpoint.pth.tar").write_bytes(b"x")
    assert resume_checkpoint(_job(tmp_path, attempt=1)) is None
    assert resume_checkpoint(_job(tmp_path, attempt=2, kind="infer")) is None
    assert resume_checkpoint(_job(tmp_path, attempt=2)) == str(tmp_path / "checkpoint.pth.tar")
    (tmp_path / "mine.pth.tar").write_bytes(
        b"x"
    )  # --checkpoint-filename mine.pth.tar, as the engine reported
    assert resume_checkpoint(
        _job(tmp_path, attempt=2, last_checkpoint=str(tmp_path / "mine.pth.tar"))
    ) == str(tmp_path / "mine.pth.tar")


def test_env_shows_only_the_granted_cards(tmp_path):
    env = engine_env(_job(tmp_path, cards_granted=[2, 3]), "tok", base={"CUDA_VISIBLE_DEVICES": "0"})
    assert env["MLU_VISIBLE_DEVICES"] == "2,3" and env["CUDA_VISIBLE_DEVICES"] == "0"
    assert env[RUN_TOKEN_ENV] == "tok" and env["PYTHONUNBUFFERED"] == "1"
    cpu = engine_env(_job(tmp_path, device="cpu", cards_granted=[0]), "t", base={"CUDA_VISIBLE_DEVICES": "0"})
    assert cpu["CUDA_VISIBLE_DEVICES"] == "" and cpu["MLU_VISIBLE_DEVICES"] == ""


def test_children_get_the_folder_holding_the_code_first_on_their_path(monkeypatch):
    # A supervisor or watcher started from a checkout must import this code, installed or not (the
    # launcher once pointed one folder too deep after a move, and only an installed copy hid it).
    from rn50tui import PROJECT_ROOT, child_env

    assert (PROJECT_ROOT / "engine" / "train.py").is_file() and (
        PROJECT_ROOT / "rn50tui" / "cli.py"
    ).is_file()
    env = child_env({"PYTHONPATH": "/elsewhere"})
    assert env["PYTHONPATH"].split(":") == [str(PROJECT_ROOT), "/elsewhere"]
    job = Job(
        id=1,
        name="x",
        kind="train",
        argv=[],
        device="cpu",
        cards_requested=1,
        workspace="/tmp/ws",
        status=Status.RUNNING,
    )
    assert engine_env(job, "tok", {}).get("PYTHONPATH", "").split(":")[0] == str(PROJECT_ROOT)
