"""The trainer's optional recipe parts beyond the 90-epoch run: mixup, the EMA of the weights, early
stopping. One object the Trainer holds (`trainer.recipe`), with its share of the checkpoint.

Checkpoint keys (all plain tensors and numbers, so `torch.load(weights_only=True)` reads them):
``state_dict_ema`` (upstream's name) and ``ema_updates``; ``prec1`` / ``prec1_ema``, the last validated
top-1 of the model and of the EMA (`--weights best` compares them); ``best_epoch``, the epoch of the best
top-1 (early stopping counts from it, across resumes).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Optional

from torch import nn

from engine.config import TrainConfig
from engine.ema import EMA, select_weights
from engine.mixup import Mixup


@dataclass
class RecipeState:
    mixup: Optional[Mixup] = None
    ema: Optional[EMA] = None
    best_epoch: int = 0  # 1-based epoch whose val top-1 is the best so far; 0: none yet
    prec1: Optional[float] = None
    prec1_ema: Optional[float] = None
    weights_from: str = "model"  # which weights of the checkpoint were loaded: model or ema

    @classmethod
    def build(cls, cfg: TrainConfig, model: nn.Module, rank: int, weights_from: str = "model") -> RecipeState:
        seed = cfg.seed if cfg.seed is not None else 0  # as the data pipeline's augmentation seeds
        mixup = Mixup(cfg.mixup, cfg.num_classes, cfg.label_smoothing, seed, rank) if cfg.mixup > 0 else None
        ema = EMA(model, cfg.use_ema) if cfg.use_ema is not None and cfg.do_train else None
        return cls(mixup=mixup, ema=ema, weights_from=weights_from)

    def after_validation(self, epoch: int, val: dict[str, float], is_best: bool) -> None:
        if "val.top1" in val:
            self.prec1 = val["val.top1"]
        if "val_ema.top1" in val:
            self.prec1_ema = val["val_ema.top1"]
        if is_best:
            self.best_epoch = epoch

    def early_stop_reason(self, epoch: int, patience: int, best_top1: float) -> Optional[str]:
        """Why the run stops after `epoch` (1-based), or None to go on."""
        if patience <= 0 or epoch - self.best_epoch < patience:
            return None
        return (
            f"early stopping: val top-1 has not improved for {epoch - self.best_epoch} epochs "
            f"(best {best_top1:.2f} at epoch {self.best_epoch}, --early-stopping-patience {patience})"
        )

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"best_epoch": self.best_epoch, "prec1": self.prec1}
        if self.ema is not None:
            state.update(
                state_dict_ema=self.ema.state_dict(), ema_updates=self.ema.updates, prec1_ema=self.prec1_ema
            )
        return state

    def load_state_dict(self, ckpt: dict[str, Any], path: str) -> None:
        """Continue from a checkpoint: the EMA exactly as saved (or from the weights, with a warning)."""
        self.best_epoch = int(ckpt.get("best_epoch", ckpt.get("epoch", 0)))
        self.prec1, self.prec1_ema = ckpt.get("prec1"), ckpt.get("prec1_ema")
        if self.ema is None:
            return
        if ckpt.get("state_dict_ema"):
            self.ema.load_state_dict(ckpt["state_dict_ema"], int(ckpt.get("ema_updates", 0)))
        else:  # the EMA was copied from the fresh model before the weights loaded: start it from them
            self.ema.load_state_dict(ckpt["state_dict"], 0)
            print(
                f"warning: {path} has no EMA weights (trained without --use-ema): the EMA starts from them",
                file=sys.stderr,
                flush=True,
            )


def chosen_weights(ckpt: dict[str, Any], cfg: TrainConfig, path: str) -> tuple[dict[str, Any], str]:
    """The weights a run starts from: training resumes the model's own; `--evaluate` takes `--weights`."""
    if not cfg.evaluate:
        return ckpt["state_dict"], "model"
    return select_weights(ckpt, cfg.weights, path)
