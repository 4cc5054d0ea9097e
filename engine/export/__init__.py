"""``python -m engine.export``: a trained checkpoint as ONNX or a torch.export program, checked before kept.

The exported model takes what the engine's validation feeds ResNet-50: float NCHW images, RGB in [0, 1],
normalised with the ImageNet mean and std, at `--image-size`; it returns logits. What a user needs to feed
it (mean, std, size, layout, class names) travels in the ONNX metadata and in a sidecar ``FILE.json``.
An export is written under a temporary name, run in the runtime that will serve it (ONNX Runtime, or
`torch.export.load`), compared with PyTorch's own logits, and renamed into place only when they agree.

  source.py   the checkpoint → an eval-mode model and what is known about it
  writers.py  ONNX (torch's TorchScript-based exporter) and pt2 (torch.export), metadata included
  check.py    the parity check: inputs (real images or synthetic), the runtimes, the comparison
  __main__.py the command line: preflight, stage, export, check, rename
"""

from __future__ import annotations

FORMATS = ("onnx", "pt2")
INPUT_NAME, OUTPUT_NAME = "input", "logits"
# max|exported − PyTorch fp32| / max|PyTorch fp32| over the checked logits. fp32 differs only in the order
# of sums (~1e-6 measured). fp16 keeps 11 significant bits: ~1e-3 measured on a small trained model, so
# 2e-2 leaves room and still fails an overflow (inf/NaN) or a wrong normalisation (order 1). An untrained,
# randomly initialised ResNet amplifies rounding layer by layer (1e-2 to 7e-2 measured): not a deployment
TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2}
ONNX_EXTRA = "pip install 'rn50tui[onnx]'"


class ExportError(RuntimeError):
    """An export that cannot be made or did not pass its check; the message names the cause and the fix."""


class BadInput(ExportError):
    """Input the user can fix (checkpoint, output path, opset, a missing package): exit status 2."""


def require(module: str) -> object:
    """Import an optional package of the `onnx` extra, or say in one line how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise BadInput(f"{module} is not installed, and ONNX export needs it: {ONNX_EXTRA}") from None
