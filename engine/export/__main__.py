"""``python -m engine.export --resume CKPT --format onnx|pt2 --out FILE``: export, check, then keep."""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from engine.config import add_checkpoint_loading_flags
from engine.console import plain_warnings
from engine.export import FORMATS, TOLERANCE, BadInput, ExportError

EPILOG = (
    "The export is checked before it is kept: loaded in its runtime (ONNX Runtime on the CPU, or "
    "torch.export.load), run on --check-images images (from --data, else synthetic) and compared with "
    "PyTorch's fp32 logits. Relative difference = max|exported - PyTorch| / max|PyTorch|; tolerance "
    f"{TOLERANCE['fp32']:g} for fp32 and {TOLERANCE['fp16']:g} for --half. Exit status: 0 kept, 1 the "
    "export or its check failed (no file kept), 2 bad input (checkpoint, output path, opset, a missing "
    "package)."
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.export", description=__doc__.splitlines()[0],
                                epilog=EPILOG)  # fmt: skip
    p.add_argument(
        "--resume", required=True, metavar="CKPT", help="checkpoint to export (ours or the port's)"
    )
    p.add_argument("--format", required=True, choices=FORMATS, help="onnx (TensorRT, MagicMind, ONNX "
                   "Runtime) or pt2 (torch.export: PyTorch runtimes)")  # fmt: skip
    p.add_argument("--out", required=True, metavar="FILE", help="the exported file; FILE.json is its sidecar")
    add_checkpoint_loading_flags(p, "the trained weights, the EMA's, or the better of them by recorded top-1")
    p.add_argument("--image-size", type=int, default=224, help="input resolution the file is built for")
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--batch", type=int, default=1, metavar="N", help="fixed batch size (default 1)")
    batch.add_argument("--dynamic-batch", action="store_true", help="any batch size (a dynamic first axis)")
    p.add_argument("--half", action="store_true", help="fp16 weights, input and output (checked against "
                   f"PyTorch's fp32 logits with tolerance {TOLERANCE['fp16']:g})")  # fmt: skip
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    p.add_argument("--num-classes", type=int, default=None, help="refuse a checkpoint of another class count")
    p.add_argument("--data", default=None, metavar="DIR", help="ImageFolder root to check on (val/ split; "
                   "also prints the val top-1 of both); default synthetic inputs")  # fmt: skip
    p.add_argument("--check-images", type=int, default=32, metavar="N", help="images to check on")
    p.add_argument("--no-check", action="store_true", help="keep the file unchecked (not recommended)")
    return p


def preflight(out: Path) -> None:
    """Refuse an output that cannot be written before minutes of export: its folder must take a file."""
    if out.is_dir():
        raise BadInput(f"--out {out} is a folder; pass a file name, e.g. {out / 'model.onnx'}")
    folder = out.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=folder)
    except OSError as exc:
        raise BadInput(f"cannot write --out {out}: {exc.strerror or exc}; create its folder or pass "
                       "another path") from None  # fmt: skip
    os.close(fd)
    os.unlink(probe)


@contextmanager
def staged(out: Path) -> Iterator[tuple[Path, Path]]:
    """Temp names beside `out` and its sidecar; whatever the block leaves is removed unless it succeeds."""
    tag = f".{out.stem}.{os.getpid()}.tmp"
    tmp, tmp_json = out.with_name(tag + out.suffix), out.with_name(tag + out.suffix + ".json")
    try:
        yield tmp, tmp_json
    finally:
        tmp.unlink(missing_ok=True)
        tmp_json.unlink(missing_ok=True)


def export(a: argparse.Namespace) -> int:
    import torch

    from engine.export.check import check_export, image_inputs, synthetic_inputs
    from engine.export.source import load_source
    from engine.export.writers import DEFAULT_OPSET, check_opset, export_onnx, export_pt2, metadata

    out = Path(a.out)
    if a.image_size < 32 or (a.batch is not None and a.batch < 1) or a.check_images < 1:
        raise BadInput("--image-size must be at least 32, and --batch and --check-images at least 1")
    if a.format == "onnx":
        from engine.export import require

        for package in ("onnx", "onnxruntime"):  # before minutes of export, not after
            require(package)
        a.opset = DEFAULT_OPSET if a.opset is None else a.opset
        check_opset(a.opset)
    elif a.opset is not None:
        raise BadInput("--opset is for --format onnx; a pt2 file has no opset")
    preflight(out)
    src = load_source(a.resume, a.weights, a.trust_checkpoint, a.num_classes)
    batch = None if a.dynamic_batch else a.batch
    precision = "fp16" if a.half else "fp32"
    model = copy.deepcopy(src.model).half() if a.half else src.model
    example_batch = 2 if batch is None else batch  # a dynamic axis traced at 1 would be fixed to 1
    example = torch.randn(
        example_batch, 3, a.image_size, a.image_size, dtype=torch.float16 if a.half else None
    )
    meta = metadata(src, a.format, precision, a.image_size, batch, a.opset)
    with staged(out) as (tmp, tmp_json):
        if a.format == "onnx":
            export_onnx(model, example, tmp, a.opset, batch is None, meta)
        else:
            export_pt2(model, example, tmp, batch is None, meta)
        if not a.no_check:
            inputs = (image_inputs(a.data, a.check_images, a.image_size, src.num_classes) if a.data
                      else synthetic_inputs(a.check_images, a.image_size))  # fmt: skip
            result = check_export(tmp, a.format, src.model, inputs, precision, batch)
            print("\n".join(result.lines()), flush=True)
            if not result.ok:
                raise ExportError(
                    f"the export differs from PyTorch beyond tolerance (relative {result.max_rel_diff:.3g} > "
                    f"{result.tolerance:g}); nothing was written to {out}"
                )
            meta["check"] = result.to_dict()
        else:
            meta["check"] = None
        tmp_json.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp_json, Path(f"{out}.json"))  # the sidecar first: a kept model always has its own
        os.replace(tmp, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {a.format}, {precision}) and {out}.json")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    plain_warnings()
    from engine.checkpoint import CheckpointError

    a = build_parser().parse_args(argv)
    try:
        return export(a)
    except (BadInput, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a rename or sidecar write on a full or read-only disk
        print(f"error: cannot write {a.out}: {exc.strerror or exc}; nothing was kept", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
