"""`python -m engine.train DATA [NGC flags]`: parse, build, run, shut down. Nothing else lives here."""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Sequence
from typing import Any, Optional

from engine.config import (
    DALI_BACKENDS,
    ConfigError,
    TrainConfig,
    check,
    dali_note,
    parse_args,
    warmup_note,
)
from engine.console import plain_warnings
from engine.events import EXIT_ERROR, EXIT_USAGE, EventWriter, ReportWriteError, RunEnd, readable_position
from engine.testhooks import TestHooks


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
    return run(cfg, TestHooks.from_env())  # the one place the test hooks are read (engine/testhooks.py)


def run(cfg: TrainConfig, hooks: TestHooks = TestHooks()) -> int:
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
        return _run(cfg, dist, writer, hooks)
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
    from engine.meters import DataError

    return isinstance(exc, (DataError, CheckpointWriteError, ReportWriteError))


def _out_of_memory(exc: BaseException, cfg: TrainConfig) -> Optional[str]:
    """What to do about a step that did not fit the card; None for any other failure."""
    from engine.accelerator import is_out_of_memory, out_of_memory_message

    return out_of_memory_message(exc, cfg.batch_size, cfg.amp) if is_out_of_memory(exc) else None


def _is_usage_error(exc: BaseException) -> bool:
    from engine.accelerator import DeviceError
    from engine.checkpoint import CheckpointError
    from engine.model import StateDictMismatch

    return isinstance(exc, (ConfigError, CheckpointError, DeviceError, StateDictMismatch))


def _run(cfg: TrainConfig, dist: Any, writer: EventWriter, hooks: TestHooks) -> int:
    from engine.assemble import build_trainer
    from engine.checkpoint import finished_schedule, remove_stale_temps
    from engine.stopping import StopFlag

    stop = StopFlag()
    stop.install()  # before the slow set-up, so an early SIGTERM is still a clean stop
    trainer, ckpt = build_trainer(cfg, dist=dist, writer=writer, stop=stop, hooks=hooks)
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
