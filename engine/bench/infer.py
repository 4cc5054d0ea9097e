"""`python -m engine.bench infer`: inference throughput and latency per batch size and precision.

The table NVIDIA publishes: for each batch size, images/s and latency mean, p50, p90, p95 and p99 (ms),
FP32 and AMP, from random weights or a checkpoint (`--resume`); with `--model FILE.onnx`, the exported
model in ONNX Runtime on the CPU beside it. Each configuration is warmed up until its time settles.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, Callable, Optional

from engine.bench import check_appendable
from engine.bench.timing import Warmup, describe, measure, percentile, settle
from engine.config import add_checkpoint_loading_flags

DEFAULT_BATCHES = "1,2,4,8,16,32,64,128,256"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.bench infer", description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", default=DEFAULT_BATCHES, help="comma-separated batch sizes")
    p.add_argument("--precision", default="fp32,amp", help="comma-separated: fp32, amp (the PyTorch rows)")
    p.add_argument("--iters", type=int, default=20, help="measured iterations per batch size")
    p.add_argument("--warmup", type=int, default=3, help="warm-up iterations before the settling windows")
    p.add_argument("--warmup-window", type=int, default=5, metavar="K",
                   help="warm-up ends when two windows of K iterations in a row differ by < 5%%")  # fmt: skip
    p.add_argument("--warmup-budget", type=float, default=20.0, metavar="S",
                   help="at most S seconds of warm-up per configuration")  # fmt: skip
    p.add_argument("--image-size", type=int, default=224, help="input resolution (--model: the file's)")
    p.add_argument(
        "--resume", default=None, metavar="CKPT", help="weights from this checkpoint (default random)"
    )
    add_checkpoint_loading_flags(
        p, "with --resume: the trained weights, the EMA's, or the better of them by recorded top-1"
    )
    p.add_argument("--num-classes", type=int, default=1000, help="classes of the random-weight model")
    p.add_argument("--model", default=None, metavar="FILE.onnx",
                   help="also time this exported model in ONNX Runtime (CPU) beside the PyTorch rows")  # fmt: skip
    p.add_argument("--memory-format", default="nchw", choices=("nchw", "nhwc"), help="activation layout")
    p.add_argument("--compile", action="store_true", help="torch.compile (each batch size compiles once)")
    p.add_argument("--device", default="auto", help="mlu, cuda, cpu or auto")
    p.add_argument("--json", default=None, metavar="FILE", help="append one JSON record per row to FILE")
    return p


def fresh_compile(model: Any) -> Any:
    """A compiled model with dynamo's caches emptied: nine batch sizes would pass its recompile limit
    (8), after which it silently runs eager."""
    import torch

    from engine.model import compile_model

    torch._dynamo.reset()
    return compile_model(model)


def load_model(a: argparse.Namespace, num_classes: int) -> Any:
    from engine.checkpoint import arch_of, load_checkpoint
    from engine.ema import select_weights
    from engine.model import build_model, load_weights_strict

    if not a.resume:
        return build_model("resnet50", "classic", num_classes)
    ckpt = load_checkpoint(a.resume, a.trust_checkpoint)
    weights, _ = select_weights(ckpt, a.weights, a.resume)
    fc = {k.removeprefix("module."): v for k, v in weights.items()}["fc.weight"]
    model = build_model(arch_of(ckpt)[0] or "resnet50", "classic", int(fc.shape[0]))
    load_weights_strict(model, weights)
    return model


def torch_step(model: Any, dev: Any, batch: int, size: int, fmt: Any) -> Callable[[], None]:
    """One synchronised forward pass: latency is to the result, not to the launch."""
    import torch

    x = torch.randn(batch, 3, size, size, device=dev.device).contiguous(memory_format=fmt)

    def step() -> None:
        with torch.no_grad(), dev.autocast():
            model(x)
        dev.synchronize()

    return step


HEADER = (f"{'runtime':>11} {'precision':>9} {'batch':>5} {'img/s':>10} {'mean ms':>9} {'p50 ms':>9} "
          f"{'p90 ms':>9} {'p95 ms':>9} {'p99 ms':>9}  warm-up")  # fmt: skip


def timed_row(
    step: Callable[[], None], a: argparse.Namespace, batch: int, base: dict[str, Any]
) -> dict[str, Any]:
    """Warm `step` up until it settles, measure it, print the row and append it to --json."""
    warm: Warmup = settle(step, a.warmup, a.warmup_window, 0.05, a.warmup_budget)
    lat = measure(step, a.iters)
    mean = sum(lat) / len(lat)
    row = {
        **base,
        "batch_size": batch,
        "images_per_s": batch / mean,
        "latency_mean_ms": 1e3 * mean,
        **{f"latency_p{p}_ms": 1e3 * percentile(lat, p) for p in (50, 90, 95, 99)},
        "warmup_s": warm.seconds,
        "warmup_iters": warm.iters,
        "warmup_settled": warm.settled,
    }
    print(
        f"{row['runtime']:>11} {row['precision']:>9} {batch:>5} {row['images_per_s']:>10.1f} "
        f"{row['latency_mean_ms']:>9.2f} {row['latency_p50_ms']:>9.2f} {row['latency_p90_ms']:>9.2f} "
        f"{row['latency_p95_ms']:>9.2f} {row['latency_p99_ms']:>9.2f}  {warm.label()}",
        flush=True,
    )
    if a.json:
        with open(a.json, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
    return row


def amp_note(dev: Any) -> Optional[str]:
    """The AMP fallback in an inference's words, for stderr (not a Python warning with a source line)."""
    from engine.accelerator import FORCE_CPU_BF16_VAR

    if not dev.note:
        return None
    return (f"note: AMP requested, but this CPU has no native bf16 (no AMX): the amp rows run in fp32 "
            f"(shown as amp→fp32); set {FORCE_CPU_BF16_VAR}=1 to force bf16")  # fmt: skip


