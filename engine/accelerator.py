"""The one place the device is resolved: MLU (torch_mlu), CUDA or CPU, and what follows from it.

Autocast dtype, GradScaler, the DDP backend and the visible-devices variable all depend on the device
kind; everything else in the engine asks this module instead of testing `torch.cuda` or `torch.mlu`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Optional

import torch

from engine.device_kind import DeviceKind, parse_device

# How a device kind is driven: its DDP backend and the variable that selects its cards.
BACKENDS = {"mlu": "cncl", "cuda": "nccl", "cpu": "gloo"}
VISIBLE_DEVICES_VAR = {k.value: k.visible_env for k in DeviceKind}
FORCE_CPU_BF16_VAR = "RN50TUI_FORCE_CPU_BF16"


class DeviceError(RuntimeError):
    """The requested device cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class DeviceInfo:
    """The resolved device of this process and the precision settings that follow from it."""

    kind: str  # "mlu", "cuda" or "cpu"
    device: torch.device
    name: str
    amp_dtype: Optional[torch.dtype]  # None: AMP off (fp32)
    use_scaler: bool
    dist_backend: str
    note: str = ""  # why AMP was changed, shown to the user
    tuning: str = ""  # the backend settings made for this device (cuDNN autotuning), for the report

    @property
    def amp_enabled(self) -> bool:
        return self.amp_dtype is not None

    @property
    def visible_devices_var(self) -> Optional[str]:
        return VISIBLE_DEVICES_VAR[self.kind]

    def autocast(self) -> AbstractContextManager[Any]:
        """One autocast context for every device and precision (disabled when AMP is off)."""
        fallback = torch.bfloat16 if self.kind == "cpu" else torch.float16
        return torch.autocast(
            device_type=self.kind, dtype=self.amp_dtype or fallback, enabled=self.amp_enabled
        )

    def grad_scaler(self) -> Any:
        """A GradScaler that is a no-op unless this device trains in fp16."""
        return make_grad_scaler(self.kind, enabled=self.use_scaler)

    def synchronize(self) -> None:
        if self.kind != "cpu":
            _module(self.kind).synchronize()

    def max_memory_allocated(self) -> Optional[int]:
        """Peak bytes allocated on the device by this process; None on CPU."""
        if self.kind == "cpu":
            return None
        return int(_module(self.kind).max_memory_allocated(self.device))


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA raises OutOfMemoryError; torch_mlu a RuntimeError saying "MLU out of memory"."""
    return "out of memory" in str(exc).lower() or type(exc).__name__ == "OutOfMemoryError"


def out_of_memory_message(exc: BaseException, batch_size: int, amp: bool) -> str:
    """What to do when a training step does not fit the card: the batch is the lever, the recipe stays."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    amp_hint = "" if amp else ", or --amp (half the activation memory)"
    return (
        f"out of memory at batch {batch_size} per card ({first}): pass a smaller -b, with "
        f"--optimizer-batch-size at the recipe's global batch so gradient accumulation keeps the schedule"
        f"{amp_hint}"
    )


def _module(kind: str) -> Any:
    return torch.cuda if kind == "cuda" else torch.mlu  # type: ignore[attr-defined]


def make_grad_scaler(kind: str, enabled: bool) -> Any:
    try:
        return torch.amp.GradScaler(kind, enabled=enabled)
    except (AttributeError, TypeError, RuntimeError):
        # torch < 2.3 has only the per-backend scalers.
        if kind == "mlu":
            return torch.mlu.amp.GradScaler(enabled=enabled)  # type: ignore[attr-defined]
        return torch.cuda.amp.GradScaler(enabled=enabled)


def tune_backend(kind: str) -> str:
    """Set the convolution-library switches that suit fixed-shape training; say what was set.

    CUDA: cuDNN benchmarks its convolution algorithms once per input shape and keeps the fastest, as
    NVIDIA's `main.py` does (`cudnn.benchmark = True`); ResNet-50's shapes are fixed, so this pays.
    MLU: torch_mlu installs `torch.backends.cnnl`, whose `flags(benchmark=True)` only warns "not
    available on MLU device" (Cambricon/torch_mlu, torch_mlu/backends/cnnl/__init__.py): CNNL chooses
    its algorithms itself, there is no autotuner to switch on. Its one working switch, `allow_tf32`
    (convolutions), is on by default, so nothing is set; the report shows it. CPU: nothing to set.
    """
    if kind == "cuda":
        torch.backends.cudnn.benchmark = True
        return "cudnn.benchmark=True"
    if kind == "mlu":
        cnnl = getattr(torch.backends, "cnnl", None)
        tf32 = getattr(cnnl, "allow_tf32", None)
        return f"cnnl: no algorithm autotuner (allow_tf32={tf32})"
    return ""


