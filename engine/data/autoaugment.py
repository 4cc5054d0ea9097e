"""AutoAugment's ImageNet policy on a uint8 C×H×W tensor, its draws from one integer seed, its ops fast.

The policy, probabilities, magnitude bins, signs, NEAREST interpolation and fill are torchvision's
``v2.AutoAugment(AutoAugmentPolicy.IMAGENET)``; each op gives the same pixels as
``torchvision.transforms.v2.functional`` (tests/engine/test_autoaugment.py checks every one). The draws come
from ``random.Random(seed)`` as :func:`draws` says (engine/data/dali.py hands DALI's own ImageNet policy
draws of the same shape), so a sample's result depends on its seed only, in any process. What makes it fast:

- point ops are 256-entry lookup tables applied by ``np.take`` (solarize, brightness, contrast,
  autocontrast and equalize per channel, from PIL's histogram), or one integer op (posterize, invert);
- geometric ops are one gather: the source index of every output pixel is found once per (op, magnitude,
  size) by running torchvision's own affine/rotate on an image of pixel numbers, then cached;
- sharpness blurs in integers (exactly torchvision's rounded float 3×3 blur) and blends through a
  256×256 table of torchvision's float blend, indexed by (blurred value, pixel); colour is torchvision's
  own float blend with the grey (its exact result needs that float rounding); factor 1 is skipped.
"""

from __future__ import annotations

import functools
import math
import random
from typing import Callable, Optional

import numpy as np
import torch
import torchvision.transforms.v2.functional as F
from PIL import Image
from torchvision.transforms.v2 import InterpolationMode

Stage = tuple[str, float, Optional[int]]  # (op, probability, magnitude bin)

