"""A class's inner tar, cut into its members by prepare's own reader (plain ustar/GNU tars of files, as
ImageNet's are) or by tarfile (anything else): both give what tarfile gives."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from engine.data.prepare.errors import PrepareError
from engine.data.prepare.write import _plain_members, class_items


def inner_tar(fmt: int, names: list[str], folder: bool = False) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as t:
        if folder:
            d = tarfile.TarInfo("sub")
            d.type = tarfile.DIRTYPE
            t.addfile(d)
        for k, name in enumerate(names):
            data = os.urandom(k * 333 + 1)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def by_tarfile(data: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return [(os.path.basename(m.name), t.extractfile(m).read()) for m in t if m.isfile()]


SHORT = [f"n01440764_{i}.JPEG" for i in range(7)]
LONG = SHORT + ["x" * 120 + ".JPEG"]


@pytest.mark.parametrize(
    "fmt, names, folder, plain",
    [
        (tarfile.GNU_FORMAT, SHORT, False, True),
        (tarfile.USTAR_FORMAT, SHORT, False, True),
        (tarfile.PAX_FORMAT, SHORT, False, True),
        (tarfile.GNU_FORMAT, LONG, False, False),  # a long name: GNU's ././@LongLink member
        (tarfile.PAX_FORMAT, LONG, False, False),  # a pax header
        (tarfile.GNU_FORMAT, SHORT, True, False),  # a folder member
        (tarfile.GNU_FORMAT, [], False, True),
    ],
)
def test_members_are_what_tarfile_reads(fmt, names, folder, plain):
    data = inner_tar(fmt, names, folder)
    assert (_plain_members(data) is not None) == plain
    assert [(n, bytes(b)) for n, b in class_items(data, "train/x")] == by_tarfile(data)


def test_a_damaged_inner_tar_is_left_to_tarfile_which_refuses_it():
    data = bytearray(inner_tar(tarfile.GNU_FORMAT, SHORT))
    data[148] ^= 1  # the first header's checksum
    assert _plain_members(bytes(data)) is None
    with pytest.raises(PrepareError, match="train/x is damaged"):
        class_items(bytes(data), "train/x")
    short = inner_tar(tarfile.GNU_FORMAT, SHORT)[:3000]
    assert _plain_members(short) is None
