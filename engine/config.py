"""Typed configuration of a run and the NGC/Cambricon-compatible command line. No torch import here.

The flag names, defaults and meanings follow the port's `main.py` so the seed's scripts run unchanged;
upstream's later flags (`--image-size`, `--end-lr`, `--gather-checkpoints`, `--topk`) are added.
Each field of TrainConfig carries its flag (engine/flags.py): the parser is derived from the fields.
Everything that can be checked without torch is checked here, before any work starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from engine.device_kind import NAMES, parse_device
from engine.flags import DefaultsHelp, add_fields, also, flag
from engine.schedule import CropSizes, ResizeSchedule, ScheduleError

ARCHS = ("resnet50",)
MODEL_CONFIGS = ("classic", "fanin")
DEVICES = ("auto", *NAMES)
DATA_BACKENDS = ("pytorch", "synthetic")
DALI_BACKENDS = ("dali-gpu", "dali-cpu", "dali-mlu")  # NVIDIA DALI (CPU, CUDA) and Cambricon's DALI plugin
AUGMENTATIONS = ("autoaugment",)
INTERPOLATIONS = ("bilinear", "bicubic")
WEIGHTS = ("best", "model", "ema")
TRUST_HELP = "load a checkpoint that needs unpickling (it can run any code): only files you trust"


class ConfigError(ValueError):
    """A flag value that cannot work; the message names the flag and the fix."""


DEFAULT_NUM_CLASSES = 1000  # ImageNet-1k


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one engine run; each field is also its flag (`python -m engine.train --help`)."""

    data: Optional[str] = flag(
        None,
        nargs="?",
        metavar="DIR",
        help="dataset root with train/ and val/ (ImageFolder; train.txt/val.txt lists are used when present)",
    )
    data_backend: str = flag(
        "pytorch",
        "--data-backend",
        choices=DATA_BACKENDS + DALI_BACKENDS,
        help="pytorch: decode images from DIR; synthetic: random tensors, no dataset needed; "
        "dali-cpu/dali-gpu/dali-mlu: NVIDIA DALI on the CPU / nvJPEG on the CUDA card / Cambricon's DALI "
        "plugin, fed by the engine's sampler (-j is DALI's thread count); the pytorch pipeline runs where "
        "the package or the card is absent",
    )
    arch: str = flag("resnet50", "--arch", "-a", choices=ARCHS, help="model architecture")
    model_config: str = flag(
        "classic",
        "--model-config",
        "-c",
        choices=MODEL_CONFIGS,
        help="weight init: classic (torchvision's) or fanin (Kaiming normal, fan_in)",
    )
    num_classes: int = flag(
        DEFAULT_NUM_CLASSES,
        "--num-classes",
        help="number of classes (a --resume checkpoint's own count, when left at the default)",
    )
    workers: int = flag(5, "-j", "--workers", help="data-loading worker processes per rank")
    prefetch: int = flag(2, "--prefetch", help="batches each worker loads ahead")
    epochs: int = flag(90, "--epochs", help="total epochs of the schedule")
    run_epochs: int = flag(-1, "--run-epochs", help="stop after this many epochs of this attempt (-1: all)")
    batch_size: int = flag(256, "-b", "--batch-size", help="mini-batch size per card")
    optimizer_batch_size: int = flag(
        -1,
        "--optimizer-batch-size",
        help="global batch per optimizer step; a multiple of batch size × cards (gradient accumulation)",
    )
    lr: float = flag(0.1, "--lr", help="base learning rate")
    lr_schedule: str = flag(
        "step", "--lr-schedule", choices=("step", "linear", "cosine"), help="learning-rate schedule"
    )
    end_lr: float = flag(0.0, "--end-lr", help="final learning rate of the linear and cosine schedules")
    warmup: int = flag(0, "--warmup", help="epochs of linear warm-up")
    label_smoothing: float = flag(0.0, "--label-smoothing", help="label smoothing factor")
    momentum: float = flag(0.9, "--momentum", "--mom", help="SGD momentum")
    weight_decay: float = flag(1e-4, "--weight-decay", "--wd", help="weight decay")
    bn_weight_decay: bool = flag(False, "--bn-weight-decay", help="apply weight decay to BN parameters too")
    nesterov: bool = flag(False, "--nesterov", help="Nesterov momentum")
    print_freq: int = flag(10, "-p", "--print-freq", help="log every N iterations")
    resume: Optional[str] = flag(
        None, "--resume", metavar="PATH", help="continue from this checkpoint (strict)"
    )
    resume_finished: str = flag(
        "error",
        "--resume-finished",
        choices=("error", "complete"),
        help="a --resume checkpoint that already finished the schedule: refuse it (error), or report the "
        "run completed without training again (complete: what the job manager's resumes pass)",
    )
    pretrained_from_file: Optional[str] = flag(
        None,
        "--pretrained-from-file",
        "--pretrained-weights",
        metavar="PATH",
        help="initialise the model's weights from this checkpoint (no optimizer state)",
    )
    trust_checkpoint: bool = flag(False, "--trust-checkpoint", help=TRUST_HELP)
    evaluate: bool = flag(False, "--evaluate", help="one validation pass, no training")
    training_only: bool = flag(False, "--training-only", help="skip validation (then no best model is kept)")
    save_checkpoints: bool = flag(True, "--no-checkpoints", help="write no checkpoints")
    checkpoint_filename: str = flag(
        "checkpoint.pth.tar", "--checkpoint-filename", help="name of the rolling checkpoint"
    )
    workspace: str = flag("./", "--workspace", metavar="DIR", help="where checkpoints and the report go")
    raport_file: str = flag(
        "experiment_raport.json",
        "--raport-file",
        help="DLLogger report file, relative to --workspace (appended across resumes)",
    )
    seed: Optional[int] = flag(None, "--seed", help="random seed (weights agree across ranks)")
    prof: int = flag(-1, "--prof", help="stop each phase after N iterations (profiling)")
    amp: bool = flag(
        False,
        "--amp",
        help="automatic mixed precision (autocast + GradScaler)",
        also=(
            also("--pyamp", action="store_true", help="the port's name for --amp"),
            also("--no-amp", action="store_false", help="fp32, overriding an earlier --amp (of a preset)"),
        ),
    )
    static_loss_scale: float = flag(
        1.0, "--static-loss-scale", help="accepted for compatibility; scaling is dynamic"
    )
    dynamic_loss_scale: bool = flag(
        False, "--dynamic-loss-scale", help="accepted for compatibility; scaling is dynamic"
    )
    memory_format: str = flag(
        "nchw", "--memory-format", choices=("nchw", "nhwc"), help="activation memory layout"
    )
    compile: bool = flag(
        False,
        "--compile",
        help="torch.compile the model (opt-in; the first steps compile, reported apart as warm-up)",
    )
    device: str = flag(
        "auto",
        "--device",
        choices=DEVICES,
        help="mlu, gpu/cuda or cpu; auto picks MLU, then CUDA, then CPU",
    )
    dist_backend: Optional[str] = flag(
        None, "--dist-backend", help="process-group backend (default: cncl, nccl or gloo by device)"
    )
    image_size: Optional[int] = flag(
        None, "--image-size", help="training crop size (default 224); val resizes to size/0.875"
    )
    gather_checkpoints: int = flag(
        0,
        "--gather-checkpoints",
        metavar="N",
        help="also keep checkpoint-<epoch>.pth.tar of the last N epochs",
    )
    topk: int = flag(5, "--topk", help="the k of the top-k accuracy reported besides top-1")
    zero_init_residual: bool = flag(False, "--zero-init-residual", help="zero the last BN of each block")
    synthetic_size: int = flag(
        0,
        "--synthetic-size",
        metavar="N",
        help="images per epoch of the synthetic backend (default: 40 batches per card)",
    )
    max_bad_fraction: float = flag(
        0.01,
        "--max-bad-fraction",
        help="unreadable images are skipped until this fraction is reached, then the run stops",
    )
    # the rest of upstream's recipe (engine/mixup.py, engine/ema.py, AutoAugment, early stopping)
    mixup: float = flag(0.0, "--mixup", metavar="ALPHA", help="mixup alpha (0: off)")
    use_ema: Optional[float] = flag(
        None,
        "--use-ema",
        metavar="DECAY",
        help="keep an exponential moving average of the weights (e.g. 0.9999), validated as val_ema.*",
    )
    augmentation: Optional[str] = flag(
        None, "--augmentation", choices=AUGMENTATIONS, help="extra augmentation (ImageNet policy)"
    )
    interpolation: str = flag(
        "bilinear", "--interpolation", choices=INTERPOLATIONS, help="interpolation of the resizes"
    )
    early_stopping_patience: int = flag(
        -1,
        "--early-stopping-patience",
        metavar="N",
        help="stop after N epochs without val top-1 improving (-1: never)",
    )
    weights: str = flag(
        "best",
        "--weights",
        choices=WEIGHTS,
        help="with --evaluate: the model's weights, the EMA's, or the better of them by recorded top-1",
    )
    # time to accuracy and FFCV's levers (engine/progress.py, engine/schedule.py)
    target_top1: Optional[float] = flag(
        None,
        "--target-top1",
        metavar="PCT",
        help="end the run (completed) at the first validation with top-1 at or above PCT (with --use-ema: "
        "the better of the model and the EMA); that epoch's checkpoint is kept as the best",
    )
    resize_schedule: Optional[str] = flag(
        None,
        "--resize-schedule",
        metavar="START:END:FROM:TO",
        help="training crop grows from START to END px (multiples of 32) between epochs FROM and TO "
        "(from 1), in steps of 32, batch size fixed (FFCV's progressive resizing; overrides --image-size)",
    )
    val_image_size: Optional[int] = flag(
        None,
        "--val-image-size",
        metavar="PX",
        help="validation centre crop (resize to PX/0.875 first); default: the epoch's training crop",
    )
    val_flip: bool = flag(
        False, "--val-flip", help="validate on the mean logits of each image and its mirror"
    )

    @property
    def train_image_size(self) -> int:
        return self.image_size or 224

    @property
    def val_resize(self) -> int:
        """Resize before the center crop: size / 0.875, as 224 → 256."""
        return int(round(self.train_image_size / 0.875))

    @property
    def crop_sizes(self) -> CropSizes:
        """The training crop per epoch (--resize-schedule) and validation's crop (--val-image-size)."""
        schedule = ResizeSchedule.parse(self.resize_schedule) if self.resize_schedule else None
        return CropSizes(self.train_image_size, schedule, self.val_image_size)

    @property
    def do_train(self) -> bool:
        return not self.evaluate

    @property
    def do_validate(self) -> bool:
        return self.evaluate or not self.training_only

    def workspace_path(self, name: str) -> Path:
        """A file of the run's workspace; absolute names stay as given."""
        p = Path(name)
        return p if p.is_absolute() else Path(self.workspace) / p

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def build_parser() -> argparse.ArgumentParser:
    """The engine's command line, one argument per TrainConfig field (engine/flags.py)."""
    p = argparse.ArgumentParser(
        prog="python -m engine.train",
        description="Train or evaluate ResNet-50 v1.5 with NVIDIA's NGC recipe on MLU, CUDA or CPU.",
        allow_abbrev=False,
        formatter_class=DefaultsHelp,
    )
    add_fields(p, TrainConfig)
    # parser-only: torch.distributed.launch passes --local_rank; the rank is read from LOCAL_RANK instead
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    return p


