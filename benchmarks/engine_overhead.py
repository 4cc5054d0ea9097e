"""Training images/s of the engine against a plain PyTorch loop: same model, batch, resolution, one run.

    python benchmarks/engine_overhead.py [--batch-size 32] [--image-size 64] [--iters 20] [--rounds 3]
                                         [--mixup 0.2] [--use-ema 0.9999]

The engine side is `python -m engine.train`'s own loop (Trainer.train_epoch over the synthetic loader,
uint8 batches normalised on the device, per-window logging); the plain side is the textbook loop over
one pre-normalised batch. With --mixup / --use-ema the plain loop does the same work by hand (a Beta
draw and a permutation per batch, mixed images and smoothed soft targets, a foreach EMA update per step).
Rounds alternate, and so does which side goes first in a round, so drift on a shared machine hits
both alike; the medians, their ratio and the median of the per-round ratios are printed.
"""

from __future__ import annotations

import argparse
import copy
import io
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.assemble import build_trainer  # noqa: E402
from engine.config import parse_args  # noqa: E402
from engine.distributed import DistInfo  # noqa: E402
from engine.events import EventWriter  # noqa: E402


def engine_ips(trainer, iters: int) -> float:
    trainer.cfg = trainer.cfg.__class__(**{**trainer.cfg.to_dict(), "prof": iters})
    start = time.perf_counter()
    out = trainer.train_epoch(0, 0)
    trainer.dev.synchronize()
    return out.metrics and iters * trainer.cfg.batch_size / (time.perf_counter() - start)


def plain_ips(
    model, x: torch.Tensor, y: torch.Tensor, iters: int, mixup: float = 0.0, ema: Optional[Any] = None
) -> float:
    """The textbook loop: one pre-normalised batch on the device, the same SGD settings as the engine;
    with `mixup` a Beta(α, α) mix of images and smoothed one-hot targets, with `ema` (an averaged copy of
    the model) its update after every step."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    crit = torch.nn.CrossEntropyLoss()
    batch, classes = x.shape[0], 10
    ema_pairs = None
    if ema is not None:
        src, dst = model.state_dict(), ema.state_dict()
        keys = [k for k, v in dst.items() if v.is_floating_point()]
        ema_pairs = ([dst[k] for k in keys], [src[k] for k in keys])
    model.train()
    start = time.perf_counter()
    for _ in range(iters):
        if mixup > 0:
            lam = random.betavariate(mixup, mixup)
            perm = torch.randperm(batch)
            xm = x.mul(lam).add_(x[perm], alpha=1 - lam)
            t = torch.full((batch, classes), 0.0).scatter_(1, y[:, None], 1.0)
            t = t.mul(lam).add_(t[perm], alpha=1 - lam)
            loss = -(t * torch.log_softmax(model(xm), 1)).sum(1).mean()
        else:
            loss = crit(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if ema_pairs is not None:
            with torch.no_grad():
                torch._foreach_mul_(ema_pairs[0], 0.9999)
                torch._foreach_add_(ema_pairs[0], ema_pairs[1], alpha=1e-4)
    return iters * batch / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA", help="mixup on both sides")
    p.add_argument("--use-ema", type=float, default=None, metavar="DECAY", help="an EMA on both sides")
    a = p.parse_args()
    argv = [
        "--data-backend",
        "synthetic",
        "--device",
        "cpu",
        "-b",
        str(a.batch_size),
        "--image-size",
        str(a.image_size),
        "--num-classes",
        "10",
        "--synthetic-size",
        str(a.batch_size * (a.iters + 2)),
        "-j",
        "0",
        "--training-only",
        "--no-checkpoints",
        "--lr",
        "0.01",
        "-p",
        "10",
        "--seed",
        "0",
        "--mixup",
        str(a.mixup),
        *(["--use-ema", str(a.use_ema)] if a.use_ema else []),
    ]
    trainer, _ = build_trainer(
        parse_args(argv), dist=DistInfo(), writer=EventWriter(None, echo=io.StringIO())
    )
    from engine.data import normalize
    from engine.model import build_model

    plain_model = build_model("resnet50", "classic", 10)
    trainer.train_loader.set_epoch(0)
    first = next(iter(trainer.train_loader))  # the same images the engine trains on
    x, y = normalize(first.images, torch.contiguous_format), first.labels
    plain_ema = copy.deepcopy(plain_model) if a.use_ema else None
    engine_ips(trainer, 3)  # warm-up, discarded
    plain_ips(plain_model, x, y, 3, a.mixup, plain_ema)
    eng, plain = [], []
    for r in range(a.rounds):  # ABBA: which side goes first alternates, so a steady drift hits both alike
        sides = [lambda: eng.append(engine_ips(trainer, a.iters)),
                 lambda: plain.append(plain_ips(plain_model, x, y, a.iters, a.mixup, plain_ema))]  # fmt: skip
        for side in sides if r % 2 == 0 else sides[::-1]:
            side()
    e, q = statistics.median(eng), statistics.median(plain)
    print(
        f"ResNet-50, CPU ({torch.get_num_threads()} threads), batch {a.batch_size}, {a.image_size} px, "
        f"{a.iters} iterations × {a.rounds} rounds, mixup {a.mixup or 'off'}, EMA {a.use_ema or 'off'}"
    )
    print(f"  engine      {e:8.1f} images/s   rounds: {', '.join(f'{v:.1f}' for v in eng)}")
    print(f"  plain loop  {q:8.1f} images/s   rounds: {', '.join(f'{v:.1f}' for v in plain)}")
    print(f"  ratio engine/plain {e / q:.3f}  (overhead {100 * (1 - e / q):+.1f}%)")
    # Each round's pair ran back to back: the median of their ratios cancels the drift between rounds.
    paired = statistics.median(a / b for a, b in zip(eng, plain))
    print(f"  median of paired ratios {paired:.3f}  (overhead {100 * (1 - paired):+.1f}%)")


if __name__ == "__main__":
    main()
