import pytest

from engine.config import ConfigError, accumulation_steps, build_parser, check, parse_args

SEED_SCRIPT_FLAGS = (
    "{data} --raport-file raport.json -j4 -p 100 --lr 2.048 --optimizer-batch-size 2048 --warmup 8 "
    "--arch resnet50 -c fanin --label-smoothing 0.1 --lr-schedule cosine --mom 0.875 "
    "--wd 3.0517578125e-05 --workspace ./ -b 128 --epochs 90 --training-only --dist-backend cncl "
    "--device mlu --pyamp"
)


def test_seed_training_script_flags_parse_with_their_meaning(tmp_path, monkeypatch):
    (tmp_path / "train").mkdir()
    monkeypatch.setenv("WORLD_SIZE", "4")
    cfg = parse_args(SEED_SCRIPT_FLAGS.format(data=tmp_path).split())
    assert cfg.amp and cfg.training_only and cfg.device == "mlu" and cfg.dist_backend == "cncl"
    assert (cfg.workers, cfg.print_freq, cfg.batch_size, cfg.epochs, cfg.warmup) == (4, 100, 128, 90, 8)
    assert cfg.momentum == 0.875 and cfg.weight_decay == 3.0517578125e-05 and cfg.label_smoothing == 0.1
    assert cfg.model_config == "fanin" and cfg.lr_schedule == "cosine" and cfg.lr == 2.048
    assert accumulation_steps(cfg, 4) == 4


def test_port_defaults_are_kept():
    cfg = parse_args(["--data-backend", "synthetic"])
    assert (cfg.batch_size, cfg.lr, cfg.lr_schedule, cfg.momentum, cfg.weight_decay) == (
        256,
        0.1,
        "step",
        0.9,
        1e-4,
    )
    assert cfg.model_config == "classic" and cfg.raport_file == "experiment_raport.json" and cfg.topk == 5
    assert cfg.device == "auto" and not cfg.amp and cfg.save_checkpoints and cfg.memory_format == "nchw"


def test_gpu_is_an_alias_of_cuda_and_image_size_scales_val_resize():
    cfg = parse_args(["--data-backend", "synthetic", "--device", "gpu", "--image-size", "64"])
    assert cfg.device == "cuda" and cfg.train_image_size == 64 and cfg.val_resize == 73
    assert parse_args(["--data-backend", "synthetic"]).val_resize == 256


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-b", "0"], "--batch-size must be at least 1"),
        (["--warmup", "-1"], "--warmup must be 0 or more epochs"),
        (["--label-smoothing", "1.5"], "--label-smoothing"),
        (["--optimizer-batch-size", "100", "-b", "64"], "must be a multiple of batch size"),
        (["--evaluate"], "--evaluate needs weights"),
        (["--resume", "/nonexistent/ckpt.pth.tar"], "no such file"),
        (["--image-size", "16"], "--image-size must be at least 32"),
    ],
)
def test_impossible_values_are_refused_with_the_flag_named(argv, message):
    with pytest.raises(ConfigError, match=message.replace("-", r"\-").replace("+", r"\+")):
        parse_args(["--data-backend", "synthetic", *argv])


def test_missing_dataset_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        parse_args([str(tmp_path / "nope")])
    with pytest.raises(ConfigError, match="no dataset given"):
        parse_args([])
    (tmp_path / "labels.csv").write_text("a,1\n")
    with pytest.raises(ConfigError, match="is a file: pass the directory that holds train/ and val/"):
        parse_args([str(tmp_path / "labels.csv")])
    with pytest.raises(ConfigError, match=f"--resume {tmp_path} is a directory: pass the checkpoint file"):
        parse_args(["--data-backend", "synthetic", "--resume", str(tmp_path)])
    (tmp_path / "train").mkdir()
    with pytest.raises(ConfigError, match="no val/ folder .* --training-only"):
        parse_args([str(tmp_path)])
    assert parse_args([str(tmp_path), "--training-only"]).training_only


def test_list_files_stand_in_for_folders(tmp_path):
    (tmp_path / "train.txt").write_text("a.jpg 0\n")
    (tmp_path / "val.txt").write_text("b.jpg 0\n")
    assert parse_args([str(tmp_path)]).data == str(tmp_path)


def test_unknown_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["--data-backend", "synthetic", "--no-such-flag"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


def test_accumulation_is_checked_against_the_real_world_size():
    cfg = parse_args(["--data-backend", "synthetic", "-b", "64", "--optimizer-batch-size", "256"])
    check(cfg, world_size=2)
    assert accumulation_steps(cfg, 2) == 2
    with pytest.raises(ConfigError, match=r"64 × 3 = 192"):
        check(cfg, world_size=3)


def test_every_flag_has_help_text():
    for action in build_parser()._actions:
        if action.dest not in ("help", "local_rank"):
            assert action.help, f"{action.option_strings or action.dest} has no help"


def test_help_names_each_flags_default():
    from engine.config import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "total epochs of the schedule (default: 90)" in text
    assert "mini-batch size per card (default: 256)" in text
