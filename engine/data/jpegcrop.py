"""Decode only the window a training crop needs: libjpeg-turbo's partial decode (`_jpegcrop.c`).

A RandomResizedCrop keeps on average about half of an image. libjpeg-turbo can stop after the window's
last row (`jpeg_abort_decompress`), entropy-decode the rows above it without their inverse DCT
(`jpeg_skip_scanlines`) and run the DCT, upsampling and colour conversion only on the window's iMCU
columns (`jpeg_crop_scanline`) — what DALI's CPU decoder does. The pixels are those of a full decode
(tests/data/test_jpegcrop.py); about a quarter of the decode time goes. The extension is optional: built by
`pip install` where libjpeg's headers (Debian: libjpeg-dev) and a C compiler are present, else the
loaders decode whole images as before.

Bad files: any libjpeg error or warning returns None and the full decoder judges the file as before. A
stream that does not end with its end-of-image marker (a truncated file, the usual damage) is read to its
end, rows below the window entropy-decoded only, so it fails whichever the window; damage inside the stream
below the window of a file that ends well is not seen in that epoch (as with DALI), and is in an epoch
whose window reaches it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import torch

try:
    from engine.data._jpegcrop import decode_window as _decode_window
except ImportError:  # not built here: whole-image decoding
    _decode_window = None

TAIL = 64  # bytes at the end searched for the end-of-image marker (some writers pad after it)
BUILD_HINT = "apt-get install libjpeg-dev (and a C compiler), then pip install -e . again"


def available() -> bool:
    """Whether the window decoder was built on this machine."""
    return _decode_window is not None


def scaled_size(height: int, width: int, scale: int) -> tuple[int, int]:
    """The size libjpeg decodes an image to at 1/`scale` (rounded up, as its jdiv_round_up does)."""
    return -(-height // scale), -(-width // scale)


def decode_window(
    buf: bytes, top: int, left: int, height: int, width: int, scale: int = 1
) -> Optional[torch.Tensor]:
    """The window (in pixels of the 1/`scale` decode) as a 3×height×width uint8 tensor (an H×W×C buffer
    seen channels-first), or None when the decoder is absent or libjpeg reports any problem."""
    if _decode_window is None:
        return None
    whole = buf.rfind(b"\xff\xd9", max(0, len(buf) - TAIL)) < 0  # no end marker: read all, judge all
    try:
        data = _decode_window(buf, top, left, height, width, scale, whole)
    except ValueError:
        return None
    import torch

    return torch.frombuffer(data, dtype=torch.uint8).view(height, width, 3).permute(2, 0, 1)
