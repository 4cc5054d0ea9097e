"""NVIDIA DALI as the data backend (``--data-backend dali-cpu|dali-gpu|dali-mlu``), fed by the engine's plan.

The engine's :class:`BatchPlan` still decides which samples a batch holds (sharding by rank, padding,
drop_last, the position of a resume), and the recipe's draws still come from ``sample_rng(seed, epoch,
i)`` through the own pipeline's :class:`TrainTransform`: the crop window, the flip and AutoAugment's
sub-policy, stage and sign draws of each sample are computed here and handed to DALI as
``external_source`` inputs. DALI only reads those decisions: decode (``image_slice`` decodes the crop
window alone), resize, flip, AutoAugment's operations. So a resume gives the same crops as a straight
run, the crops are the ones the own pipeline picks, and the output is the own pipeline's :class:`Batch`
(uint8 N×3×H×W, channels-last as DALI writes it; normalisation and mixup stay on the device).

A file DALI cannot decode fails its whole batch and invalidates the pipeline: such a batch is decoded
again one file at a time on a fresh pipeline, and the files that fail alone are dropped and counted in
``Batch.skipped``, as the own pipeline does.
"""

from __future__ import annotations

import importlib
import io
import queue
import threading
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image

from engine.data.autoaugment import draws
from engine.data.batch import Batch, collate
from engine.data.datasets import SampleList
from engine.data.decode import jpeg_size, read_bytes
from engine.data.loaders import BatchPlan, Loader, _warn_once
from engine.data.transforms import Crop, TrainTransform, sample_rng

INSTALL = {
    "dali-cpu": "pip install 'rn50tui[dali]' (NVIDIA DALI)",
    "dali-gpu": "pip install 'rn50tui[dali]' (NVIDIA DALI)",
    "dali-mlu": "Cambricon's DALI plugin (cambricon.dali, in Cambricon's MLU images)",
}
_MODULES = {"dali-cpu": "nvidia.dali", "dali-gpu": "nvidia.dali", "dali-mlu": "cambricon.dali"}


def dali_module(backend: str) -> Optional[ModuleType]:
    """The DALI package `backend` runs on, or None where it cannot be imported."""
    try:
        return importlib.import_module(_MODULES[backend])
    except ImportError:
        return None


def missing(backend: str) -> Optional[str]:
    """Why `backend` cannot run here and which package brings it, or None when it can."""
    if dali_module(backend) is None:
        return f"{_MODULES[backend]} is not installed: {INSTALL[backend]} brings it"
    if backend == "dali-gpu" and not torch.cuda.is_available():
        return "no CUDA card is visible for DALI's nvJPEG decoder"
    return None


def _device_id(backend: str) -> Optional[int]:
    """The local card the decoder runs on; None is DALI's CPU-only mode."""
    if backend == "dali-gpu":
        return torch.cuda.current_device()  # engine.accelerator set the rank's card already
    if backend == "dali-mlu":
        return int(torch.mlu.current_device())  # type: ignore[attr-defined]  # torch_mlu's namespace
    return None


def _image_size(buf: bytearray) -> Optional[tuple[int, int]]:
    """(height, width) from the file's header, without decoding; None when no header is readable."""
    hw = jpeg_size(buf)
    if hw is not None:
        return hw
    try:
        with Image.open(io.BytesIO(buf)) as im:
            return im.size[1], im.size[0]
    except Exception:  # PIL raises many types for a file that is not an image
        return None


def aa_draws(aa_seed: int, num_sub_policies: int, stages: int) -> tuple[int, np.ndarray, np.ndarray]:
    """AutoAugment's draws of one sample from its seed: (sub-policy, per-stage uniform, per-stage sign),
    the same draws the own pipeline's AutoAugment takes (engine/data/autoaugment.py)."""
    sub, run, sign = draws(aa_seed, num_sub_policies, stages)
    return sub, np.array(run, dtype=np.float32), np.array(sign, dtype=np.int32)


