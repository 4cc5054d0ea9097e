"""Assemble a Trainer in one step: device, process group, model, DDP, optimizer, scaler, loaders, and the
checkpoint it resumes from. Shared by training, evaluation and `engine.bench train`, so a benchmark
measures the real engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import sys
from typing import Any, Optional

import torch

from engine.accelerator import DeviceInfo, resolve_device
from engine.checkpoint import Checkpointer, arch_of, check_resume, load_checkpoint
from engine.config import DEFAULT_NUM_CLASSES, TrainConfig, accumulation_steps
from engine.data import build_train_loader, build_val_loader
from engine.distributed import DistInfo, init_process_group
from engine.events import EventWriter
from engine.model import build_model, compile_model, load_weights_strict, to_memory_format
from engine.optim import build_optimizer
from engine.recipe import RecipeState, chosen_weights
from engine.stopping import StopFlag
from engine.testhooks import TestHooks
from engine.trainer import Trainer


def build_trainer(
    cfg: TrainConfig,
    *,
    dist: DistInfo,
    writer: EventWriter,
    stop: Optional[StopFlag] = None,
    hooks: Optional[TestHooks] = None,
) -> tuple[Trainer, Optional[dict[str, Any]]]:
    """The run's Trainer, and its checkpoint when `--resume` names one (loaded by Trainer.load_state_dict)."""
    hooks = hooks or TestHooks()
    dev = resolve_device(cfg.device, cfg.amp, dist.local_rank, cfg.dist_backend, warn=False)  # logged later
    init_process_group(dist, dev.dist_backend, dev.device)
    if cfg.seed is not None:
        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        random.seed(cfg.seed + dist.rank)
    ckpt = load_checkpoint(cfg.resume, cfg.trust_checkpoint) if cfg.resume else None
    cfg = _classes_of(ckpt, cfg)
    model, weights_from = _model(cfg, ckpt)
    model = to_memory_format(model.to(dev.device), cfg.memory_format)
    pin, world, slow = dev.kind != "cpu", dist.world_size, hooks.slow_loader_s
    trainer = Trainer(
        cfg=cfg,
        dev=dev,
        dist=dist,
        model=model,
        ddp_model=_wrapped(model, cfg, dev, dist),
        optimizer=build_optimizer(model, cfg),
        train_loader=build_train_loader(cfg, dist.rank, world, pin, slow) if cfg.do_train else None,
        val_loader=build_val_loader(cfg, dist.rank, world, pin, slow) if cfg.do_validate else None,
        scaler=dev.grad_scaler(),
        writer=writer,
        checkpointer=Checkpointer(cfg, enabled=dist.is_main),
        stop=stop or StopFlag(),
        accumulation=accumulation_steps(cfg, dist.world_size),
        recipe=RecipeState.build(cfg, model, dist.rank, weights_from),  # after the weights are loaded
        hooks=hooks,
    )
    return trainer, ckpt


def _model(cfg: TrainConfig, ckpt: Optional[dict[str, Any]]) -> tuple[torch.nn.Module, str]:
    """The model, with --pretrained-from-file's weights when given, and whose weights those are.

    A resumed run's weights (and its EMA's) load later, in Trainer.load_state_dict."""
    model = build_model(cfg.arch, cfg.model_config, cfg.num_classes, cfg.zero_init_residual)
    weights_from = "model"
    if ckpt is not None:
        check_resume(ckpt, cfg, cfg.resume)
    elif cfg.pretrained_from_file:
        pretrained = load_checkpoint(cfg.pretrained_from_file, cfg.trust_checkpoint)
        weights, weights_from = chosen_weights(pretrained, cfg, cfg.pretrained_from_file)
        load_weights_strict(model, weights)
    return model, weights_from


def _wrapped(model: torch.nn.Module, cfg: TrainConfig, dev: DeviceInfo, dist: DistInfo) -> torch.nn.Module:
    """What the training step calls (DDP, compiled); `model` stays the plain module that is saved."""
    ddp_model = model
    if dist.enabled:
        ids = None if dev.kind == "cpu" else [dev.device.index]
        ddp_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if cfg.compile:  # DDP inside: torch.compile splits the graph at DDP's buckets to overlap all-reduce
        ddp_model = compile_model(ddp_model)
    return ddp_model


def _classes_of(ckpt: Optional[dict[str, Any]], cfg: TrainConfig) -> TrainConfig:
    """The checkpoint's class count where --num-classes was left at its default (an infer run of a
    10-class model needs no --num-classes 10); an explicit other count is refused by check_resume."""
    found = arch_of(ckpt)[2] if ckpt is not None else None
    if found is None or found == cfg.num_classes or cfg.num_classes != DEFAULT_NUM_CLASSES:
        return cfg
    with contextlib.suppress(OSError):  # stderr is a file on the job's disk, which may be full
        print(
            f"note: {cfg.resume} holds a {found}-class model: --num-classes {found} is used",
            file=sys.stderr,
            flush=True,
        )
    return dataclasses.replace(cfg, num_classes=found)
