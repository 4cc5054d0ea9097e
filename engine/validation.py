"""One validation pass of the trainer's model (or its EMA) over this rank's shard, exact across ranks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import torch
from torch import nn

from engine import distributed as dist_utils
from engine.meters import latency_percentiles

if TYPE_CHECKING:
    from engine.trainer import Trainer


@dataclass
class _Sums:
    """This rank's sums of one pass, before the all-reduce."""

    loss: float = 0.0
    correct1: float = 0.0
    correctk: float = 0.0
    count: float = 0.0
    skipped: float = 0.0
    latencies: list[float] = field(default_factory=list)


@torch.no_grad()
def validate(trainer: Trainer, epoch: int, model: Optional[nn.Module], prefix: str) -> dict[str, float]:
    """`prefix`.loss/top1/top5 (and, for `val`, throughput and latency) of `model` (default the trained
    one); sums and counts are all-reduced, so the result is exact."""
    trainer.ddp_model.eval()
    model = trainer.model if model is None else model
    t_start = time.perf_counter()
    sums = _pass(trainer, epoch, model, prefix)
    elapsed = time.perf_counter() - t_start
    compute = sum(sums.latencies)
    loss_sum, correct1, correctk, count, skipped, compute, elapsed = dist_utils.all_reduce_sum(
        [sums.loss, sums.correct1, sums.correctk, sums.count, sums.skipped, compute, elapsed],
        trainer.dev.device,
    )
    trainer.count_images("val", count, skipped, final=True)
    if not count:  # nothing to validate (an empty shard list); never a division by zero
        return {}
    ranks = trainer.dist.world_size
    metrics = {
        f"{prefix}.loss": loss_sum / count,
        f"{prefix}.top1": 100.0 * correct1 / count,
        f"{prefix}.top5": 100.0 * correctk / count,
    }
    if prefix == "val":  # the EMA pass reports accuracy only, as upstream's val_ema
        metrics["val.total_ips"] = count / max(1e-9, elapsed / ranks)
        metrics["val.compute_ips"] = count / max(1e-9, compute / ranks)
        metrics.update(latency_percentiles(sums.latencies))
    return metrics


def _pass(trainer: Trainer, epoch: int, model: nn.Module, prefix: str) -> _Sums:
    """Iterate this rank's validation batches (up to --prof), logging every --print-freq."""
    cfg, dev, loader = trainer.cfg, trainer.dev, trainer.val_loader
    k = min(cfg.topk, cfg.num_classes)  # top-5 of 4 classes is top-4
    s, it = _Sums(), 0
    if trainer.val_by_epoch:  # the val crop of this epoch's training size (--resize-schedule)
        loader.set_epoch(epoch)
    data_iter = iter(loader)
    while True:
        batch = trainer.next_batch(data_iter)
        if batch is None:
            break
        s.skipped += int(batch.skipped)
        it += 1
        if len(batch.labels) == 0:  # every image unreadable: counted above, nothing to evaluate
            continue
        x, y = trainer.to_device(batch)
        dev.synchronize()
        tc = time.perf_counter()
        with dev.autocast():
            out = model(x)
            if cfg.val_flip:  # FFCV's test-time flip: the mean logits of the image and its mirror
                out = (out.float() + model(torch.flip(x, dims=[3])).float()) / 2
        loss = trainer.criterion(out.float(), y)
        hits = out.topk(k, dim=1).indices.eq(y[:, None])
        c1, ck = float(hits[:, 0].sum()), float(hits.any(dim=1).sum())  # .sum() → CPU: a sync point
        s.latencies.append(time.perf_counter() - tc)
        n = int(y.shape[0])
        s.loss, s.correct1, s.correctk, s.count = (
            s.loss + float(loss) * n,
            s.correct1 + c1,
            s.correctk + ck,
            s.count + n,
        )
        if it % cfg.print_freq == 0:
            trainer.writer.metrics(
                [epoch + 1, len(trainer.train_loader or []), it],
                {f"{prefix}.loss": s.loss / s.count, f"{prefix}.top1": 100.0 * s.correct1 / s.count},
            )
        if 0 < cfg.prof <= it:
            break
    return s