def torch_rows(a: argparse.Namespace, base: Any, batches: list[int]) -> None:
    from engine.accelerator import resolve_device
    from engine.model import to_memory_format, torch_memory_format

    fmt = torch_memory_format(a.memory_format)
    for precision in a.precision.split(","):
        dev = resolve_device(a.device, amp=precision == "amp", warn=False)
        note = amp_note(dev) if precision == "amp" else None
        if note:
            print(note, file=sys.stderr, flush=True)
        eager = to_memory_format(base.to(dev.device), a.memory_format)
        label = precision if precision == "fp32" or dev.amp_enabled else "amp→fp32"
        info = {"runtime": "pytorch", "precision": label, "device": dev.kind, "device_name": dev.name,
                "compiled": a.compile, "image_size": a.image_size}  # fmt: skip
        for b in batches:
            model = fresh_compile(eager) if a.compile else eager
            timed_row(torch_step(model, dev, b, a.image_size, fmt), a, b, info)


def onnx_rows(a: argparse.Namespace, onnx: Any, batches: list[int]) -> None:
    sizes = batches if onnx.batch is None else [onnx.batch]
    if onnx.batch is not None and batches != [onnx.batch]:
        print(f"note: {a.model} has a fixed batch of {onnx.batch}; its rows use that batch only "
              "(export with --dynamic-batch for a sweep)", file=sys.stderr)  # fmt: skip
    info = {"runtime": "onnxruntime", "precision": onnx.precision, "device": "cpu",
            "device_name": "CPUExecutionProvider", "compiled": False, "image_size": onnx.image_size,
            "model": a.model}  # fmt: skip
    for b in sizes:
        timed_row(onnx.step(b), a, b, info)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from engine.bench.onnx_model import ModelError, load_onnx
    from engine.checkpoint import CheckpointError

    a = build_parser().parse_args(argv)
    unwritable = check_appendable(a.json, "--json")
    if unwritable:
        print(f"error: {unwritable}", file=sys.stderr)
        return 2
    batches = [int(b) for b in a.batch_sizes.split(",")]
    try:
        onnx = load_onnx(a.model) if a.model else None
        if onnx is not None:
            a.image_size = onnx.image_size  # the PyTorch rows run what the file was built for
        base = load_model(a, (onnx and onnx.num_classes) or a.num_classes).eval()
    except (CheckpointError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(describe(a.warmup, a.warmup_window, 0.05, a.warmup_budget) + f"; then {a.iters} timed iterations")
    print(HEADER, flush=True)
    start = time.perf_counter()
    torch_rows(a, base, batches)
    if onnx is not None:
        onnx_rows(a, onnx, batches)
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
