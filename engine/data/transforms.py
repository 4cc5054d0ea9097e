"""The recipe's augmentation on uint8 tensors, seeded per sample, and normalisation on the device.

Crop parameters are sampled from the image's full size *before* decoding, so a JPEG can be decoded at
a reduced scale (1/2, 1/4, 1/8) when the crop still has at least the output's pixels at that scale.
Every random draw of sample ``i`` in epoch ``e`` comes from ``sample_rng(seed, e, i)``: the result does
not depend on the worker count or on which batches came before (exact mid-epoch resume).
"""

from __future__ import annotations

import math
import platform
import random
from dataclasses import dataclass
from typing import Optional, Union

import torch
import torchvision.transforms.v2.functional as F
from torchvision.transforms import v2

from engine.data.autoaugment import AutoAugment

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
DCT_SCALES = (8, 4, 2)  # the reduced sizes a JPEG decoder produces for free

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix_seed(*values: int) -> int:
    """A 63-bit seed from integers, the same in every process (Python's hash() is salted)."""
    h = 0x5EED
    for v in values:
        h = _splitmix64(h ^ (int(v) & _MASK64))
    return h >> 1


def sample_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The random source of one sample's augmentation in one epoch."""
    return random.Random(mix_seed(seed, epoch, index))


@dataclass(frozen=True)
class Crop:
    """A region of the full-size image (pixels) and whether the result is mirrored."""

    top: int
    left: int
    height: int
    width: int
    flip: bool = False
    aa_seed: int = 0  # the seed of this sample's AutoAugment draws


def sample_crop(
    height: int,
    width: int,
    rng: random.Random,
    scale: tuple[float, float] = CROP_SCALE,
    ratio: tuple[float, float] = CROP_RATIO,
) -> Crop:
    """RandomResizedCrop's parameters, drawn exactly as torchvision's get_params does (10 tries, then centre)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = rng.randint(0, height - h)
            left = rng.randint(0, width - w)
            return Crop(top, left, h, w)
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return Crop((height - h) // 2, (width - w) // 2, h, w)


def dct_scale(min_side: float, target: int) -> int:
    """The largest JPEG reduction (1, 2, 4, 8) that keeps at least `target` pixels of `min_side`."""
    for s in DCT_SCALES:
        if min_side / s >= target:
            return s
    return 1


INTERPOLATION = {"bilinear": v2.InterpolationMode.BILINEAR, "bicubic": v2.InterpolationMode.BICUBIC}

# torch's uint8 antialiased resize (AVX2/NEON for bilinear; bicubic everywhere), as torchvision decides it
_SIMD = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
_NATIVE_UINT8_BILINEAR = _SIMD or platform.machine() in ("aarch64", "arm64")


def resize_cl(img: torch.Tensor, hw: tuple[int, int], interpolation: v2.InterpolationMode) -> torch.Tensor:
    """`img` (uint8 3×H×W, any strides) resized to `hw`, antialiased, as a channels-last 3×h×w tensor.

    The same pixels as torchvision's F.resize; a decoder's H×W×C buffer is packed channels-last first, so
    torch's uint8 kernel runs on it directly (F.resize on that 3×H×W view takes a slower path, ~1.8×)."""
    if tuple(img.shape[-2:]) == tuple(hw):
        return img  # as torchvision does: nothing to resample (collate packs it)
    if img.device.type == "cpu" and (interpolation == v2.InterpolationMode.BICUBIC or _NATIVE_UINT8_BILINEAR):
        # H×W×C packed (no copy for a decoder's buffer), then a 1×3×H×W view with the batch stride torch
        # expects: img[None].contiguous(channels_last) keeps a batch stride of 3 on such a buffer, and torch
        # then takes its slower kernel and returns a channels-first result
        x = img.permute(1, 2, 0).contiguous()[None].permute(0, 3, 1, 2)
        mode = interpolation.value
        return torch.nn.functional.interpolate(x, size=hw, mode=mode, align_corners=False, antialias=True)[0]
    return F.resize(img, list(hw), interpolation=interpolation, antialias=True)


def resized_size(height: int, width: int, short: int) -> tuple[int, int]:
    """(h, w) with the shorter side `short`, rounded as torchvision's Resize(int) rounds it."""
    if height <= width:
        return short, int(short * width / height)
    return int(short * height / width), short


class SeededAutoAugment(AutoAugment):
    """AutoAugment's ImageNet policy on the uint8 crop, its draws taken from the sample's ``aa_seed``.

    ``engine.data.autoaugment`` gives torchvision's ``v2.AutoAugment(IMAGENET)`` op for op (same policy,
    magnitudes and pixels) at about a quarter of the cost; its draws come from ``random.Random(aa_seed)``,
    so the result depends on (seed, epoch, index) only, as every other draw does, in any process.
    """