SUB_POLICIES: tuple[tuple[Stage, Stage], ...] = (
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
    (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
    (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
    (("Color", 0.4, 0), ("Equalize", 0.6, None)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
)
NUM_BINS = 10  # torchvision's AutoAugment takes its magnitudes from 10 bins (31 is RandAugment's)

# op → (magnitude range as a function of (height, width), signed); None: the op has no magnitude
SPACE: dict[str, tuple[Optional[Callable[[int, int], tuple[float, float]]], bool]] = {
    "ShearX": (lambda h, w: (0.0, 0.3), True),
    "ShearY": (lambda h, w: (0.0, 0.3), True),
    "TranslateX": (lambda h, w: (0.0, 150.0 / 331.0 * w), True),
    "TranslateY": (lambda h, w: (0.0, 150.0 / 331.0 * h), True),
    "Rotate": (lambda h, w: (0.0, 30.0), True),
    "Brightness": (lambda h, w: (0.0, 0.9), True),
    "Color": (lambda h, w: (0.0, 0.9), True),
    "Contrast": (lambda h, w: (0.0, 0.9), True),
    "Sharpness": (lambda h, w: (0.0, 0.9), True),
    "Posterize": (None, False),  # bits: 8 − round(bin / ((NUM_BINS − 1) / 4)), see magnitude()
    "Solarize": (lambda h, w: (1.0, 0.0), False),
    "AutoContrast": (None, False),
    "Equalize": (None, False),
    "Invert": (None, False),
}

_LUT_CACHE = 256  # cached tables and index maps: a handful per size in use


def draws(seed: int, num_sub_policies: int, stages: int) -> tuple[int, list[float], list[int]]:
    """One sample's AutoAugment draws from its seed: (sub-policy, per-stage uniform, per-stage sign bit)."""
    rng = random.Random(int(seed))  # int(): a numpy or torch integer seeds as the same int
    sub = rng.randrange(num_sub_policies)
    return sub, [rng.random() for _ in range(stages)], [rng.getrandbits(1) for _ in range(stages)]


@functools.lru_cache(maxsize=_LUT_CACHE)
def magnitude(op: str, bin_: int, height: int, width: int) -> float:
    """The unsigned magnitude of `op` at `bin_`, the float32 value torchvision's linspace gives."""
    if op == "Posterize":
        return float((8 - (torch.arange(NUM_BINS) / ((NUM_BINS - 1) / 4))).round().int()[bin_])
    span = SPACE[op][0]
    if span is None:
        return 0.0
    return float(torch.linspace(*span(height, width), NUM_BINS)[bin_])


class AutoAugment:
    """The ImageNet AutoAugment policy on a uint8 C×H×W tensor (C = 1 or 3); ``aa(img, seed)``.

    The result depends on (img, seed) only: no global generator is read or advanced.
    """

    def __init__(self, fill: int = 0) -> None:
        self.fill = fill  # torchvision's default fill (None) leaves out-of-image pixels 0

    def __call__(self, img: torch.Tensor, seed: int) -> torch.Tensor:
        if img.dtype != torch.uint8 or img.dim() != 3 or img.shape[0] not in (1, 3):
            raise ValueError(
                f"AutoAugment takes a uint8 C×H×W tensor with 1 or 3 channels, got {img.dtype} "
                f"{tuple(img.shape)}: convert the image first"
            )
        sub, run, sign = draws(seed, len(SUB_POLICIES), 2)
        h, w = img.shape[-2:]
        base: Optional[np.ndarray] = None
        out = None
        for (op, p, bin_), u, s in zip(SUB_POLICIES[sub], run, sign):
            if u >= p:
                continue
            m = 0.0 if bin_ is None else magnitude(op, bin_, h, w)
            m = -m if s and SPACE[op][1] else m
            if base is None:
                base = out = np.ascontiguousarray(img.numpy())
            out = OPS[op](out, m, self.fill)
        return img if out is base else torch.from_numpy(out)  # an op that changes nothing returns its input


def apply_op(img: torch.Tensor, op: str, magnitude_: float, fill: int = 0) -> torch.Tensor:
    """One op of the table on a uint8 C×H×W tensor, at a signed magnitude (for tests and benchmarks)."""
    return torch.from_numpy(OPS[op](np.ascontiguousarray(img.numpy()), magnitude_, fill))


# -- point ops ---------------------------------------------------------------------------------------

_RAMP = torch.arange(256, dtype=torch.uint8)


def _take(lut: np.ndarray, a: np.ndarray) -> np.ndarray:
    """`lut` (256 or C×256 entries) applied to `a` (C×H×W uint8) by indexing."""
    if lut.ndim == 1:
        return np.take(lut, a)
    out = np.empty_like(a)
    for c in range(a.shape[0]):
        np.take(lut[c], a[c], out=out[c], mode="clip")  # uint8 indices never leave the table
    return out


@functools.lru_cache(maxsize=_LUT_CACHE)
def _fixed_lut(op: str, m: float) -> np.ndarray:
    """The table of a per-pixel op that depends on its magnitude only, made by torchvision's own op."""
    ramp = _RAMP.view(1, 1, 256)
    if op == "Solarize":
        return F.solarize(ramp, threshold=255.0 * m).view(256).numpy()
    return F.adjust_brightness(ramp, brightness_factor=1.0 + m).view(256).numpy()


def _posterize(a: np.ndarray, m: float, fill: int) -> np.ndarray:
    bits = int(m)
    return a if bits >= 8 else a & np.uint8((0xFF << (8 - bits)) & 0xFF)


def _invert(a: np.ndarray, m: float, fill: int) -> np.ndarray:
    return ~a


def _solarize(a: np.ndarray, m: float, fill: int) -> np.ndarray:
    return _take(_fixed_lut("Solarize", m), a)


def _brightness(a: np.ndarray, m: float, fill: int) -> np.ndarray:
    return _take(_fixed_lut("Brightness", m), a)


def _autocontrast(a: np.ndarray, m: float, fill: int) -> np.ndarray:
    flat = a.reshape(a.shape[0], -1)
    # the float32 steps of torchvision's autocontrast_image, on the 256 values instead of every pixel
    lo = torch.from_numpy(flat.min(axis=1)).float().view(-1, 1)
    hi = torch.from_numpy(flat.max(axis=1)).float().view(-1, 1)
    same = hi == lo
    inv_scale = hi.sub_(lo).mul_(1.0 / 255)
    lo[same], inv_scale[same] = 0.0, 1.0
    lut = _RAMP.float().expand(a.shape[0], 256).sub(lo).div_(inv_scale).clamp_(0, 255).to(torch.uint8)
    return _take(lut.numpy(), a)


def _histogram(plane: np.ndarray) -> list[int]:
    """The 256-bin histogram of one uint8 plane (PIL's C loop: no torch threads, no int64 copy)."""
    h, w = plane.shape
    return Image.frombuffer("L", (w, h), plane, "raw", "L", 0, 1).histogram()


def _equalize(a: np.ndarray, m: float, fill: int) -> np.ndarray:
    c, h, w = a.shape
    hist = np.array([_histogram(plane) for plane in a], dtype=np.int64)
    cum = np.zeros((c, 257), dtype=np.int64)  # cum[:, k] = pixels below value k
    np.cumsum(hist, axis=1, out=cum[:, 1:])
    # PIL's and torchvision's table: lut[k] = (cum[k] + step // 2) // step, step from the non-top pixels
    step = (h * w - hist[np.arange(c), cum[:, 1:].argmax(axis=1)]) // 255
    lut = np.minimum((cum[:, :256] + step[:, None] // 2) // np.maximum(step, 1)[:, None], 255)
    lut = lut.astype(np.uint8)
    if not step.all():
        lut[step == 0] = np.arange(256, dtype=np.uint8)  # a channel of one or nearly one value stays as it is
    return _take(lut, a)


def _grey(a: np.ndarray) -> torch.Tensor:
    """floor(0.2989 R + 0.587 G + 0.114 B) in float32, computed by the same torch ops as torchvision's."""
    r, g, b = torch.from_numpy(a).unbind(0)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).floor_()


def _contrast(a: np.ndarray, m: float, fill: int) -> np.ndarray:
    factor = 1.0 + m
    grey = torch.from_numpy(a).float() if a.shape[0] == 1 else _grey(a)
    mean = grey.mean().view(1)
    # torchvision's _blend(image, mean, factor) on the 256 values
    return _take(_RAMP.mul(factor).add_(mean, alpha=1.0 - factor).clamp_(0, 255).to(torch.uint8).numpy(), a)


def _color(a: np.ndarray, m: float, fill: int) -> np.ndarray:
    if a.shape[0] == 1 or m == 0.0:
        return a  # torchvision leaves one channel as it is; factor 1 blends to the image itself
    # torchvision's own float blend: exact needs its float rounding, and a 256×256 table was no faster
    factor = 1.0 + m
    out = torch.from_numpy(a).mul(factor).add_(_grey(a), alpha=1.0 - factor).clamp_(0, 255)
    return out.to(torch.uint8).numpy()


_PAIR_X = torch.arange(256, dtype=torch.float32).repeat(256)  # the pixel, fastest-varying
_PAIR_Y = torch.arange(256, dtype=torch.float32).repeat_interleave(256)  # the blurred value


@functools.lru_cache(maxsize=_LUT_CACHE)
def _sharpness_table(factor: float) -> np.ndarray:
    """table[b·256 + x]: adjust_sharpness's float blend x + (1 − factor)(b − x) of pixel x, blurred b."""
    x = _PAIR_X.clone()
    return x.add_(_PAIR_Y.sub(x), alpha=1.0 - factor).clamp_(0, 255).to(torch.uint8).numpy()


def _sharpness(a: np.ndarray, m: float, fill: int) -> np.ndarray:
    c, h, w = a.shape
    if h <= 2 or w <= 2:
        return a
    x = a.astype(np.int16)
    s = 4 * x[:, 1:-1, 1:-1]
    for dy in range(3):
        for dx in range(3):
            s += x[:, dy : h - 2 + dy, dx : w - 2 + dx]
    # torchvision rounds the float conv (weights 1/13, centre 5/13); s/13 is never within float error of .5
    blurred = ((2 * s + 13) // 26).astype(np.int32)
    out = a.copy()
    out[:, 1:-1, 1:-1] = np.take(_sharpness_table(1.0 + m), blurred * 256 + x[:, 1:-1, 1:-1])
    return out


# -- geometric ops: one gather through a cached source index ---------------------------------------

_NEAREST = InterpolationMode.NEAREST
_GEOMETRY: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {  # as torchvision's AutoAugment calls them
    "ShearX": lambda t, m: F.affine(
        t, angle=0.0, translate=[0, 0], scale=1.0, shear=[math.degrees(math.atan(m)), 0.0],
        interpolation=_NEAREST, center=[0, 0],
    ),
    "ShearY": lambda t, m: F.affine(
        t, angle=0.0, translate=[0, 0], scale=1.0, shear=[0.0, math.degrees(math.atan(m))],
        interpolation=_NEAREST, center=[0, 0],
    ),
    "TranslateX": lambda t, m: F.affine(
        t, angle=0.0, translate=[int(m), 0], scale=1.0, shear=[0.0, 0.0], interpolation=_NEAREST
    ),
    "TranslateY": lambda t, m: F.affine(
        t, angle=0.0, translate=[0, int(m)], scale=1.0, shear=[0.0, 0.0], interpolation=_NEAREST
    ),
    "Rotate": lambda t, m: F.rotate(t, angle=m, interpolation=_NEAREST),
}  # fmt: skip


@functools.lru_cache(maxsize=32)  # 8 per crop size for the ImageNet policy; 400 kB each at 224²
def source_index(op: str, m: float, height: int, width: int) -> np.ndarray:
    """For each output pixel, the flat index of the input pixel it takes (height·width: the fill).

    Found by torchvision's own op on an image holding each pixel's number (exact in float32 below 2^24
    pixels), so the matrix, the centre and the rounding of its grid are torchvision's to the last pixel.
    """
    if height * width >= 1 << 24:
        raise ValueError(f"AutoAugment's geometric ops take images under 2^24 pixels, got {height}×{width}")
    numbers = torch.arange(1, height * width + 1, dtype=torch.float32).view(1, height, width)
    index = _GEOMETRY[op](numbers, m).reshape(-1).to(torch.int64).numpy() - 1
    index[index < 0] = height * width  # out of the image: grid_sample's zero padding
    return index


def _geometric(op: str) -> Callable[[np.ndarray, float, int], np.ndarray]:
    def apply(a: np.ndarray, m: float, fill: int) -> np.ndarray:
        c, h, w = a.shape
        padded = np.empty((c, h * w + 1), dtype=np.uint8)
        padded[:, :-1] = a.reshape(c, -1)
        padded[:, -1] = fill
        return np.take(padded, source_index(op, m, h, w), axis=1, mode="clip").reshape(c, h, w)

    return apply


OPS: dict[str, Callable[[np.ndarray, float, int], np.ndarray]] = {
    **{op: _geometric(op) for op in _GEOMETRY},
    "Brightness": _brightness,
    "Color": _color,
    "Contrast": _contrast,
    "Sharpness": _sharpness,
    "Posterize": _posterize,
    "Solarize": _solarize,
    "AutoContrast": _autocontrast,
    "Equalize": _equalize,
    "Invert": _invert,
}
