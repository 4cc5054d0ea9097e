"""Train, validate, fit: one AMP code path for every device, exact metrics across ranks, clean stops."""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from engine import distributed as dist_utils
from engine import trainer_state, validation
from engine.accelerator import DeviceInfo
from engine.checkpoint import Checkpointer, state_bytes
from engine.config import TrainConfig
from engine.data import normalize
from engine.distributed import DistInfo
from engine.events import EXIT_OK, EXIT_STOPPED, EventWriter, RunEnd, readable_position
from engine.meters import DataError, ImageCounts, Meter, train_rates
from engine.mixup import soft_cross_entropy
from engine.model import torch_memory_format
from engine.optim import diverged, divergence_warning, lr_at, set_lr
from engine.progress import InputWatch, RunClock, best_score, target_reason
from engine.recipe import RecipeState
from engine.stopping import StopFlag
from engine.tensorboard import data_wait_ratio
from engine.testhooks import TestHooks

LOADER_STOPPED = object()  # next_batch's answer when the data loader failed while a stop was under way


@dataclass
class EpochOutcome:
    metrics: dict[str, float]
    iterations_done: int
    stopped: bool


class Trainer:
    """Owns the model, optimizer, scaler and loaders of one run, and the loop over them."""

    def __init__(
        self,
        *,
        cfg: TrainConfig,
        dev: DeviceInfo,
        dist: DistInfo,
        model: nn.Module,
        ddp_model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: Any,
        train_loader: Any,
        val_loader: Any,
        writer: EventWriter,
        checkpointer: Checkpointer,
        stop: StopFlag,
        accumulation: int,
        recipe: RecipeState,
        hooks: TestHooks = TestHooks(),
    ) -> None:
        """Everything of one run, built by engine.assemble.build_trainer (tests may pass their own)."""
        self.cfg, self.dev, self.dist = cfg, dev, dist
        self.model, self.ddp_model = model, ddp_model
        self.optimizer, self.scaler = optimizer, scaler
        self.train_loader, self.val_loader = train_loader, val_loader
        self.writer, self.checkpointer, self.stop = writer, checkpointer, stop
        self.accumulation, self.recipe, self.hooks = accumulation, recipe, hooks
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.memory_format = torch_memory_format(cfg.memory_format)
        self.best_top1 = 0.0
        self.images = ImageCounts()
        self._iters_run = 0
        self._stop_vote = dist_utils.StopVote(dev.device) if dist.enabled else None
        self._compile_pending = cfg.compile  # the attempt's first step compiles: timed on its own
        self._warned_divergence = False
        self.clock = RunClock()  # time to accuracy, summed over attempts (engine/progress.py)
        self.input_watch = InputWatch(cfg.workers)
        self.val_by_epoch = cfg.crop_sizes.varies and cfg.val_image_size is None  # val crop follows train

    # -- state (engine/trainer_state.py) ------------------------------------------------------------------
    def state_dict(self, epoch: int, iteration: int) -> dict[str, Any]:
        """The port's keys plus what exact resume needs."""
        return trainer_state.state_of(self, epoch, iteration)

    def checkpoint_bytes(self) -> int:
        """About the size of this run's checkpoint file, before the first step creates the momentum."""
        trained = [p for p in self.model.parameters() if p.requires_grad]
        return state_bytes(self.state_dict(0, 0)) + (0 if self.optimizer.state else state_bytes(trained))

    def load_state_dict(self, ckpt: dict[str, Any], source: str) -> tuple[int, int]:
        """Restore a checkpoint of ours or of the port's; return the (epoch, iteration) to go on from."""
        return trainer_state.restore(self, ckpt, source)

    # -- one batch -------------------------------------------------------------------------------------
    def to_device(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        images = batch.images.to(self.dev.device, non_blocking=True)
        labels = batch.labels.to(self.dev.device, non_blocking=True)
        return normalize(images, self.memory_format), labels

    def train_step(self, batch: Any, boundary: bool, position: tuple[int, int] = (0, 0)) -> torch.Tensor:
        """One mini-batch; `position` (epoch, iteration) picks mixup's draw."""
        x, y = self.to_device(batch)
        mixup = self.recipe.mixup
        if mixup is not None:  # y becomes the mixed soft targets
            x, y = mixup(x, y, *position)
        sync = self.ddp_model.no_sync() if self.dist.enabled and not boundary else nullcontext()
        with sync:  # accumulation steps skip the gradient all-reduce
            with self.dev.autocast():
                out = self.ddp_model(x)
                loss = soft_cross_entropy(out, y) if mixup is not None else self.criterion(out, y)
            self.scaler.scale(loss / self.accumulation).backward()
        if boundary:
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            if self.recipe.ema is not None:
                self.recipe.ema.update()
        return loss.detach()

    def next_batch(self, it: Any) -> Any:
        """The next batch; None at the epoch's end; LOADER_STOPPED when the loader broke during a stop."""
        try:
            return next(it)
        except StopIteration:
            return None
        except Exception:
            if self.stop.requested:  # the signal also reached a worker still starting (not yet shielded)
                return LOADER_STOPPED
            raise

    # -- epochs ----------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int, start_iter: int) -> EpochOutcome:
        """Train epoch `epoch` (0-based) from iteration `start_iter`; stop early on a signal."""
        loader, cfg = self.train_loader, self.cfg
        loader.set_epoch(epoch)
        loader.set_start_iteration(start_iter)
        iters = len(loader)
        self.ddp_model.train()
        window, total = Meter(), Meter()
        it, data_iter, lr = start_iter, iter(loader), cfg.lr
        while True:
            t0 = time.perf_counter()
            batch = self.next_batch(data_iter)
            if batch is None:
                break
            if batch is LOADER_STOPPED:  # a stop, not the epoch's end: the checkpoint keeps the position
                return EpochOutcome({}, it, stopped=True)
            data_time = time.perf_counter() - t0
            if len(batch.labels) == 0:  # every image unreadable: no step, but every image counts
                self._empty_batch(epoch, int(batch.skipped))
                for m in (window, total):
                    m.skipped, m.data_time = m.skipped + int(batch.skipped), m.data_time + data_time
                it += 1
                if it % cfg.print_freq == 0 or it == iters:
                    self._log_train_window(epoch, it, window, lr)
                    window = Meter()
                continue
            if it % self.accumulation == 0:  # the schedule counts optimizer steps, not mini-batches
                lr = lr_at(cfg, epoch, it // self.accumulation, math.ceil(iters / self.accumulation))
                set_lr(self.optimizer, lr)
            boundary = (it + 1) % self.accumulation == 0 or it + 1 == iters
            t_step = time.perf_counter()
            loss = self.train_step(batch, boundary, (epoch, it))
            n = int(batch.labels.shape[0])
            for m in (window, total):
                m.loss, m.images, m.iters = m.loss + loss * n, m.images + n, m.iters + 1
                m.data_time += data_time
                m.skipped += int(batch.skipped)
            if self._compile_pending:
                self._report_compile_warmup(t_step, epoch, it)
                # throughput and loss figures leave the compile out; unreadable images still count
                window, total = Meter(skipped=window.skipped), Meter(skipped=total.skipped)
            it += 1
            self._iters_run += 1
            # every rank logs at the same iterations (the window is reduced); an image-less window only counts
            if it % cfg.print_freq == 0 or it == iters:
                self._log_train_window(epoch, it, window, lr)
                window = Meter()
            self._test_hooks()
            if boundary and self._stop_voted():
                return EpochOutcome({}, it, stopped=True)
            if 0 < cfg.prof <= it - start_iter:
                break
        self.count_images("train", 0, 0, final=True)
        return EpochOutcome(self._epoch_train_metrics(total, lr), it, stopped=False)

    def _test_hooks(self) -> None:
        """A stop (SIGTERM to itself) or a stall after N iterations, when a test asks (engine/testhooks.py)."""
        hooks = self.hooks
        if hooks.stop_after_iters and self._iters_run == hooks.stop_after_iters:
            os.kill(os.getpid(), signal.SIGTERM)
        if hooks.hang_after_iters and self._iters_run == hooks.hang_after_iters:
            while not self.stop.requested:  # the stall: no progress until a stop is requested
                time.sleep(0.2)

    def _report_compile_warmup(self, t_step: float, epoch: int, it: int) -> None:
        """The first compiled step traces and compiles forward and backward: report it as its own record."""
        self.dev.synchronize()
        self._compile_pending = False
        seconds = time.perf_counter() - t_step
        self.writer.status("compile_warmup", seconds=seconds, epoch=epoch + 1, iteration=it + 1)

    def _empty_batch(self, epoch: int, skipped: int) -> None:
        """Every image of a batch was unreadable: skip it alone, or stop a multi-rank run that cannot."""
        if self.dist.enabled:  # the other ranks wait in the gradient all-reduce for this one
            raise DataError(
                f"all {skipped} images of a training batch of epoch {epoch + 1} could not be read on rank "
                f"{self.dist.rank} ({self._sources().get('train') or 'train'}): check the dataset"
            )

    def _stop_voted(self) -> bool:
        """At an optimizer step: this rank's flag alone, or every rank's vote of one step before."""
        if not self.dist.enabled:
            return self.stop.requested
        return self._stop_vote.step(self.stop.requested)

    def _stop_now(self) -> bool:
        """At an epoch's end: every rank agrees at once (a vote still in flight counts)."""
        if not self.dist.enabled:
            return self.stop.requested
        return self._stop_vote.now(self.stop.requested)

    def _reduce_meter(self, m: Meter) -> tuple[float, float, float, float]:
        """(mean loss, global images, data time, skipped) over all ranks; a device sync point."""
        self.dev.synchronize()
        loss_sum = float(m.loss) if isinstance(m.loss, float) else float(m.loss.item())
        loss_sum, images, data_time, skipped = dist_utils.all_reduce_sum(
            [loss_sum, m.images, m.data_time, m.skipped], self.dev.device
        )
        return loss_sum / max(1.0, images), images, data_time / self.dist.world_size, skipped

    def _log_train_window(self, epoch: int, it: int, m: Meter, lr: float) -> None:
        loss, images, data_time, skipped = self._reduce_meter(m)
        self.count_images("train", images, skipped)
        if not images:  # a window of unreadable batches only: no loss to report
            return
        if not self._warned_divergence and diverged(loss, self.cfg.num_classes):
            self._warned_divergence = True  # once per attempt: the job's note says it until the run ends
            global_batch = self.cfg.optimizer_batch_size if self.cfg.optimizer_batch_size > 0 else (
                self.cfg.batch_size * self.dist.world_size)  # fmt: skip
            text = divergence_warning(loss, f"epoch {epoch + 1}, iteration {it}", self.cfg, global_batch)
            self.writer.status("warning", message=text)
            if self.dist.is_main:
                _warn(text)
        data = train_rates(loss, images, data_time, m, lr)
        if self.dev.use_scaler:
            data["train.grad_scale"] = float(self.scaler.get_scale())
        self.writer.metrics([epoch + 1, it], data)

    def count_images(self, split: str, images: float, skipped: float, final: bool = False) -> None:
        """Count read and unreadable images; fail past --max-bad-fraction (engine/meters.py)."""
        self.images.add(split, images, skipped, final, self._sources(), self.cfg.max_bad_fraction)

    def _sources(self) -> dict[str, str]:
        """The folder or list file each split reads, for messages."""
        out = {}
        for split, loader in (("train", self.train_loader), ("val", self.val_loader)):
            samples = getattr(getattr(loader, "source", None), "samples", None)
            if samples is not None:
                out[split] = samples.source
        return out

    def _epoch_train_metrics(self, m: Meter, lr: float) -> dict[str, float]:
        if m.iters == 0:
            return {}
        loss, images, data_time, _ = self._reduce_meter(m)
        out = train_rates(loss, images, data_time, m, lr)
        ratio = data_wait_ratio(out)  # the one place the share is computed (engine/tensorboard.py)
        return {**out, "train.data_wait_ratio": ratio} if ratio is not None else out

    # -- validation ------------------------------------------------------------------------------------
    def validate(
        self, epoch: int, model: Optional[nn.Module] = None, prefix: str = "val"
    ) -> dict[str, float]:
        """One pass over this rank's shard (engine/validation.py); `model` (default the trained one) and
        `prefix` let the EMA weights be validated as `val_ema.*`."""
        return validation.validate(self, epoch, model, prefix)

    # -- the run ---------------------------------------------------------------------------------------
    def fit(self, start_epoch: int, start_iter: int) -> int:
        """Train from (start_epoch, start_iter) to the end of the schedule or of `--run-epochs`."""
        cfg = self.cfg
        end = cfg.epochs if cfg.run_epochs < 0 else min(cfg.epochs, start_epoch + cfg.run_epochs)
        last: dict[str, float] = {}
        early: Optional[str] = None
        for epoch in range(start_epoch, end):
            self.writer.status(
                "epoch_start", epoch=epoch + 1, train_iters=len(self.train_loader), start_iter=start_iter
            )
            t_epoch = time.perf_counter()
            with self.clock.measure():
                outcome = self.train_epoch(epoch, start_iter)
            if outcome.stopped:
                return self._stop(epoch, outcome.iterations_done)
            with self.clock.measure():
                val = self._validate_all(epoch) if cfg.do_validate else {}
            reached = target_reason(cfg.target_top1, best_score(val), epoch + 1, self.clock.train_seconds)
            is_best = bool(val) and val["val.top1"] > self.best_top1
            if is_best:
                self.best_top1 = val["val.top1"]
            self.recipe.after_validation(epoch + 1, val, is_best)
            last = {**outcome.metrics, **val, "epoch.time": time.perf_counter() - t_epoch,
                    "run.train_seconds": self.clock.train_seconds}  # fmt: skip
            self.writer.metrics([epoch + 1], last)
            self._epoch_status(epoch + 1, val, outcome.metrics)
            self._save(epoch + 1, 0, is_best or reached is not None)  # the target's epoch is kept as best
            start_iter = 0
            early = reached or self.recipe.early_stop_reason(
                epoch + 1, cfg.early_stopping_patience, self.best_top1
            )
            if reached:
                end = epoch + 1
                break
            if early:
                end = epoch + 1
                self.writer.status("early_stop", epoch=end, best_epoch=self.recipe.best_epoch,
                                   patience=cfg.early_stopping_patience, best_top1=self.best_top1)  # fmt: skip
                break
            if epoch + 1 < end and self._stop_now():  # all ranks agree, or one would wait forever
                return self._stop(epoch + 1, 0)
        summary = {k: v for k, v in last.items() if k.startswith("train.")}
        if cfg.do_validate and last:
            summary.update({k: v for k, v in last.items() if k.startswith(("val.", "val_ema."))})
            summary["val.top1"] = self.best_top1
        summary["data.skipped_images"] = self.images.total_skipped
        self.writer.metrics([], summary)
        reason = {"reason": early} if early else {}
        self.writer.status("run_end", status=RunEnd.COMPLETED, epoch=end, best_top1=self.best_top1, **reason)
        return EXIT_OK

    def _epoch_status(self, epoch: int, val: dict[str, float], train: dict[str, float]) -> None:
        """The epoch's time-to-best record and its input-bound verdict (engine/progress.py)."""
        best = self.clock.after_validation(epoch, val)
        if best is not None:
            self.writer.status("best", **best)
        verdict = self.input_watch.after_epoch(train.get("train.data_wait_ratio"))
        if verdict is not None:
            self.writer.status(verdict[0], epoch=epoch, **verdict[1])

    def _validate_all(self, epoch: int) -> dict[str, float]:
        """val.* of the trained weights, and val_ema.* of the EMA's when there is one."""
        val = self.validate(epoch)
        if self.recipe.ema is not None:
            val.update(self.validate(epoch, self.recipe.ema.module, "val_ema"))
        return val

    def _save(self, epoch: int, iteration: int, is_best: bool) -> None:
        def saved(path: Path) -> None:
            where = _readable(epoch, iteration)
            self.writer.status("checkpoint", path=str(path), **where, is_best=is_best)

        self.checkpointer.save(self.state_dict(epoch, iteration), is_best, iteration == 0, saved)

    def _stop(self, epoch: int, iteration: int) -> int:
        """Checkpoint the position (completed epochs, iterations into the next) and report the stop."""
        self._save(epoch, iteration, is_best=False)
        where = _readable(epoch, iteration)
        self.writer.status("stopping", signal=self.stop.name or "SIGTERM", **where)
        self.writer.status("run_end", status=RunEnd.STOPPED, **where)
        return EXIT_STOPPED

    def report_finished(self, path: str, epoch: int) -> int:
        """A resumed checkpoint that already holds the whole schedule: record the run as completed (the
        earlier attempt was killed after its last save, before it could say so), without training."""
        self.writer.status("checkpoint", path=str(path), epoch=epoch, iteration=0, is_best=False)
        if self.cfg.do_validate:
            self.writer.metrics([], {"val.top1": self.best_top1})
        self.writer.status("run_end", status=RunEnd.COMPLETED, epoch=epoch, best_top1=self.best_top1)
        return EXIT_OK

    def evaluate(self) -> int:
        """One validation pass (`--evaluate`) of the weights chosen by `--weights`, whatever `--epochs` says."""
        metrics = self.validate(0)
        self.writer.metrics([], metrics)
        self.writer.status("run_end", status=RunEnd.COMPLETED)  # no epoch: nothing was trained
        return EXIT_OK


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _readable(epochs_done: int, iteration: int) -> dict[str, int]:
    """A checkpoint position as records give it: epochs counted from 1 (engine/events.py)."""
    epoch, it = readable_position(epochs_done, iteration)
    return {"epoch": epoch, "iteration": it}
