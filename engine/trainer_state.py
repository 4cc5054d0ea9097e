"""A Trainer's checkpoint: the state it saves, and how a resume restores it (ours or the port's)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from engine.checkpoint import restore_rng, rng_state
from engine.model import load_weights_strict
from engine.recipe import chosen_weights

if TYPE_CHECKING:
    from engine.trainer import Trainer


def state_of(trainer: Trainer, epoch: int, iteration: int) -> dict[str, Any]:
    """The port's keys plus what exact resume needs."""
    t, cfg = trainer, trainer.cfg
    return {
        "epoch": epoch,
        "iteration": iteration,
        "arch": (cfg.arch, cfg.model_config, cfg.num_classes),
        "state_dict": t.model.state_dict(),  # the plain model's: no `module.`, no `_orig_mod.`
        "best_prec1": t.best_top1,
        "optimizer": t.optimizer.state_dict(),
        "amp": t.scaler.state_dict() if t.dev.use_scaler else None,  # the port's key
        "rng": rng_state(t.dev.kind),
        "iters_per_epoch": len(t.train_loader) if t.train_loader is not None else 0,
        "global_batch": cfg.batch_size * t.dist.world_size,
        "config": cfg.to_dict(),
        "class_names": list(getattr(t.train_loader, "classes", None) or []),  # for engine.classify
        **t.recipe.state_dict(),
        **t.clock.state_dict(),
    }


def restore(trainer: Trainer, ckpt: dict[str, Any], source: str) -> tuple[int, int]:
    """Restore `ckpt` into `trainer`; return the (epoch, iteration) to go on from.

    Weights (`--evaluate`: those `--weights` picks) and best top-1 always; optimizer, scaler (`amp`,
    or format 1's `scaler`), the recipe's state (EMA, early stopping), RNG states and the position
    only when training.
    """
    t = trainer
    weights, t.recipe.weights_from = chosen_weights(ckpt, t.cfg, source)
    load_weights_strict(t.model, weights)
    t.best_top1 = float(ckpt.get("best_prec1", 0.0))
    if t.cfg.evaluate:
        return 0, 0
    t.recipe.load_state_dict(ckpt, source)
    t.clock.load_state_dict(ckpt)
    if ckpt.get("optimizer"):
        try:
            t.optimizer.load_state_dict(ckpt["optimizer"])
        except ValueError as exc:
            _warn(f"optimizer state of {source} does not fit ({exc}); momentum starts from zero")
    scaler_state = ckpt.get("amp") or ckpt.get("scaler")
    if t.dev.use_scaler and isinstance(scaler_state, dict) and scaler_state:
        t.scaler.load_state_dict(scaler_state)
    restore_rng(ckpt.get("rng"), t.dev.kind)
    return _resume_position(t, ckpt, source)


def _resume_position(trainer: Trainer, ckpt: dict[str, Any], source: str) -> tuple[int, int]:
    """Inside an epoch only with the same batch layout; otherwise from that epoch's start."""
    epoch, iteration = int(ckpt.get("epoch", 0)), int(ckpt.get("iteration", 0))
    if not iteration:
        return epoch, 0
    same = (
        ckpt.get("iters_per_epoch") == len(trainer.train_loader)
        and ckpt.get("global_batch") == trainer.cfg.batch_size * trainer.dist.world_size
    )
    if not same:
        _warn(
            f"{source} stopped inside epoch {epoch + 1} with another batch layout: "
            "that epoch restarts from its first iteration"
        )
        return epoch, 0
    return epoch, iteration


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)