def add_checkpoint_loading_flags(p: argparse.ArgumentParser, weights_help: str) -> None:
    """--trust-checkpoint and --weights, as engine.classify and engine.bench infer take them."""
    add_fields(p, TrainConfig, {"trust_checkpoint", "weights"}, weights=weights_help)


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """Parse and check the command line; raise ConfigError for a value that cannot work."""
    ns = build_parser().parse_args(argv)
    values = {f.name: getattr(ns, f.name) for f in dataclasses.fields(TrainConfig)}
    values["device"] = parse_device(values["device"])
    cfg = TrainConfig(**values)
    check(cfg)
    return cfg


def check(cfg: TrainConfig, world_size: int | None = None) -> None:
    """Refuse settings that cannot work, naming the flag and what to pass instead."""
    positive = {
        "--batch-size": cfg.batch_size,
        "--epochs": cfg.epochs,
        "--num-classes": cfg.num_classes,
        "--print-freq": cfg.print_freq,
        "--topk": cfg.topk,
    }
    for name, value in positive.items():
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    if cfg.workers < 0:
        raise ConfigError(f"--workers must be 0 or more, got {cfg.workers}")
    if cfg.lr < 0 or cfg.end_lr < 0:
        raise ConfigError("--lr and --end-lr must not be negative")
    if not 0.0 <= cfg.label_smoothing < 1.0:
        raise ConfigError(f"--label-smoothing must be in [0, 1), got {cfg.label_smoothing}")
    if cfg.warmup < 0:
        raise ConfigError(f"--warmup must be 0 or more epochs, got {cfg.warmup}")
    if cfg.run_epochs == 0 or cfg.run_epochs < -1:
        raise ConfigError(f"--run-epochs must be -1 (all) or at least 1, got {cfg.run_epochs}")
    if cfg.gather_checkpoints < 0:
        raise ConfigError(f"--gather-checkpoints must be 0 or more, got {cfg.gather_checkpoints}")
    if cfg.image_size is not None and cfg.image_size < 32:
        raise ConfigError(
            f"--image-size must be at least 32 (ResNet-50 downsamples 32×), got {cfg.image_size}"
        )
    if not 0.0 <= cfg.max_bad_fraction < 1.0:
        raise ConfigError("--max-bad-fraction must be in [0, 1)")
    if cfg.evaluate and cfg.training_only:
        raise ConfigError("--evaluate and --training-only exclude each other: evaluation is validation")
    if cfg.evaluate and not cfg.resume and not cfg.pretrained_from_file:
        raise ConfigError("--evaluate needs weights: pass --resume CHECKPOINT (or --pretrained-from-file)")
    for name, path in (("--resume", cfg.resume), ("--pretrained-from-file", cfg.pretrained_from_file)):
        if path and Path(path).is_dir():
            raise ConfigError(f"{name} {path} is a directory: pass the checkpoint file (checkpoint.pth.tar)")
        if path and not Path(path).is_file():
            raise ConfigError(f"{name} {path}: no such file (a missing checkpoint is never a fresh start)")
    _check_recipe(cfg)
    _check_data(cfg)
    _check_batch(cfg, world_size if world_size is not None else int(os.environ.get("WORLD_SIZE", "1")))


