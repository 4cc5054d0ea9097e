"""The checkpoint to export: its weights in an eval-mode model, and what the metadata says about it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from torch import nn

from engine.checkpoint import arch_of, load_checkpoint
from engine.ema import select_weights
from engine.export import BadInput
from engine.model import (
    ARCH_BUILDERS,
    StateDictMismatch,
    build_model,
    load_weights_strict,
    strip_module_prefix,
)


@dataclass
class Source:
    """An eval-mode fp32 model on the CPU, and where its weights came from."""

    model: nn.Module
    arch: str
    num_classes: int
    class_names: Optional[list[str]]
    checkpoint: str
    weights: str  # "model" or "ema": which of the checkpoint's weights
    epoch: Optional[int]
    best_prec1: Optional[float]

    def describe(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "weights": self.weights, "epoch": self.epoch,
                "best_prec1": self.best_prec1}  # fmt: skip


def load_source(path: str, weights: str = "best", trust: bool = False,
                num_classes: Optional[int] = None) -> Source:  # fmt: skip
    """Load `path` (ours or the port's: `module.` keys, an arch tuple) strictly into a fresh model.

    CheckpointError (unreadable, unsafe pickle) passes through; a file of another architecture or class
    count is a BadInput naming what it holds.
    """
    ckpt = load_checkpoint(path, trust)
    arch, _, declared = arch_of(ckpt)
    if arch is not None and arch not in ARCH_BUILDERS:
        raise BadInput(
            f"{path} holds a {arch} model, but engine.export exports {', '.join(ARCH_BUILDERS)} only"
        )
    arch = arch or "resnet50"
    chosen, which = select_weights(ckpt, weights, path)
    state = strip_module_prefix(chosen)
    fc = state.get("fc.weight")
    if fc is None or getattr(fc, "ndim", 0) != 2:
        raise BadInput(f"{path} has no classifier layer (fc.weight): it is not a {arch} checkpoint")
    found = int(fc.shape[0])
    if declared is not None and declared != found:
        raise BadInput(f"{path} declares {declared} classes in its arch but its fc layer has {found}: "
                       "the file is inconsistent; export the checkpoint the run saved")  # fmt: skip
    if num_classes is not None and num_classes != found:
        raise BadInput(f"{path} has {found} classes, but --num-classes is {num_classes}: pass --num-classes "
                       f"{found}, or export the checkpoint trained for {num_classes}")  # fmt: skip
    model = build_model(arch, "classic", found)
    try:
        load_weights_strict(model, state)
    except StateDictMismatch as exc:
        raise BadInput(f"{path} does not fit {arch} ({exc}): export a {arch} checkpoint") from None
    epoch, best = ckpt.get("epoch"), ckpt.get("best_prec1")
    return Source(
        model=model.eval(),
        arch=arch,
        num_classes=found,
        class_names=stored_class_names(ckpt, found),
        checkpoint=str(Path(path).resolve()),
        weights=which,
        epoch=int(epoch) if isinstance(epoch, int) else None,
        best_prec1=float(best) if isinstance(best, (int, float)) else None,
    )


def stored_class_names(ckpt: dict[str, Any], num_classes: int) -> Optional[list[str]]:
    """The checkpoint's own class names, ImageNet's for 1000 classes, else None (never placeholders)."""
    stored = ckpt.get("class_names")
    if isinstance(stored, (list, tuple)) and len(stored) == num_classes and num_classes:
        return [str(n) for n in stored]
    if num_classes == 1000:
        from torchvision.models import ResNet50_Weights

        return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    return None
