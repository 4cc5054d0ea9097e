"""Writing DEST: each image checked with the engine's own decoder (rewritten or left out when it must
be), each class folder complete or absent (written under a temp name, then renamed), files atomic.

Runs in the prepare's worker processes, which import no torch: a kept image is checked with
:func:`engine.data.decode.verify_rgb` (the engine's decoder at 1/8 scale, its full decode when that fails),
and only a rewrite or a resize decodes pixels. A class's inner tar is read from the archive here (its
:class:`Span`), and its members are cut from those bytes without copying them again.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from engine.data.prepare.errors import PrepareError
from engine.data.prepare.sources import Span

REWRITE_QUALITY = 95  # a CMYK or PNG image rewritten as an RGB JPEG
RESIZE_QUALITY = 90  # a --resize copy
PARTIAL = ".partial"  # suffix of a folder being written; a rerun removes it

Data = Union[bytes, str, Span]  # bytes, a file's path, or a member of an archive
Raw = Union[bytes, memoryview]  # one image's bytes (a slice of its class's inner tar)
_BLOCK = 512  # tar's block
_NUL_BLOCK = bytes(_BLOCK)
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")  # object addresses in messages: the manifest must not vary


@dataclass
class Report:
    """What became of a group of images: counts, the rewritten and the dropped (path and why)."""

    images: int = 0
    bytes_in: int = 0
    resized: int = 0
    rewritten: list[list[str]] = field(default_factory=list)
    dropped: list[list[str]] = field(default_factory=list)

    def add(self, other: Report) -> None:
        self.images += other.images
        self.bytes_in += other.bytes_in
        self.resized += other.resized
        self.rewritten += other.rewritten
        self.dropped += other.dropped

    def to_json(self) -> dict[str, Any]:
        return self.__dict__

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Report:
        return cls(**d)


def fix_image(data: Raw, rel: str, resize: Optional[int]) -> tuple[Optional[Raw], str]:
    """The bytes DEST gets for one image (None: left out) and what was done: kept, resized, rewritten: …
    or dropped: …. Every image returned decodes as RGB with the engine's decoder."""
    from engine.data.decode import BadImage, decode_rgb, jpeg_frame, verify_rgb

    frame = jpeg_frame(data)
    why = None if frame is not None and frame[2] in (1, 3) else _rewrite_reason(data, frame)
    small = frame is not None and (resize is None or min(frame[0], frame[1]) <= resize)
    if why is None and small:
        try:
            verify_rgb(data, rel)
        except BadImage as e:
            return None, f"dropped: {_reason(e, rel)}"
        return data, "kept"
    try:
        img = _open_rgb(data, decode_rgb if why is None else None, rel)
    except BadImage as e:
        return None, f"dropped: {_reason(e, rel)}"
    resized = resize is not None and min(img.size) > resize
    if resized:
        img = _shrink(img, resize)  # type: ignore[arg-type]
    out = io.BytesIO()
    img.save(out, "JPEG", quality=RESIZE_QUALITY if resized else REWRITE_QUALITY)
    verify_rgb(out.getvalue(), rel)  # our own output: a failure here is a bug, not bad data
    return out.getvalue(), f"rewritten: {why}" if why else "resized"


def _rewrite_reason(data: Raw, frame: Optional[tuple[int, int, int]]) -> str:
    if frame is not None:
        return "CMYK JPEG" if frame[2] == 4 else f"JPEG with {frame[2]} channels"
    if bytes(data[:8]) == b"\x89PNG\r\n\x1a\n":
        return "PNG named .JPEG"
    return "not a JPEG"


def _reason(e: Exception, rel: str) -> str:
    text = _ADDRESS.sub("", str(e))
    return text[len(rel) + 2 :] if text.startswith(rel + ": ") else text


