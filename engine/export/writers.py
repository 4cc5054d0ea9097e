"""The two writers: ONNX through torch's TorchScript-based exporter, pt2 through torch.export.

The ONNX exporter is torch's TorchScript-based one (`dynamo=False`): it writes exactly the opset asked
for, from 7 up, on every torch this project supports (2.1 on). The newer dynamo exporter writes opset 18
and, asked for less (what older TensorRT and MagicMind releases read), tries a conversion that fails for
this graph and keeps 18 after printing a traceback; it is also about twice as slow here.
"""

from __future__ import annotations

import inspect
import json
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from engine.data import IMAGENET_MEAN, IMAGENET_STD
from engine.export import INPUT_NAME, OUTPUT_NAME, BadInput, ExportError, require
from engine.export.source import Source

DEFAULT_OPSET = 17  # TensorRT 8.6+, ONNX Runtime 1.14+ and recent MagicMind read it
MAX_DYNAMIC_BATCH = 4096
PT2_METADATA = "rn50tui.json"  # the metadata's name among a pt2 archive's extra files


def onnx_opsets() -> tuple[int, int]:
    """The opsets the TorchScript-based exporter of this torch can write."""
    try:
        from torch.onnx import _constants as c
    except ImportError:  # a torch that moved its constants: the range every supported torch has
        return 7, 17
    high = getattr(c, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", getattr(c, "ONNX_MAX_OPSET", 17))
    return int(getattr(c, "ONNX_MIN_OPSET", 7)), int(high)


def check_opset(opset: int) -> None:
    low, high = onnx_opsets()
    if not low <= opset <= high:
        raise BadInput(f"--opset {opset}: torch {torch.__version__}'s ONNX exporter writes opsets {low} to "
                       f"{high}; pass one of those (default {DEFAULT_OPSET})")  # fmt: skip


def metadata(src: Source, fmt: str, precision: str, image_size: int, batch: Optional[int],
             opset: Optional[int]) -> dict[str, Any]:  # fmt: skip
    """What a user needs to feed the file and read its answer, and where it came from."""
    return {
        "format": fmt,
        "precision": precision,
        "arch": src.arch,
        "num_classes": src.num_classes,
        "class_names": src.class_names,
        "input": {
            "name": INPUT_NAME,
            "layout": "NCHW",
            "shape": [batch if batch else "batch", 3, image_size, image_size],
            "dtype": "float16" if precision == "fp16" else "float32",
            "color": "RGB, scaled to [0, 1], then (x - mean) / std per channel",
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
            "resize": f"shorter side to {round(image_size / 0.875)}, center crop {image_size}",
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": [batch if batch else "batch", src.num_classes],
            "meaning": "logits (softmax gives probabilities)",
        },  # fmt: skip
        "source": src.describe(),
        "opset": opset,
        "torch": torch.__version__,
    }


def onnx_props(meta: dict[str, Any]) -> dict[str, str]:
    """The ONNX metadata_props: flat strings a deployment tool shows, and the whole record as JSON."""
    inp = meta["input"]
    return {
        "mean": ",".join(str(v) for v in inp["mean"]),
        "std": ",".join(str(v) for v in inp["std"]),
        "input_size": str(inp["shape"][2]),
        "layout": inp["layout"],
        "arch": meta["arch"],
        "num_classes": str(meta["num_classes"]),
        "class_names": json.dumps(meta["class_names"]),
        "precision": meta["precision"],
        "format": meta["format"],
        "source_checkpoint": meta["source"]["checkpoint"],
        "rn50tui": json.dumps(meta),
    }


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}{'…' if len(text) > 300 else ''}"


def export_onnx(model: nn.Module, example: torch.Tensor, out: Path, opset: int, dynamic: bool,
                meta: dict[str, Any]) -> None:  # fmt: skip
    """Write `model` (eval) to `out` as ONNX with `meta` in its metadata_props."""
    onnx: Any = require("onnx")
    kwargs: dict[str, Any] = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME],
                              "opset_version": opset, "do_constant_folding": True}  # fmt: skip
    if dynamic:
        kwargs["dynamic_axes"] = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:  # torch >= 2.5 has both exporters
        kwargs["dynamo"] = False
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter(
                "ignore"
            )  # the legacy exporter's deprecation and tracer notes: chosen above
            torch.onnx.export(model, (example,), str(out), **kwargs)
        proto = onnx.load(str(out))
        for key, value in onnx_props(meta).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "rn50tui engine.export"
        onnx.save(proto, str(out))
    except OSError as exc:
        raise BadInput(f"cannot write {out}: {exc.strerror or exc}; pass --out on a disk with room") from None
    except Exception as exc:  # the exporter raises many kinds
        raise ExportError(f"torch's ONNX exporter failed ({_one_line(exc)}); try another --opset, or "
                          "--format pt2") from None  # fmt: skip


def export_pt2(
    model: nn.Module, example: torch.Tensor, out: Path, dynamic: bool, meta: dict[str, Any]
) -> None:
    """Write `model` (eval) to `out` with torch.export.save, `meta` as an extra file of the archive."""
    shapes = None
    if dynamic:
        shapes = {"x": {0: torch.export.Dim("batch", min=1, max=MAX_DYNAMIC_BATCH)}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(model, (example,), dynamic_shapes=shapes)
            torch.export.save(program, str(out), extra_files={PT2_METADATA: json.dumps(meta)})
    except OSError as exc:
        raise BadInput(f"cannot write {out}: {exc.strerror or exc}; pass --out on a disk with room") from None
    except Exception as exc:
        raise ExportError(f"torch.export failed ({_one_line(exc)}); try --format onnx") from None
