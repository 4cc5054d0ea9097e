from __future__ import annotations

import pytest

from rn50tui.jobs.core.errors import SubmitError
from rn50tui.jobs.submission import Request, plan

HOST = {"mlu": 4, "cuda": 0, "cpu": 1}


def test_demo_runs_on_cpu_with_its_name_and_the_users_flags_last(tmp_path):
    p = plan(Request(preset="demo", engine_flags=("--epochs", "1", "--warmup", "0")), HOST, tmp_path)
    assert (p.name, p.kind, p.device, p.cards, p.workspace) == ("demo", "train", "cpu", 1, None)
    assert p.argv[-4:] == ["--epochs", "1", "--warmup", "0"]


def test_ngc_preset_needs_data_and_takes_4_mlu_cards(tmp_path):
    with pytest.raises(SubmitError, match="preset ngc-amp-90e needs a dataset: pass --data DIR"):
        plan(Request(preset="ngc-amp-90e"), HOST, tmp_path)
    for split in ("train", "val"):
        (tmp_path / "imagenet" / split).mkdir(parents=True)
    p = plan(Request(preset="ngc-amp-90e", data="imagenet"), HOST, tmp_path)
    assert (p.device, p.cards, p.kind) == ("mlu", 4, "train")
    assert p.argv[0] == str(tmp_path / "imagenet") and "--amp" in p.argv and "--training-only" not in p.argv
    assert p.argv[-2:] == ["--device", "mlu"]


@pytest.mark.parametrize(("request_", "message"), [
    (Request(preset="nope"), "unknown preset 'nope': choose one of demo, ngc-amp-90e"),
    (Request(preset="demo", data="missing"), "dataset directory .*missing does not exist"),
    (Request(preset="demo", device="mlu", cards=8), "wants 8 mlu card\\(s\\); this host has 4"),
    (Request(preset="demo", device="cuda"), "wants 1 cuda card\\(s\\); this host has 0 \\(if telemetry"),
    (Request(preset="demo", engine_flags=("--bogus",)), "engine flags refused: unrecognized arguments: --bogus"),
    (Request(preset="demo", engine_flags=("-b", "0")), "engine flags refused: --batch-size must be at least 1"),
    (Request(preset="ngc-infer", data="."), "preset ngc-infer needs weights: pass --checkpoint PATH"),
    (Request(engine_flags=("--data-backend", "synthetic", "--optimizer-batch-size", "100")), "multiple of batch size"),
    (Request(preset="demo", cards=64), "needs 64 cores"),
])  # fmt: skip
def test_invalid_requests_are_refused_before_queueing(tmp_path, request_, message):
    with pytest.raises(SubmitError, match=message):
        plan(request_, HOST, tmp_path)


def test_a_file_for_a_dataset_and_a_folder_for_a_checkpoint_say_what_to_pass(tmp_path):
    (tmp_path / "labels.csv").write_text("a,1\n")
    with pytest.raises(
        SubmitError, match="labels.csv is a file: pass the directory that holds train/ and val/"
    ):
        plan(Request(preset="ngc-amp-90e", data="labels.csv"), HOST, tmp_path)
    (tmp_path / "data" / "val").mkdir(parents=True)
    with pytest.raises(SubmitError, match="is a directory: pass the file \\(checkpoint.pth.tar\\)"):
        plan(Request(preset="ngc-infer", data="data", checkpoint="data"), HOST, tmp_path)


def test_paths_become_absolute_and_workspace_flags_are_taken_over(tmp_path):
    (tmp_path / "w.pth.tar").write_bytes(b"x")
    (tmp_path / "data" / "val").mkdir(parents=True)
    p = plan(Request(preset="ngc-infer", data="data", checkpoint="w.pth.tar",
                     engine_flags=("--workspace", "mine", "--raport-file=r.json")), HOST, tmp_path)  # fmt: skip
    assert p.kind == "infer" and p.workspace == str(tmp_path / "mine")
    assert "--workspace" not in p.argv and not any(a.startswith("--raport-file") for a in p.argv)
    assert p.argv[p.argv.index("--resume") + 1] == str(tmp_path / "w.pth.tar")


def test_without_a_preset_the_kind_follows_the_flags(tmp_path):
    p = plan(Request(engine_flags=("--data-backend", "synthetic", "--prof", "5")), {"cpu": 1}, tmp_path)
    assert (p.name, p.kind, p.device) == ("custom", "bench", "cpu")


def test_250_epoch_preset_keeps_the_global_batch_on_the_cards_granted(tmp_path):
    from engine.config import accumulation_steps, parse_args

    for split in ("train", "val"):
        (tmp_path / "imagenet" / split).mkdir(parents=True)
    host = {"mlu": 8, "cuda": 0, "cpu": 1}
    for cards, steps in ((8, 1), (4, 2), (2, 4), (1, 8)):
        p = plan(Request(preset="ngc-amp-250e", data="imagenet", cards=cards), host, tmp_path)
        cfg = parse_args(p.argv)
        assert (cfg.batch_size, cfg.optimizer_batch_size, cfg.lr, cfg.epochs) == (256, 2048, 2.048, 250)
        assert (cfg.mixup, cfg.label_smoothing, cfg.amp, cfg.memory_format) == (0.2, 0.1, True, "nhwc")
        assert accumulation_steps(cfg, cards) == steps
    assert plan(Request(preset="ngc-amp-250e", data="imagenet"), host, tmp_path).cards == 8
    with pytest.raises(SubmitError, match="multiple of batch size × cards"):
        plan(Request(preset="ngc-amp-250e", data="imagenet", cards=3), host, tmp_path)
