"""`--use-ema DECAY`: an exponential moving average of the weights, updated after every optimizer step.

As upstream (DeepLearningExamples' `models/common.py` EMA): every floating-point entry of the state dict
(parameters and BN running statistics) moves as ``ema = d·ema + (1−d)·w`` with
``d = min(DECAY, (1 + n) / (10 + n))``, n the number of updates so far, so the average does not drag the
random initial weights along for thousands of steps; integer buffers (`num_batches_tracked`) are copied.
The averaged copy lives on the model's device, in fp32, and is saved as plain tensors (`state_dict_ema`,
upstream's key) with its update count (`ema_updates`), so a resumed run continues the very same average.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from engine.checkpoint import CheckpointError
from engine.model import load_weights_strict


def ema_decay(decay: float, updates: int) -> float:
    """The decay of update number `updates` (0-based): upstream's warm-up, then `decay`."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


class EMA:
    """The averaged copy of `model` (an nn.Module in eval mode, never trained directly)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self._bind(model)

    def _bind(self, model: nn.Module) -> None:
        """Pair the tensors once: the trainer updates parameters and buffers in place, never replaces them."""
        src, dst = model.state_dict(), self.module.state_dict()
        floats = [k for k, v in dst.items() if v.is_floating_point()]
        self._src_f, self._dst_f = [src[k] for k in floats], [dst[k] for k in floats]
        others = [k for k in dst if k not in set(floats)]
        self._src_i, self._dst_i = [src[k] for k in others], [dst[k] for k in others]

    @torch.no_grad()
    def update(self) -> None:
        d = ema_decay(self.decay, self.updates)
        torch._foreach_mul_(self._dst_f, d)
        torch._foreach_add_(self._dst_f, self._src_f, alpha=1.0 - d)
        for dst, src in zip(self._dst_i, self._src_i):
            dst.copy_(src)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Plain tensors (torch.load(weights_only=True) reads them), the model's own key names."""
        return {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def load_state_dict(self, weights: dict[str, Any], updates: int) -> None:
        """Exactly the saved average (strict: another model's weights are an error)."""
        load_weights_strict(self.module, weights)  # copies in place: the pairing of _bind stays valid
        self.updates = int(updates)


def select_weights(ckpt: dict[str, Any], choice: str, path: str) -> tuple[dict[str, Any], str]:
    """(weights, "model" or "ema") of a checkpoint for evaluation: `best` takes the EMA when its recorded
    val top-1 beats the model's, `ema` insists on it (an error when the run had no --use-ema)."""
    ema = ckpt.get("state_dict_ema")
    if choice == "ema" and not ema:
        raise CheckpointError(f"{path} has no EMA weights (trained without --use-ema): pass --weights model")
    if choice == "ema":
        return ema, "ema"
    if choice == "best" and ema:
        top1, top1_ema = ckpt.get("prec1"), ckpt.get("prec1_ema")
        if top1_ema is not None and (top1 is None or float(top1_ema) > float(top1)):
            return ema, "ema"
    return ckpt["state_dict"], "model"
