"""Read and decode one image file to a uint8 3×H×W tensor, as cheaply as the transform allows.

JPEG: the size comes from the header, the transform plans its crop, and the file is decoded: only the
crop's window where the window decoder is built (engine/data/jpegcrop.py), else whole, by torchvision's
libjpeg-turbo decoder (full size) or by PIL's ``draft()`` at 1/2, 1/4 or 1/8 scale when the crop keeps
enough pixels at that scale. Anything else (PNG, BMP, WebP, CMYK JPEG, …) goes through
``torchvision.io.decode_image`` and then PIL. A file no decoder can read raises :class:`BadImage`.

:func:`verify_rgb` says whether a file decodes as RGB here without keeping its pixels (`data prepare` and
`data check`): a JPEG is decoded at 1/8 scale, which runs every entropy-coded block through libjpeg-turbo
(a truncated or broken stream fails as it does at full size) but skips most of the IDCT and colour work;
only when that fails does the full decoder give the verdict. torch is imported on the first tensor decode,
not by importing this module: verifying needs PIL alone (a prepare's workers start without torch).
"""

from __future__ import annotations

import io
import os
import random
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.data import jpegcrop

if TYPE_CHECKING:
    import torch

    from engine.data.transforms import Crop, Transform

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


_tvio: Optional[tuple[Any, Any, Any, Any]] = None  # (torch, decode_jpeg, decode_image, ImageReadMode)


def _torchvision() -> tuple[Any, Any, Any, Any]:
    """torch and torchvision's decoders (None when torchvision lacks its image extension), on first use."""
    global _tvio
    if _tvio is None:
        import torch

        try:
            from torchvision.io import ImageReadMode, decode_image, decode_jpeg
        except ImportError:  # torchvision built without its image extension: PIL does it all
            decode_jpeg = decode_image = ImageReadMode = None  # type: ignore[assignment]
        _tvio = (torch, decode_jpeg, decode_image, ImageReadMode)
    return _tvio


def verify_rgb(buf: bytes, path: str) -> None:
    """Raise BadImage when `buf` does not decode as RGB with :func:`decode_rgb`; decodes no more than it must.

    A JPEG of 1 or 3 components is decoded at 1/8 scale (:func:`decodes_at_one_eighth`); when that fails,
    and for anything else, the full decoder gives the verdict (and its reason)."""
    if not buf:
        raise BadImage(f"{path}: empty file")
    frame = jpeg_frame(buf)
    if frame is not None and frame[2] in (1, 3) and decodes_at_one_eighth(buf):
        return
    decode_rgb(buf if isinstance(buf, bytearray) else bytearray(buf), path)


def decodes_at_one_eighth(buf: bytes) -> bool:
    """Whether PIL decodes the JPEG `buf` at 1/8 scale (``draft()``: libjpeg-turbo's DCT-domain reduction).

    Every Huffman-coded block is still decoded, so a truncated or damaged stream fails here as it does at
    full size (tests/data/test_verify.py checks the verdicts agree on deliberately broken files); only the
    inverse DCT, upsampling and colour conversion of 63 pixels in 64 are skipped. Damage libjpeg only warns
    about passes in both. PIL's ``LOAD_TRUNCATED_IMAGES`` must stay False (a short file must fail)."""
    try:
        with Image.open(io.BytesIO(buf), formats=("JPEG",)) as im:
            im.draft("RGB", (1, 1))  # the largest reduction that keeps a pixel: 1/8
            im.load()
        return True
    except Exception:  # PIL raises many types (OSError, SyntaxError, ValueError, DecompressionBomb…)
        return False


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
        img, plan, full_hw = decode_planned(buf, hw, plan, transform.reduction(hw[0], hw[1], plan), path)
        return transform(img, plan, full_hw=full_hw)
    img = _decode_other(buf, path)
    plan = transform.plan(img.shape[1], img.shape[2], rng)
    return transform(img, plan)


def decode_planned(
    buf: bytearray, hw: tuple[int, int], plan: Crop, scale: int, path: str
) -> tuple[torch.Tensor, Crop, Optional[tuple[int, int]]]:
    """The pixels a JPEG's crop `plan` needs, decoded at 1/`scale`: (image, the plan in the image's
    coordinates, the full size the transform rescales the plan from, or None when it needs no rescaling).

    A plan smaller than the image is decoded as its window alone where the window decoder is built
    (engine/data/jpegcrop.py); otherwise, or when libjpeg reports anything, the whole image is decoded."""
    if (plan.height, plan.width) != tuple(hw):
        from engine.data.transforms import _rescale

        top, left, h, w = _rescale(plan, jpegcrop.scaled_size(hw[0], hw[1], scale), hw)
        img = jpegcrop.decode_window(buf, top, left, h, w, scale)
        if img is not None:
            return img, replace(plan, top=0, left=0, height=h, width=w), None
    return _decode_jpeg(buf, scale, path), plan, hw


def _decode_jpeg(buf: bytearray, scale: int, path: str) -> torch.Tensor:
    torch, decode_jpeg, _, ImageReadMode = _torchvision()
    if scale == 1 and decode_jpeg is not None:
        try:
            return decode_jpeg(torch.frombuffer(buf, dtype=torch.uint8), mode=ImageReadMode.RGB)
        except RuntimeError:
            pass  # e.g. CMYK, or a libjpeg error PIL may tolerate: let PIL try
    return _decode_pil(buf, path, scale)


def _decode_other(buf: bytearray, path: str) -> torch.Tensor:
    torch, _, decode_image, ImageReadMode = _torchvision()
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
    return _torchvision()[0].from_numpy(arr).permute(2, 0, 1)