def _check_recipe(cfg: TrainConfig) -> None:
    if cfg.mixup < 0:
        raise ConfigError(f"--mixup must be 0 (off) or a positive alpha such as 0.2, got {cfg.mixup}")
    if cfg.use_ema is not None and not 0.0 < cfg.use_ema < 1.0:
        raise ConfigError(f"--use-ema must be a decay in (0, 1) such as 0.9999, got {cfg.use_ema}")
    if cfg.early_stopping_patience == 0 or cfg.early_stopping_patience < -1:
        raise ConfigError(
            f"--early-stopping-patience must be -1 (off) or at least 1, got {cfg.early_stopping_patience}"
        )
    if cfg.early_stopping_patience > 0 and cfg.training_only:
        raise ConfigError("--early-stopping-patience needs validation: drop --training-only")
    _check_time_to_accuracy(cfg)


def _check_time_to_accuracy(cfg: TrainConfig) -> None:
    if cfg.target_top1 is not None and not 0.0 < cfg.target_top1 <= 100.0:
        raise ConfigError(f"--target-top1 must be a percentage in (0, 100], e.g. 75.9, got {cfg.target_top1}")
    if cfg.target_top1 is not None and cfg.training_only:
        raise ConfigError("--target-top1 needs validation: drop --training-only")
    if cfg.val_image_size is not None and cfg.val_image_size < 32:
        raise ConfigError(f"--val-image-size must be at least 32, got {cfg.val_image_size}")
    if cfg.resize_schedule:
        try:
            cfg.crop_sizes  # noqa: B018 - parsing is the check
        except ScheduleError as exc:
            raise ConfigError(str(exc)) from None
        if cfg.data_backend in DALI_BACKENDS:
            raise ConfigError(
                f"--resize-schedule runs in the engine's own pipeline: pass --data-backend pytorch, not "
                f"{cfg.data_backend}"
            )


