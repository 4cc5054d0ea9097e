"""`python -m engine.bench train`: training throughput of the real engine step, after a discarded warm-up.

Runs on one card, or on N through torchrun (`torchrun --nproc-per-node N -m engine.bench train ...`);
prints images/s in total and per card, data time against compute time and peak device memory, and
appends one JSON record per run to `--log` (as the seed's BENCHMARK_LOG did).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any, Optional

from engine.accelerator import is_out_of_memory
from engine.bench import check_appendable
from engine.config import parse_args
from engine.events import EventWriter


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.bench train", description=__doc__.splitlines()[0])
    p.add_argument("data", nargs="?", default=None, help="dataset root (default: synthetic data)")
    p.add_argument("-b", "--batch-size", type=int, default=64, help="batch size per card")
    p.add_argument("--iters", type=int, default=20, help="measured iterations")
    p.add_argument("--warmup", type=int, default=5, help="discarded warm-up iterations")
    p.add_argument("--image-size", type=int, default=224, help="training crop size")
    p.add_argument("--amp", action="store_true", help="mixed precision")
    p.add_argument("--memory-format", default="nchw", choices=("nchw", "nhwc"), help="activation layout")
    p.add_argument("--compile", action="store_true", help="torch.compile (the warm-up compiles; timed apart)")
    p.add_argument("--device", default="auto", help="mlu, cuda, cpu or auto")
    p.add_argument("-j", "--workers", type=int, default=4, help="data-loading workers (real data only)")
    p.add_argument("--log", default=None, metavar="FILE", help="append one JSON record per run to FILE")
    return p


def engine_argv(a: argparse.Namespace) -> list[str]:
    argv = [a.data] if a.data else ["--data-backend", "synthetic"]
    argv += [
        "-b",
        str(a.batch_size),
        "--image-size",
        str(a.image_size),
        "--memory-format",
        a.memory_format,
        "--device",
        a.device,
        "-j",
        str(a.workers),
        "--training-only",
        "--no-checkpoints",
        "--lr",
        "0.01",
        "--synthetic-size",
        str(a.batch_size * (a.warmup + a.iters)),
    ]
    return argv + (["--amp"] if a.amp else []) + (["--compile"] if a.compile else [])


EXIT_OOM = 3  # the batch does not fit the card: `engine.bench report` then tries a smaller one


def measure(trainer: Any, warmup: int, iters: int) -> dict[str, float]:
    """Time `iters` real training steps after `warmup`; data time is host time spent waiting for batches."""
    loader = trainer.train_loader
    loader.set_epoch(0)
    it = iter(loader)

    def next_batch() -> Any:
        nonlocal it
        try:
            return next(it)
        except StopIteration:
            it = iter(loader)
            return next(it)

    trainer.ddp_model.train()
    start = time.perf_counter()
    for _ in range(warmup):  # with --compile, the first of these compiles
        trainer.train_step(next_batch(), boundary=True)
    trainer.dev.synchronize()
    warmup_s = time.perf_counter() - start
    data_time, images, start = 0.0, 0, time.perf_counter()
    for _ in range(iters):
        t0 = time.perf_counter()
        batch = next_batch()
        data_time += time.perf_counter() - t0
        trainer.train_step(batch, boundary=True)
        images += int(batch.labels.shape[0])
    trainer.dev.synchronize()
    elapsed = time.perf_counter() - start
    return {"elapsed": elapsed, "images": images, "data_time": data_time, "warmup_s": warmup_s}


def main(argv: Optional[Sequence[str]] = None) -> int:
    from engine.assemble import build_trainer
    from engine.distributed import all_reduce_sum, env_dist_info, shutdown

    a = build_parser().parse_args(argv)
    cfg = parse_args(engine_argv(a))
    unwritable = check_appendable(a.log, "--log")
    if unwritable:
        print(f"error: {unwritable}", file=sys.stderr)
        return 2
    dist = env_dist_info()
    trainer, _ = build_trainer(cfg, dist=dist, writer=EventWriter(None))
    try:
        try:
            m = measure(trainer, a.warmup, a.iters)
        except Exception as exc:  # noqa: BLE001 - said here: one left to the interpreter keeps the trainer
            if is_out_of_memory(exc):  # (its persistent loader workers) alive, and the exit hangs on them
                print(f"error: out of memory at batch {a.batch_size} per card ({exc})".splitlines()[0])
                return EXIT_OOM
            traceback.print_exc()
            return 1
        images, elapsed = all_reduce_sum([m["images"], m["elapsed"]], trainer.dev.device)
        elapsed /= dist.world_size
        peak = trainer.dev.max_memory_allocated()
        record = {
            "model": cfg.arch,
            "batch_size": cfg.batch_size,
            "cards": dist.world_size,
            "precision": "amp" if trainer.dev.amp_enabled else "fp32",
            "memory_format": cfg.memory_format,
            "image_size": cfg.train_image_size,
            "device": trainer.dev.kind,
            "device_name": trainer.dev.name,
            "images_per_s": images / elapsed,
            "images_per_s_per_card": images / elapsed / dist.world_size,
            "data_time_s": m["data_time"],
            "compute_time_s": m["elapsed"] - m["data_time"],
            "peak_memory_mib": None if peak is None else peak / 2**20,
            "iters": a.iters,
            "warmup": a.warmup,
            "warmup_s": m["warmup_s"],
            "compiled": a.compile,
            "workers": a.workers if a.data else 0,
            "data": "synthetic" if not a.data else a.data,
            "time": time.time(),
        }
        if dist.is_main:
            print_record(record, trainer.dev.note)
            if a.log:
                with open(a.log, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")
    finally:
        shutdown()
    return 0


def print_record(r: dict[str, Any], note: str) -> None:
    peak = "n/a (CPU)" if r["peak_memory_mib"] is None else f"{r['peak_memory_mib']:.0f} MiB"
    total = r["data_time_s"] + r["compute_time_s"]
    print(
        f"train  {r['model']}  {r['device_name']} × {r['cards']}  {r['precision']}  {r['memory_format']}  "
        f"batch {r['batch_size']}/card  {r['image_size']} px"
    )
    print(f"  images/s total      {r['images_per_s']:10.1f}")
    print(f"  images/s per card   {r['images_per_s_per_card']:10.1f}")
    print(
        f"  data time           {r['data_time_s']:10.3f} s  ({100 * r['data_time_s'] / max(total, 1e-9):.1f}%)"
    )
    print(f"  compute time        {r['compute_time_s']:10.3f} s")
    print(f"  peak device memory  {peak:>10}")
    print(
        f"  warm-up             {r['warmup_s']:10.3f} s  ({r['warmup']} steps{', compiling' if r['compiled'] else ''})"
    )
    if note:
        print(f"  note: {note}")


if __name__ == "__main__":
    sys.exit(main())