def _open_rgb(data: Raw, engine_decode: Any, rel: str) -> Any:
    """PIL's RGB image: through the engine's decoder for a plain JPEG, else PIL (CMYK done right)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from engine.data.decode import BadImage

    if engine_decode is not None:
        return Image.fromarray(
            np.ascontiguousarray(engine_decode(bytearray(data), rel).permute(1, 2, 0).numpy())
        )
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.convert("RGB")
    except UnidentifiedImageError as e:
        raise BadImage(f"{rel}: not an image any decoder here reads") from e
    except Exception as e:  # PIL raises many types for a broken file
        raise BadImage(f"{rel}: {type(e).__name__}: {_ADDRESS.sub('', str(e))}") from e


def _shrink(img: Any, resize: int) -> Any:
    from PIL import Image

    w, h = img.size
    scale = resize / min(w, h)
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC, reducing_gap=3.0)


def class_items(data: Data, where: str) -> list[tuple[str, Union[Raw, str]]]:
    """(file name, bytes or path) of one class: the members of its inner tar, or its folder's files."""
    if isinstance(data, str):
        return [(e.name, e.path) for e in sorted(os.scandir(data), key=lambda e: e.name) if e.is_file()]
    if isinstance(data, Span):
        data = data.read()
    plain = _plain_members(data)
    if plain is not None:
        return plain  # type: ignore[return-value]
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            return [(os.path.basename(m.name), tar.extractfile(m).read()) for m in tar if m.isfile()]  # type: ignore[union-attr]
    except (tarfile.TarError, EOFError) as e:
        raise PrepareError(f"{where} is damaged ({e}): download the archive again") from e


def _plain_members(data: bytes) -> Optional[list[tuple[str, memoryview]]]:
    """The members of a tar of plain files (ImageNet's inner tars: ustar or GNU headers, regular files, ASCII
    names) as slices of `data`, at a few microseconds a member; None for anything else (a long name, a pax
    header, a link, a folder, a bad checksum, a short archive), which tarfile then reads as it always did."""
    view, pos, out = memoryview(data), 0, []
    while pos + _BLOCK <= len(data):
        header = data[pos : pos + _BLOCK]
        if header == _NUL_BLOCK:
            return out  # the end-of-archive blocks
        if header[156] not in b"0\0" or header[124] & 0x80:  # a plain file; no base-256 size
            return None
        try:
            size = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
            checksum = int(header[148:156].split(b"\0", 1)[0].strip() or b"-1", 8)
            name = header[:100].split(b"\0", 1)[0].decode("ascii")
        except (ValueError, UnicodeDecodeError):
            return None
        if checksum != sum(header) - sum(header[148:156]) + 8 * 32 or not name or name.endswith("/"):
            return None
        start = pos + _BLOCK
        if start + size > len(data):
            return None
        out.append((os.path.basename(name), view[start : start + size]))
        pos = start + -(-size // _BLOCK) * _BLOCK
    return None if pos else out  # no end-of-archive block: tarfile decides (an empty tar is fine)


def write_images(items: list[tuple[str, Data]], folder: Path, rel: str, resize: Optional[int]) -> Report:
    """Write each image into `folder` (which exists) as DEST gets it; `rel` is its path inside DEST."""
    report = Report()
    for name, data in items:
        raw = _load(data)
        report.images += 1
        report.bytes_in += len(raw)
        out, what = fix_image(raw, f"{rel}/{name}", resize)
        if out is None:
            report.dropped.append([f"{rel}/{name}", what.split(": ", 1)[1]])
            continue
        if what.startswith("rewritten"):
            report.rewritten.append([f"{rel}/{name}", what.split(": ", 1)[1]])
        report.resized += what == "resized"
        _write(folder / name, out)
    return report


def _write(path: Path, data: Raw) -> None:
    """A new file holding `data` (the folder is a temp one: a rename makes it visible, whole)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def write_class(dest: Path, split: str, wnid: str, data: Data, resize: Optional[int], state: Path) -> Report:
    """One class folder, complete or absent: written as `<wnid>.partial`, its report saved, then renamed."""
    final = dest / split / wnid
    tmp = dest / split / f".{wnid}{PARTIAL}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    report = write_images(class_items(data, f"{split}/{wnid}"), tmp, f"{split}/{wnid}", resize)
    atomic_write(state / f"{split}-{wnid}.json", json.dumps(report.to_json(), sort_keys=True).encode())
    os.rename(tmp, final)  # the class appears whole or not at all
    return report


def _load(data: Union[Data, memoryview]) -> Raw:
    if isinstance(data, (bytes, memoryview)):
        return data
    if isinstance(data, Span):
        return data.read()
    with open(data, "rb") as f:
        return f.read()


def atomic_write(path: Path, data: bytes) -> None:
    """Write + rename: a reader sees the old file or the new one, never a part."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
