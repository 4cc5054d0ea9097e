"""The window decoder (engine/data/jpegcrop.py): a crop decoded alone has the pixels of a full decode, in
every form a JPEG comes in and at every reduced scale; the loaders' images are the same with it and
without it; a truncated file is judged bad whichever the window, as the full decoder judges it."""

from __future__ import annotations

import io
import random

import pytest
import torch

from engine.data import decode, jpegcrop
from engine.data.decode import BadImage, decode_rgb, load_image
from engine.data.testing import render_image
from engine.data.transforms import TrainTransform, sample_crop, sample_rng
from tests.data.test_verify import FORMS, broken

pytestmark = pytest.mark.skipif(
    not jpegcrop.available(), reason=f"the window decoder is not built here: {jpegcrop.BUILD_HINT}"
)

SIZES = [(173, 131), (500, 375), (64, 48)]  # odd sizes: partial iMCUs at the right and bottom edges


def encoded(form: str, size: tuple[int, int] = (173, 131)) -> bytes:
    img = render_image(3, 4, *size, grain=16.0)
    out = io.BytesIO()
    (img.convert("L") if form == "grayscale" else img).save(out, "JPEG", **FORMS[form])
    return out.getvalue()


def whole(buf: bytes, scale: int) -> torch.Tensor:
    """The full decode at 1/scale, by the same libjpeg (a window of the whole image)."""
    h, w = jpegcrop.scaled_size(*decode.jpeg_size(buf), scale)
    return jpegcrop.decode_window(buf, 0, 0, h, w, scale)


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("size", SIZES)
def test_a_window_has_the_pixels_of_the_full_decode(form: str, size: tuple[int, int]) -> None:
    buf = encoded(form, size)
    full = decode_rgb(bytearray(buf), "x")  # torchvision's decoder, the loaders' full-size path
    assert torch.equal(whole(buf, 1), full)
    rng = random.Random(f"{form}{size}")
    for scale in (1, 2, 4, 8):
        reference = whole(buf, scale)
        h, w = reference.shape[1:]
        for _ in range(40):
            c = sample_crop(h, w, rng)
            window = jpegcrop.decode_window(buf, c.top, c.left, c.height, c.width, scale)
            assert window is not None and window.shape == (3, c.height, c.width)
            assert torch.equal(window, reference[:, c.top : c.top + c.height, c.left : c.left + c.width]), (
                scale, c)  # fmt: skip


def test_the_loaders_images_are_the_same_with_and_without_the_window_decoder(tmp_path, monkeypatch):
    paths = []
    for i, (form, size) in enumerate([("baseline 4:2:0", (500, 375)), ("progressive", (333, 500)),
                                      ("baseline 4:4:4", (900, 700)), ("grayscale", (500, 375))]):  # fmt: skip
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(encoded(form, size))
        paths.append(str(path))
    transforms = [TrainTransform(224), TrainTransform(64), TrainTransform(128, "bicubic", "autoaugment")]
    calls = {"n": 0}
    real = jpegcrop._decode_window

    def counted(*args):
        calls["n"] += 1
        return real(*args)

    def images(window: bool) -> list[torch.Tensor]:
        monkeypatch.setattr(jpegcrop, "_decode_window", counted if window else None)
        return [load_image(p, t, sample_rng(7, 1, i)) for t in transforms for p in paths for i in range(12)]

    without = images(False)
    assert calls["n"] == 0
    with_window = images(True)
    assert calls["n"] > 100  # the window decoder did the work (a 900x700 at 64 px: reduced scales too)
    for a, b in zip(with_window, without):
        assert torch.equal(a, b)
    plain = with_window[: 2 * len(paths) * 12]  # the transforms without AutoAugment
    assert all(
        a.permute(1, 2, 0).is_contiguous() for a in plain
    )  # channels-last: collate copies, never transposes


@pytest.mark.parametrize("form", ["baseline 4:2:0", "progressive", "restart markers"])
def test_a_truncated_file_is_bad_whichever_the_window(tmp_path, form):
    buf = encoded(form, (500, 375))
    path = tmp_path / "cut.jpg"
    transform = TrainTransform(64)
    for name, damaged in broken(buf, seed=3):
        if not name.startswith("cut at"):
            continue
        path.write_bytes(damaged)
        try:
            decode_rgb(bytearray(damaged), "x")
            full_bad = False
        except BadImage:
            full_bad = True
        verdicts = set()
        for i in range(8):
            try:
                load_image(str(path), transform, sample_rng(0, 0, i))
                verdicts.add(False)
            except BadImage:
                verdicts.add(True)
        assert verdicts == {full_bad}, name


def test_damage_the_window_reaches_is_left_to_the_full_decoder():
    buf = encoded("baseline 4:2:0", (500, 375))
    for name, damaged in broken(buf, seed=5):
        if jpegcrop.decode_window(damaged, 0, 0, 375, 500, 1) is None:
            continue  # libjpeg complained: the full decoder judges it
        assert torch.equal(
            jpegcrop.decode_window(damaged, 0, 0, 375, 500, 1), decode_rgb(bytearray(damaged), name)
        )
