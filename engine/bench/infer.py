"""`python -m engine.bench infer`: inference throughput and latency per batch size and precision.

The table NVIDIA publishes: for each batch size, images/s and latency mean, p90, p95 and p99 (ms),
FP32 and AMP, from random weights or a checkpoint (`--resume`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from typing import Any, Optional

from engine.bench import check_appendable
from engine.config import add_checkpoint_loading_flags

DEFAULT_BATCHES = "1,2,4,8,16,32,64,128,256"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.bench infer", description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", default=DEFAULT_BATCHES, help="comma-separated batch sizes")
    p.add_argument("--precision", default="fp32,amp", help="comma-separated: fp32, amp")
    p.add_argument("--iters", type=int, default=20, help="measured iterations per batch size")
    p.add_argument("--warmup", type=int, default=3, help="discarded warm-up iterations")
    p.add_argument("--image-size", type=int, default=224, help="input resolution")
    p.add_argument(
        "--resume", default=None, metavar="CKPT", help="weights from this checkpoint (default random)"
    )
    add_checkpoint_loading_flags(
        p, "with --resume: the trained weights, the EMA's, or the better of them by recorded top-1"
    )
    p.add_argument("--num-classes", type=int, default=1000, help="classes of the random-weight model")
    p.add_argument("--memory-format", default="nchw", choices=("nchw", "nhwc"), help="activation layout")
    p.add_argument("--compile", action="store_true", help="torch.compile (each batch size compiles once)")
    p.add_argument("--device", default="auto", help="mlu, cuda, cpu or auto")
    p.add_argument("--json", default=None, metavar="FILE", help="append one JSON record per row to FILE")
    return p


def percentile(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))]


def time_batches(
    model: Any, dev: Any, batch: int, size: int, fmt: Any, warmup: int, iters: int
) -> list[float]:
    import torch

    x = torch.randn(batch, 3, size, size, device=dev.device).contiguous(memory_format=fmt)
    lat = []
    with torch.no_grad(), dev.autocast():
        for i in range(warmup + iters):  # compiled: the first call compiles for this shape
            dev.synchronize()
            t0 = time.perf_counter()
            model(x)
            dev.synchronize()  # latency is to the result, not to the launch
            if i >= warmup:
                lat.append(time.perf_counter() - t0)
    return sorted(lat)


def fresh_compile(model: Any) -> Any:
    """A compiled model with dynamo's caches emptied: nine batch sizes would pass its recompile limit
    (8), after which it silently runs eager."""
    import torch

    from engine.model import compile_model

    torch._dynamo.reset()
    return compile_model(model)


def load_model(a: argparse.Namespace) -> Any:
    from engine.checkpoint import arch_of, load_checkpoint
    from engine.ema import select_weights
    from engine.model import build_model, load_weights_strict

    if not a.resume:
        return build_model("resnet50", "classic", a.num_classes)
    ckpt = load_checkpoint(a.resume, a.trust_checkpoint)
    weights, _ = select_weights(ckpt, a.weights, a.resume)
    fc = {k.removeprefix("module."): v for k, v in weights.items()}["fc.weight"]
    model = build_model(arch_of(ckpt)[0] or "resnet50", "classic", int(fc.shape[0]))
    load_weights_strict(model, weights)
    return model


def main(argv: Optional[Sequence[str]] = None) -> int:
    from engine.checkpoint import CheckpointError
    from engine.devices import resolve_device
    from engine.model import to_memory_format, torch_memory_format

    a = build_parser().parse_args(argv)
    unwritable = check_appendable(a.json, "--json")
    if unwritable:
        print(f"error: {unwritable}", file=sys.stderr)
        return 2
    batches = [int(b) for b in a.batch_sizes.split(",")]
    fmt = torch_memory_format(a.memory_format)
    try:
        base = load_model(a).eval()
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{'precision':>9} {'batch':>5} {'img/s':>10} {'mean ms':>9} {'p90 ms':>9} {'p95 ms':>9} {'p99 ms':>9}"
    )
    for precision in a.precision.split(","):
        dev = resolve_device(a.device, amp=precision == "amp")
        eager = to_memory_format(base.to(dev.device), a.memory_format)
        label = precision if precision == "fp32" or dev.amp_enabled else "amp→fp32"
        for b in batches:
            model = fresh_compile(eager) if a.compile else eager
            start = time.perf_counter()
            lat = time_batches(model, dev, b, a.image_size, fmt, a.warmup, a.iters)
            warmup_s = time.perf_counter() - start - sum(lat)
            mean = sum(lat) / len(lat)
            row = {
                "precision": label,
                "batch_size": b,
                "images_per_s": b / mean,
                "latency_mean_ms": 1e3 * mean,
                "latency_p90_ms": 1e3 * percentile(lat, 90),
                "latency_p95_ms": 1e3 * percentile(lat, 95),
                "latency_p99_ms": 1e3 * percentile(lat, 99),
                "device": dev.kind,
                "device_name": dev.name,
                "compiled": a.compile,
                "warmup_s": warmup_s,
            }
            print(
                f"{label:>9} {b:>5} {row['images_per_s']:>10.1f} {row['latency_mean_ms']:>9.2f} "
                f"{row['latency_p90_ms']:>9.2f} {row['latency_p95_ms']:>9.2f} {row['latency_p99_ms']:>9.2f}",
                flush=True,
            )
            if a.json:
                with open(a.json, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
