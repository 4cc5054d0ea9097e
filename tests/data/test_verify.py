"""verify_rgb, prepare's check that an image decodes: its 1/8-scale pass (which skips most of the IDCT and
colour work) must reject every file the engine's full decoder rejects. Deliberately broken JPEGs (cut at
many points, bytes of the entropy-coded data flipped, markers dropped into it, runs zeroed or deleted,
header bytes changed) in the forms a camera or an encoder writes: baseline 4:2:0 and 4:4:4, progressive,
grayscale, with restart markers."""

from __future__ import annotations

import io
import random

import pytest
from PIL import ImageFile

from engine.data import decode
from engine.data.decode import BadImage, decode_rgb, decodes_at_one_eighth, verify_rgb
from engine.data.testing import render_image

FORMS = {
    "baseline 4:2:0": {"quality": 90},
    "baseline 4:4:4": {"quality": 95, "subsampling": 0},
    "progressive": {"quality": 90, "progressive": True},
    "grayscale": {"quality": 90},
    "restart markers": {"quality": 90, "restart_marker_rows": 1},
}


def encoded(form: str) -> bytes:
    img = render_image(3, 4, 173, 131, grain=16.0)  # not a multiple of the MCU: partial blocks at the edges
    out = io.BytesIO()
    (img.convert("L") if form == "grayscale" else img).save(out, "JPEG", **FORMS[form])
    return out.getvalue()


def scan_start(b: bytes) -> int:
    """Where the first scan's entropy-coded data begins."""
    i = b.index(b"\xff\xda")
    return i + 2 + (b[i + 2] << 8 | b[i + 3])


def broken(b: bytes, seed: int) -> list[tuple[str, bytes]]:
    rng, n, s = random.Random(seed), len(b), scan_start(b)
    cases = [(f"cut at {k}", b[:k]) for k in sorted({2, 100, s, s + 1, n - 3, n - 2, n - 1})]
    cases += [(f"cut at {k}", b[:k]) for k in (rng.randrange(3, n) for _ in range(30))]
    for _ in range(90):
        x, p = bytearray(b), rng.randrange(s, n - 2)
        how = rng.choice(["xor", "0xFF", "0x00", "marker", "EOI", "DHT", "RST", "zeros", "delete"])
        if how == "xor":
            x[p] ^= rng.randrange(1, 256)
        elif how in ("0xFF", "0x00"):
            x[p] = int(how, 16)
        elif how == "marker":
            x[p : p + 2] = bytes([0xFF, rng.randrange(0xC0, 0xFF)])
        elif how == "EOI":
            x[p : p + 2] = b"\xff\xd9"
        elif how == "DHT":
            x[p : p + 4] = b"\xff\xc4\x00\x05"
        elif how == "RST":
            x[p : p + 2] = bytes([0xFF, 0xD0 + rng.randrange(8)])
        elif how == "zeros":
            x[p : p + 200] = bytes(len(x[p : p + 200]))
        else:
            del x[p : p + rng.randrange(1, 3000)]
        cases.append((f"{how} at {p}", bytes(x)))
    for _ in range(30):
        x, p = bytearray(b), rng.randrange(2, s)
        x[p] = rng.randrange(256)
        cases.append((f"header byte {p}", bytes(x)))
    return cases


def full_decoder_accepts(b: bytes) -> bool:
    try:
        decode_rgb(bytearray(b), "x.JPEG")
        return True
    except BadImage:
        return False


def verify_accepts(b: bytes) -> bool:
    try:
        verify_rgb(b, "x.JPEG")
        return True
    except BadImage:
        return False


@pytest.mark.parametrize("form", list(FORMS))
def test_the_one_eighth_pass_rejects_whatever_the_full_decoder_rejects(form):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # else PIL would pad a short file and pass it
    good = encoded(form)
    assert decodes_at_one_eighth(good) and full_decoder_accepts(good)
    cases = broken(good, seed=len(FORMS[form]) + len(form))
    verdicts = [
        (what, full_decoder_accepts(b), decodes_at_one_eighth(b), verify_accepts(b)) for what, b in cases
    ]
    let_through = [what for what, full, eighth, _ in verdicts if eighth and not full]
    assert not let_through, f"{form}: the 1/8 pass accepts what the full decoder rejects: {let_through}"
    differ = [what for what, full, _, verified in verdicts if verified != full]
    assert not differ, f"{form}: verify_rgb's verdict is not the full decoder's: {differ}"
    rejected = [what for what, full, _, _ in verdicts if not full]
    cuts = [what for what, *_ in verdicts if what.startswith("cut")]
    assert set(cuts) <= set(rejected)  # every truncation is caught, the last byte's included
    assert len(rejected) > len(cuts)  # and some of the damage inside the data too: the test has teeth


def test_a_good_jpeg_is_verified_without_the_full_decoder(monkeypatch):
    def no(*_):
        raise AssertionError("the full decoder ran")

    monkeypatch.setattr(decode, "decode_rgb", no)
    verify_rgb(encoded("baseline 4:2:0"), "x.JPEG")
    verify_rgb(memoryview(encoded("progressive")), "x.JPEG")  # a slice of an inner tar


def test_what_is_no_plain_jpeg_gets_the_full_decoders_verdict():
    cmyk, png = io.BytesIO(), io.BytesIO()
    render_image(0, 0, 40, 30).convert("CMYK").save(cmyk, "JPEG")
    render_image(0, 0, 40, 30).save(png, "PNG")
    verify_rgb(cmyk.getvalue(), "cmyk.JPEG")  # PIL converts CMYK as the engine's decoder does
    verify_rgb(png.getvalue(), "png.JPEG")
    for bad in (b"", b"\xff\xd8\xff", bytes(300)):
        with pytest.raises(BadImage):
            verify_rgb(bad, "bad.JPEG")