class TrainTransform:
    """RandomResizedCrop(size, scale 0.08–1, ratio 3/4–4/3) + horizontal flip [+ AutoAugment], uint8 in
    and out."""

    def __init__(
        self, size: int, interpolation: str = "bilinear", augmentation: Optional[str] = None
    ) -> None:
        self.size = size
        self.interpolation = INTERPOLATION[interpolation]
        self.autoaugment = SeededAutoAugment() if augmentation == "autoaugment" else None

    def plan(self, height: int, width: int, rng: random.Random) -> Crop:
        crop = sample_crop(height, width, rng)
        aa_seed = rng.getrandbits(63) if self.autoaugment is not None else 0
        return Crop(crop.top, crop.left, crop.height, crop.width, flip=rng.random() < 0.5, aa_seed=aa_seed)

    def reduction(self, height: int, width: int, plan: Crop) -> int:
        """How far the decoder may shrink the image and still give the crop `size` pixels a side."""
        return dct_scale(min(plan.height, plan.width), self.size)

    def crop_resize(
        self, img: torch.Tensor, plan: Crop, full_hw: Optional[tuple[int, int]] = None
    ) -> torch.Tensor:
        """`plan`'s window (full-size pixels) of `img`, a decode of a `full_hw` image maybe reduced, at
        size×size, channels-last: RandomResizedCrop's pixels."""
        top, left, h, w = _rescale(plan, img.shape[-2:], full_hw)
        return resize_cl(img[..., top : top + h, left : left + w], (self.size, self.size), self.interpolation)

    @staticmethod
    def flip(img: torch.Tensor, plan: Crop) -> torch.Tensor:
        return img.flip(-1) if plan.flip else img  # keeps the channels-last layout

    def __call__(
        self, img: torch.Tensor, plan: Crop, full_hw: Optional[tuple[int, int]] = None
    ) -> torch.Tensor:
        """Apply `plan` (in full-size pixels) to `img`, which may be a reduced decode of a `full_hw` image."""
        out = self.flip(self.crop_resize(img, plan, full_hw), plan)
        return self.autoaugment(out, plan.aa_seed) if self.autoaugment is not None else out


class ValTransform:
    """Resize(shorter side = resize) + CenterCrop(size), uint8 in and out."""

    def __init__(self, size: int, resize: int, interpolation: str = "bilinear") -> None:
        self.size = size
        self.resize = resize
        self.interpolation = INTERPOLATION[interpolation]

    def plan(self, height: int, width: int, rng: Optional[random.Random] = None) -> Crop:
        return Crop(0, 0, height, width)

    def reduction(self, height: int, width: int, plan: Crop) -> int:
        return dct_scale(min(height, width), self.resize)

    def __call__(
        self, img: torch.Tensor, plan: Crop, full_hw: Optional[tuple[int, int]] = None
    ) -> torch.Tensor:
        out = resize_cl(img, resized_size(*img.shape[-2:], self.resize), self.interpolation)
        return F.center_crop(out, [self.size, self.size])


Transform = Union[TrainTransform, ValTransform]


def _rescale(
    plan: Crop, hw: tuple[int, int], full_hw: Optional[tuple[int, int]]
) -> tuple[int, int, int, int]:
    """The crop box in the coordinates of a (possibly reduced-size) decode."""
    if full_hw is None or tuple(hw) == tuple(full_hw):
        return plan.top, plan.left, plan.height, plan.width
    fy, fx = hw[0] / full_hw[0], hw[1] / full_hw[1]
    top, left = int(plan.top * fy), int(plan.left * fx)
    h = max(1, min(int(round(plan.height * fy)), hw[0] - top))
    w = max(1, min(int(round(plan.width * fx)), hw[1] - left))
    return top, left, h, w


_STATS: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

_FORMATS = {"nchw": torch.contiguous_format, "nhwc": torch.channels_last}


def _stats(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    key = (device, torch.float32)
    if key not in _STATS:  # made once per device: no host-to-device copy per batch
        mean = torch.tensor([255.0 * m for m in IMAGENET_MEAN], device=device).view(1, 3, 1, 1)
        inv_std = torch.tensor([1.0 / (255.0 * s) for s in IMAGENET_STD], device=device).view(1, 3, 1, 1)
        _STATS[key] = (mean, inv_std)
    return _STATS[key]


def normalize(
    images: torch.Tensor, memory_format: Union[torch.memory_format, str] = torch.contiguous_format
) -> torch.Tensor:
    """uint8 N×3×H×W → float32 ``(x/255 − mean)/std`` on images' device, in `memory_format`.

    `memory_format` is a torch.memory_format or the flag's name ("nchw", "nhwc"). The loaders' batches
    are mostly channels-last already (an N×H×W×3 buffer; with AutoAugment, often contiguous): "nhwc"
    takes those without a copy.
    """
    if isinstance(memory_format, str):
        memory_format = _FORMATS[memory_format]
    mean, inv_std = _stats(images.device)
    # the layout change is done on uint8 (4× less memory traffic); float() and the in-place ops keep it
    x = images.contiguous(memory_format=memory_format).float()
    return x.sub_(mean).mul_(inv_std)
