"""`bench infer --model FILE.onnx`: an exported model in ONNX Runtime on the CPU, as a deployment runs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

ONNX_EXTRA = "pip install 'rn50tui[onnx]'"


class ModelError(RuntimeError):
    """An ONNX file that cannot be benchmarked; the message says why."""


@dataclass
class OnnxModel:
    """An ONNX Runtime session and what its input takes."""

    session: Any
    input_name: str
    batch: Optional[int]  # None: a dynamic batch axis
    image_size: int
    dtype: Any  # numpy dtype of the input
    num_classes: Optional[int]

    @property
    def precision(self) -> str:
        return "fp16" if self.dtype == np.float16 else "fp32"

    def step(self, batch: int) -> Any:
        """One synchronous run on a random batch (ONNX Runtime returns when the result is ready)."""
        x = np.random.default_rng(0).standard_normal((batch, 3, self.image_size, self.image_size))
        feed = {self.input_name: x.astype(self.dtype)}
        return lambda: self.session.run(None, feed)


def _dim(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and value > 0 else None


def load_onnx(path: str) -> OnnxModel:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError(f"onnxruntime is not installed, and --model needs it: {ONNX_EXTRA}") from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only
    try:
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(
            f"--model {path}: ONNX Runtime cannot load it ({' '.join(str(exc).split())[:300]})"
        ) from None
    inp, out = session.get_inputs()[0], session.get_outputs()[0]
    if len(inp.shape) != 4 or _dim(inp.shape[2]) is None:
        raise ModelError(f"--model {path}: input {inp.name} is {inp.shape}, not N×3×H×W of a fixed size")
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    classes = _dim(out.shape[-1]) if out.shape else None
    return OnnxModel(session, inp.name, _dim(inp.shape[0]), int(inp.shape[2]), dtype, classes)
