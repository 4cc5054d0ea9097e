"""Parameter groups, the SGD optimizer and the learning-rate schedules (pure functions of time)."""

from __future__ import annotations

import math

import torch
from torch import nn

from engine.config import TrainConfig

STEP_MILESTONES = (30, 60, 80)


def parameter_groups(model: nn.Module, weight_decay: float, bn_weight_decay: bool) -> list[dict]:
    """BatchNorm weights and biases get no weight decay unless asked (the recipe's rule)."""
    bn_params, rest = [], []
    for module in model.modules():
        is_bn = isinstance(module, nn.modules.batchnorm._BatchNorm)
        for p in module.parameters(recurse=False):
            (bn_params if is_bn and not bn_weight_decay else rest).append(p)
    return [
        {"params": bn_params, "weight_decay": 0.0},
        {"params": rest, "weight_decay": weight_decay},
    ]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, cfg.weight_decay, cfg.bn_weight_decay)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


def lr_at(cfg: TrainConfig, epoch: int, iteration: int, iters_per_epoch: int) -> float:
    """Learning rate at `iteration` (0-based) of `epoch` (0-based), updated per iteration.

    Warm-up is linear from base/(warmup·iters) to base; then step (×0.1 at 30/60/80), linear or cosine
    decay to `--end-lr` over the remaining epochs. Per-iteration is upstream's later, smoother form.
    """
    base, iters = cfg.lr, max(1, iters_per_epoch)
    t = epoch + iteration / iters  # epochs elapsed
    if cfg.warmup and epoch < cfg.warmup:
        return base * (epoch * iters + iteration + 1) / (cfg.warmup * iters)
    if cfg.lr_schedule == "step":
        return base * 0.1 ** sum(epoch >= m for m in STEP_MILESTONES)
    span = max(1e-12, cfg.epochs - cfg.warmup)
    progress = min(1.0, (t - cfg.warmup) / span)
    if cfg.lr_schedule == "linear":
        return cfg.end_lr + (base - cfg.end_lr) * (1.0 - progress)
    return cfg.end_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (base - cfg.end_lr)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


LR_PER_256 = 0.256  # the NGC recipe's SGD rule: --lr 2.048 at a global batch of 2048
EXPLODED_FACTOR = 10.0  # a loss this many times chance level (ln classes) has diverged


def diverged(loss: float, num_classes: int) -> bool:
    """True for a loss that is not finite or far above chance (a learning rate too high for the batch)."""
    return not math.isfinite(loss) or loss > EXPLODED_FACTOR * math.log(max(2, num_classes))


def divergence_warning(loss: float, where: str, cfg: TrainConfig, global_batch: int) -> str:
    """The one line that names the loss, the lr and the scaling rule with the lr it gives here."""
    scaled = LR_PER_256 * global_batch / 256
    return (
        f"the training loss is {loss:.4g} at {where}: the run has diverged. --lr {cfg.lr:g} is high for a "
        f"global batch of {global_batch}: the recipe scales lr by {LR_PER_256} per 256 images "
        f"(--lr {scaled:.4g} here); lower --lr or add --warmup epochs"
    )
