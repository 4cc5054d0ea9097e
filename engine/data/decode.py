"""Read and decode one image file to a uint8 3×H×W tensor, as cheaply as the transform allows.

JPEG: the size comes from the header, the transform plans its crop, and the file is decoded by
torchvision's libjpeg-turbo decoder (full size), or by PIL's ``draft()`` at 1/2, 1/4 or 1/8 scale when the
crop keeps enough pixels at that scale. Anything else (PNG, BMP, WebP, CMYK JPEG, …) goes through
``torchvision.io.decode_image`` and then PIL. A file no decoder can read raises :class:`BadImage`.
"""

from __future__ import annotations

import io
import os
import random
from typing import Optional

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from engine.data.transforms import Transform

try:
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg
except ImportError:  # torchvision built without its image extension: PIL does it all
    decode_jpeg = decode_image = ImageReadMode = None  # type: ignore[assignment]

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class BadImage(Exception):
    """A file that is missing, unreadable or no decoder accepts."""


def read_bytes(path: str) -> bytearray:
    """The file's bytes in a writable buffer (torch.frombuffer warns on read-only ones)."""
    with open(path, "rb") as f:
        buf = bytearray(os.fstat(f.fileno()).st_size)
        f.readinto(buf)
    return buf


def jpeg_frame(buf: bytes) -> Optional[tuple[int, int, int]]:
    """(height, width, components) from a JPEG's frame header, or None when `buf` is not a readable JPEG."""
    if len(buf) < 4 or buf[0] != 0xFF or buf[1] != 0xD8:
        return None
    pos, n = 2, len(buf)
    while pos + 4 <= n:
        if buf[pos] != 0xFF:
            return None
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        length = (buf[pos + 2] << 8) | buf[pos + 3]
        if marker in _SOF:
            if pos + 10 > n:
                return None
            h = (buf[pos + 5] << 8) | buf[pos + 6]
            w = (buf[pos + 7] << 8) | buf[pos + 8]
            return (h, w, buf[pos + 9]) if h > 0 and w > 0 else None
        pos += 2 + length
    return None


def jpeg_size(buf: bytes) -> Optional[tuple[int, int]]:
    """(height, width) from a JPEG's frame header, or None when `buf` is not a readable JPEG."""
    frame = jpeg_frame(buf)
    return None if frame is None else frame[:2]


def decode_rgb(buf: bytearray, path: str) -> torch.Tensor:
    """The whole image at full size as the loaders decode it (3×H×W uint8); BadImage when nothing can."""
    if not buf:
        raise BadImage(f"{path}: empty file")
    if jpeg_size(buf) is not None:
        return _decode_jpeg(buf, 1, path)
    return _decode_other(buf, path)


def load_image(path: str, transform: Transform, rng: random.Random) -> torch.Tensor:
    """Read, decode and transform one file; raise BadImage when it cannot be decoded."""
    try:
        buf = read_bytes(path)
    except OSError as e:
        raise BadImage(f"{path}: {e.strerror or e}") from e
    if not buf:
        raise BadImage(f"{path}: empty file")
    hw = jpeg_size(buf)
    if hw is not None:
        plan = transform.plan(hw[0], hw[1], rng)
        scale = transform.reduction(hw[0], hw[1], plan)
        img = _decode_jpeg(buf, scale, path)
        return transform(img, plan, full_hw=hw)
    img = _decode_other(buf, path)
    plan = transform.plan(img.shape[1], img.shape[2], rng)
    return transform(img, plan)


def _decode_jpeg(buf: bytearray, scale: int, path: str) -> torch.Tensor:
    if scale == 1 and decode_jpeg is not None:
        try:
            return decode_jpeg(torch.frombuffer(buf, dtype=torch.uint8), mode=ImageReadMode.RGB)
        except RuntimeError:
            pass  # e.g. CMYK, or a libjpeg error PIL may tolerate: let PIL try
    return _decode_pil(buf, path, scale)


def _decode_other(buf: bytearray, path: str) -> torch.Tensor:
    if decode_image is not None:
        try:
            return decode_image(torch.frombuffer(buf, dtype=torch.uint8), mode=ImageReadMode.RGB)
        except (RuntimeError, ValueError):
            pass
    return _decode_pil(buf, path, 1)


def _decode_pil(buf: bytearray, path: str, scale: int) -> torch.Tensor:
    try:
        with Image.open(io.BytesIO(buf)) as im:
            if scale > 1:  # DCT-domain downscale: decodes 1/scale² of the pixels
                im.draft("RGB", (im.size[0] // scale, im.size[1] // scale))
            rgb = im if im.mode == "RGB" else im.convert("RGB")
            arr = np.array(rgb)  # a writable copy: from_numpy shares it
    except UnidentifiedImageError as e:
        raise BadImage(f"{path}: not an image any decoder here reads") from e
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError, DecompressionBomb…)
        raise BadImage(f"{path}: {type(e).__name__}: {e}") from e
    return torch.from_numpy(arr).permute(2, 0, 1)