class DaliBatches:
    """Decodes and augments one planned batch with a DALI pipeline; sample i's decisions depend on
    (seed, epoch, i) only, exactly as :class:`ImageBatches`' do."""

    def __init__(
        self, samples: SampleList, train: bool, size: int, resize: int, interpolation: str,
        augmentation: Optional[str], seed: int, backend: str, batch_size: int, threads: int,
    ) -> None:  # fmt: skip
        self.samples, self.train, self.size, self.resize, self.seed = samples, train, size, resize, seed
        self.classes = samples.classes
        self.backend, self.batch_size, self.threads = backend, batch_size, max(1, threads)
        self.transform = TrainTransform(size, interpolation, augmentation)
        self.interpolation, self.autoaugment = interpolation, augmentation == "autoaugment"
        self._pipe: Any = None
        self._policy: Any = None

    def __len__(self) -> int:
        return len(self.samples)

    # -- the pipeline ----------------------------------------------------------------------------------
    def _build(self) -> Any:
        from engine.data.dali_graph import build_pipeline

        self._pipe, self._policy = build_pipeline(self, dali_module(self.backend), _device_id(self.backend))
        return self._pipe

    def _run(self, inputs: dict[str, list[np.ndarray]]) -> torch.Tensor:
        pipe = self._pipe if self._pipe is not None else self._build()
        for name, data in inputs.items():
            pipe.feed_input(name, data)
        try:
            (out,) = pipe.run()
        except RuntimeError:
            self._pipe = None  # DALI's pipeline is no longer valid after an error: the next run rebuilds
            raise
        return _to_torch(out, self.backend)

    # -- one batch -------------------------------------------------------------------------------------
    def _inputs(self, epoch: int, i: int) -> Optional[dict[str, np.ndarray]]:
        """Sample i's file bytes and decisions, or None when it is unreadable before any decoding."""
        path = self.samples.path(i)
        try:
            buf = read_bytes(path)
        except OSError as e:
            _warn_once(path, f"{path}: {e.strerror or e}")
            return None
        hw = _image_size(buf) if buf else None
        if hw is None:
            _warn_once(path, f"{path}: {'not an image DALI reads' if buf else 'empty file'}")
            return None
        files = np.frombuffer(buf, dtype=np.uint8)
        if not self.train:
            return {"files": files, **self._val_geometry(*hw)}
        plan: Crop = self.transform.plan(hw[0], hw[1], sample_rng(self.seed, epoch, i))
        out = {
            "files": files,
            "anchor": np.array([plan.left, plan.top], dtype=np.float32),  # DALI's slice axes are W, H
            "shape": np.array([plan.width, plan.height], dtype=np.float32),
            "mirror": np.array(int(plan.flip), dtype=np.int32),
        }
        if self._policy is not None:
            sub, run, sign = aa_draws(plan.aa_seed, *self._policy)
            out.update(aa_sub=np.array(sub, dtype=np.int32), aa_run=run, aa_sign=sign)
        return out

    def _val_geometry(self, height: int, width: int) -> dict[str, np.ndarray]:
        """The shorter-side resize and centre crop, rounded exactly as torchvision's (the own pipeline's)."""
        short, long = sorted((height, width))
        new_long = int(self.resize * long / short)
        rh, rw = (self.resize, new_long) if height <= width else (new_long, self.resize)
        top, left = int(round((rh - self.size) / 2.0)), int(round((rw - self.size) / 2.0))

        def pos(offset: int, extent: int) -> np.ndarray:  # DALI's anchor is pos × (extent − crop)
            return np.array(offset / (extent - self.size) if extent > self.size else 0.5, dtype=np.float32)

        return {
            "resize_hw": np.array([rh, rw], dtype=np.float32),
            "crop_y": pos(top, rh),
            "crop_x": pos(left, rw),
        }

    def fetch(self, epoch: int, indices: Sequence[int]) -> Batch:
        if self._pipe is None:
            self._build()  # the policy's shape is needed to plan AutoAugment's draws
        good: list[tuple[int, dict[str, np.ndarray]]] = []
        bad: list[str] = []
        for i in indices:
            inputs = self._inputs(epoch, i)
            if inputs is None:
                bad.append(self.samples.path(i))
            else:
                good.append((i, inputs))
        if not good:
            return collate([], [], self.size, bad)
        try:
            images = self._run(_columns([inp for _, inp in good]))
        except RuntimeError:  # one undecodable file fails the batch: find it by decoding them one by one
            return self._one_by_one(good, bad)
        labels = torch.tensor([int(self.samples.labels[i]) for i, _ in good], dtype=torch.int64)
        return Batch(images, labels, len(bad), tuple(bad))

    def _one_by_one(self, good: list[tuple[int, dict[str, np.ndarray]]], bad: list[str]) -> Batch:
        images, labels = [], []
        for i, inputs in good:
            try:
                images.append(self._run(_columns([inputs]))[0])
            except RuntimeError as e:
                path = self.samples.path(i)
                _warn_once(path, f"{path}: DALI could not decode it ({str(e).splitlines()[0]})")
                bad.append(path)
                continue
            labels.append(int(self.samples.labels[i]))
        return collate(images, labels, self.size, bad)