def load_torch_mlu() -> bool:
    """Import torch_mlu if installed; True when `torch.mlu` is usable.

    Raises DeviceError for the torch 1.6 generation (`torch_mlu.core.mlu_model`), whose API differs.
    """
    if "torch_mlu" not in sys.modules and importlib.util.find_spec("torch_mlu") is None:
        return False
    try:
        importlib.import_module("torch_mlu")
    except ImportError as exc:
        raise DeviceError(f"torch_mlu is installed but does not import: {exc}") from exc
    if not hasattr(torch, "mlu"):
        if importlib.util.find_spec("torch_mlu.core") is not None:
            raise DeviceError(
                "this torch_mlu is the old torch 1.6 generation (torch_mlu.core.mlu_model), which rn50tui "
                "does not support: use a Cambricon PyTorch image with torch >= 2.1 and its torch_mlu"
            )
        raise DeviceError("torch_mlu imported but registered no torch.mlu: check the torch_mlu installation")
    return True


def cpu_has_native_bf16() -> bool:
    """AMX is what makes bf16 faster than fp32 on a CPU; AVX512-BF16 alone is not enough in practice."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return False
    return "amx_bf16" in flags.split()


def _kind_for(requested: str) -> str:
    requested = parse_device(requested)
    if requested == "auto":
        if load_torch_mlu() and torch.mlu.is_available():  # type: ignore[attr-defined]
            return "mlu"
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "mlu":
        if not load_torch_mlu():
            raise DeviceError(
                "--device mlu: torch_mlu is not installed (run inside a Cambricon PyTorch image)"
            )
        if not torch.mlu.is_available():  # type: ignore[attr-defined]
            raise DeviceError(
                "--device mlu: torch_mlu sees no MLU card (check the driver, cnmon and MLU_VISIBLE_DEVICES)"
            )
        return "mlu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            "--device cuda: no CUDA device is available (check nvidia-smi and CUDA_VISIBLE_DEVICES)"
        )
    return requested


def _amp_settings(kind: str, amp: bool) -> tuple[Optional[torch.dtype], bool, str]:
    """AMP dtype, whether to scale the loss, and a note for the user."""
    if not amp:
        return None, False, ""
    if kind != "cpu":
        return torch.float16, True, ""
    if cpu_has_native_bf16() or os.environ.get(FORCE_CPU_BF16_VAR) == "1":
        return torch.bfloat16, False, ""
    note = (
        "AMP requested, but this CPU has no native bf16 (no AMX): training in fp32 instead, since bf16 "
        f"autocast would be about 12x slower here; set {FORCE_CPU_BF16_VAR}=1 to force bf16"
    )
    return None, False, note


def resolve_device(
    requested: str = "auto",
    amp: bool = False,
    local_rank: int = 0,
    dist_backend: Optional[str] = None,
    warn: bool = True,
) -> DeviceInfo:
    """Resolve `--device` once for this process and bind it to card `local_rank` of the visible ones.

    `warn`: a Python warning for the AMP note (False for a caller that reports `note` itself)."""
    kind = _kind_for(requested)
    if kind == "cpu":
        device, name = torch.device("cpu"), _cpu_name()
    else:
        mod = _module(kind)
        count = mod.device_count()
        if local_rank >= count:
            var = VISIBLE_DEVICES_VAR[kind]
            raise DeviceError(
                f"local rank {local_rank} has no {kind.upper()} card: {count} visible (check {var})"
            )
        mod.set_device(local_rank)
        device = torch.device(kind, local_rank)
        name = str(mod.get_device_properties(local_rank).name)
    tuning = tune_backend(kind)
    amp_dtype, use_scaler, note = _amp_settings(kind, amp)
    if note and warn:
        warnings.warn(note, stacklevel=2)
    return DeviceInfo(
        kind=kind,
        device=device,
        name=name,
        amp_dtype=amp_dtype,
        use_scaler=use_scaler,
        dist_backend=dist_backend or BACKENDS[kind],
        note=note,
        tuning=tuning,
    )


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU"