def warmup_note(cfg: TrainConfig) -> Optional[str]:
    """The one line for a run no longer than its warm-up (a shortened smoke run of a preset), or None."""
    if cfg.evaluate or cfg.warmup < cfg.epochs:
        return None
    return (
        f"--warmup {cfg.warmup} is not below --epochs {cfg.epochs}: the whole run warms up (the lr rises "
        f"linearly and reaches {cfg.warmup and cfg.epochs / cfg.warmup:.0%} of --lr), as upstream's schedule does"
    )


def dali_note(cfg: TrainConfig, absent: Optional[str]) -> Optional[str]:
    """The one warning line for a DALI backend that cannot run here (`absent` says why), or None."""
    if cfg.data_backend not in DALI_BACKENDS or absent is None:
        return None
    return (
        f"--data-backend {cfg.data_backend}: {absent}; the engine's own pipeline runs instead (the same "
        "recipe and seeds); pass --data-backend pytorch to silence this"
    )


def _check_data(cfg: TrainConfig) -> None:
    if cfg.data_backend == "synthetic":
        return
    if not cfg.data:
        raise ConfigError("no dataset given: pass DIR (with train/ and val/), or --data-backend synthetic")
    root = Path(cfg.data)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"dataset {root} is a file: pass the directory that holds train/ and val/")
    if not root.is_dir():
        raise ConfigError(f"dataset directory {root} does not exist (or pass --data-backend synthetic)")
    needed = (["train"] if cfg.do_train else []) + (["val"] if cfg.do_validate else [])
    for split in needed:
        if not (root / split).is_dir() and not (root / f"{split}.txt").is_file():
            hint = " (or pass --training-only)" if split == "val" else ""
            raise ConfigError(f"dataset {root} has no {split}/ folder and no {split}.txt list{hint}")


def _check_batch(cfg: TrainConfig, world_size: int) -> None:
    if cfg.optimizer_batch_size == -1:
        return
    per_step = cfg.batch_size * world_size
    if cfg.optimizer_batch_size < per_step or cfg.optimizer_batch_size % per_step:
        raise ConfigError(
            f"--optimizer-batch-size {cfg.optimizer_batch_size} must be a multiple of batch size × cards "
            f"({cfg.batch_size} × {world_size} = {per_step})"
        )


def accumulation_steps(cfg: TrainConfig, world_size: int) -> int:
    """Mini-batches per optimizer step."""
    if cfg.optimizer_batch_size == -1:
        return 1
    return cfg.optimizer_batch_size // (cfg.batch_size * world_size)