def _columns(rows: list[dict[str, np.ndarray]]) -> dict[str, list[np.ndarray]]:
    return {name: [row[name] for row in rows] for name in rows[0]}


def _to_torch(out: Any, backend: str) -> torch.Tensor:
    """A DALI TensorList of uniform HWC images as one channels-last N×3×H×W torch tensor (on the
    decoder's card for dali-gpu)."""
    if backend == "dali-gpu":
        from nvidia.dali.plugin.pytorch import feed_ndarray

        tensor = out.as_tensor()
        dst = torch.empty(tensor.shape(), dtype=torch.uint8, device=torch.cuda.current_device())
        feed_ndarray(tensor, dst, cuda_stream=torch.cuda.current_stream())
        return dst.permute(0, 3, 1, 2)
    if hasattr(out, "as_cpu"):  # a device TensorList (cambricon.dali): copied out, as DALI's API allows
        out = out.as_cpu()
    return torch.from_numpy(out.as_array()).permute(0, 3, 1, 2)


class DaliLoader(Loader):
    """The :class:`Loader` of a DALI backend: same plan, position and state; batches come from a thread.

    One feeder thread runs the pipeline (DALI's own threads decode) up to `prefetch` batches ahead of
    the training loop, in the plan's order.
    """

    def __init__(self, source: DaliBatches, plan: BatchPlan, prefetch: int, pin_memory: bool = False) -> None:
        self.source, self.plan = source, plan  # type: ignore[assignment]
        self.batch_size = plan.batch_size
        self.classes = source.classes
        self.epoch = 0
        self.position = 0
        self._start = 0
        self.prefetch = max(1, prefetch)
        self.pin_memory = pin_memory

    def __iter__(self) -> Iterator[Batch]:
        self.plan.start, self._start = self._start, 0
        self.position = self.plan.start
        keys = list(self.plan)  # the plan is read here, eagerly, as the own loader does
        self.plan.start = 0
        return self._counted(self._feed(keys))

    def _feed(self, keys: list[tuple[int, tuple[int, ...]]]) -> Iterator[Batch]:
        out: queue.Queue[Any] = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        source, pin = self.source, self.pin_memory

        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for key in keys:
                    batch = source.fetch(*key)
                    if pin and not batch.images.is_cuda:  # pinned here, off the training loop's thread
                        batch = batch.pin_memory()
                    if not put(batch):
                        return
                put(_END)
            except BaseException as e:  # handed to the training loop, which raises it there
                put(_Failed(e))

        feeder = threading.Thread(target=produce, name="dali-feeder", daemon=True)
        feeder.start()
        try:
            while True:
                item = out.get()
                if item is _END:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            stop.set()  # an abandoned epoch (a stop): the feeder ends after its current batch
            feeder.join()


_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error
