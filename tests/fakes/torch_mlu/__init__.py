"""A stand-in for Cambricon's torch_mlu, shaped like its public API, for tests on machines without an MLU.

Importing the real torch_mlu renames PyTorch's PrivateUse1 backend to "mlu" and installs `torch.mlu`;
this does the same with a module whose functions record how the engine called them.
"""

import os
import types

import torch

torch.utils.rename_privateuse1_backend("mlu")

calls: list = []


class _Properties:
    def __init__(self, index: int) -> None:
        self.name = "MLU370-X8"
        self.total_memory = 24 * 1024**3
        self.index = index


def _count() -> int:
    return int(os.environ.get("FAKE_MLU_COUNT", "4"))


mlu = types.ModuleType("torch.mlu")
mlu.is_available = lambda: _count() > 0
mlu.device_count = _count
mlu.set_device = lambda index: calls.append(("set_device", index))
mlu.synchronize = lambda device=None: calls.append(("synchronize", device))
mlu.memory_allocated = lambda device=None: 0
mlu.max_memory_allocated = lambda device=None: 0
mlu.get_device_properties = lambda index: _Properties(index)
mlu.current_device = lambda: 0
torch.mlu = mlu


class _Cnnl:
    """torch.backends.cnnl as torch_mlu installs it: `allow_tf32` works (default on), nothing else."""

    allow_tf32 = True

    def __setattr__(self, name: str, value: object) -> None:
        calls.append(("backends.cnnl", name, value))
        object.__setattr__(self, name, value)


torch.backends.cnnl = _Cnnl()
