"""Named engine set-ups: the seed's scripts (NGC recipe, /work/shared/reference/ngc-recipe.md), FFCV's
published ResNet-50 recipe, and a demo.

A preset gives the kind of job, its default device and card count, and the engine flags; flags given
after `--` on the command line come after the preset's, so they win (argparse keeps the last value).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rn50tui.jobs.core.errors import SubmitError

# The 90-epoch recipe of NGC_ResNet50v15_{AMP,FP32}_90E_4MLUS_Train.sh, without --training-only so
# every epoch is validated and model_best.pth.tar is kept.
_NGC_90E = (
    "-j", "4", "-p", "100", "--lr", "2.048", "--optimizer-batch-size", "2048", "--warmup", "8",
    "--arch", "resnet50", "-c", "fanin", "--label-smoothing", "0.1", "--lr-schedule", "cosine",
    "--mom", "0.875", "--wd", "3.0517578125e-05", "-b", "128", "--epochs", "90",
)  # fmt: skip

# AMP as upstream's DGX-A100/DGX-1 AMP configs run it (configs.yml: `memory_format: nhwc`): channels-last
# is the layout tensor cores and MLUs run fastest. Every AMP preset ends with these flags.
AMP_FLAGS = ("--amp", "--memory-format", "nhwc")

# Upstream's DGX-A100 250-epoch AMP recipe (DeepLearningExamples' configs.yml: resnet50 / DGXA100 / AMP,
# resnet_params_2k, platform DGXA100): 256 images per card, global batch 2048 at lr 2.048 on any card
# count that divides it (8 cards: no accumulation; 4: 2 steps; 1: 8), mixup 0.2, channels-last.
_NGC_250E = (
    "-j", "10", "--prefetch", "4", "-p", "20", "--lr", "2.048", "--optimizer-batch-size", "2048",
    "--warmup", "8", "--arch", "resnet50", "-c", "fanin", "--label-smoothing", "0.1", "--mixup", "0.2",
    "--lr-schedule", "cosine", "--mom", "0.875", "--wd", "3.0517578125e-05", "-b", "256", "--epochs", "250",
    "--interpolation", "bilinear",
)  # fmt: skip

# The recipe's optimisation (NGC scripts): fan-in init, label smoothing, SGD momentum 0.875, weight decay
# 1/32768 (none on batch norm: the engine's default), cosine schedule. Label smoothing caps the logit
# margin the loss rewards (about 4.5 for ten classes), so a trained network's logits stay small.
_NGC_RECIPE = (
    "-c", "fanin", "--label-smoothing", "0.1", "--lr-schedule", "cosine", "--mom", "0.875",
    "--wd", "3.0517578125e-05",
)  # fmt: skip

# The recipe in miniature, on a CPU with no dataset: only data, image size, epochs and batch are small,
# and the lr with them: 0.01, below the linear scaling's 0.256 × 32 / 256 = 0.032, which with 24 steps an
# epoch on ten near-noiseless classes spikes to 10× the loss (0.016 still 3×; measured). Warm-up 1 of 3
# epochs. It shows every kind of live data (loss, lr, img/s, top-1/top-5, checkpoints) in about two
# minutes on two cores.
_DEMO = (
    *_NGC_RECIPE, "--data-backend", "synthetic", "--device", "cpu", "--image-size", "64", "-b", "32",
    "--num-classes", "10", "--epochs", "3", "--synthetic-size", "768", "--lr", "0.01", "--warmup", "1",
    "-p", "2", "-j", "0", "--seed", "1",
)  # fmt: skip


# FFCV's ResNet-50, 88 epochs (libffcv/ffcv-imagenet rn50_configs/rn50_88_epochs.yaml and train_imagenet.py
# at 4dd291a): 512 images per card on 8 cards (global 4096) at lr 1.7; their "cyclic" lr rises linearly
# from 1e-4·lr to lr over lr_peak_epoch 2 (the default) and falls linearly to 0 at epoch 88 (--warmup 2,
# linear to --end-lr 0); SGD momentum 0.9, wd 1e-4 (none on BN), label smoothing 0.1; the crop 160 px up
# to their epoch 65, 192 px from 76 (0-based; ours count from 1: 66 and 77); validation at 256 px
# (centre crop 224/256) with the left-right flip (lr_tta); torchvision's init (-c classic), AMP,
# channels-last. Left out: BlurPool (another architecture), FFCV's loader and its re-encoded dataset.
_FFCV_88E = (
    "-j", "12", "-b", "512", "--optimizer-batch-size", "4096", "--lr", "1.7", "--warmup", "2",
    "--lr-schedule", "linear", "--end-lr", "0", "--mom", "0.9", "--wd", "1e-4", "--label-smoothing", "0.1",
    "-c", "classic", "--epochs", "88", "--resize-schedule", "160:192:66:77", "--val-image-size", "256",
    "--val-flip",
)  # fmt: skip
FFCV_DESCRIPTION = (
    "FFCV's ResNet-50, 88 epochs, AMP, 8 cards: 160→192 px crop ramp (epochs 66–77), lr 1.7 at global "
    "batch 4096 (2 warm-up epochs, then linear to 0), label smoothing 0.1, test at 256 px with flip "
    "(needs --data). Source: github.com/libffcv/ffcv-imagenet rn50_configs/rn50_88_epochs.yaml; 78.4% "
    "top-1 in 77 min on 8×A100: their published figures; not measured by rn50tui. Left out: BlurPool "
    "(another architecture) and FFCV's own loader and re-encoded dataset (50% JPEG, 500 px side)"
)


@dataclass(frozen=True)
class Preset:
    """What `rn50tui submit --preset NAME` starts from."""

    name: str
    kind: str  # train | infer | bench
    description: str
    flags: tuple[str, ...]
    cards: int = 1
    device: Optional[str] = None  # None: the host's best kind (MLU, then CUDA, then CPU)
    needs_data: bool = True
    needs_checkpoint: bool = False


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("demo", "train", "3 short epochs of synthetic 64 px images on one CPU, no dataset (~2 min)",
               _DEMO, device="cpu", needs_data=False),
        Preset("ngc-amp-90e", "train", "NGC ResNet-50 v1.5, 90 epochs, AMP, 4 cards (needs --data)",
               (*_NGC_90E, *AMP_FLAGS), cards=4),
        Preset("ngc-fp32-90e", "train", "NGC ResNet-50 v1.5, 90 epochs, FP32, 4 cards (needs --data)",
               _NGC_90E, cards=4),
        Preset("ngc-amp-250e", "train", "NGC ResNet-50 v1.5, 250 epochs, AMP, mixup 0.2, 8 cards "
               "(upstream's DGX-A100 recipe; needs --data)", (*_NGC_250E, *AMP_FLAGS), cards=8),
        Preset("ffcv-rn50-88e", "train", FFCV_DESCRIPTION, (*_FFCV_88E, *AMP_FLAGS), cards=8),
        Preset("ngc-infer", "infer", "evaluate a checkpoint on the validation set, one card "
               "(needs --data and --checkpoint)", ("--evaluate", "-b", "128", "-j", "1"), needs_checkpoint=True),
        Preset("bench", "bench", "training throughput on synthetic data: 100 iterations, one card",
               (*_NGC_RECIPE, "--data-backend", "synthetic", "--prof", "100", "--epochs", "1", "--training-only",
                "-p", "10", "--no-checkpoints"), needs_data=False),
    )
}  # fmt: skip


def get_preset(name: str) -> Preset:
    """The preset called `name`; SubmitError lists the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise SubmitError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}", "preset") from None
