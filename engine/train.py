"""`python -m engine.train DATA [NGC flags]`: parse, build, run, shut down. Nothing else lives here."""

from __future__ import annotations

import contextlib
import dataclasses
import random
import sys
import traceback
from collections.abc import Sequence
from typing import Any, Optional

from engine.config import (
    DALI_BACKENDS,
    DEFAULT_NUM_CLASSES,
    ConfigError,
    TrainConfig,
    accumulation_steps,
    check,
    dali_note,
    parse_args,
    warmup_note,
)
from engine.console import plain_warnings
from engine.events import EXIT_ERROR, EXIT_USAGE, EventWriter, ReportWriteError, RunEnd, readable_position


def _log(msg: str) -> None:
    with contextlib.suppress(OSError):  # stderr is a file on the job's disk, which may be full
        print(msg, file=sys.stderr, flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    plain_warnings()
    try:
        cfg = parse_args(argv)
    except ConfigError as exc:
        _log(f"error: {exc}")
        return EXIT_USAGE
    return run(cfg)


def run(cfg: TrainConfig) -> int:
    """Run training or evaluation; every failure becomes an `error` record and a non-zero exit."""
    from engine.distributed import env_dist_info

    dist = env_dist_info()
    try:
        cfg.workspace_path("").mkdir(parents=True, exist_ok=True)
        writer = EventWriter(cfg.workspace_path(cfg.raport_file) if dist.is_main else None, echo=sys.stdout)
    except OSError as exc:  # nowhere to write the report, so the message goes to stderr alone
        where = exc.filename or cfg.workspace_path("")
        _log(f"error: cannot write to the workspace ({where}: {exc.strerror or exc}): pass --workspace a "
             "folder you can write")  # fmt: skip
        return EXIT_USAGE
    try:
        check(cfg, dist.world_size)
        if dist.is_main and cfg.do_train:  # rank 0 writes the TensorBoard files, fed by the writer
            from engine.tensorboard import TensorBoardSink

            sink = TensorBoardSink.open(cfg.workspace_path(""))
            if sink is not None:
                writer.add_sink(sink)
        return _run(cfg, dist, writer)
    except KeyboardInterrupt:
        _record(writer, "error", message="interrupted twice: stopped without a checkpoint")
        return 130
    except Exception as exc:
        oom = _out_of_memory(exc, cfg)
        usage, known = _is_usage_error(exc), _is_known_error(exc) or oom is not None
        message = oom or (f"{exc}" if usage or known else f"{type(exc).__name__}: {exc}")
        _record(writer, "error", message=message, kind=type(exc).__name__)
        _record(writer, "run_end", status=RunEnd.FAILED)
        if not (usage or known):  # a bug: the traceback helps; a known failure's message says it all
            traceback.print_exc()
        _log(f"error: {message}")
        return EXIT_USAGE if usage else EXIT_ERROR
    finally:
        writer.close()
        from engine.distributed import shutdown

        shutdown()


def _record(writer: EventWriter, event: str, **data: object) -> None:
    """A failure's record, if the report can still take it (on a full disk it cannot: stderr says it)."""
    with contextlib.suppress(ReportWriteError):
        writer.status(event, **data)


def _is_known_error(exc: BaseException) -> bool:
    from engine.checkpoint import CheckpointWriteError
    from engine.trainer import DataError

    return isinstance(exc, (DataError, CheckpointWriteError, ReportWriteError))


def _out_of_memory(exc: BaseException, cfg: TrainConfig) -> Optional[str]:
    """What to do about a step that did not fit the card; None for any other failure."""
    from engine.devices import is_out_of_memory, out_of_memory_message

    return out_of_memory_message(exc, cfg.batch_size, cfg.amp) if is_out_of_memory(exc) else None


def _is_usage_error(exc: BaseException) -> bool:
    from engine.checkpoint import CheckpointError
    from engine.devices import DeviceError
    from engine.model import StateDictMismatch

    return isinstance(exc, (ConfigError, CheckpointError, DeviceError, StateDictMismatch))


def build_trainer(
    cfg: TrainConfig, dist: Any, writer: EventWriter, stop: Any = None
) -> tuple[Any, Optional[dict]]:
    """Device, process group, model, optimizer, scaler and loaders of a run, and its checkpoint if resuming.

    Shared by training, evaluation and `engine.bench train`, so a benchmark measures the real engine.
    """
    import torch

    from engine.checkpoint import Checkpointer, check_resume, load_checkpoint
    from engine.data import build_train_loader, build_val_loader
    from engine.devices import resolve_device
    from engine.distributed import init_process_group
    from engine.model import build_model, compile_model, load_weights_strict, to_memory_format
    from engine.optim import build_optimizer
    from engine.recipe import RecipeState, chosen_weights
    from engine.trainer import StopFlag, Trainer

    dev = resolve_device(cfg.device, cfg.amp, dist.local_rank, cfg.dist_backend, warn=False)  # logged below
    init_process_group(dist, dev.dist_backend, dev.device)
    if cfg.seed is not None:
        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        random.seed(cfg.seed + dist.rank)

    ckpt = load_checkpoint(cfg.resume, cfg.trust_checkpoint) if cfg.resume else None
    cfg = _classes_of(ckpt, cfg)
    model = build_model(cfg.arch, cfg.model_config, cfg.num_classes, cfg.zero_init_residual)
    weights_from = "model"  # a resumed run's weights (and its EMA's) load in Trainer.load_state_dict
    if ckpt is not None:
        check_resume(ckpt, cfg, cfg.resume)
    elif cfg.pretrained_from_file:
        pretrained = load_checkpoint(cfg.pretrained_from_file, cfg.trust_checkpoint)
        weights, weights_from = chosen_weights(pretrained, cfg, cfg.pretrained_from_file)
        load_weights_strict(model, weights)
    model = to_memory_format(model.to(dev.device), cfg.memory_format)
    ddp_model = model  # what the training step calls; `model` stays the plain module that is saved
    if dist.enabled:
        ids = None if dev.kind == "cpu" else [dev.device.index]
        ddp_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if cfg.compile:  # DDP inside: torch.compile splits the graph at DDP's buckets to overlap all-reduce
        ddp_model = compile_model(ddp_model)
    optimizer = build_optimizer(model, cfg)

    pin = dev.kind != "cpu"
    train_loader = build_train_loader(cfg, dist.rank, dist.world_size, pin) if cfg.do_train else None
    val_loader = build_val_loader(cfg, dist.rank, dist.world_size, pin) if cfg.do_validate else None
    trainer = Trainer(
        cfg,
        dev,
        dist,
        model,
        ddp_model,
        optimizer,
        dev.grad_scaler(),
        train_loader,
        val_loader,
        writer,
        Checkpointer(cfg, enabled=dist.is_main),
        stop or StopFlag(),
        accumulation_steps(cfg, dist.world_size),
    )
    trainer.recipe = RecipeState.build(cfg, model, dist.rank, weights_from)  # after the weights are loaded
    return trainer, ckpt


def _classes_of(ckpt: Optional[dict[str, Any]], cfg: TrainConfig) -> TrainConfig:
    """The checkpoint's class count where --num-classes was left at its default (an infer run of a
    10-class model needs no --num-classes 10); an explicit other count is refused by check_resume."""
    from engine.checkpoint import arch_of

    found = arch_of(ckpt)[2] if ckpt is not None else None
    if found is None or found == cfg.num_classes or cfg.num_classes != DEFAULT_NUM_CLASSES:
        return cfg
    _log(f"note: {cfg.resume} holds a {found}-class model: --num-classes {found} is used")
    return dataclasses.replace(cfg, num_classes=found)


def _run(cfg: TrainConfig, dist: Any, writer: EventWriter) -> int:
    from engine.checkpoint import finished_schedule, remove_stale_temps
    from engine.trainer import StopFlag

    stop = StopFlag()
    stop.install()  # before the slow set-up, so an early SIGTERM is still a clean stop
    trainer, ckpt = build_trainer(cfg, dist, writer, stop)
    cfg = trainer.cfg  # with the checkpoint's class count where the flag was left at its default
    if trainer.checkpointer.enabled:
        for path in remove_stale_temps(trainer.checkpointer.path.parent):
            _log(f"removed {path}: a checkpoint write that was killed before it finished")
    dev, train_loader, val_loader = trainer.dev, trainer.train_loader, trainer.val_loader
    start_epoch, start_iter = trainer.load_state_dict(ckpt, cfg.resume) if ckpt is not None else (0, 0)

    # amp: what runs, not what was asked (a CPU without fast bf16 falls back to fp32)
    params = {**cfg.to_dict(), "amp": dev.amp_dtype is not None}
    writer.parameters({**params, "world_size": dist.world_size, "device_kind": dev.kind})
    writer.status(
        "run_start",
        config=cfg.to_dict(),
        **dict(zip(("start_epoch", "start_iter"), readable_position(start_epoch, start_iter))),
        epochs=cfg.epochs,
        train_iters=len(train_loader) if train_loader is not None else 0,
        val_iters=len(val_loader) if val_loader is not None else 0,
        world_size=dist.world_size,
        device=dev.kind,
        device_name=dev.name,
        amp=str(dev.amp_dtype).replace("torch.", "") if dev.amp_dtype else "off",
        note=dev.note,
        tuning=dev.tuning,
        evaluate=cfg.evaluate,
        weights=trainer.recipe.weights_from,
    )
    if dev.note:
        _log(f"warning: {dev.note}")
    space = trainer.checkpointer.space_note(trainer.checkpoint_bytes()) if cfg.do_train else None
    if space:  # before hours of training, not at the first save
        writer.status("warning", message=space)
        _log(f"warning: {space}")
    for note in (dali_note(cfg, _dali_absent(cfg)), warmup_note(cfg)):
        if note and dist.is_main:
            _log(f"warning: {note}")
    if cfg.evaluate:
        return trainer.evaluate()
    if ckpt is not None and finished_schedule(ckpt, cfg):  # --resume-finished complete
        return trainer.report_finished(cfg.resume, start_epoch)
    return trainer.fit(start_epoch, start_iter)


def _dali_absent(cfg: TrainConfig) -> Optional[str]:
    """Why the DALI backend asked for cannot run here, or None (imported only when one is asked for)."""
    if cfg.data_backend not in DALI_BACKENDS:
        return None
    from engine.data.dali import missing

    return missing(cfg.data_backend)


if __name__ == "__main__":
    sys.exit(main())
