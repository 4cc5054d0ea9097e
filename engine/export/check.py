"""The parity check: the exported file, run in its own runtime, against PyTorch's fp32 logits.

Relative difference = max|exported − PyTorch| / max|PyTorch| over every checked logit: one figure per
check, scaled by the logits' own range, so it means the same for a model whose logits are 0.1 or 30.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn

from engine.export import INPUT_NAME, TOLERANCE, BadInput, ExportError, require

Runner = Callable[[torch.Tensor], torch.Tensor]
DYNAMIC_CHUNK = 8  # a dynamic-batch export is fed chunks of up to 8, the last one smaller


@dataclass
class Inputs:
    """Normalised fp32 NCHW images, their labels when real, and a line saying what they are."""

    images: torch.Tensor
    labels: Optional[torch.Tensor]
    what: str


@dataclass
class CheckResult:
    """What the check found; `ok` when the relative difference is within the precision's tolerance."""

    images: int
    what: str
    precision: str
    max_abs_diff: float
    max_rel_diff: float
    tolerance: float
    top1_agreement: float
    top1_pytorch: Optional[float] = None
    top1_exported: Optional[float] = None

    @property
    def ok(self) -> bool:
        return self.max_rel_diff <= self.tolerance  # NaN fails too

    def lines(self) -> list[str]:
        verdict = "ok" if self.ok else "FAILED"
        out = [
            f"check: {self.images} {self.what}",
            f"  max |logit diff| {self.max_abs_diff:.3g}, relative {self.max_rel_diff:.3g} "
            f"(tolerance {self.tolerance:g}, {self.precision}): {verdict}",
            f"  top-1 agreement with PyTorch {100 * self.top1_agreement:.1f}%",
        ]
        if self.top1_pytorch is not None and self.top1_exported is not None:
            out.append(f"  val top-1: exported {self.top1_exported:.2f}%, PyTorch {self.top1_pytorch:.2f}%")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def synthetic_inputs(count: int, size: int, seed: int = 0) -> Inputs:
    """Random inputs of about a normalised photo's spread (no labels)."""
    gen = torch.Generator().manual_seed(seed)
    return Inputs(torch.randn(count, 3, size, size, generator=gen), None, "synthetic inputs (no --data)")


def image_inputs(data: str, count: int, size: int, num_classes: int) -> Inputs:
    """Up to `count` images of `data`'s val split (else its train split, else `data` as one split),
    spread over the classes, through the validation transform."""
    from engine.classify import preprocess
    from engine.config import ConfigError
    from engine.data import load_split

    root = Path(data)
    if not root.is_dir():
        raise BadInput(f"--data {data}: no such folder; pass an ImageFolder root (val/<class>/*.JPEG)")
    tries = [(root, "val"), (root, "train"), (root.parent, root.name)]
    samples = None
    for base, split in tries:
        try:
            samples = load_split(str(base), split, num_classes=1 << 30)  # the class count: checked below
            break
        except ConfigError as exc:
            reason = str(exc)
    if samples is None or len(samples) == 0:
        why = reason if samples is None else "no images found"
        raise BadInput(f"--data {data}: {why}; pass an ImageFolder root (val/<class>/*.JPEG)")
    if len(samples.classes) > num_classes:
        raise BadInput(f"--data {data} has {len(samples.classes)} classes but the model {num_classes}: pass "
                       "the dataset the checkpoint was trained on")  # fmt: skip
    n = min(count, len(samples))
    pick = [i * len(samples) // n for i in range(n)]  # spread: a sorted listing is grouped by class
    images = []
    for i in pick:
        try:
            images.append(preprocess(str(samples.path(i)), size))
        except OSError as exc:
            raise BadInput(f"--data: cannot read {samples.path(i)} ({exc})") from None
    labels = torch.tensor([int(samples.labels[i]) for i in pick])
    return Inputs(torch.stack(images), labels, f"images from {samples.source}")


def onnx_runner(path: Path) -> Runner:
    """The file in ONNX Runtime on the CPU (the execution provider every install has)."""
    ort: Any = require("onnxruntime")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: its warnings are not the user's business here
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = " ".join(str(exc).split())[:300]
        raise ExportError(f"ONNX Runtime cannot load the export ({first}); try another --opset") from None
    name = session.get_inputs()[0].name if session.get_inputs() else INPUT_NAME

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.numpy()})[0])

    return run


def pt2_runner(path: Path) -> Runner:
    """The file through torch.export.load, as a deployment in PyTorch would load it."""
    try:
        module = torch.export.load(str(path)).module()
    except Exception as exc:
        raise ExportError(f"torch.export.load cannot load the export ({type(exc).__name__}: {exc})") from None
    return lambda x: module(x)


def runner(path: Path, fmt: str) -> Runner:
    return onnx_runner(path) if fmt == "onnx" else pt2_runner(path)


def chunks(n: int, batch: Optional[int]) -> Iterator[tuple[int, int]]:
    """(start, stop) over n rows: a fixed batch's size, or DYNAMIC_CHUNK and a smaller tail."""
    step = batch or DYNAMIC_CHUNK
    for start in range(0, n, step):
        yield start, min(n, start + step)


def _padded(x: torch.Tensor, batch: Optional[int]) -> torch.Tensor:
    """A short last chunk filled up to a fixed batch with copies of its first row."""
    if batch is None or len(x) == batch:
        return x
    return torch.cat([x, x[:1].expand(batch - len(x), *x.shape[1:])])


def compare(exported: Runner, reference: nn.Module, inputs: Inputs, precision: str,
            batch: Optional[int]) -> CheckResult:  # fmt: skip
    """Run both on `inputs` and measure how far the exported logits are from PyTorch's fp32 ones."""
    dtype = torch.float16 if precision == "fp16" else torch.float32
    got, want = [], []
    with torch.no_grad():
        for start, stop in chunks(len(inputs.images), batch):
            x = inputs.images[start:stop]
            try:
                y = exported(_padded(x, batch).to(dtype))
            except Exception as exc:
                first = " ".join(str(exc).split())[:300]
                raise ExportError(
                    f"the exported model failed to run ({type(exc).__name__}: {first})"
                ) from None
            got.append(y[: len(x)].float())
            want.append(reference(x).float())
    y, ref = torch.cat(got), torch.cat(want)
    if y.shape != ref.shape:
        raise ExportError(f"the exported model returns shape {tuple(y.shape)}, PyTorch {tuple(ref.shape)}")
    diff = (y - ref).abs().max().item()
    scale = ref.abs().max().item()
    result = CheckResult(
        images=len(ref),
        what=inputs.what,
        precision=precision,
        max_abs_diff=diff,
        max_rel_diff=diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf")),
        tolerance=TOLERANCE[precision],
        top1_agreement=(y.argmax(1) == ref.argmax(1)).float().mean().item(),
    )
    if inputs.labels is not None:
        result.top1_pytorch = 100 * (ref.argmax(1) == inputs.labels).float().mean().item()
        result.top1_exported = 100 * (y.argmax(1) == inputs.labels).float().mean().item()
    return result


def check_export(path: Path, fmt: str, reference: nn.Module, inputs: Inputs, precision: str,
                 batch: Optional[int]) -> CheckResult:  # fmt: skip
    """Load `path` in its runtime and compare it with `reference` (fp32, eval) on `inputs`."""
    return compare(runner(path, fmt), reference.eval(), inputs, precision, batch)
