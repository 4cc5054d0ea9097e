"""ResNet-50 v1.5 with torchvision's parameter names, its init options, and checkpoint key compatibility.

torchvision's `resnet50` *is* v1.5 (stride 2 on the bottleneck's 3×3 conv) with exactly the 320
state-dict keys of the NGC model, so files load across both; this module adds the NGC init configs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torchvision.models import resnet50

ARCH_BUILDERS = {"resnet50": resnet50}


def build_model(
    arch: str, model_config: str, num_classes: int, zero_init_residual: bool = False
) -> nn.Module:
    """A freshly initialised model; `fanin` re-initialises convs with Kaiming normal, mode fan_in."""
    model = ARCH_BUILDERS[arch](weights=None, num_classes=num_classes, zero_init_residual=zero_init_residual)
    if model_config == "fanin":
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
    return model


WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP (the port's files), torch.compile


def _plain_key(key: str) -> str:
    while key.startswith(WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def strip_module_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The model's own keys from a state dict saved through wrappers (`module.`, `_orig_mod.`)."""
    return {_plain_key(k): v for k, v in state_dict.items()}


class StateDictMismatch(ValueError):
    """A checkpoint whose weights do not fit the model; the message lists the keys."""


def load_weights_strict(model: nn.Module, state_dict: Mapping[str, Any]) -> None:
    """Load every key, or raise naming what is missing, unexpected or of another shape."""
    own = model.state_dict()
    given = strip_module_prefix(state_dict)
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    shapes = sorted(
        f"{k}: checkpoint {tuple(given[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(given)
        if hasattr(given[k], "shape") and tuple(given[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if keys:
                more = f" (+{len(keys) - 5} more)" if len(keys) > 5 else ""
                parts.append(f"{label}: {', '.join(keys[:5])}{more}")
        raise StateDictMismatch("checkpoint does not fit the model: " + "; ".join(parts))
    model.load_state_dict(given, strict=True)


def to_memory_format(model: nn.Module, memory_format: str) -> nn.Module:
    """NHWC (channels_last) is what the MLU and tensor-core GPUs run fastest."""
    if memory_format == "nhwc":
        return model.to(memory_format=torch.channels_last)
    return model


def torch_memory_format(memory_format: str) -> torch.memory_format:
    return torch.channels_last if memory_format == "nhwc" else torch.contiguous_format


def compile_model(module: nn.Module) -> nn.Module:
    """torch.compile for training: static shapes (a run's batches share one; the last, shorter one of an
    epoch compiles once more). The wrapper's state dict says `_orig_mod.`: save the plain module's."""
    return torch.compile(module, dynamic=False)
